/**
 * The outbox's SQLite schema (its migrations, one per `PRAGMA user_version`) and the rows
 * its queries read. Internal to src/outbox: `sqlite.ts` is the store on top.
 */
import type { Disposition } from '../protocol/ack.js'
import { certificateColumns, CREATE_CERTIFICATES, cutCertificatesOf } from '../sqlite/certificates.js'
import type { Migration } from '../sqlite/migrate.js'
import type { DeliveryState } from './store.js'

/** The outbox schema, one entry per `PRAGMA user_version`. */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    up(db) {
      db.exec(`
        CREATE TABLE messages (
          msg_id TEXT PRIMARY KEY,
          topic TEXT NOT NULL,
          digest TEXT NOT NULL,
          created_at INTEGER NOT NULL,
          deadline INTEGER NOT NULL,
          state TEXT NOT NULL CHECK (state IN ('pending', 'acked', 'expired', 'rejected')),
          attempts INTEGER NOT NULL,
          next_attempt_at INTEGER NOT NULL,
          finished_at INTEGER
        );
        CREATE TABLE bodies (
          msg_id TEXT PRIMARY KEY REFERENCES messages (msg_id) ON DELETE CASCADE,
          body TEXT NOT NULL
        );
        CREATE TABLE ack_bodies (
          id INTEGER PRIMARY KEY,
          hash BLOB UNIQUE NOT NULL,
          body TEXT NOT NULL
        );
        CREATE TABLE recipients (
          msg_id TEXT NOT NULL REFERENCES messages (msg_id) ON DELETE CASCADE,
          cn TEXT NOT NULL,
          position INTEGER NOT NULL,
          state TEXT NOT NULL CHECK (state IN ('pending', 'acked', 'expired', 'rejected')),
          at INTEGER,
          disposition TEXT CHECK (disposition IN ('received', 'processed', 'rejected')),
          reason TEXT,
          ack_body_id INTEGER REFERENCES ack_bodies (id),
          ack_fingerprint TEXT,
          PRIMARY KEY (msg_id, cn)
        ) WITHOUT ROWID;
        CREATE INDEX messages_due ON messages (next_attempt_at, msg_id) WHERE state = 'pending';
        CREATE INDEX messages_deadline ON messages (deadline, msg_id) WHERE state = 'pending';
        CREATE INDEX messages_finished ON messages (finished_at) WHERE state != 'pending';
        CREATE INDEX messages_created ON messages (created_at, msg_id);
        CREATE INDEX recipients_ack_body ON recipients (ack_body_id) WHERE ack_body_id IS NOT NULL;
      `)
    },
  },
  {
    // Messages committed by a process that does not send them (gilmsg enqueue, attempts 0): what an agent sends first.
    version: 2,
    up(db) {
      db.exec(`CREATE INDEX messages_unsent ON messages (created_at, msg_id) WHERE state = 'pending' AND attempts = 0`)
    },
  },
  {
    // publish()'s quorum, which decides when a rejection ends the message; NULL: every recipient.
    version: 3,
    up(db) {
      db.exec(`ALTER TABLE messages ADD COLUMN quorum INTEGER CHECK (quorum IS NULL OR quorum >= 1)`)
    },
  },
  {
    // Each signer's certificate stored once (src/sqlite/certificates.ts): message and ACK bodies keep
    // their text without it, `cert_id` and `cert_at` say which and where it goes back. Existing bodies
    // are cut here (the space they free is reused by later rows; VACUUM returns it to the disk).
    // The ACK signer's fingerprint moves from each recipient row to its ACK body's row (new rows are
    // keyed by body and fingerprint; rows written before keep theirs in `recipients.ack_fingerprint`).
    version: 4,
    up(db) {
      db.exec(`${CREATE_CERTIFICATES}; ${certificateColumns('bodies')} ${certificateColumns('ack_bodies')}
        ALTER TABLE ack_bodies ADD COLUMN fingerprint TEXT;`)
      cutCertificatesOf(db, 'bodies')
      cutCertificatesOf(db, 'ack_bodies')
    },
  },
]

export const MESSAGE_COLUMNS = `m.msg_id, m.topic, b.body, b.cert_at, c.certificate, m.digest, m.created_at, m.deadline, m.state, m.attempts, m.next_attempt_at, m.finished_at, m.quorum`
export const FROM_MESSAGES = `FROM messages m JOIN bodies b ON b.msg_id = m.msg_id LEFT JOIN certificates c ON c.id = b.cert_id`

export interface MessageSqlRow {
  readonly msg_id: string
  readonly topic: string
  /** Without its certificate when `cert_at` is set: see `restoreCertificate`. */
  readonly body: string
  readonly cert_at: number | null
  readonly certificate: string | null
  readonly digest: string
  readonly created_at: number
  readonly deadline: number
  readonly state: DeliveryState
  readonly attempts: number
  readonly next_attempt_at: number
  readonly finished_at: number | null
  readonly quorum: number | null
}

export interface RecipientSqlRow {
  readonly cn: string
  readonly state: DeliveryState
  readonly at: number | null
  readonly disposition: Disposition | null
  readonly reason: string | null
  readonly ack_body: string | null
  readonly ack_cert_at: number | null
  readonly ack_certificate: string | null
  readonly ack_fingerprint: string | null
}
