import type Database from 'better-sqlite3'
import { contentHash, ContentIds } from './content-ids.js'
import type { GroupCommit } from './group-commit.js'

/*
 * Each signer's certificate stored once. A signed body (a message's frame 1, an ACK's) carries
 * its signer's certificate, about a kilobyte, outside what the signature covers: the stores keep
 * the body with that string cut out, the certificate in the `certificates` table (keyed by the
 * SHA-256 of its text as on the wire), and the offset where it goes back. Putting it back gives
 * the exact bytes received or sent, so a stored receipt verifies as it did on the wire.
 * Internal to the stores.
 */

/** The table every store with signed bodies has (migration SQL). Rows are never deleted: one per certificate ever seen. */
export const CREATE_CERTIFICATES = `CREATE TABLE certificates (id INTEGER PRIMARY KEY, hash BLOB UNIQUE NOT NULL, certificate TEXT NOT NULL)`

/** SQL adding the two columns a table of bodies needs (`cert_id`, `cert_at`). */
export function certificateColumns(table: string): string {
  return `ALTER TABLE ${table} ADD COLUMN cert_id INTEGER REFERENCES certificates (id);
          ALTER TABLE ${table} ADD COLUMN cert_at INTEGER;`
}

/** Where the text of a body's top-level `"certificate"` string sits: `[start, end)`, without its quotes. */
export interface CertificateSpan {
  readonly start: number
  readonly end: number
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d
}

function skipSpace(s: string, i: number): number {
  while (i < s.length && isSpace(s.charCodeAt(i))) i++
  return i
}

/** Index after the closing quote of the string opening at `i`, or -1. */
function stringEnd(s: string, i: number): number {
  let j = i
  for (;;) {
    j = s.indexOf('"', j + 1)
    if (j < 0) return -1
    let backslashes = 0
    while (s.charCodeAt(j - 1 - backslashes) === 0x5c) backslashes++
    if (backslashes % 2 === 0) return j + 1
  }
}

/** Index after the JSON value starting at `i` (strings and nesting skipped, not validated), or -1. */
function valueEnd(s: string, i: number): number {
  const c = s.charCodeAt(i)
  if (c === 0x22) return stringEnd(s, i)
  if (c === 0x7b || c === 0x5b) {
    let depth = 0
    for (let j = i; j < s.length; j++) {
      const d = s.charCodeAt(j)
      if (d === 0x22) {
        j = stringEnd(s, j)
        if (j < 0) return -1
        j--
      } else if (d === 0x7b || d === 0x5b) depth++
      else if (d === 0x7d || d === 0x5d) {
        depth--
        if (depth === 0) return j + 1
      }
    }
    return -1
  }
  let j = i
  while (j < s.length) {
    const d = s.charCodeAt(j)
    if (d === 0x2c || d === 0x7d || d === 0x5d || isSpace(d)) break
    j++
  }
  return j > i ? j : -1
}

/**
 * The first top-level `"certificate"` member of the JSON object text `body` whose value is a
 * non-empty string, or undefined (not an object, no such member, or text it cannot follow).
 * A scanner, not a parser: it reads keys at depth 1 and skips values. In gilmsg's own canonical
 * bodies `certificate` is the first key, so it reads a few bytes past the certificate only.
 */
export function findCertificate(body: string): CertificateSpan | undefined {
  let i = skipSpace(body, 0)
  if (body.charCodeAt(i) !== 0x7b) return undefined
  i++
  for (;;) {
    i = skipSpace(body, i)
    if (body.charCodeAt(i) !== 0x22) return undefined
    const keyEnd = stringEnd(body, i)
    if (keyEnd < 0) return undefined
    const isCertificate = keyEnd - i === 13 && body.startsWith('"certificate"', i)
    i = skipSpace(body, keyEnd)
    if (body.charCodeAt(i) !== 0x3a) return undefined
    i = skipSpace(body, i + 1)
    const end = valueEnd(body, i)
    if (end < 0) return undefined
    if (isCertificate && body.charCodeAt(i) === 0x22 && end - i > 2) return { start: i + 1, end: end - 1 }
    i = skipSpace(body, end)
    if (body.charCodeAt(i) !== 0x2c) return undefined
    i++
  }
}

/** A body as stored: the text without its certificate, the certificate's row and where it goes back (both null: stored whole). */
export interface StoredBody {
  readonly body: string
  readonly certId: number | null
  readonly certAt: number | null
}

/** `body` (as stored, certificate cut out) with `certificate` put back at `at`: the bytes as signed and sent. */
export function restoreCertificate(body: string, at: number | null, certificate: string | null): string {
  if (at === null || certificate === null) return body
  return body.slice(0, at) + certificate + body.slice(at)
}

/**
 * The `certificates` table of one store, written inside its group-commit
 * writes (ids of rows inserted by a batch that rolls back are never reused
 * from memory: see `ContentIds`).
 */
export class Certificates {
  readonly #ids: ContentIds

  /** Prepares its statements on `db`, whose schema has {@link CREATE_CERTIFICATES}. */
  constructor(batch: GroupCommit, db: Database.Database) {
    this.#ids = new ContentIds(
      batch,
      db.prepare<[Buffer], number>(`SELECT id FROM certificates WHERE hash = ?`).pluck(),
      db.prepare<unknown[]>(`INSERT INTO certificates (hash, certificate) VALUES (?, ?)`),
    )
  }

  /** `body` ready to store: its certificate cut out and stored (once). Call inside a write. */
  cut(body: string): StoredBody {
    const span = findCertificate(body)
    if (span === undefined) return { body, certId: null, certAt: null }
    const certId = this.#ids.idOf([body.slice(span.start, span.end)])
    return { body: body.slice(0, span.start) + body.slice(span.end), certId, certAt: span.start }
  }
}

/**
 * For a migration: cuts the certificate out of every `body` of `table`
 * (which has the columns of {@link certificateColumns} and a rowid), in
 * chunks, storing each certificate once. Runs inside the migration's
 * transaction. Returns how many bodies were cut.
 */
export function cutCertificatesOf(db: Database.Database, table: string): number {
  const select = db.prepare<[number], { readonly k: number; readonly body: string | null }>(
    `SELECT rowid AS k, body FROM ${table} WHERE rowid > ? AND cert_id IS NULL ORDER BY rowid LIMIT 1000`,
  )
  const update = db.prepare<[string, number, number, number]>(`UPDATE ${table} SET body = ?, cert_id = ?, cert_at = ? WHERE rowid = ?`)
  const find = db.prepare<[string], number>(`SELECT id FROM certificates WHERE certificate = ?`).pluck()
  const insert = db.prepare<[Buffer, string]>(`INSERT INTO certificates (hash, certificate) VALUES (?, ?)`)
  const ids = new Map<string, number>()
  const idOf = (certificate: string): number => {
    let id = ids.get(certificate) ?? find.get(certificate)
    if (id === undefined) id = Number(insert.run(contentHash([certificate]), certificate).lastInsertRowid)
    ids.set(certificate, id)
    return id
  }
  let cut = 0
  let last = 0
  for (;;) {
    const rows = select.all(last)
    if (rows.length === 0) return cut
    for (const { k, body } of rows) {
      last = k
      const span = body === null ? undefined : findCertificate(body)
      if (body === null || span === undefined) continue
      update.run(body.slice(0, span.start) + body.slice(span.end), idOf(body.slice(span.start, span.end)), span.start, k)
      cut++
    }
  }
}
