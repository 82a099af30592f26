import type Database from 'better-sqlite3'
import { Disposition } from '../protocol/ack.js'
import { Certificates, restoreCertificate } from '../sqlite/certificates.js'
import { ContentIds } from '../sqlite/content-ids.js'
import { SqliteFile } from '../sqlite/file.js'
import type { GroupCommit, GroupCommitStats } from '../sqlite/group-commit.js'
import { latestVersion } from '../sqlite/migrate.js'
import { inspectSqlite, type SqliteInspection } from '../sqlite/inspect.js'
import type { SqliteStoreOptions } from '../sqlite/options.js'
import {
  added,
  checkAckRecord,
  checkLimit,
  checkListFilter,
  checkNewMessage,
  checkTime,
  duplicateMessage,
  emptyCounts,
  messageStateAfter,
  recipientStateAfter,
  recordNow,
  refuseAck,
} from './rules.js'
import { DeliveryState } from './store.js'
import type {
  AckOutcome,
  AckRecord,
  AckRecorded,
  Added,
  ListFilter,
  NewOutboxMessage,
  OutboxMessage,
  OutboxStore,
  RecipientStatus,
} from './store.js'
import { FROM_MESSAGES, MESSAGE_COLUMNS, MIGRATIONS, type MessageSqlRow, type RecipientSqlRow } from './sqlite-schema.js'

export { defaultStatePath } from '../sqlite/open.js'
export { DEFAULT_BUSY_TIMEOUT_MS, DEFAULT_CACHE_SIZE_KIB, DEFAULT_MAX_BATCH_OPS, DEFAULT_SYNCHRONOUS } from '../sqlite/options.js'
export type { SqliteStoreOptions, SqliteSynchronous } from '../sqlite/options.js'
export type { GroupCommitStats } from '../sqlite/group-commit.js'

/** The schema version (`PRAGMA user_version`) this gilmsg writes in an outbox. */
export const OUTBOX_SCHEMA_VERSION = latestVersion(MIGRATIONS)

/** What {@link inspectOutbox} reports of an outbox file. */
export type OutboxInspection = SqliteInspection<Record<DeliveryState, number>>

/**
 * Looks into an existing outbox file without changing it (see `inspectSqlite`): integrity,
 * schema version, and how many messages are in each state. Throws a `StoreError` when the
 * file is missing or cannot be read.
 */
export function inspectOutbox(path: string, timeoutMs?: number): OutboxInspection {
  return inspectSqlite('outbox', path, OUTBOX_SCHEMA_VERSION, (db) => {
    const counts = emptyCounts()
    const rows = db.prepare<[], { readonly state: DeliveryState; readonly n: number }>(`SELECT state, COUNT(*) AS n FROM messages GROUP BY state`).all()
    for (const { state, n } of rows) counts[state] = n
    return counts
  }, timeoutMs)
}

type Statements = ReturnType<typeof prepareStatements>

