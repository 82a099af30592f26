import type Database from 'better-sqlite3'
import { Certificates, certificateColumns, CREATE_CERTIFICATES, cutCertificatesOf, restoreCertificate } from '../sqlite/certificates.js'
import { ContentIds } from '../sqlite/content-ids.js'
import { SqliteFile } from '../sqlite/file.js'
import type { GroupCommitStats } from '../sqlite/group-commit.js'
import { latestVersion, type Migration } from '../sqlite/migrate.js'
import { inspectSqlite, type SqliteInspection } from '../sqlite/inspect.js'
import type { SqliteStoreOptions } from '../sqlite/options.js'
import { checkAttemptKey, checkInboxEntry, checkPruneBefore } from './rules.js'
import { checkTime } from '../util/options.js'
import type { InboxEntry, InboxStore } from './store.js'

/** The inbox schema, one entry per `PRAGMA user_version` (exported for tests that write older files). */
export const MIGRATIONS: readonly Migration[] = [
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
  {
    // Keyed by (msg_id, signer CN): a msg_id seen first from another signer no longer shadows the
    // genuine message. Rows of schema 1 keep a NULL signer: `get` returns one for its msg_id whatever
    // the signer, and the consumer takes it for the same message only if the digest (over the signed
    // bytes) is equal. They are pruned like the others, within the retention.
    version: 2,
    up(db) {
      db.exec(`
        CREATE TABLE inbox_v2 (
          msg_id TEXT NOT NULL,
          signer TEXT,
          digest TEXT NOT NULL,
          received_at INTEGER NOT NULL,
          ack_id INTEGER REFERENCES inbox_acks (id)
        );
        INSERT INTO inbox_v2 (msg_id, signer, digest, received_at, ack_id) SELECT msg_id, NULL, digest, received_at, ack_id FROM inbox;
        DROP TABLE inbox;
        ALTER TABLE inbox_v2 RENAME TO inbox;
        CREATE UNIQUE INDEX inbox_key ON inbox (msg_id, signer);
        CREATE INDEX inbox_received ON inbox (received_at);
        CREATE INDEX inbox_ack ON inbox (ack_id) WHERE ack_id IS NOT NULL;
      `)
    },
  },
  {
    // Attempts at handling a message whose ACK waits for work done outside (gilmsg consume --exec):
    // counted before each attempt starts, so a retry limit holds across crashes and restarts.
    version: 3,
    up(db) {
      db.exec(`
        CREATE TABLE inbox_attempts (
          msg_id TEXT NOT NULL,
          signer TEXT NOT NULL,
          attempts INTEGER NOT NULL,
          last_at INTEGER NOT NULL,
          PRIMARY KEY (msg_id, signer)
        );
        CREATE INDEX inbox_attempts_last ON inbox_attempts (last_at);
      `)
    },
  },
  {
    // Each signer's certificate stored once (src/sqlite/certificates.ts): a stored ACK keeps its body
    // without it, `cert_id` and `cert_at` say which and where it goes back. Existing ACKs are cut here.
    version: 4,
    up(db) {
      db.exec(`${CREATE_CERTIFICATES}; ${certificateColumns('inbox_acks')}`)
      cutCertificatesOf(db, 'inbox_acks')
    },
  },
]

/** The schema version (`PRAGMA user_version`) this gilmsg writes in an inbox. */
export const INBOX_SCHEMA_VERSION = latestVersion(MIGRATIONS)

/** What {@link inspectInbox} reports of an inbox file: how many messages it remembers. */
export type InboxInspection = SqliteInspection<{ readonly messages: number }>

/**
 * Looks into an existing inbox file without changing it (see `inspectSqlite`): integrity,
 * schema version, and how many received messages it remembers. Throws a `StoreError` when
 * the file is missing or cannot be read.
 */
export function inspectInbox(path: string, timeoutMs?: number): InboxInspection {
  return inspectSqlite('inbox', path, INBOX_SCHEMA_VERSION, (db) => ({
    messages: db.prepare<[], number>(`SELECT COUNT(*) FROM inbox`).pluck().get() ?? 0,
  }), timeoutMs)
}

interface InboxSqlRow {
  readonly msg_id: string
  readonly signer: string | null
  readonly digest: string
  readonly received_at: number
  readonly ack_topic: string | null
  /** Without its certificate when `ack_cert_at` is set: see `restoreCertificate`. */
  readonly ack_body: string | null
  readonly ack_cert_at: number | null
  readonly ack_certificate: string | null
}

type Statements = ReturnType<typeof prepareStatements>

