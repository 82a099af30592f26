import { ConfigError, InvalidArgumentError } from '../errors.js'
import type { Bus, BusMessage, Subscription } from '../bus/bus.js'
import type { InboxStore } from '../inbox/store.js'
import { Disposition } from '../outbox/store.js'
import type { Clock } from '../util/clock.js'
import { mapOrdered } from '../util/concurrent.js'
import { ReasonCounter, type ReasonCounts } from '../util/counters.js'
import type { SealedMessage } from '../envelope/envelope.js'
import { AckBatcher } from './ack-batcher.js'
import { ackBody, mustAck, RECIPIENTS_FIELD, VERSION_FIELD, type AckBody } from './protocol.js'

/** How a subscription acknowledges: `auto` on receipt (`received`), `manual` when the app calls `ack()`/`reject()`. */
export type AckMode = 'auto' | 'manual'

/** How many received messages a subscription works on at once (ACK signing and inbox commits overlap). */
export const CONSUMER_CONCURRENCY = 64

/** A stored ACK envelope is re-sent at most once in this many ms, however many of its messages are resent. */
export const REACK_WINDOW_MS = 50

/** Inbox entries older than this are pruned; a resend after that would be handed to the app again. */
export const DEFAULT_INBOX_RETENTION_MS = 7 * 24 * 60 * 60 * 1000

/** A message handed to the application. */
export interface Delivery extends BusMessage {
  /** True when this consumer is a required recipient (it must be acknowledged). */
  readonly requiresAck: boolean
  /**
   * Manual mode: acknowledges as `processed`. Resolves once the ACK is committed
   * to the inbox and sent. A no-op when already acknowledged or not required.
   */
  ack(): Promise<void>
  /** Manual mode: refuses the message; the publisher's `publish()` rejects with `DeliveryRejectedError`. */
  reject(reason: string): Promise<void>
}

export interface ReliableConsumerOptions {
  readonly bus: Bus
  readonly inbox: InboxStore
  readonly clock: Clock
  readonly retentionMs?: number
  /**
   * Called when a message could not be acknowledged (inbox write or send
   * failed). The message is not handed to the app; the publisher's resend
   * retries it. Default: ignored (counted in `stats` as `ack_failures`).
   */
  readonly onError?: (error: unknown) => void
}

export interface ConsumeOptions {
  readonly ack?: AckMode
}

/**
 * The consuming half of the reliability layer: acknowledges, with this
 * process's own certificate, the messages that name its CN, and hands each
 * msg_id to the application once (de-duplicated through the inbox, also
 * across restarts). A resend is answered with the same signed ACK.
 */
export class ReliableConsumer {
  readonly #bus: Bus
  readonly #inbox: InboxStore
  readonly #clock: Clock
  readonly #retentionMs: number
  readonly #cn: string
  readonly #onError: ((error: unknown) => void) | undefined
  readonly #batcher: AckBatcher
  /** Manual mode: msg_ids handed to the app and not yet acknowledged. */
  readonly #unacked = new Set<string>()
  /** ACK envelopes re-sent recently (body -> when), to send each once per window. */
  readonly #reacked = new Map<string, number>()
  /** msg_ids being handled now: a copy that arrives meanwhile waits for the first. */
  readonly #handling = new Map<string, Promise<unknown>>()
  readonly #stats = new ReasonCounter()
  /** Counters: `acks_sent` (messages acknowledged), `ack_envelopes` (signed ACKs sent), `acks_resent`, `acks_resend_coalesced`, `duplicates_suppressed`, `digest_conflicts`, `ack_failures`. */
  readonly stats: ReasonCounts = this.#stats.view

  constructor(options: ReliableConsumerOptions) {
    const signer = options.bus.signer
    if (signer === undefined) throw new ConfigError('a consumer that acknowledges needs a certificate to sign ACKs with (sign_messages: true)')
    this.#bus = options.bus
    this.#inbox = options.inbox
    this.#clock = options.clock
    this.#retentionMs = options.retentionMs ?? DEFAULT_INBOX_RETENTION_MS
    this.#cn = signer.cn
    this.#onError = options.onError
    this.#batcher = new AckBatcher(options.bus, (acks, sealed) => this.#persist(acks, sealed))
  }

  /** The CN this consumer acknowledges as. */
  get cn(): string {
    return this.#cn
  }

  /** Prunes inbox entries past the retention window and opens the socket ACKs go out on. */
  async start(): Promise<void> {
    await this.#inbox.prune(this.#clock.now() - this.#retentionMs)
    await this.#bus.openPublisher()
  }

