import type Database from 'better-sqlite3'
import type { GroupCommitStats } from '../outbox/group-commit.js'
import { ContentIds } from '../outbox/sqlite-dedupe.js'
import { SqliteFile } from '../outbox/sqlite-file.js'
import type { Migration, SqliteStoreOptions } from '../outbox/sqlite-common.js'
import { checkInboxEntry, checkPruneBefore } from './rules.js'
import type { InboxEntry, InboxStore } from './store.js'

/** The inbox schema, one entry per `PRAGMA user_version`. */
const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    up(db) {
      db.exec(`
        CREATE TABLE inbox_acks (
          id INTEGER PRIMARY KEY,
          hash BLOB UNIQUE NOT NULL,
          topic TEXT,
          body TEXT
        );
        CREATE TABLE inbox (
          msg_id TEXT PRIMARY KEY,
          digest TEXT NOT NULL,
          received_at INTEGER NOT NULL,
          ack_id INTEGER REFERENCES inbox_acks (id)
        );
        CREATE INDEX inbox_received ON inbox (received_at);
        CREATE INDEX inbox_ack ON inbox (ack_id) WHERE ack_id IS NOT NULL;
      `)
    },
  },
]

interface InboxSqlRow {
  readonly msg_id: string
  readonly digest: string
  readonly received_at: number
  readonly ack_topic: string | null
  readonly ack_body: string | null
}

type Statements = ReturnType<typeof prepareStatements>

function prepareStatements(db: Database.Database) {
  return {
    get: db.prepare<[string], InboxSqlRow>(
      `SELECT i.msg_id, i.digest, i.received_at, a.topic AS ack_topic, a.body AS ack_body
       FROM inbox i LEFT JOIN inbox_acks a ON a.id = i.ack_id WHERE i.msg_id = ?`,
    ),
    ackIdOf: db.prepare<[string], number | null>(`SELECT ack_id FROM inbox WHERE msg_id = ?`).pluck(),
    findAck: db.prepare<[Buffer], number>(`SELECT id FROM inbox_acks WHERE hash = ?`).pluck(),
    insertAck: db.prepare<unknown[]>(`INSERT INTO inbox_acks (hash, topic, body) VALUES (?, ?, ?)`),
    insert: db.prepare<[string, string, number, number | null]>(
      `INSERT INTO inbox (msg_id, digest, received_at, ack_id) VALUES (?, ?, ?, ?) ON CONFLICT (msg_id) DO NOTHING`,
    ),
    put: db.prepare<[string, string, number, number | null]>(
      `INSERT INTO inbox (msg_id, digest, received_at, ack_id) VALUES (?, ?, ?, ?)
       ON CONFLICT (msg_id) DO UPDATE SET digest = excluded.digest, received_at = excluded.received_at, ack_id = excluded.ack_id`,
    ),
    prune: db.prepare<[number], number | null>(`DELETE FROM inbox WHERE received_at < ? RETURNING ack_id`).pluck(),
    deleteUnusedAck: db.prepare<[number]>(
      `DELETE FROM inbox_acks WHERE id = ? AND NOT EXISTS (SELECT 1 FROM inbox WHERE ack_id = inbox_acks.id)`,
    ),
    deleteUnusedAcks: db.prepare<[string]>(
      `DELETE FROM inbox_acks WHERE id IN (SELECT value FROM json_each(?))
       AND NOT EXISTS (SELECT 1 FROM inbox WHERE ack_id = inbox_acks.id)`,
    ),
  }
}

/**
 * The durable {@link InboxStore}: one SQLite file in WAL mode (normally its
 * own file, see `defaultStatePath(name, 'inbox')`), with the outbox's group
 * commit: `put` and `prune` run at once inside the current batch transaction
 * and resolve after it commits (on `setImmediate`, or once it holds
 * `maxBatchOps` writes). A commit failure rejects every write of the batch
 * with an `OutboxError` (code `GILMSG_OUTBOX`) that says nothing in it was
 * committed.
 *
 * Each distinct ACK (topic and body) is stored once (table `inbox_acks`,
 * keyed by its SHA-256), however many messages one batched ACK acknowledges;
 * `prune`, and a `put` that replaces an entry's ACK, delete the ACKs no longer
 * referenced.
 *
 * `get` is synchronous and sees every write issued so far, committed or not;
 * after a failed batch it sees the committed state again. After `close()`
 * reads throw and writes reject with a `ClosedError`.
 */
export class SqliteInboxStore implements InboxStore {
  /** The path given to {@link open}. */
  readonly path: string
  readonly #file: SqliteFile
  readonly #s: Statements
  readonly #acks: ContentIds

  private constructor(path: string, file: SqliteFile, statements: Statements) {
    this.path = path
    this.#file = file
    this.#s = statements
    this.#acks = new ContentIds(file.batch, statements.findAck, statements.insertAck)
  }

  /**
   * Opens the inbox at `path`, creating the file (mode 0600) and its
   * directory (mode 0700) if missing, and migrating its schema. Throws an
   * `OutboxError` naming the path and what to do when the file is locked by
   * another process past `busyTimeoutMs`, is not a database or is corrupt,
   * cannot be created or written, or has a newer schema; a `GILMSG_USAGE`
   * error for invalid options.
   */
  static open(path: string, options: SqliteStoreOptions = {}): SqliteInboxStore {
    const { file, statements } = SqliteFile.open('inbox', path, options, MIGRATIONS, prepareStatements)
    return new SqliteInboxStore(path, file, statements)
  }

  /** Group-commit counters: commits, writes, failed batches, largest batch. */
  get stats(): GroupCommitStats {
    return this.#file.batch.stats
  }

  /** The connection, for tests and diagnostics. Writing through it bypasses group commit. */
  get database(): Database.Database {
    return this.#file.db
  }

  get(msgId: string): InboxEntry | undefined {
    return this.#file.read(() => {
      const row = this.#s.get.get(msgId)
      if (row === undefined) return undefined
      return {
        msgId: row.msg_id,
        digest: row.digest,
        receivedAt: row.received_at,
        ackTopic: row.ack_topic ?? undefined,
        ackBody: row.ack_body ?? undefined,
      }
    })
  }

  put(entry: InboxEntry): Promise<void> {
    return this.#file.batch.run(() => {
      checkInboxEntry(entry)
      const s = this.#s
      const { ackTopic, ackBody } = entry
      const ackId = ackTopic === undefined && ackBody === undefined ? null : this.#acks.idOf([ackTopic ?? null, ackBody ?? null])
      // A consumer puts each msg_id once: one statement; replacing an entry (and its ACK) is the rare path.
      if (s.insert.run(entry.msgId, entry.digest, entry.receivedAt, ackId).changes > 0) return
      const previous = s.ackIdOf.get(entry.msgId)
      s.put.run(entry.msgId, entry.digest, entry.receivedAt, ackId)
      if (previous != null && previous !== ackId && s.deleteUnusedAck.run(previous).changes > 0) this.#acks.forget()
    })
  }

  prune(before: number): Promise<number> {
    return this.#file.batch.run(() => {
      checkPruneBefore(before)
      const ackIds = this.#s.prune.all(before)
      const unique = [...new Set(ackIds.filter((id) => id !== null))]
      if (unique.length > 0 && this.#s.deleteUnusedAcks.run(JSON.stringify(unique)).changes > 0) this.#acks.forget()
      return ackIds.length
    })
  }

  /**
   * Commits queued writes (settling their promises), then closes the file.
   * Idempotent: every call returns the same promise. Rejects with an
   * `OutboxError` only if the file cannot be closed.
   */
  close(): Promise<void> {
    return this.#file.close()
  }
}
