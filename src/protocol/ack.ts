/*
 * The words of the ACK protocol (spec/protocol.md, spec/schemas/ack.schema.json)
 * that both the reliable layer, which sends and parses ACKs, and the stores,
 * which keep them, speak. Nothing here imports anything: it sits below both.
 */

/** What a recipient said in its ACK (the `disposition` field). */
export const Disposition = {
  /** Got it (automatic ACK on receipt). */
  Received: 'received',
  /** The application processed it (manual ACK). */
  Processed: 'processed',
  /** The application refused it; `reason` says why. */
  Rejected: 'rejected',
} as const
export type Disposition = (typeof Disposition)[keyof typeof Disposition]
export const DISPOSITIONS: readonly Disposition[] = Object.values(Disposition)

/** The payload of one ACK. */
export interface AckBody {
  readonly ack_msg_id: string
  /** SHA-256 hex of the acknowledged message's canonical signed bytes. Absent from Python gilmsg 0.1.2 ACKs. */
  readonly ack_digest?: string
  readonly disposition: Disposition
  readonly reason?: string
}

/** The payload of a batched ACK: one signature over many messages' ACKs (gilmsg peers only). */
export interface BatchAckBody {
  readonly acks: readonly AckBody[]
}
