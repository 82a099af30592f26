import type { Disposition } from '../protocol/ack.js'

/**
 * OutboxStore: where a publisher keeps every guaranteed message until all its
 * recipients acknowledged it, and the receipts (the signed ACKs) after that.
 * Implementations: SQLite (`sqlite.ts`, durable) and memory (`memory.ts`, tests).
 * Both pass one conformance suite (`test/unit/outbox/conformance.ts`).
 *
 * Reads are synchronous; writes resolve once committed (durable for SQLite),
 * and concurrent writes are committed together (group commit).
 */

/** A message's state, and each recipient's. pending -> acked | expired | rejected. */
export const DeliveryState = {
  Pending: 'pending',
  Acked: 'acked',
  Expired: 'expired',
  Rejected: 'rejected',
} as const
export type DeliveryState = (typeof DeliveryState)[keyof typeof DeliveryState]
export const DELIVERY_STATES: readonly DeliveryState[] = Object.values(DeliveryState)

export interface NewOutboxMessage {
  readonly msgId: string
  /** Full topic (frame 0). */
  readonly topic: string
  /** Frame 1 exactly as signed and sent; resends reuse it unchanged. */
  readonly body: string
  /** SHA-256 hex of the canonical signed bytes; what ACKs must carry. */
  readonly digest: string
  /** Certificate CNs that must ACK; non-empty, no duplicates. */
  readonly recipients: readonly string[]
  /** ms since the epoch. */
  readonly createdAt: number
  /** ms since the epoch; past it, pending recipients expire. */
  readonly deadline: number
  /** When the first resend is due (ms since the epoch). */
  readonly nextAttemptAt: number
  /**
   * True when the process committing it does not send it (`gilmsg enqueue`):
   * it is stored with `attempts` 0 and listed by {@link OutboxStore.unsent}
   * until a publisher sends it (`markAttempt`). Default false: the committer
   * sends it at once (attempts 1).
   */
  readonly unsent?: boolean
  /**
   * How many recipients' ACKs the publisher needs (`publish()`'s `quorum`): an integer from 1
   * to the number of recipients, default all of them. A `rejected` ACK ends the message
   * (`rejected`) only once fewer than `quorum` recipients acked or may still ACK; before that
   * the recipient is `rejected` and the message stays `pending` for the others.
   */
  readonly quorum?: number
}

export interface OutboxMessage extends NewOutboxMessage {
  /** See {@link NewOutboxMessage.quorum}: the number of recipients when none was given. */
  readonly quorum: number
  readonly state: DeliveryState
  /** Sends so far (the first send counts). */
  readonly attempts: number
  /** When the message left `pending` (ms since the epoch). */
  readonly finishedAt: number | undefined
}

export interface RecipientStatus {
  readonly cn: string
  readonly state: DeliveryState
  /** When the ACK (or expiry) was recorded. */
  readonly at: number | undefined
  readonly disposition: Disposition | undefined
  readonly reason: string | undefined
  /** The ACK message's frame 1 as received (signed): the receipt. */
  readonly ackBody: string | undefined
  /** SHA-256 fingerprint of the certificate that signed the ACK. */
  readonly ackFingerprint: string | undefined
}

export interface AckRecord {
  readonly msgId: string
  /** The validated signer CN of the ACK. */
  readonly cn: string
  /** The ACK's `ack_digest`; undefined only for a legacy ACK the caller chose to accept. */
  readonly digest: string | undefined
  readonly disposition: Disposition
  readonly reason?: string | undefined
  readonly at: number
  readonly ackBody: string
  readonly fingerprint: string
}

/** What recording an ACK did. Only `counted` changed anything. */
export type AckOutcome =
  | { readonly kind: 'unknown' }
  | { readonly kind: 'not_pending'; readonly state: DeliveryState }
  | { readonly kind: 'not_recipient' }
  | { readonly kind: 'digest_mismatch' }
  | { readonly kind: 'duplicate' }
  | {
      readonly kind: 'counted'
      /**
       * The message's state after this ACK: acked once no recipient is pending (the quorum then
       * acked), rejected once the quorum can no longer be reached, else pending.
       */
      readonly state: DeliveryState
      /** Recipients whose ACK is still missing. */
      readonly missing: readonly string[]
    }