function prepareStatements(db: Database.Database) {
  return {
    // The signer's own row first, else a schema-1 row (NULL signer) for the msg_id.
    get: db.prepare<[string, string], InboxSqlRow>(
      `SELECT i.msg_id, i.signer, i.digest, i.received_at, a.topic AS ack_topic, a.body AS ack_body,
       a.cert_at AS ack_cert_at, c.certificate AS ack_certificate
       FROM inbox i LEFT JOIN inbox_acks a ON a.id = i.ack_id LEFT JOIN certificates c ON c.id = a.cert_id
       WHERE i.msg_id = ? AND (i.signer = ? OR i.signer IS NULL) ORDER BY i.signer IS NULL LIMIT 1`,
    ),
    ackIdOf: db.prepare<[string, string], number | null>(`SELECT ack_id FROM inbox WHERE msg_id = ? AND signer = ?`).pluck(),
    findAck: db.prepare<[Buffer], number>(`SELECT id FROM inbox_acks WHERE hash = ?`).pluck(),
    insertAck: db.prepare<unknown[]>(`INSERT INTO inbox_acks (hash, topic, body, cert_id, cert_at) VALUES (?, ?, ?, ?, ?)`),
    insert: db.prepare<[string, string, string, number, number | null]>(
      `INSERT INTO inbox (msg_id, signer, digest, received_at, ack_id) VALUES (?, ?, ?, ?, ?) ON CONFLICT (msg_id, signer) DO NOTHING`,
    ),
    put: db.prepare<[string, string, string, number, number | null]>(
      `INSERT INTO inbox (msg_id, signer, digest, received_at, ack_id) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (msg_id, signer) DO UPDATE SET digest = excluded.digest, received_at = excluded.received_at, ack_id = excluded.ack_id`,
    ),
    attempts: db.prepare<[string, string], number>(`SELECT attempts FROM inbox_attempts WHERE msg_id = ? AND signer = ?`).pluck(),
    addAttempt: db.prepare<[string, string, number], number>(
      `INSERT INTO inbox_attempts (msg_id, signer, attempts, last_at) VALUES (?, ?, 1, ?)
       ON CONFLICT (msg_id, signer) DO UPDATE SET attempts = attempts + 1, last_at = excluded.last_at RETURNING attempts`,
    ).pluck(),
    pruneAttempts: db.prepare<[number]>(`DELETE FROM inbox_attempts WHERE last_at < ?`),
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
 * own file, see `defaultStatePath(name, 'inbox')`), with the engine's group
 * commit (`src/sqlite/`): `put` and `prune` run at once inside the current
 * batch transaction and resolve after it commits (on `setImmediate`, or once
 * it holds `maxBatchOps` writes). A commit failure rejects every write of the
 * batch with a `StoreError` (`store: 'inbox'`, code `GILMSG_STORE`) that says
 * nothing in it was committed.
 *
 * Each distinct ACK (topic and body) is stored once (table `inbox_acks`,
 * keyed by its SHA-256), however many messages one batched ACK acknowledges;
 * `prune`, and a `put` that replaces an entry's ACK, delete the ACKs no longer
 * referenced. The signer's certificate in a stored ACK (about a kilobyte) is
 * stored once per certificate (table `certificates`) and put back on `get`,
 * so `get` returns the ACK's exact bytes.
 *
 * Entries are keyed by (msg_id, signer CN). A file of schema 1 (keyed by
 * msg_id alone) is migrated on open; its entries keep no signer (see
 * {@link InboxStore.get}) until they are pruned.
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
    const certificates = new Certificates(file.batch, file.db)
    this.#acks = new ContentIds(file.batch, statements.findAck, statements.insertAck, ([topic, body]) => {
      if (body === null || body === undefined) return [topic, body ?? null, null, null]
      const stored = certificates.cut(body)
      return [topic, stored.body, stored.certId, stored.certAt]
    })
  }

  /**
   * Opens the inbox at `path`, creating the file (mode 0600) and its
   * directory (mode 0700) if missing, and migrating its schema. Throws a
   * `StoreError` (`store: 'inbox'`) naming the path and what to do when the
   * file is locked by another process past `busyTimeoutMs`, is not a database
   * or is corrupt, cannot be created or written, or has a newer schema; an
   * `InvalidArgumentError` for an empty path or invalid options.
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

  get(signer: string, msgId: string): InboxEntry | undefined {
    return this.#file.read(() => {
      const row = this.#s.get.get(msgId, signer)
      if (row === undefined) return undefined
      return {
        signer: row.signer ?? undefined,
        msgId: row.msg_id,
        digest: row.digest,
        receivedAt: row.received_at,
        ackTopic: row.ack_topic ?? undefined,
        ackBody: row.ack_body === null ? undefined : restoreCertificate(row.ack_body, row.ack_cert_at, row.ack_certificate),
      }
    })
  }

  put(entry: InboxEntry): Promise<void> {
    return this.#file.batch.run(() => {
      checkInboxEntry(entry)
      const s = this.#s
      const { ackTopic, ackBody } = entry
      const ackId = ackTopic === undefined && ackBody === undefined ? null : this.#acks.idOf([ackTopic ?? null, ackBody ?? null])
      const signer = entry.signer as string
      // A consumer puts each message once: one statement; replacing an entry (and its ACK) is the rare path.
      if (s.insert.run(entry.msgId, signer, entry.digest, entry.receivedAt, ackId).changes > 0) return
      const previous = s.ackIdOf.get(entry.msgId, signer)
      s.put.run(entry.msgId, signer, entry.digest, entry.receivedAt, ackId)
      if (previous != null && previous !== ackId && s.deleteUnusedAck.run(previous).changes > 0) this.#acks.forget()
    })
  }

  attempts(signer: string, msgId: string): number {
    return this.#file.read(() => this.#s.attempts.get(msgId, signer) ?? 0)
  }

  addAttempt(signer: string, msgId: string, at: number): Promise<number> {
    return this.#file.batch.run(() => {
      checkAttemptKey(signer, msgId)
      checkTime('addAttempt(at)', at)
      return this.#s.addAttempt.get(msgId, signer, at) as number
    })
  }

  prune(before: number): Promise<number> {
    return this.#file.batch.run(() => {
      checkPruneBefore(before)
      this.#s.pruneAttempts.run(before)
      const ackIds = this.#s.prune.all(before)
      const unique = [...new Set(ackIds.filter((id) => id !== null))]
      if (unique.length > 0 && this.#s.deleteUnusedAcks.run(JSON.stringify(unique)).changes > 0) this.#acks.forget()
      return ackIds.length
    })
  }

  /**
   * Commits queued writes (settling their promises), then closes the file.
   * Idempotent: every call returns the same promise. Rejects with a
   * `StoreError` only if the file cannot be closed.
   */
  close(): Promise<void> {
    return this.#file.close()
  }
}
