/**
 * The reliable publisher's public shapes: its options, what `publish()` and `enqueue()`
 * resolve with, its events, their defaults, and the checks of per-call options.
 */
import { describe, InvalidArgumentError, type GilmsgError, type RecipientAck, type RecipientRejection } from '../errors.js'
import type { Disposition } from '../protocol/ack.js'
import type { Bus } from '../bus/bus.js'
import type { OutboxStore } from '../outbox/store.js'
import type { Clock } from '../util/clock.js'
import type { BackoffPolicy } from './backoff.js'
import { checkDeadline } from './protocol.js'

/** `publish()` waits this long for every ACK unless told otherwise. */
export const DEFAULT_ACK_TIMEOUT_MS = 10_000
/** `enqueue()` keeps resending this long unless told otherwise. */
export const DEFAULT_DEADLINE_MS = 24 * 60 * 60 * 1000
/** Messages that left `pending` are purged after this long. */
export const DEFAULT_RETENTION_MS = 7 * 24 * 60 * 60 * 1000

/**
 * What `publish()` resolves with: proof that every recipient (with a `quorum`:
 * at least that many recipients) acknowledged this exact message.
 */
export interface DeliveryReceipt {
  readonly msgId: string
  /** SHA-256 hex of the canonical signed bytes that every ACK carried. */
  readonly digest: string
  readonly topic: string
  /** The ACKs counted when it resolved, in the order of the recipients: every recipient's, or (with a quorum) exactly those received by then. */
  readonly recipients: readonly RecipientAck[]
}

export interface ReliablePublishOptions {
  /** Certificate CNs that must acknowledge. Empty or absent: a plain fire-and-forget publish. */
  readonly recipients?: readonly string[]
  /** ms to wait for every ACK (default {@link DEFAULT_ACK_TIMEOUT_MS}); then the message expires. */
  readonly ackTimeout?: number
  /**
   * Resolve once this many distinct recipients acknowledged (an integer from
   * 1 to the number of recipients; default: all of them). The others keep
   * getting resends until they ACK or `ackTimeout` (the message's deadline)
   * passes: the message's `delivered` event fires once none is pending,
   * `expired` names who is missing otherwise. A rejection fails the publish
   * only once the quorum can no longer be reached (fewer than `quorum`
   * recipients acked or may still ACK: `DeliveryRejectedError`, and the
   * outbox ends the message `rejected`); before that the others still count.
   * Every rejection is reported by `rejected`.
   */
  readonly quorum?: number
  readonly signal?: AbortSignal
  readonly modname?: string
}

export interface EnqueueOptions {
  readonly recipients: readonly string[]
  /** ms from now during which resends continue, across restarts (default 24 h). */
  readonly deadline?: number
  readonly modname?: string
}

/** What `enqueue()` resolves with once the message is committed. */
export interface Enqueued {
  readonly msgId: string
  readonly digest: string
  readonly topic: string
}

export interface PublisherEvents {
  /** The message is acked: no recipient is pending and (with a quorum, after rejections) enough acknowledged; the receipt lists every ACK (`received` or `processed`). */
  delivered: (receipt: DeliveryReceipt) => void
  /** The deadline passed with ACKs missing. */
  expired: (info: { msgId: string; acked: readonly RecipientAck[]; missing: readonly string[]; rejected: readonly RecipientRejection[] }) => void
  /**
   * A recipient's `rejected` ACK was counted (once per recipient and message).
   * `ended`: it ended the message (`rejected` in the outbox; without a quorum,
   * always), as the quorum can no longer be reached; otherwise the message
   * stays pending for the other recipients.
   */
  rejected: (info: { msgId: string; recipient: string; reason: string; ended: boolean }) => void
  /**
   * A recipient's ACK was counted (once per recipient and message, rejections
   * included), `latencyMs` after the message was first sent (committed to the
   * outbox). Built only while someone listens: for metrics.
   */
  ack: (info: { msgId: string; recipient: string; disposition: Disposition; latencyMs: number }) => void
  /** A background step failed (a resend, an outbox write); delivery goes on where it can. */
  'background:error': (error: GilmsgError) => void
}

export interface ReliablePublisherOptions {
  readonly bus: Bus
  readonly store: OutboxStore
  readonly clock: Clock
  readonly backoff?: BackoffPolicy
  readonly random?: () => number
  /** Count ACKs without `ack_digest` (Python gilmsg 0.1.2 consumers). Default false. */
  readonly acceptLegacyAcks?: boolean
  readonly retentionMs?: number
  /**
   * Before sending, wait up to this many ms for a first subscriber (or relay)
   * when there is none yet, so that a freshly opened publisher does not send
   * into the void and wait for a resend. A topic whose wait timed out is not waited for
   * again until a subscription for it is seen. 0 disables. Default 250.
   */
  readonly awaitSubscriberMs?: number
  /**
   * Resends per second while no ACK comes back (see `ResendBudget`):
   * each counted ACK pays for one more, up to a burst of
   * `RESEND_BURST`. Messages whose deadline is less than the backoff's
   * `longAfterMs` (5 min) away are never held back. `Infinity` disables the
   * limit. Default `DEFAULT_RESEND_RATE`.
   */
  readonly resendRate?: number
}

/** Default of {@link ReliablePublisherOptions.awaitSubscriberMs}. */
export const DEFAULT_AWAIT_SUBSCRIBER_MS = 250
/** The most {@link ReliablePublisherOptions.awaitSubscriberMs} can be: the longest timer Node.js sets (2^31 - 1 ms). */
export const MAX_AWAIT_SUBSCRIBER_MS = 2 ** 31 - 1
/**
 * Topics a publisher remembers as "waited for in vain" (not waited for again until a
 * subscription for them is seen): 1024, the oldest forgotten first (it is then waited for once more).
 */
export const UNHEARD_TOPICS_MAX = 1024

/** The recipients of a guaranteed message, de-duplicated; throws `InvalidArgumentError` when absent, empty, or not CNs. */
export function checkRecipients(value: unknown, what: 'publish' | 'enqueue'): string[] {
  if (!Array.isArray(value) || !value.every((r) => typeof r === 'string' && r !== '')) {
    throw new InvalidArgumentError(`recipients: expected a list of certificate CNs (non-empty strings), got ${JSON.stringify(value)}`)
  }
  const unique = [...new Set(value as string[])]
  if (unique.length !== value.length) throw new InvalidArgumentError(`recipients: duplicate CN in ${JSON.stringify(value)}`)
  if (unique.length === 0) throw new InvalidArgumentError(`recipients: ${what} needs at least one recipient`)
  return unique
}

/** `publish()`'s quorum for `count` recipients: `value` if an integer from 1 to `count`, `count` if undefined; throws `InvalidArgumentError`. */
export function checkQuorum(value: unknown, count: number): number {
  if (value === undefined) return count
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > count) {
    throw new InvalidArgumentError(`quorum: expected an integer from 1 to ${count} (the number of recipients), got ${describe(value)}`)
  }
  return value
}

/** A positive number of ms within the replay window's deadline bound; throws `InvalidArgumentError`. */
export function checkPositive(value: number, what: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new InvalidArgumentError(`${what}: expected a number of milliseconds > 0, got ${String(value)}`)
  }
  checkDeadline(value, what)
  return value
}