function prepareStatements(db: Database.Database) {
  return {
    message: db.prepare<[string], MessageSqlRow>(`SELECT ${MESSAGE_COLUMNS} ${FROM_MESSAGES} WHERE m.msg_id = ?`),
    recipientNames: db.prepare<[string], string>(`SELECT cn FROM recipients WHERE msg_id = ? ORDER BY position`).pluck(),
    recipients: db.prepare<[string], RecipientSqlRow>(
      `SELECT r.cn, r.state, r.at, r.disposition, r.reason, a.body AS ack_body, a.cert_at AS ack_cert_at, c.certificate AS ack_certificate,
       COALESCE(r.ack_fingerprint, a.fingerprint) AS ack_fingerprint
       FROM recipients r LEFT JOIN ack_bodies a ON a.id = r.ack_body_id LEFT JOIN certificates c ON c.id = a.cert_id
       WHERE r.msg_id = ? ORDER BY r.position`,
    ),
    insertMessage: db.prepare<[string, string, string, number, number, number, number, number | null]>(
      `INSERT INTO messages (msg_id, topic, digest, created_at, deadline, state, attempts, next_attempt_at, finished_at, quorum)
       VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, NULL, ?)`,
    ),
    insertBody: db.prepare<[string, string, number | null, number | null]>(`INSERT INTO bodies (msg_id, body, cert_id, cert_at) VALUES (?, ?, ?, ?)`),
    insertRecipient: db.prepare<[string, string, number]>(
      `INSERT INTO recipients (msg_id, cn, position, state) VALUES (?, ?, ?, 'pending')`,
    ),
    ackTarget: db.prepare<[string], { readonly state: DeliveryState; readonly digest: string }>(
      `SELECT state, digest FROM messages WHERE msg_id = ?`,
    ),
    recipientState: db.prepare<[string, string], DeliveryState>(`SELECT state FROM recipients WHERE msg_id = ? AND cn = ?`).pluck(),
    findAckBody: db.prepare<[Buffer], number>(`SELECT id FROM ack_bodies WHERE hash = ?`).pluck(),
    insertAckBody: db.prepare<unknown[]>(`INSERT INTO ack_bodies (hash, body, cert_id, cert_at, fingerprint) VALUES (?, ?, ?, ?, ?)`),
    recordAck: db.prepare<[DeliveryState, number, Disposition, string | null, number, string, string]>(
      `UPDATE recipients SET state = ?, at = ?, disposition = ?, reason = ?, ack_body_id = ?, ack_fingerprint = NULL
       WHERE msg_id = ? AND cn = ?`,
    ),
    // One statement for the common case (a pending recipient of a pending message, digest matching):
    // the checks of refuseAck folded into the UPDATE; it changes no row when any fails.
    recordPendingAck: db.prepare<[DeliveryState, number, Disposition, string | null, number, string, string, string, string | null, string | null]>(
      `UPDATE recipients SET state = ?, at = ?, disposition = ?, reason = ?, ack_body_id = ?, ack_fingerprint = NULL
       WHERE msg_id = ? AND cn = ? AND state = 'pending'
       AND EXISTS (SELECT 1 FROM messages m WHERE m.msg_id = ? AND m.state = 'pending' AND (? IS NULL OR m.digest = ?))`,
    ),
    missing: db.prepare<[string], string>(`SELECT cn FROM recipients WHERE msg_id = ? AND state = 'pending' ORDER BY position`).pluck(),
    ackedCount: db.prepare<[string], number>(`SELECT count(*) FROM recipients WHERE msg_id = ? AND state = 'acked'`).pluck(),
    quorum: db.prepare<[string], { readonly quorum: number | null; readonly n: number }>(
      `SELECT m.quorum, (SELECT count(*) FROM recipients r WHERE r.msg_id = m.msg_id) AS n FROM messages m WHERE m.msg_id = ?`,
    ),
    finish: db.prepare<[DeliveryState, number, string]>(`UPDATE messages SET state = ?, finished_at = ? WHERE msg_id = ?`),
    due: db.prepare<[number, number], MessageSqlRow>(
      `SELECT ${MESSAGE_COLUMNS} ${FROM_MESSAGES}
       WHERE m.state = 'pending' AND m.next_attempt_at <= ? ORDER BY m.next_attempt_at, m.msg_id LIMIT ?`,
    ),
    dueBy: db.prepare<[number, number, number], MessageSqlRow>(
      `SELECT ${MESSAGE_COLUMNS} ${FROM_MESSAGES}
       WHERE m.state = 'pending' AND m.deadline <= ? AND m.next_attempt_at <= ? ORDER BY m.deadline, m.msg_id LIMIT ?`,
    ),
    unsent: db.prepare<[number], MessageSqlRow>(
      `SELECT ${MESSAGE_COLUMNS} ${FROM_MESSAGES}
       WHERE m.state = 'pending' AND m.attempts = 0 ORDER BY m.created_at, m.msg_id LIMIT ?`,
    ),
    dataVersion: db.prepare<[], number>(`PRAGMA data_version`).pluck(),
    nextDueAt: db.prepare<[], number | null>(`SELECT MIN(next_attempt_at) FROM messages WHERE state = 'pending'`).pluck(),
    markAttempt: db.prepare<[number, string]>(
      `UPDATE messages SET attempts = attempts + 1, next_attempt_at = ? WHERE msg_id = ? AND state = 'pending'`,
    ),
    postpone: db.prepare<[number, string]>(`UPDATE messages SET next_attempt_at = ? WHERE msg_id = ? AND state = 'pending'`),
    expiring: db.prepare<[number], string>(
      `SELECT msg_id FROM messages WHERE state = 'pending' AND deadline <= ? ORDER BY deadline, msg_id`,
    ).pluck(),
    expireMessage: db.prepare<[number, string]>(
      `UPDATE messages SET state = 'expired', finished_at = ? WHERE msg_id = ? AND state = 'pending'`,
    ),
    expireRecipients: db.prepare<[number, string]>(`UPDATE recipients SET state = 'expired', at = ? WHERE msg_id = ? AND state = 'pending'`),
    retryMessage: db.prepare<[number, number, string]>(
      `UPDATE messages SET state = 'pending', deadline = ?, next_attempt_at = ?, finished_at = NULL WHERE msg_id = ? AND state = 'expired'`,
    ),
    retryRecipients: db.prepare<[string]>(`UPDATE recipients SET state = 'pending', at = NULL WHERE msg_id = ? AND state = 'expired'`),
    // CROSS JOIN keeps messages (via messages_finished) the outer loop; otherwise SQLite may scan every acked recipient.
    purgedAckBodies: db.prepare<[number], number>(
      `SELECT DISTINCT r.ack_body_id FROM messages m CROSS JOIN recipients r ON r.msg_id = m.msg_id
       WHERE m.state != 'pending' AND m.finished_at < ? AND r.ack_body_id IS NOT NULL`,
    ).pluck(),
    purge: db.prepare<[number]>(`DELETE FROM messages WHERE state != 'pending' AND finished_at < ?`),
    deleteUnusedAckBodies: db.prepare<[string]>(
      `DELETE FROM ack_bodies WHERE id IN (SELECT value FROM json_each(?))
       AND NOT EXISTS (SELECT 1 FROM recipients WHERE ack_body_id = ack_bodies.id)`,
    ),
    list: db.prepare<[number], MessageSqlRow>(`SELECT ${MESSAGE_COLUMNS} ${FROM_MESSAGES} ORDER BY m.created_at DESC, m.msg_id DESC LIMIT ?`),
    listState: db.prepare<[DeliveryState, number], MessageSqlRow>(
      `SELECT ${MESSAGE_COLUMNS} ${FROM_MESSAGES} WHERE m.state = ? ORDER BY m.created_at DESC, m.msg_id DESC LIMIT ?`,
    ),
    counts: db.prepare<[], { readonly state: DeliveryState; readonly n: number }>(
      `SELECT state, COUNT(*) AS n FROM messages GROUP BY state`,
    ),
    // CROSS JOIN keeps messages (the pending ones, via messages_due) the outer loop: only pending rows are read.
    pendingByRecipient: db.prepare<[], { readonly cn: string; readonly n: number }>(
      `SELECT r.cn AS cn, COUNT(*) AS n FROM messages m CROSS JOIN recipients r ON r.msg_id = m.msg_id
       WHERE m.state = 'pending' AND r.state = 'pending' GROUP BY r.cn ORDER BY r.cn`,
    ),
  }
}

