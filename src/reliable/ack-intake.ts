import type { BusMessage } from '../bus/bus.js'
import type { AckOutcome, AckRecord, OutboxStore } from '../outbox/store.js'
import type { Clock } from '../util/clock.js'
import { ReasonCounter, type ReasonCounts } from '../util/counters.js'
import { parseAcks } from './protocol.js'

/** How many received ACKs are recorded at once (their outbox writes share a commit). */
export const ACKS_IN_FLIGHT = 256

export interface AckIntakeOptions {
  readonly store: OutboxStore
  readonly clock: Clock
  /** The full ACK topic: anything else on the subscription is not an ACK. */
  readonly ackTopic: string
  /** Count ACKs without `ack_digest` (Python gilmsg 0.1.2 consumers). */
  readonly acceptLegacyAcks: boolean
  /** Each ACK item the outbox recorded, with its outcome, as soon as the write has run (before it is durable). */
  readonly onOutcome: (record: AckRecord, outcome: AckOutcome) => void
  /** Recording an ACK failed (the message stays pending: it is resent and acknowledged again). */
  readonly onError: (error: unknown) => void
}

/**
 * The publisher's ACK intake: reads the ACK subscription (whose messages the
 * bus has already validated), records each item of each ACK envelope in the
 * outbox, which counts it only for a pending recipient that signed it and
 * with the message's digest, and counts by reason what did not count.
 */
export class AckIntake {
  readonly #o: AckIntakeOptions
  readonly #ignored = new ReasonCounter()
  /** ACKs that did not count, by reason. */
  readonly ignored: ReasonCounts = this.#ignored.view

  constructor(options: AckIntakeOptions) {
    this.#o = options
  }

  /** Records the ACKs of `sub` (at most {@link ACKS_IN_FLIGHT} at once) until it ends; resolves once the last is recorded. */
  async consume(sub: AsyncIterable<BusMessage>): Promise<void> {
    const inFlight = new Set<Promise<void>>()
    for await (const m of sub) {
      const p: Promise<void> = this.#onAck(m)
        .catch((e: unknown) => this.#o.onError(e))
        .finally(() => inFlight.delete(p))
      inFlight.add(p)
      if (inFlight.size >= ACKS_IN_FLIGHT) await Promise.race(inFlight)
    }
    await Promise.all(inFlight)
  }

  async #onAck(m: BusMessage): Promise<void> {
    if (m.topic !== this.#o.ackTopic || m.signer === undefined || m.fingerprint === undefined) {
      this.#ignored.add('not_an_ack')
      return
    }
    const acks = parseAcks(m.envelope)
    if (acks === undefined) {
      this.#ignored.add('malformed_ack')
      return
    }
    const signer = m.signer
    const fingerprint = m.fingerprint
    await Promise.all(
      acks.map(async (ack) => {
        if (ack.ack_digest === undefined && !this.#o.acceptLegacyAcks) {
          this.#ignored.add('legacy_ack_refused')
          return
        }
        const record: AckRecord = {
          msgId: ack.ack_msg_id,
          cn: signer,
          digest: ack.ack_digest,
          disposition: ack.disposition,
          ...(ack.reason !== undefined ? { reason: ack.reason } : {}),
          at: this.#o.clock.now(),
          ackBody: m.body,
          fingerprint,
        }
        const { outcome, durable } = this.#o.store.recordAck(record)
        const o = await outcome
        if (o.kind !== 'counted') this.#ignored.add(o.kind)
        this.#o.onOutcome(record, o) // before the record is durable: see ReliablePublisher.publish()
        await durable
      }),
    )
  }
}
