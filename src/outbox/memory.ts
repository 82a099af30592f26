import { ClosedError } from '../errors.js'
import type { Disposition } from '../protocol/ack.js'
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

interface RecipientRow {
  state: DeliveryState
  at: number | undefined
  disposition: Disposition | undefined
  reason: string | undefined
  ackBody: string | undefined
  ackFingerprint: string | undefined
}

interface MessageRow {
  readonly msgId: string
  readonly topic: string
  readonly body: string
  readonly digest: string
  readonly createdAt: number
  deadline: number
  state: DeliveryState
  attempts: number
  nextAttemptAt: number
  finishedAt: number | undefined
  readonly quorum: number
  /** In the order given to add(). */
  readonly recipients: Map<string, RecipientRow>
}

/**
 * The contents of a {@link MemoryOutboxStore}, kept apart from the store so
 * that it outlives it: a test "crashes" a publisher, then builds a new
 * `MemoryOutboxStore` over the same data, as a restarted process would reopen
 * its SQLite file. Opaque: read it through a store.
 */
export class MemoryOutboxData {
  /** @internal */
  readonly messages = new Map<string, MessageRow>()
}

function byNextAttempt(a: MessageRow, b: MessageRow): number {
  return a.nextAttemptAt - b.nextAttemptAt || (a.msgId < b.msgId ? -1 : a.msgId > b.msgId ? 1 : 0)
}

function byDeadline(a: MessageRow, b: MessageRow): number {
  return a.deadline - b.deadline || (a.msgId < b.msgId ? -1 : a.msgId > b.msgId ? 1 : 0)
}

function newestFirst(a: MessageRow, b: MessageRow): number {
  return b.createdAt - a.createdAt || (a.msgId < b.msgId ? 1 : a.msgId > b.msgId ? -1 : 0)
}

/**
 * An {@link OutboxStore} in memory, for tests (it passes the same conformance
 * suite as the SQLite store). Writes apply synchronously, so reads see them at
 * once, and their promises resolve (or reject) on a microtask. Nothing is
 * written to disk: durability lasts as long as the {@link MemoryOutboxData}.
 *
 * `close()` only detaches this store (every later call throws or rejects a
 * `ClosedError`); the data stays, and `new MemoryOutboxStore(data)` or
 * {@link reopen} opens it again.
 */
export class MemoryOutboxStore implements OutboxStore {
  /** The data this store reads and writes; pass it to a new store to "restart". */
  readonly data: MemoryOutboxData
  #closed = false

  /** Opens `data`, or new empty data. */
  constructor(data: MemoryOutboxData = new MemoryOutboxData()) {
    this.data = data
  }

  /** A new store over the same data (this one may be open or closed). */
  reopen(): MemoryOutboxStore {
    return new MemoryOutboxStore(this.data)
  }