/**
 * What {@link OutboxStore.add} returns. `committed` resolves once the message
 * is committed: from then on it survives a crash of this process (not yet a
 * power loss), so a publisher may send it. `durable` resolves once it is as
 * durable as the store is configured (synced to disk for SQLite `FULL`; the
 * same moment as `committed` otherwise). A refused or failed write rejects
 * both with the same error; a failed sync rejects `durable` only. Neither
 * ever raises an unhandled rejection: await the one you need.
 */
export interface Added {
  readonly committed: Promise<void>
  readonly durable: Promise<void>
}

/**
 * What {@link OutboxStore.recordAck} returns. `outcome` resolves as soon as
 * the write has run (reads already see it; its commit may still be in
 * flight), never after `durable`, which resolves with the same outcome once
 * the record is committed (durable for SQLite). A refused or failed write
 * rejects both with the same error; a failed commit or sync rejects `durable`
 * only. Neither ever raises an unhandled rejection: await the one you need.
 */
export interface AckRecorded {
  readonly outcome: Promise<AckOutcome>
  readonly durable: Promise<AckOutcome>
}

export interface ListFilter {
  readonly state?: DeliveryState
  readonly limit?: number
}

export interface OutboxStore {
  /**
   * Commits a new pending message (state pending, attempts 1, or 0 when
   * `unsent`) with its
   * recipients: see {@link Added} for when each promise settles. Rejects a
   * duplicate msgId with a `StoreError`.
   */
  add(message: NewOutboxMessage): Added
  get(msgId: string): OutboxMessage | undefined
  recipients(msgId: string): RecipientStatus[]
  /**
   * Records one ACK, atomically checking that the message exists and is
   * pending, that `cn` is a pending recipient and that the digest matches.
   * A `rejected` disposition makes the message rejected once fewer than its
   * `quorum` recipients acked or may still ACK (at once without a quorum);
   * the message is acked once no recipient is pending. See
   * {@link AckRecorded} for when each promise settles.
   */
  recordAck(ack: AckRecord): AckRecorded
  /**
   * Pending messages with `nextAttemptAt <= now`, earliest first, at most
   * `limit`. With `deadlineBy`: only those whose deadline is <= `deadlineBy`,
   * earliest deadline first (the urgent ones, resent before any backlog).
   */
  due(now: number, limit: number, deadlineBy?: number): OutboxMessage[]
  /** Pending messages never sent (added `unsent`, no `markAttempt` since), oldest `createdAt` first (ties by msgId), at most `limit`. */
  unsent(limit: number): OutboxMessage[]
  /** The earliest `nextAttemptAt` of a pending message, or undefined if none. */
  nextDueAt(): number | undefined
  /** Counts a resend and sets when the next is due. Not necessarily durable (a crash repeats a resend, harmlessly). */
  markAttempt(msgId: string, nextAttemptAt: number): void
  /**
   * Moves when a pending message is next due, counting no send (a resend that came due
   * too early and waits longer). Not necessarily durable, as {@link markAttempt}.
   */
  postpone(msgId: string, nextAttemptAt: number): void
  /** Pending messages whose deadline is <= now become expired (and their pending recipients). Resolves with their ids. */
  expireDue(now: number): Promise<string[]>
  /** Expires one pending message now (e.g. publish()'s ackTimeout). False if it was not pending. */
  expire(msgId: string, now: number): Promise<boolean>
  /** Makes an expired message pending again, with a new deadline and its unacked recipients pending. False if not expired. */
  retry(msgId: string, now: number, deadline: number): Promise<boolean>
  /** Deletes finished (not pending) messages that finished before `before`. Resolves with how many. */
  purge(before: number): Promise<number>
  /** Messages, newest first. */
  list(filter?: ListFilter): OutboxMessage[]
  /** How many messages are in each state. */
  counts(): Record<DeliveryState, number>
  /**
   * How many pending messages wait for each recipient's ACK (recipients with
   * none are left out), sorted by CN. Reads only pending messages.
   */
  pendingByRecipient(): Record<string, number>
  /** Flushes pending writes and closes. Idempotent. */
  close(): Promise<void>
}
