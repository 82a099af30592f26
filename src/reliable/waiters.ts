/**
 * What the reliable publisher keeps for each `publish()` call waiting for ACKs, and how a
 * receipt is read back from the outbox's recipient statuses.
 */
import type { RecipientAck } from '../errors.js'
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
  /** The ACKs counted for it, by CN. */
  readonly acks: Map<string, RecipientAck>
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

/** Recipient statuses split into the ACKs counted and the CNs still missing. */
export function splitStatuses(statuses: readonly RecipientStatus[]): { acked: RecipientAck[]; missing: string[] } {
  const acked: RecipientAck[] = []
  const missing: string[] = []
  for (const s of statuses) {
    if (s.state === DeliveryState.Acked) acked.push({ cn: s.cn, at: s.at ?? 0, disposition: s.disposition ?? Disposition.Received })
    else missing.push(s.cn)
  }
  return { acked, missing }
}

/** The receipt of an acknowledged message, from what the outbox stored. */
export function storedReceipt(msg: OutboxMessage, statuses: readonly RecipientStatus[]): DeliveryReceipt {
  return { msgId: msg.msgId, digest: msg.digest, topic: msg.topic, recipients: splitStatuses(statuses).acked }
}
