import { DISPOSITIONS, type Disposition } from '../outbox/store.js'
import type { JsonObject } from '../json/value.js'
import { envelopeField } from '../envelope/envelope.js'

/** Written into every envelope that asks for ACKs (signed). */
export const GILMSG_VERSION = '1.0'
/** ACKs go out as `<topic_prefix>.<environment>.gilmsg.ack`. */
export const ACK_MODNAME = 'gilmsg'
export const ACK_TOPIC = 'ack'

export const VERSION_FIELD = 'gilmsg_version'
export const RECIPIENTS_FIELD = 'gilmsg_recipients'

/** The payload of one ACK. */
export interface AckBody {
  readonly ack_msg_id: string
  /** SHA-256 hex of the acknowledged message's canonical signed bytes. Absent from Python gilmsg 0.1.2 ACKs. */
  readonly ack_digest?: string
  readonly disposition: Disposition
  readonly reason?: string
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

const HEX64 = /^[0-9a-f]{64}$/

/**
 * Reads an ACK payload from a validated ACK envelope. Returns undefined when
 * it is not a well-formed ACK (`schemas/ack.schema.json`, except that a missing
 * `disposition` and `ack_digest`, as Python gilmsg 0.1.2 sends, are allowed:
 * the disposition reads as `received`).
 */
export function parseAck(envelope: JsonObject): AckBody | undefined {
  const msg = envelopeField(envelope, 'msg')
  if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) return undefined
  const m = msg as Record<string, unknown>
  if (typeof m['ack_msg_id'] !== 'string') return undefined
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
