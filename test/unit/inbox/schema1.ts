import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import Database from 'better-sqlite3'
import { contentHash } from '../../../src/sqlite/content-ids.js'

/** A row of an inbox as gilmsg wrote it before entries had a signer. */
export interface Schema1Row {
  readonly msgId: string
  readonly digest: string
  readonly receivedAt: number
  /** The stored ACK (on topic `ackTopic`), if acknowledged. */
  readonly ackBody?: string
}

/** Writes an inbox file of schema 1 (keyed by msg_id alone, `PRAGMA user_version = 1`) holding `rows`, as gilmsg did. */
export function writeSchema1(path: string, rows: readonly Schema1Row[], ackTopic = 'org.example.dev.gilmsg.ack'): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 })
  const db = new Database(path)
  db.exec(`
    CREATE TABLE inbox_acks (id INTEGER PRIMARY KEY, hash BLOB UNIQUE NOT NULL, topic TEXT, body TEXT);
    CREATE TABLE inbox (msg_id TEXT PRIMARY KEY, digest TEXT NOT NULL, received_at INTEGER NOT NULL, ack_id INTEGER REFERENCES inbox_acks (id));
    CREATE INDEX inbox_received ON inbox (received_at);
    CREATE INDEX inbox_ack ON inbox (ack_id) WHERE ack_id IS NOT NULL;
  `)
  for (const r of rows) {
    let ackId: number | null = null
    if (r.ackBody !== undefined) {
      const hash = contentHash([ackTopic, r.ackBody])
      ackId = Number(db.prepare('INSERT INTO inbox_acks (hash, topic, body) VALUES (?, ?, ?)').run(hash, ackTopic, r.ackBody).lastInsertRowid)
    }
    db.prepare('INSERT INTO inbox (msg_id, digest, received_at, ack_id) VALUES (?, ?, ?, ?)').run(r.msgId, r.digest, r.receivedAt, ackId)
  }
  db.pragma('user_version = 1')
  db.close()
}