  add(message: NewOutboxMessage): Added {
    const done = this.#write(() => {
      checkNewMessage(message)
      const messages = this.data.messages
      if (messages.has(message.msgId)) throw duplicateMessage(message.msgId)
      const recipients = new Map<string, RecipientRow>()
      for (const cn of message.recipients) {
        recipients.set(cn, {
          state: DeliveryState.Pending,
          at: undefined,
          disposition: undefined,
          reason: undefined,
          ackBody: undefined,
          ackFingerprint: undefined,
        })
      }
      messages.set(message.msgId, {
        msgId: message.msgId,
        topic: message.topic,
        body: message.body,
        digest: message.digest,
        createdAt: message.createdAt,
        deadline: message.deadline,
        state: DeliveryState.Pending,
        attempts: message.unsent === true ? 0 : 1,
        nextAttemptAt: message.nextAttemptAt,
        finishedAt: undefined,
        quorum: message.quorum ?? message.recipients.length,
        recipients,
      })
    })
    return added(done, done)
  }

  get(msgId: string): OutboxMessage | undefined {
    this.#checkOpen()
    const row = this.data.messages.get(msgId)
    return row === undefined ? undefined : toMessage(row)
  }

  recipients(msgId: string): RecipientStatus[] {
    this.#checkOpen()
    const row = this.data.messages.get(msgId)
    if (row === undefined) return []
    return [...row.recipients].map(([cn, r]) => ({
      cn,
      state: r.state,
      at: r.at,
      disposition: r.disposition,
      reason: r.reason,
      ackBody: r.ackBody,
      ackFingerprint: r.ackFingerprint,
    }))
  }

  recordAck(ack: AckRecord): AckRecorded {
    return recordNow((apply) => this.#write(apply), () => this.#recordAck(ack))
  }

  #recordAck(ack: AckRecord): AckOutcome {
    checkAckRecord(ack)
    const row = this.data.messages.get(ack.msgId)
    const recipient = row?.recipients.get(ack.cn)
    const refused = refuseAck(row, recipient?.state, ack)
    if (refused !== undefined || row === undefined || recipient === undefined) return refused ?? { kind: 'unknown' }
    recipient.state = recipientStateAfter(ack.disposition)
    recipient.at = ack.at
    recipient.disposition = ack.disposition
    recipient.reason = ack.reason
    recipient.ackBody = ack.ackBody
    recipient.ackFingerprint = ack.fingerprint
    const missing = [...row.recipients].filter(([, r]) => r.state === DeliveryState.Pending).map(([cn]) => cn)
    const acked = (): number => [...row.recipients.values()].filter((r) => r.state === DeliveryState.Acked).length
    const state = messageStateAfter(ack.disposition, missing.length, row.quorum, () => acked() + missing.length)
    if (state !== DeliveryState.Pending) {
      row.state = state
      row.finishedAt = ack.at
    }
    return { kind: 'counted', state, missing }
  }

  due(now: number, limit: number, deadlineBy?: number): OutboxMessage[] {
    this.#checkOpen()
    checkTime('due(now)', now)
    checkLimit('due(limit)', limit)
    if (deadlineBy !== undefined) checkTime('due(deadlineBy)', deadlineBy)
    return this.#pending()
      .filter((m) => m.nextAttemptAt <= now && (deadlineBy === undefined || m.deadline <= deadlineBy))
      .sort(deadlineBy === undefined ? byNextAttempt : byDeadline)
      .slice(0, limit)
      .map(toMessage)
  }

  unsent(limit: number): OutboxMessage[] {
    this.#checkOpen()
    checkLimit('unsent(limit)', limit)
    return this.#pending()
      .filter((m) => m.attempts === 0)
      .sort((a, b) => a.createdAt - b.createdAt || (a.msgId < b.msgId ? -1 : a.msgId > b.msgId ? 1 : 0))
      .slice(0, limit)
      .map(toMessage)
  }

  nextDueAt(): number | undefined {
    this.#checkOpen()
    let min: number | undefined
    for (const m of this.#pending()) if (min === undefined || m.nextAttemptAt < min) min = m.nextAttemptAt
    return min
  }

  markAttempt(msgId: string, nextAttemptAt: number): void {
    this.#reschedule('markAttempt', msgId, nextAttemptAt, 1)
  }

  postpone(msgId: string, nextAttemptAt: number): void {
    this.#reschedule('postpone', msgId, nextAttemptAt, 0)
  }

  /** Sets a pending message's next attempt and adds `sends` to its attempts; a no-op for any other. */
  #reschedule(method: string, msgId: string, nextAttemptAt: number, sends: number): void {
    this.#checkOpen()
    checkTime(`${method}(nextAttemptAt)`, nextAttemptAt)
    const row = this.data.messages.get(msgId)
    if (row === undefined || row.state !== DeliveryState.Pending) return
    row.attempts += sends
    row.nextAttemptAt = nextAttemptAt
  }

  expireDue(now: number): Promise<string[]> {
    return this.#write(() => {
      checkTime('expireDue(now)', now)
      const ids: string[] = []
      for (const row of this.#pending().sort(byDeadline)) {
        if (row.deadline > now) break
        expireRow(row, now)
        ids.push(row.msgId)
      }
      return ids
    })
  }

  expire(msgId: string, now: number): Promise<boolean> {
    return this.#write(() => {
      checkTime('expire(now)', now)
      const row = this.data.messages.get(msgId)
      if (row === undefined || row.state !== DeliveryState.Pending) return false
      expireRow(row, now)
      return true
    })
  }

  retry(msgId: string, now: number, deadline: number): Promise<boolean> {
    return this.#write(() => {
      checkTime('retry(now)', now)
      checkTime('retry(deadline)', deadline)
      const row = this.data.messages.get(msgId)
      if (row === undefined || row.state !== DeliveryState.Expired) return false
      row.state = DeliveryState.Pending
      row.deadline = deadline
      row.nextAttemptAt = now
      row.finishedAt = undefined
      for (const r of row.recipients.values()) {
        if (r.state === DeliveryState.Expired) {
          r.state = DeliveryState.Pending
          r.at = undefined
        }
      }
      return true
    })
  }

  purge(before: number): Promise<number> {
    return this.#write(() => {
      checkTime('purge(before)', before)
      let n = 0
      for (const [id, row] of this.data.messages) {
        if (row.state !== DeliveryState.Pending && row.finishedAt !== undefined && row.finishedAt < before) {
          this.data.messages.delete(id)
          n += 1
        }
      }
      return n
    })
  }

  list(filter?: ListFilter): OutboxMessage[] {
    this.#checkOpen()
    const { state, limit } = checkListFilter(filter)
    const rows = [...this.data.messages.values()].filter((m) => state === undefined || m.state === state).sort(newestFirst)
    return (limit === undefined ? rows : rows.slice(0, limit)).map(toMessage)
  }

  counts(): Record<DeliveryState, number> {
    this.#checkOpen()
    const counts = emptyCounts()
    for (const m of this.data.messages.values()) counts[m.state] += 1
    return counts
  }

  pendingByRecipient(): Record<string, number> {
    this.#checkOpen()
    const counts = new Map<string, number>()
    for (const m of this.data.messages.values()) {
      if (m.state !== DeliveryState.Pending) continue
      for (const [cn, r] of m.recipients) if (r.state === DeliveryState.Pending) counts.set(cn, (counts.get(cn) ?? 0) + 1)
    }
    return Object.fromEntries([...counts].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
  }

  /** Detaches this store; the data stays. Idempotent. */
  close(): Promise<void> {
    this.#closed = true
    return Promise.resolve()
  }

  #pending(): MessageRow[] {
    return [...this.data.messages.values()].filter((m) => m.state === DeliveryState.Pending)
  }

  #checkOpen(): void {
    if (this.#closed) throw new ClosedError('memory outbox')
  }

  #write<T>(apply: () => T): Promise<T> {
    try {
      this.#checkOpen()
      return Promise.resolve(apply())
    } catch (error) {
      return Promise.reject(error)
    }
  }
}

function expireRow(row: MessageRow, now: number): void {
  row.state = DeliveryState.Expired
  row.finishedAt = now
  for (const r of row.recipients.values()) {
    if (r.state === DeliveryState.Pending) {
      r.state = DeliveryState.Expired
      r.at = now
    }
  }
}

function toMessage(row: MessageRow): OutboxMessage {
  return {
    msgId: row.msgId,
    topic: row.topic,
    body: row.body,
    digest: row.digest,
    recipients: [...row.recipients.keys()],
    createdAt: row.createdAt,
    deadline: row.deadline,
    nextAttemptAt: row.nextAttemptAt,
    state: row.state,
    attempts: row.attempts,
    finishedAt: row.finishedAt,
    quorum: row.quorum,
  }
}
