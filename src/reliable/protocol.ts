import { InvalidArgumentError } from '../errors.js'
import { DISPOSITIONS, type AckBody, type BatchAckBody, type Disposition } from '../protocol/ack.js'
import type { JsonObject } from '../json/value.js'
import { envelopeField, envelopeInt } from '../envelope/envelope.js'

/** Written into every envelope that asks for ACKs (signed). */
export const GILMSG_VERSION = '1.0'
/** ACKs go out as `<topic_prefix>.<environment>.gilmsg.ack`. */
export const ACK_MODNAME = 'gilmsg'
export const ACK_TOPIC = 'ack'

/**
 * Whether `topic` is a gilmsg ACK topic (`<topic_prefix>.<environment>.gilmsg.ack`, of
 * any prefix and environment, or the bare `gilmsg.ack` of an empty prefix): lets
 * tools tell ACKs apart without parsing the message.
 */
export function isAckTopic(topic: string): boolean {
  const suffix = `${ACK_MODNAME}.${ACK_TOPIC}`
  return topic === suffix || topic.endsWith('.' + suffix)
}

export const VERSION_FIELD = 'gilmsg_version'
export const RECIPIENTS_FIELD = 'gilmsg_recipients'

/** The ACK payloads this module builds and parses; defined with the rest of the ACK vocabulary in `src/protocol/ack.ts`. */
export type { AckBody, BatchAckBody } from '../protocol/ack.js'

/** Largest batch a publisher accepts in one ACK. */
export const MAX_ACKS_PER_ENVELOPE = 1024

/**
 * Longest msg_id of a guaranteed message a consumer accepts, and of an
 * `ack_msg_id` a publisher accepts (fedmsg's `<year>-<uuid>` has 41).
 */
export const MAX_MSG_ID_LENGTH = 128

/** Inbox entries older than this are pruned (7 days); see {@link MAX_MESSAGE_AGE_MS}. */
export const DEFAULT_INBOX_RETENTION_MS = 7 * 24 * 60 * 60 * 1000

/** The clock skew between peers that the replay window allows for: 1 day. */
export const CLOCK_SKEW_MARGIN_MS = 24 * 60 * 60 * 1000

/**
 * A consumer with the default retention refuses a guaranteed message whose
 * signed `timestamp` is older than this (6 days: the retention minus
 * {@link CLOCK_SKEW_MARGIN_MS}), so that a replay is refused before its inbox
 * entry is pruned.
 */
export const MAX_MESSAGE_AGE_MS = DEFAULT_INBOX_RETENTION_MS - CLOCK_SKEW_MARGIN_MS

/**
 * Longest deadline of a guaranteed message (5 days: {@link MAX_MESSAGE_AGE_MS}
 * minus {@link CLOCK_SKEW_MARGIN_MS}): its last resend, which carries the
 * signed timestamp of the first send, is still accepted by a consumer whose
 * clock is up to the margin ahead.
 */
export const MAX_DEADLINE_MS = MAX_MESSAGE_AGE_MS - CLOCK_SKEW_MARGIN_MS

/** Why a consumer refuses a guaranteed message before looking at its inbox (counted under these names). */
export const Refusal = {
  MsgIdTooLong: 'msg_id_too_long',
  NoTimestamp: 'no_timestamp',
  Stale: 'stale',
  FromFuture: 'from_future',
} as const
export type Refusal = (typeof Refusal)[keyof typeof Refusal]

/**
 * Whether a consumer must refuse the guaranteed message `msgId`/`envelope`
 * at `nowMs`, and why: a msg_id longer than {@link MAX_MSG_ID_LENGTH}, no
 * integer `timestamp`, a `timestamp` (seconds) more than `maxAgeMs` in the
 * past (default {@link MAX_MESSAGE_AGE_MS}) or more than
 * {@link CLOCK_SKEW_MARGIN_MS} in the future. Undefined: accept it.
 */
export function refusal(msgId: string, envelope: JsonObject, nowMs: number, maxAgeMs = MAX_MESSAGE_AGE_MS): Refusal | undefined {
  if (msgId.length > MAX_MSG_ID_LENGTH) return Refusal.MsgIdTooLong
  const seconds = envelopeInt(envelope, 'timestamp')
  if (seconds === undefined) return Refusal.NoTimestamp
  const signedAt = seconds * 1000
  if (signedAt < nowMs - maxAgeMs) return Refusal.Stale
  if (signedAt > nowMs + CLOCK_SKEW_MARGIN_MS) return Refusal.FromFuture
  return undefined
}