/**
 * The durable {@link OutboxStore}: one SQLite file in WAL mode.
 *
 * Writes (`add`, `recordAck`, `expire`, `expireDue`, `retry`, `purge`,
 * `markAttempt` and `postpone`) are group-committed: each runs at once inside the current
 * batch transaction (so `recordAck` decides on a state that includes every
 * earlier write), and the batch commits on `setImmediate` or once it holds
 * `maxBatchOps` writes; each promise settles after that commit. A write that
 * is refused (duplicate msgId, invalid argument) rejects alone; a batch
 * failure (disk full, I/O error, failed COMMIT) rejects every write of the
 * batch with a `StoreError` that says nothing in it was committed.
 * If another process holds the file's write lock, the write that opens a
 * batch waits up to `busyTimeoutMs` (blocking the event loop), then rejects
 * with a "locked" `StoreError`.
 *
 * Each distinct ACK body is stored once with its signer's fingerprint (table
 * `ack_bodies`, keyed by the SHA-256 of both), however many messages one batched ACK acknowledges; `purge`
 * deletes the bodies no longer referenced. The signer's certificate in a
 * message or ACK body (about a kilobyte) is stored once per certificate
 * (table `certificates`) and put back when the body is read, so reads return
 * the exact bytes signed and sent.
 *
 * Reads are synchronous and share the connection, so they see every write
 * issued so far, committed or not, exactly like the memory store. If a batch
 * fails, its writes are rolled back and reads return to the committed state.
 * `markAttempt` and `postpone` ride in the batch without a promise; they are lost (harmlessly)
 * if the batch fails, and throw only if they cannot run at all.
 *
 * After `close()` every read throws and every write rejects with a `ClosedError`.
 */
