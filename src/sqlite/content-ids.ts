import { createHash } from 'node:crypto'
import type Database from 'better-sqlite3'
import type { GroupCommit } from './group-commit.js'

/* Content-addressed rows for the SQLite stores. Internal to the stores. */

/** The parts of one stored value (e.g. an ACK's topic and body); null is distinct from ''. */
export type ContentParts = readonly (string | null)[]

/**
 * SHA-256 of `parts`: of the string's UTF-8 bytes for one string (an outbox
 * ACK body), else of each part length-prefixed (`-;` for null), so that no
 * two different tuples hash the same input. Stored on disk: do not change.
 */
export function contentHash(parts: ContentParts): Buffer {
  const hash = createHash('sha256')
  if (parts.length === 1 && typeof parts[0] === 'string') return hash.update(parts[0]).digest()
  for (const part of parts) {
    if (part === null) hash.update('-;')
    else hash.update(`${Buffer.byteLength(part)};`).update(part)
  }
  return hash.digest()
}

function sameParts(a: ContentParts, b: ContentParts): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/**
 * Stores each distinct value once, in a table `(id INTEGER PRIMARY KEY, hash
 * BLOB UNIQUE NOT NULL, ...parts)` keyed by {@link contentHash}; rows refer to
 * it by id. Used inside group-commit writes only.
 *
 * Consecutive calls usually carry the same strings (one batched ACK
 * acknowledges up to 64 messages), so it remembers the last value: its hash
 * for good, and its id for the rest of the current transaction only (a
 * rolled-back batch takes the rows it inserted with it; within a transaction
 * no other connection can write). Call {@link forget} after deleting rows
 * of the table.
 */
export class ContentIds {
  readonly #batch: GroupCommit
  readonly #find: Database.Statement<[Buffer], number>
  readonly #insert: Database.Statement<unknown[]>
  readonly #row: ((parts: ContentParts) => readonly unknown[]) | undefined
  #parts: ContentParts | undefined
  #hash: Buffer = Buffer.alloc(0)
  #id: number | undefined
  #idBatch = -1

  /**
   * `find`: `SELECT id FROM t WHERE hash = ?` (plucked); `insert`: `INSERT INTO t (hash, ...row) VALUES (?, ...)`,
   * where `row(parts)` (default: the parts themselves) is what is stored of a new value; it runs inside the write.
   */
  constructor(
    batch: GroupCommit,
    find: Database.Statement<[Buffer], number>,
    insert: Database.Statement<unknown[]>,
    row?: (parts: ContentParts) => readonly unknown[],
  ) {
    this.#batch = batch
    this.#find = find
    this.#insert = insert
    this.#row = row
  }

  /** The id of the row holding `parts`, inserted if missing. Call inside a write. */
  idOf(parts: ContentParts): number {
    if (this.#parts === undefined || !sameParts(this.#parts, parts)) {
      this.#hash = contentHash(parts)
      this.#parts = parts
      this.#id = undefined
    } else if (this.#id !== undefined && this.#idBatch === this.#batch.batchNumber) {
      return this.#id
    }
    let id = this.#find.get(this.#hash)
    if (id === undefined) id = Number(this.#insert.run(this.#hash, ...(this.#row === undefined ? parts : this.#row(parts))).lastInsertRowid)
    this.#id = id
    this.#idBatch = this.#batch.batchNumber
    return id
  }

  /** The id of `parts` if it was looked up in this transaction already (no statement run), else undefined. */
  knownId(parts: ContentParts): number | undefined {
    if (this.#id === undefined || this.#idBatch !== this.#batch.batchNumber || this.#parts === undefined || !sameParts(this.#parts, parts)) return undefined
    return this.#id
  }

  /** Forgets the remembered id (not the hash): rows of the table may have been deleted. */
  forget(): void {
    this.#id = undefined
  }
}