/**
 * Throws an `InvalidArgumentError` naming `what` unless `ms` is at most
 * {@link MAX_DEADLINE_MS}: resends past that would be refused as stale.
 */
export function checkDeadline(ms: number, what: string): void {
  if (ms > MAX_DEADLINE_MS) {
    throw InvalidArgumentError.format(what, `at most ${MAX_DEADLINE_MS} ms (5 days: consumers refuse a guaranteed message signed more than 6 days ago)`, ms)
  }
}

/** The last moment (ms since the epoch) a message signed at `signedAtMs` may be resent: {@link MAX_DEADLINE_MS} later. */
export function resendableUntil(signedAtMs: number): number {
  return signedAtMs + MAX_DEADLINE_MS
}

/** The envelope fields that ask `recipients` to acknowledge. */
export function reliableFields(recipients: readonly string[]): Record<string, unknown> {
  return { [VERSION_FIELD]: GILMSG_VERSION, [RECIPIENTS_FIELD]: [...recipients] }
}

/**
 * Whether the holder of certificate CN `cn` must ACK this envelope: it carries
 * `gilmsg_version` and either lists `cn` in `gilmsg_recipients` or has no
 * recipient list at all (Python gilmsg 0.1.2: every consumer ACKs).
 */
export function mustAck(envelope: JsonObject, cn: string): boolean {
  if (!envelope.has(VERSION_FIELD)) return false
  const recipients = envelope.get(RECIPIENTS_FIELD)
  if (recipients === undefined || recipients === null) return true
  return Array.isArray(recipients) && recipients.includes(cn)
}

/** The ACK payload for a message. */
export function ackBody(msgId: string, digest: string, disposition: Disposition, reason?: string): AckBody {
  return { ack_msg_id: msgId, ack_digest: digest, disposition, ...(reason !== undefined ? { reason } : {}) }
}

/** The payload of an ACK covering several messages. */
export function batchAckBody(acks: readonly AckBody[]): BatchAckBody {
  return { acks }
}

const HEX64 = /^[0-9a-f]{64}$/

/**
 * Reads the ACKs in a validated ACK envelope: one for the single-message form,
 * several for the batched form (`{"acks": [...]}`). Returns undefined when it
 * is not a well-formed ACK (`schemas/ack.schema.json`), except that a missing
 * `disposition` and `ack_digest`, as Python gilmsg 0.1.2 sends, are allowed:
 * the disposition reads as `received`.
 */
export function parseAcks(envelope: JsonObject): AckBody[] | undefined {
  const msg = envelopeField(envelope, 'msg')
  if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) return undefined
  const m = msg as Record<string, unknown>
  if (!('acks' in m)) {
    const one = readAck(m)
    return one === undefined ? undefined : [one]
  }
  const list = m['acks']
  if (!Array.isArray(list) || list.length === 0 || list.length > MAX_ACKS_PER_ENVELOPE || Object.keys(m).length !== 1) return undefined
  const acks: AckBody[] = []
  for (const item of list) {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) return undefined
    const a = readAck(item as Record<string, unknown>)
    if (a === undefined || a.ack_digest === undefined) return undefined
    acks.push(a)
  }
  return acks
}

/** As {@link parseAcks} for the single-message form only. */
export function parseAck(envelope: JsonObject): AckBody | undefined {
  const acks = parseAcks(envelope)
  return acks !== undefined && acks.length === 1 && !hasBatch(envelope) ? acks[0] : undefined
}

function hasBatch(envelope: JsonObject): boolean {
  const msg = envelope.get('msg')
  return msg instanceof Map && msg.has('acks')
}

function readAck(m: Record<string, unknown>): AckBody | undefined {
  if (typeof m['ack_msg_id'] !== 'string' || m['ack_msg_id'].length > MAX_MSG_ID_LENGTH) return undefined
  const digest = m['ack_digest']
  if (digest !== undefined && (typeof digest !== 'string' || !HEX64.test(digest))) return undefined
  const disposition = 'disposition' in m ? m['disposition'] : 'received'
  if (!(DISPOSITIONS as readonly unknown[]).includes(disposition)) return undefined
  const reason = m['reason']
  if (reason !== undefined && typeof reason !== 'string') return undefined
  if (disposition === 'rejected' && (reason === undefined || reason === '')) return undefined
  return {
    ack_msg_id: m['ack_msg_id'],
    ...(digest !== undefined ? { ack_digest: digest } : {}),
    disposition: disposition as Disposition,
    ...(reason !== undefined ? { reason } : {}),
  }
}
