import { describe, InvalidArgumentError, StoreError } from '../errors.js'
import { DISPOSITIONS, Disposition } from '../protocol/ack.js'
import { DELIVERY_STATES, DeliveryState } from './store.js'
import type { AckOutcome, AckRecord, AckRecorded, Added, ListFilter, NewOutboxMessage } from './store.js'
import { checkTime } from '../util/options.js'
export { checkTime }

/*
 * The rules every OutboxStore applies, shared so that the implementations
 * cannot drift apart. Internal to src/outbox.
 */

function checkString(what: string, value: unknown): void {
  if (typeof value !== 'string' || value === '') throw new InvalidArgumentError(`${what}: expected a non-empty string, got ${describe(value)}`)
}

/** Returns `value` if it is a non-negative integer; throws an `InvalidArgumentError` otherwise. */
export function checkLimit(what: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw new InvalidArgumentError(`${what}: expected a non-negative integer, got ${describe(value)}`)
  }
  return value
}

/** Throws an `InvalidArgumentError` naming the field unless `m` is a valid new message (recipients non-empty, no duplicates). */
export function checkNewMessage(m: NewOutboxMessage): void {
  checkString('message.msgId', m.msgId)
  checkString(`message ${m.msgId}: topic`, m.topic)
  if (typeof m.body !== 'string') throw new InvalidArgumentError(`message ${m.msgId}: body: expected a string, got ${describe(m.body)}`)
  checkString(`message ${m.msgId}: digest`, m.digest)
  checkTime(`message ${m.msgId}: createdAt`, m.createdAt)
  checkTime(`message ${m.msgId}: deadline`, m.deadline)
  checkTime(`message ${m.msgId}: nextAttemptAt`, m.nextAttemptAt)
  if (!Array.isArray(m.recipients) || m.recipients.length === 0) {
    throw new InvalidArgumentError(`message ${m.msgId}: recipients: expected a non-empty array of CNs, got ${describe(m.recipients)}`)
  }
  const seen = new Set<string>()
  for (const cn of m.recipients) {
    checkString(`message ${m.msgId}: recipient`, cn)
    if (seen.has(cn)) throw new InvalidArgumentError(`message ${m.msgId}: recipient ${JSON.stringify(cn)} is listed twice`)
    seen.add(cn)
  }
  const q = m.quorum
  if (q !== undefined && (typeof q !== 'number' || !Number.isInteger(q) || q < 1 || q > m.recipients.length)) {
    throw new InvalidArgumentError(`message ${m.msgId}: quorum: expected an integer from 1 to ${m.recipients.length} (the number of recipients), got ${describe(q)}`)
  }
}

/** The rejection of `add()` for a msgId already stored (`path`: the outbox's file, if it has one). */
export function duplicateMessage(msgId: string, path?: string): StoreError {
  return new StoreError('outbox', `message ${JSON.stringify(msgId)} is already in the outbox (msgIds must be unique)`, { path })
}

/** Throws an `InvalidArgumentError` naming the field unless `ack` is well-formed. */
export function checkAckRecord(ack: AckRecord): void {
  checkString('ack.msgId', ack.msgId)
  checkString(`ack of ${ack.msgId}: cn`, ack.cn)
  if (ack.digest !== undefined) checkString(`ack of ${ack.msgId}: digest`, ack.digest)
  if (!DISPOSITIONS.includes(ack.disposition)) {
    throw new InvalidArgumentError(`ack of ${ack.msgId}: disposition: expected one of ${DISPOSITIONS.join(', ')}, got ${describe(ack.disposition)}`)
  }
  if (ack.reason !== undefined && typeof ack.reason !== 'string') {
    throw new InvalidArgumentError(`ack of ${ack.msgId}: reason: expected a string, got ${describe(ack.reason)}`)
  }
  checkTime(`ack of ${ack.msgId}: at`, ack.at)
  if (typeof ack.ackBody !== 'string') throw new InvalidArgumentError(`ack of ${ack.msgId}: ackBody: expected a string, got ${describe(ack.ackBody)}`)
  checkString(`ack of ${ack.msgId}: fingerprint`, ack.fingerprint)
}

/** The filter's state and limit, checked; throws an `InvalidArgumentError` for an unknown state or a bad limit. */
export function checkListFilter(filter: ListFilter | undefined): { state: DeliveryState | undefined; limit: number | undefined } {
  const state = filter?.state
  if (state !== undefined && !DELIVERY_STATES.includes(state)) {
    throw new InvalidArgumentError(`list filter state: expected one of ${DELIVERY_STATES.join(', ')}, got ${describe(state)}`)
  }
  const limit = filter?.limit === undefined ? undefined : checkLimit('list filter limit', filter.limit)
  return { state, limit }
}

/**
 * The checks of recordAck, in the contract's order. Returns the outcome when
 * the ACK changes nothing, undefined when it must be counted.
 */
export function refuseAck(
  message: { readonly state: DeliveryState; readonly digest: string } | undefined,
  recipientState: DeliveryState | undefined,
  ack: AckRecord,
): AckOutcome | undefined {
  if (message === undefined) return { kind: 'unknown' }
  if (message.state !== DeliveryState.Pending) return { kind: 'not_pending', state: message.state }
  if (recipientState === undefined) return { kind: 'not_recipient' }
  if (recipientState !== DeliveryState.Pending) return { kind: 'duplicate' }
  if (ack.digest !== undefined && ack.digest !== message.digest) return { kind: 'digest_mismatch' }
  return undefined
}

/** A recipient's state once its ACK is counted. */
export function recipientStateAfter(disposition: Disposition): DeliveryState {
  return disposition === Disposition.Rejected ? DeliveryState.Rejected : DeliveryState.Acked
}

/**
 * The message's state once an ACK is counted, given how many recipients are still missing:
 * rejected once fewer than its quorum acked or may still ACK, acked once none is missing,
 * else pending. `ackedOrPossible()` (acked + missing after this ACK) is asked only after a
 * rejection: a pending message could reach its quorum before, and any other ACK keeps it so.
 */
export function messageStateAfter(disposition: Disposition, missing: number, quorum: number, ackedOrPossible: () => number): DeliveryState {
  if (disposition === Disposition.Rejected && ackedOrPossible() < quorum) return DeliveryState.Rejected
  return missing === 0 ? DeliveryState.Acked : DeliveryState.Pending
}

/** Zero for every state. */
export function emptyCounts(): Record<DeliveryState, number> {
  return { pending: 0, acked: 0, expired: 0, rejected: 0 }
}

const ignore = (): void => undefined

/** `add`'s result from its two promises, each marked handled (the caller awaits the one it needs). */
export function added(committed: Promise<void>, durable: Promise<void>): Added {
  committed.catch(ignore)
  durable.catch(ignore)
  return { committed, durable }
}

/**
 * `recordAck`'s contract for a store whose writes apply at once and resolve
 * on commit: `write` runs `apply` now and resolves once it is committed; the
 * outcome is known as soon as `apply` returned (else, if it threw, it
 * rejects with the write).
 */
export function recordNow(write: (apply: () => AckOutcome) => Promise<AckOutcome>, apply: () => AckOutcome): AckRecorded {
  let recorded: AckOutcome | undefined
  const durable = write(() => (recorded = apply()))
  const outcome = recorded === undefined ? durable : Promise.resolve(recorded)
  outcome.catch(ignore)
  durable.catch(ignore)
  return { outcome, durable }
}