  /** Subscribes to topics starting with `prefixes`; see {@link ReliableSubscription}. */
  async subscribe(prefixes: string | readonly string[], options: ConsumeOptions = {}): Promise<ReliableSubscription> {
    const mode = options.ack ?? 'auto'
    if (mode !== 'auto' && mode !== 'manual') throw new InvalidArgumentError(`ack: expected "auto" or "manual", got ${JSON.stringify(mode)}`)
    const sub = await this.#bus.subscribe(prefixes)
    return new ReliableSubscription(sub, async (m) => {
      const before = this.#handling.get(m.msgId)
      const work = (async () => {
        if (before !== undefined) await before
        try {
          return await this.#handle(m, mode)
        } catch (e) {
          this.#stats.add('ack_failures')
          this.#onError?.(e)
          return undefined
        }
      })()
      this.#handling.set(m.msgId, work)
      try {
        return await work
      } finally {
        if (this.#handling.get(m.msgId) === work) this.#handling.delete(m.msgId)
      }
    })
  }

  /** Decides what to do with one validated message; returns the delivery to yield, if any. */
  async #handle(m: BusMessage, mode: AckMode): Promise<Delivery | undefined> {
    if (!m.envelope.has(VERSION_FIELD)) return this.#delivery(m, false, mode)
    const required = mustAck(m.envelope, this.#cn)
    const seen = this.#inbox.get(m.msgId)
    if (seen !== undefined) {
      if (seen.digest !== m.digest) {
        this.#stats.add('digest_conflicts')
        return undefined
      }
      if (seen.ackTopic !== undefined && seen.ackBody !== undefined) {
        if (this.#shouldResend(seen.ackBody)) {
          await this.#bus.send({ topic: seen.ackTopic, body: seen.ackBody })
          this.#stats.add('acks_resent')
        } else {
          this.#stats.add('acks_resend_coalesced')
        }
      }
      this.#stats.add('duplicates_suppressed')
      return undefined
    }
    if (!required) {
      await this.#inbox.put({ msgId: m.msgId, digest: m.digest, receivedAt: this.#clock.now(), ackTopic: undefined, ackBody: undefined })
      return this.#delivery(m, false, mode)
    }
    if (mode === 'auto') {
      await this.#acknowledge(m, Disposition.Received)
      return this.#delivery(m, true, mode)
    }
    if (this.#unacked.has(m.msgId)) {
      this.#stats.add('duplicates_suppressed')
      return undefined
    }
    this.#unacked.add(m.msgId)
    return this.#delivery(m, true, mode)
  }

  /**
   * A batched ACK covers many messages; when several of them are resent
   * together, the same ACK envelope goes out once per {@link REACK_WINDOW_MS},
   * not once per message.
   */
  #shouldResend(body: string): boolean {
    const now = this.#clock.now()
    const last = this.#reacked.get(body)
    if (last !== undefined && now - last < REACK_WINDOW_MS) return false
    if (this.#reacked.size >= 1024) {
      for (const [b, t] of this.#reacked) if (now - t >= REACK_WINDOW_MS) this.#reacked.delete(b)
      if (this.#reacked.size >= 1024) this.#reacked.clear()
    }
    this.#reacked.set(body, now)
    return true
  }

  /** Queues the ACK; it is signed with others of this turn, committed to the inbox, then sent. */
  async #acknowledge(m: BusMessage, disposition: Disposition, reason?: string): Promise<void> {
    const group = m.envelope.get(RECIPIENTS_FIELD) === undefined ? `alone:${m.msgId}` : `publisher:${m.signer ?? ''}`
    await this.#batcher.ack(ackBody(m.msgId, m.digest, disposition, reason), group)
    this.#unacked.delete(m.msgId)
    this.#stats.add('acks_sent')
  }

  async #persist(acks: readonly AckBody[], sealed: SealedMessage): Promise<void> {
    const receivedAt = this.#clock.now()
    await Promise.all(
      acks.map((a) => this.#inbox.put({ msgId: a.ack_msg_id, digest: a.ack_digest ?? '', receivedAt, ackTopic: sealed.topic, ackBody: sealed.body })),
    )
    this.#stats.add('ack_envelopes')
  }

  #delivery(m: BusMessage, requiresAck: boolean, mode: AckMode): Delivery {
    let settled = !requiresAck || mode === 'auto'
    const settle = async (disposition: Disposition, reason?: string): Promise<void> => {
      if (settled) return
      settled = true
      await this.#acknowledge(m, disposition, reason)
    }
    return {
      ...m,
      requiresAck,
      ack: () => settle(Disposition.Processed),
      reject: (reason: string) => {
        if (typeof reason !== 'string' || reason === '') {
          return Promise.reject(new InvalidArgumentError(`reject: expected a non-empty reason, got ${JSON.stringify(reason)}`))
        }
        return settle(Disposition.Rejected, reason)
      },
    }
  }
}

/**
 * A stream of deliveries: iterate it once with `for await`; it ends after
 * `close()`. Messages that ask this consumer for an ACK are acknowledged (auto
 * mode). Every guaranteed message (one with `gilmsg_version`) is handed over
 * once per msg_id, resends included; plain fedmsg messages pass through as
 * they come, with `requiresAck: false`.
 */
export class ReliableSubscription implements AsyncIterable<Delivery>, AsyncDisposable {
  readonly #sub: Subscription
  readonly #handle: (m: BusMessage) => Promise<Delivery | undefined>

  /** @internal */
  constructor(sub: Subscription, handle: (m: BusMessage) => Promise<Delivery | undefined>) {
    this.#sub = sub
    this.#handle = handle
  }

  [Symbol.asyncIterator](): AsyncIterator<Delivery> {
    return mapOrdered(this.#sub, this.#handle, CONSUMER_CONCURRENCY)
  }

  /** Ends iteration and closes the socket. Idempotent. */
  close(): Promise<void> {
    return this.#sub.close()
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }
}
