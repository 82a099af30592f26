/**
 * What the reliable publisher keeps for each `publish()` call waiting for ACKs, and how a
 * receipt is read back from the outbox's recipient statuses.
 */
import type { RecipientAck, RecipientRejection } from '../errors.js'
import { DeliveryState, type OutboxMessage, type RecipientStatus } from '../outbox/store.js'
import { Disposition } from '../protocol/ack.js'
import type { DeliveryReceipt } from './publisher-types.js'

/** A publish() call waiting for its ACKs, with what its receipt needs (so that settling it reads nothing back from the store). */
export interface Waiter {
  readonly startedAt: number
  readonly topic: string
  readonly digest: string
  readonly recipients: readonly string[]
  /** How many counted ACKs settle it (all the recipients unless `publish()` was given a quorum). */
  readonly quorum: number
  /** When it was committed and first sent; undefined until then. */
  sentAt: number | undefined
  /** Resent at least once: its round trip then says nothing clear (Karn's rule). */
  resent: boolean
  /** The ACKs counted for it (`received` or `processed`), by CN. */
  readonly acks: Map<string, RecipientAck>
  /** The rejections counted for it while the quorum could still be reached, by CN. */
  readonly rejections: Map<string, RecipientRejection>
  resolve(receipt: DeliveryReceipt): void
  reject(error: Error): void
}

/** The receipt of a waiter from the ACKs it counted so far, in the order of its recipients. */
export function waiterReceipt(msgId: string, waiter: Waiter): DeliveryReceipt {
  const recipients: RecipientAck[] = []
  for (const cn of waiter.recipients) {
    const ack = waiter.acks.get(cn)
    if (ack !== undefined) recipients.push(ack)
  }
  return { msgId, digest: waiter.digest, topic: waiter.topic, recipients }
}

/** Recipient statuses split into the ACKs counted, the rejections counted and the CNs still missing (no ACK at all), each in the order of the recipients. */
export function splitStatuses(statuses: readonly RecipientStatus[]): { acked: RecipientAck[]; rejected: RecipientRejection[]; missing: string[] } {
  const acked: RecipientAck[] = []
  const rejected: RecipientRejection[] = []
  const missing: string[] = []
  for (const s of statuses) {
    if (s.state === DeliveryState.Acked) acked.push({ cn: s.cn, at: s.at ?? 0, disposition: s.disposition ?? Disposition.Received })
    else if (s.state === DeliveryState.Rejected) rejected.push({ cn: s.cn, reason: s.reason ?? NO_REASON })
    else missing.push(s.cn)
  }
  return { acked, rejected, missing }
}

/** The reason of a rejection whose ACK gave none. */
export const NO_REASON = 'no reason given'

/** The receipt of an acknowledged message, from what the outbox stored. */
export function storedReceipt(msg: OutboxMessage, statuses: readonly RecipientStatus[]): DeliveryReceipt {
  return { msgId: msg.msgId, digest: msg.digest, topic: msg.topic, recipients: splitStatuses(statuses).acked }
}
