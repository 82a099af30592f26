import type Database from 'better-sqlite3'
import type { GroupCommitStats } from '../outbox/group-commit.js'
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
        CREATE TABLE inbox (
          msg_id TEXT PRIMARY KEY,
          digest TEXT NOT NULL,
          received_at INTEGER NOT NULL,
          ack_topic TEXT,
          ack_body TEXT
        );
        CREATE INDEX inbox_received ON inbox (received_at);
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
    get: db.prepare<[string], InboxSqlRow>(`SELECT msg_id, digest, received_at, ack_topic, ack_body FROM inbox WHERE msg_id = ?`),
    put: db.prepare<[string, string, number, string | null, string | null]>(
      `INSERT INTO inbox (msg_id, digest, received_at, ack_topic, ack_body) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (msg_id) DO UPDATE SET
         digest = excluded.digest, received_at = excluded.received_at, ack_topic = excluded.ack_topic, ack_body = excluded.ack_body`,
    ),
    prune: db.prepare<[number]>(`DELETE FROM inbox WHERE received_at < ?`),
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
 * `get` is synchronous and sees every write issued so far, committed or not;
 * after a failed batch it sees the committed state again. After `close()`
 * reads throw and writes reject with a `ClosedError`.
 */
export class SqliteInboxStore implements InboxStore {
  /** The path given to {@link open}. */
  readonly path: string
  readonly #file: SqliteFile
  readonly #s: Statements

  private constructor(path: string, file: SqliteFile, statements: Statements) {
    this.path = path
    this.#file = file
    this.#s = statements
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
      this.#s.put.run(entry.msgId, entry.digest, entry.receivedAt, entry.ackTopic ?? null, entry.ackBody ?? null)
    })
  }

  prune(before: number): Promise<number> {
    return this.#file.batch.run(() => {
      checkPruneBefore(before)
      return this.#s.prune.run(before).changes
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