export class SqliteOutboxStore implements OutboxStore {
  /** The path given to {@link open}. */
  readonly path: string
  readonly #file: SqliteFile
  readonly #batch: GroupCommit
  readonly #s: Statements
  readonly #ackBodies: ContentIds
  readonly #certificates: Certificates

  private constructor(path: string, file: SqliteFile, statements: Statements) {
    this.path = path
    this.#file = file
    this.#batch = file.batch
    this.#s = statements
    const certificates = new Certificates(file.batch, file.db)
    this.#certificates = certificates
    this.#ackBodies = new ContentIds(file.batch, statements.findAckBody, statements.insertAckBody, ([body, fingerprint]) => {
      const stored = certificates.cut(body as string)
      return [stored.body, stored.certId, stored.certAt, fingerprint]
    })
  }

  /**
   * Opens the outbox at `path`, creating the file (mode 0600) and its
   * directory (mode 0700) if missing, and migrating its schema. Throws a
   * `StoreError` (`store: 'outbox'`) naming the path and what to do when the
   * file is locked by another process past `busyTimeoutMs`, is not a database
   * or is corrupt, cannot be created or written, or has a newer schema; an
   * `InvalidArgumentError` for an empty path or invalid options.
   */
  static open(path: string, options: SqliteStoreOptions = {}): SqliteOutboxStore {
    const { file, statements } = SqliteFile.open('outbox', path, options, MIGRATIONS, prepareStatements)
    return new SqliteOutboxStore(path, file, statements)
  }

  /** Group-commit counters: commits, writes, failed batches, largest batch. */
  get stats(): GroupCommitStats {
    return this.#batch.stats
  }

  /**
   * SQLite's `PRAGMA data_version` of this connection: it changes when
   * another connection (another process) commits to the file, never for
   * this store's own writes. A cheap way to learn that something else wrote.
   */
  dataVersion(): number {
    return this.#file.read(() => this.#s.dataVersion.get() as number)
  }

  /**
   * Runs `fn` while holding the file's write lock (`BEGIN IMMEDIATE`, after
   * the queued writes are committed): other connections' writes wait (their
   * busy timeout) until it settles. For coordination between processes
   * (e.g. one agent per outbox). This store's own writes must not be issued
   * before it settles: they would be refused. Rejects with what `fn` rejects
   * with, or a `StoreError` if the lock cannot be had within the busy timeout.
   */
  async exclusively<T>(fn: () => Promise<T>): Promise<T> {
    this.#file.read(() => undefined)
    this.#batch.flush()
    const db = this.#file.db
    this.#file.read(() => db.exec('BEGIN IMMEDIATE'))
    try {
      return await fn()
    } finally {
      if (db.inTransaction) db.exec('COMMIT')
    }
  }

  /** The connection, for tests and diagnostics. Writing through it bypasses group commit. */
  get database(): Database.Database {
    return this.#file.db
  }

  add(message: NewOutboxMessage): Added {
    const { committed, durable } = this.#batch.runWithCommit(() => this.#insert(message))
    return added(committed, durable)
  }

  /**
   * Commits several new messages in one write: all of them or none (a
   * refused one, such as a duplicate msgId, fails the whole batch it ran in,
   * so use it in a process that writes nothing else meanwhile). Otherwise as
   * {@link add}; for a process that hands many messages over at once
   * (`gilmsg enqueue --lines`).
   */
  addAll(messages: readonly NewOutboxMessage[]): Added {
    const { committed, durable } = this.#batch.runWithCommit(() => {
      for (const m of messages) checkNewMessage(m)
      for (const m of messages) this.#insert(m)
    })
    return added(committed, durable)
  }

  #insert(message: NewOutboxMessage): void {
    checkNewMessage(message)
    const s = this.#s
    try {
      const attempts = message.unsent === true ? 0 : 1
      // NULL (every recipient) unless a quorum below that was given.
      const quorum = message.quorum !== undefined && message.quorum < message.recipients.length ? message.quorum : null
      s.insertMessage.run(message.msgId, message.topic, message.digest, message.createdAt, message.deadline, attempts, message.nextAttemptAt, quorum)
    } catch (e) {
      // The first statement: a duplicate msg_id changed nothing, and is refused alone.
      if ((e as { code?: unknown }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') throw duplicateMessage(message.msgId, this.path)
      throw e
    }
    const body = this.#certificates.cut(message.body)
    s.insertBody.run(message.msgId, body.body, body.certId, body.certAt)
    message.recipients.forEach((cn, position) => s.insertRecipient.run(message.msgId, cn, position))
  }

  get(msgId: string): OutboxMessage | undefined {
    return this.#file.read(() => {
      const row = this.#s.message.get(msgId)
      return row === undefined ? undefined : this.#toMessage(row)
    })
  }

  recipients(msgId: string): RecipientStatus[] {
    return this.#file.read(() =>
      this.#s.recipients.all(msgId).map((r) => ({
        cn: r.cn,
        state: r.state,
        at: r.at ?? undefined,
        disposition: r.disposition ?? undefined,
        reason: r.reason ?? undefined,
        ackBody: r.ack_body === null ? undefined : restoreCertificate(r.ack_body, r.ack_cert_at, r.ack_certificate),
        ackFingerprint: r.ack_fingerprint ?? undefined,
      })),
    )
  }

  recordAck(ack: AckRecord): AckRecorded {
    return recordNow((apply) => this.#batch.run(apply), () => this.#recordAck(ack))
  }

  #recordAck(ack: AckRecord): AckOutcome {
    checkAckRecord(ack)
    const s = this.#s
    // Fast path for the 2nd..nth message of a batched ACK (its body's row is known in this transaction):
    // one UPDATE that only applies when the ACK counts. Otherwise (or when it did not apply) check first,
    // so that a refused ACK never stores its body.
    const knownBody = this.#ackBodies.knownId([ack.ackBody, ack.fingerprint])
    if (knownBody !== undefined) {
      const state = recipientStateAfter(ack.disposition)
      const reason = ack.reason ?? null
      const digest = ack.digest ?? null
      const applied = s.recordPendingAck.run(state, ack.at, ack.disposition, reason, knownBody, ack.msgId, ack.cn, ack.msgId, digest, digest)
      if (applied.changes === 1) return this.#finishIfDone(ack)
    }
    const message = s.ackTarget.get(ack.msgId)
    const refused = refuseAck(message, message === undefined ? undefined : s.recipientState.get(ack.msgId, ack.cn), ack)
    if (refused !== undefined) return refused
    s.recordAck.run(
      recipientStateAfter(ack.disposition),
      ack.at,
      ack.disposition,
      ack.reason ?? null,
      this.#ackBodies.idOf([ack.ackBody, ack.fingerprint]),
      ack.msgId,
      ack.cn,
    )
    return this.#finishIfDone(ack)
  }

  /** After a counted ACK: the message's new state (finished once no recipient is missing, or once a rejection leaves the quorum out of reach). */
  #finishIfDone(ack: AckRecord): AckOutcome {
    const missing = this.#s.missing.all(ack.msgId)
    // Read only after a rejection (rare): whether the quorum can still be reached.
    let quorum = Infinity
    if (ack.disposition === Disposition.Rejected) {
      const q = this.#s.quorum.get(ack.msgId)
      quorum = q?.quorum ?? q?.n ?? Infinity
    }
    const state = messageStateAfter(ack.disposition, missing.length, quorum, () => (this.#s.ackedCount.get(ack.msgId) ?? 0) + missing.length)
    if (state !== DeliveryState.Pending) this.#s.finish.run(state, ack.at, ack.msgId)
    return { kind: 'counted', state, missing }
  }

  due(now: number, limit: number, deadlineBy?: number): OutboxMessage[] {
    return this.#file.read(() => {
      checkTime('due(now)', now)
      checkLimit('due(limit)', limit)
      if (deadlineBy === undefined) return this.#s.due.all(now, limit).map((row) => this.#toMessage(row))
      checkTime('due(deadlineBy)', deadlineBy)
      return this.#s.dueBy.all(deadlineBy, now, limit).map((row) => this.#toMessage(row))
    })
  }

  unsent(limit: number): OutboxMessage[] {
    return this.#file.read(() => {
      checkLimit('unsent(limit)', limit)
      return this.#s.unsent.all(limit).map((row) => this.#toMessage(row))
    })
  }

  nextDueAt(): number | undefined {
    return this.#file.read(() => this.#s.nextDueAt.get() ?? undefined)
  }

  markAttempt(msgId: string, nextAttemptAt: number): void {
    checkTime('markAttempt(nextAttemptAt)', nextAttemptAt)
    this.#batch.runDetached(() => {
      this.#s.markAttempt.run(nextAttemptAt, msgId)
    })
  }

  postpone(msgId: string, nextAttemptAt: number): void {
    checkTime('postpone(nextAttemptAt)', nextAttemptAt)
    this.#batch.runDetached(() => {
      this.#s.postpone.run(nextAttemptAt, msgId)
    })
  }

  expireDue(now: number): Promise<string[]> {
    return this.#batch.run(() => {
      checkTime('expireDue(now)', now)
      const ids = this.#s.expiring.all(now)
      for (const id of ids) this.#expire(id, now)
      return ids
    })
  }

  expire(msgId: string, now: number): Promise<boolean> {
    return this.#batch.run(() => {
      checkTime('expire(now)', now)
      return this.#expire(msgId, now)
    })
  }

  retry(msgId: string, now: number, deadline: number): Promise<boolean> {
    return this.#batch.run(() => {
      checkTime('retry(now)', now)
      checkTime('retry(deadline)', deadline)
      if (this.#s.retryMessage.run(deadline, now, msgId).changes === 0) return false
      this.#s.retryRecipients.run(msgId)
      return true
    })
  }

  purge(before: number): Promise<number> {
    return this.#batch.run(() => {
      checkTime('purge(before)', before)
      const s = this.#s
      const ackBodyIds = s.purgedAckBodies.all(before)
      const purged = s.purge.run(before).changes
      if (ackBodyIds.length > 0 && s.deleteUnusedAckBodies.run(JSON.stringify(ackBodyIds)).changes > 0) this.#ackBodies.forget()
      return purged
    })
  }

  list(filter?: ListFilter): OutboxMessage[] {
    return this.#file.read(() => {
      const { state, limit } = checkListFilter(filter)
      const rows = state === undefined ? this.#s.list.all(limit ?? -1) : this.#s.listState.all(state, limit ?? -1)
      return rows.map((row) => this.#toMessage(row))
    })
  }

  counts(): Record<DeliveryState, number> {
    return this.#file.read(() => {
      const counts = emptyCounts()
      for (const { state, n } of this.#s.counts.all()) counts[state] = n
      return counts
    })
  }

  pendingByRecipient(): Record<string, number> {
    return this.#file.read(() => {
      const out: Record<string, number> = {}
      for (const { cn, n } of this.#s.pendingByRecipient.all()) out[cn] = n
      return out
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

  #expire(msgId: string, now: number): boolean {
    if (this.#s.expireMessage.run(now, msgId).changes === 0) return false
    this.#s.expireRecipients.run(now, msgId)
    return true
  }

  #toMessage(row: MessageSqlRow): OutboxMessage {
    const recipients = this.#s.recipientNames.all(row.msg_id)
    return {
      msgId: row.msg_id,
      topic: row.topic,
      body: restoreCertificate(row.body, row.cert_at, row.certificate),
      digest: row.digest,
      recipients,
      quorum: row.quorum ?? recipients.length,
      createdAt: row.created_at,
      deadline: row.deadline,
      nextAttemptAt: row.next_attempt_at,
      state: row.state,
      attempts: row.attempts,
      finishedAt: row.finished_at ?? undefined,
    }
  }
}
