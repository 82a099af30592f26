import type { Bus } from '../bus/bus.js'
import type { SealedMessage } from '../envelope/envelope.js'
import { ACK_MODNAME, ACK_TOPIC, batchAckBody, type AckBody } from './protocol.js'

/** At most this many messages are acknowledged by one signed ACK. */
export const MAX_ACK_BATCH = 64

/** One message's ACK and the CN that signed the message (with its msg_id, the message's inbox key). */
export interface QueuedAck {
  readonly ack: AckBody
  readonly signer: string
}

interface Pending extends QueuedAck {
  readonly resolve: (sealed: SealedMessage) => void
  readonly reject: (error: unknown) => void
}

/**
 * Collects the ACKs a consumer produces during one turn of the event loop and
 * signs them together: one ACK envelope per publisher covering up to
 * {@link MAX_ACK_BATCH} messages (a lone ACK keeps the single-message form,
 * which is also what Python gilmsg publishers get). Under load this turns one
 * signature per message into one per batch; when idle it adds no delay.
 *
 * Each batch is sealed, then handed to `persist` (the inbox commit), and only
 * then sent, so an ACK never leaves before the consumer has recorded it.
 */
export class AckBatcher {
  readonly #bus: Bus
  readonly #persist: (acks: readonly QueuedAck[], sealed: SealedMessage) => Promise<void>
  readonly #maxBatch: number
  #queues = new Map<string, Pending[]>()
  #scheduled = false
  /** Flushes running now (each settles once its batches are sent or failed; never rejects). */
  readonly #flushing = new Set<Promise<void>>()

  constructor(bus: Bus, persist: (acks: readonly QueuedAck[], sealed: SealedMessage) => Promise<void>, maxBatch = MAX_ACK_BATCH) {
    this.#bus = bus
    this.#persist = persist
    this.#maxBatch = maxBatch
  }

  /**
   * Queues the ACK of a message signed by `signer`. `group` separates batches
   * (the publisher's CN; a unique key for ACKs that must go alone). Resolves
   * with the sealed ACK once it is persisted and sent; rejects if signing,
   * persisting or sending failed.
   */
  ack(ack: AckBody, signer: string, group: string): Promise<SealedMessage> {
    return new Promise<SealedMessage>((resolve, reject) => {
      let queue = this.#queues.get(group)
      if (queue === undefined) this.#queues.set(group, (queue = []))
      queue.push({ ack, signer, resolve, reject })
      if (!this.#scheduled) {
        this.#scheduled = true
        setImmediate(() => {
          const flush = this.#flush()
          this.#flushing.add(flush)
          void flush.then(() => this.#flushing.delete(flush))
        })
      }
    })
  }

  /**
   * Resolves once every ACK queued so far, and any queued meanwhile, is sent
   * or has failed (signed, committed, sent: nothing is left half done). Never rejects.
   */
  async drain(): Promise<void> {
    while (this.#scheduled || this.#flushing.size > 0) {
      // A flush scheduled but not started yet runs on setImmediate: let it start.
      if (this.#flushing.size === 0) await new Promise<void>((resolve) => setImmediate(resolve))
      else await Promise.all(this.#flushing)
    }
  }

  async #flush(): Promise<void> {
    this.#scheduled = false
    const queues = this.#queues
    this.#queues = new Map()
    const batches: Pending[][] = []
    for (const queue of queues.values()) {
      for (let i = 0; i < queue.length; i += this.#maxBatch) batches.push(queue.slice(i, i + this.#maxBatch))
    }
    await Promise.all(batches.map((b) => this.#send(b)))
  }

  async #send(batch: readonly Pending[]): Promise<void> {
    try {
      const acks = batch.map((p) => p.ack)
      const body = acks.length === 1 ? (acks[0] as AckBody) : batchAckBody(acks)
      const sealed = await this.#bus.sealAsync(ACK_TOPIC, body, { modname: ACK_MODNAME })
      await this.#persist(batch, sealed)
      await this.#bus.send(sealed)
      for (const p of batch) p.resolve(sealed)
    } catch (e) {
      for (const p of batch) p.reject(e)
    }
  }
}
