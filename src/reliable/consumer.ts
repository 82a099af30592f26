import { ConfigError, InvalidArgumentError } from '../errors.js'
import type { Bus, BusMessage, Subscription } from '../bus/bus.js'
import { inboxKey } from '../inbox/rules.js'
import type { InboxStore } from '../inbox/store.js'
import { Disposition } from '../protocol/ack.js'
import type { Clock } from '../util/clock.js'
import { mapOrdered } from '../util/concurrent.js'
import { BoundedMap } from '../util/bounded-map.js'
import { ReasonCounter, type ReasonCounts } from '../util/counters.js'
import type { SealedMessage } from '../envelope/envelope.js'
import { AckBatcher, type QueuedAck } from './ack-batcher.js'
import { ackBody, CLOCK_SKEW_MARGIN_MS, DEFAULT_INBOX_RETENTION_MS, isAckTopic, mustAck, RECIPIENTS_FIELD, refusal, VERSION_FIELD } from './protocol.js'

export { DEFAULT_INBOX_RETENTION_MS } from './protocol.js'

/** How a subscription acknowledges: `auto` on receipt (`received`), `manual` when the app calls `ack()`/`reject()`. */
export type AckMode = 'auto' | 'manual'

/** How many received messages a subscription works on at once (ACK signing and inbox commits overlap). */
export const CONSUMER_CONCURRENCY = 64

/** A stored ACK envelope is re-sent at most once in this many ms, however many of its messages are resent. */
export const REACK_WINDOW_MS = 50

/**
 * How many re-sent ACK envelopes a consumer remembers for {@link REACK_WINDOW_MS}; when full,
 * those past the window are forgotten, then (if still full) all of them.
 */
export const REACK_MEMORY = 1024

/**
 * `close()` waits at most this long for the ACKs in flight (a send blocked on a peer that
 * does not read, with `noDrop`, would otherwise hold it forever); the rest fail when the bus closes.
 */
export const CLOSE_DRAIN_TIMEOUT_MS = 5000

/** While running, a consumer prunes its inbox this often (and once at start). */
export const INBOX_PRUNE_INTERVAL_MS = 60 * 60 * 1000

/**
 * How many guaranteed messages addressed to others a consumer remembers (in
 * memory, the latest) to hand each to the application once: best-effort,
 * within the process; the inbox only holds what this consumer acknowledges.
 */
export const UNADDRESSED_MEMORY = 16_384

/** A message handed to the application. */
export interface Delivery extends BusMessage {
  /** True when this consumer is a required recipient (it must be acknowledged). */
  readonly requiresAck: boolean
  /**
   * Manual mode: acknowledges as `processed`. Resolves once the ACK is committed
   * to the inbox and sent. A no-op when already acknowledged or not required.
   */
  ack(): Promise<void>
  /** Manual mode: refuses the message; the publisher's `publish()` rejects with `DeliveryRejectedError` once its quorum can no longer be reached (at once without a quorum). */
  reject(reason: string): Promise<void>
  /**
   * Manual mode: gives the message back without acknowledging it. It stays pending at
   * the publisher, whose next resend is handed over again (at least once). Later
   * `ack()`/`reject()` of this delivery are no-ops. A no-op when already settled or not required.
   */
  release(): void
  /**
   * Manual mode: records in the inbox one more attempt at handling this message and
   * resolves, once committed, with the number of attempts so far (restarts included):
   * call it before each attempt to bound retries. Rejects when the message needs no ACK.
   */
  startAttempt(): Promise<number>
}

export interface ReliableConsumerOptions {
  readonly bus: Bus
  readonly inbox: InboxStore
  readonly clock: Clock
  /**
   * How long inbox entries are kept (default {@link DEFAULT_INBOX_RETENTION_MS},
   * 7 days); guaranteed messages signed more than this minus
   * `CLOCK_SKEW_MARGIN_MS` (1 day) ago are refused as `stale`. Must be more than that margin.
   */
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
  /** See the bus's `SubscribeOptions.skipTopic`: topics passed over before parsing and validation. */
  readonly skipTopic?: (topic: string) => boolean
  /**
   * Hand over the ACK traffic (`<topic_prefix>.<environment>.gilmsg.ack`) that the
   * prefixes match, as plain messages. Default false: ACKs are protocol traffic a consumer
   * has no use for (its publisher half reads its own on a subscription of its own), so
   * they are passed over before they are parsed or their signature checked, and counted
   * as `acks_skipped`; `skipTopic`, when given, is asked first.
   */
  readonly acks?: boolean
}

/**
 * The consuming half of the reliability layer: acknowledges, with this
 * process's own certificate, the messages that name its CN, and hands each
 * message (signer CN and msg_id) to the application once (de-duplicated
 * through the inbox, also across restarts, for the messages it acknowledges;
 * in a bounded memory for those addressed to others). A resend is answered
 * with the same signed ACK. Guaranteed messages with a msg_id over 128
 * characters, or signed too long ago or too far in the future, are refused
 * (see `refusal` in protocol.ts).
 */
export class ReliableConsumer {
  readonly #bus: Bus
  readonly #inbox: InboxStore
  readonly #clock: Clock
  readonly #retentionMs: number
  readonly #maxAgeMs: number
  readonly #cn: string
  readonly #onError: ((error: unknown) => void) | undefined
  readonly #batcher: AckBatcher
  /** Manual mode: messages (by inboxKey) handed to the app and not yet acknowledged. */
  readonly #unacked = new Set<string>()
  /** Guaranteed messages addressed to others that were handed over: inboxKey -> digest. */
  readonly #unaddressed = new BoundedMap<string, string>(UNADDRESSED_MEMORY)
  /** ACK envelopes re-sent recently (body -> when), to send each once per window. */
  readonly #reacked = new Map<string, number>()
  /** Messages (by inboxKey) being handled now: a copy that arrives meanwhile waits for the first. */
  readonly #handling = new Map<string, Promise<unknown>>()
  #cancelPrune: (() => void) | undefined
  #pruning: Promise<void> | undefined
  #closed = false
  readonly #stats = new ReasonCounter()
  /**
   * Counters: `acks_sent` (messages acknowledged), `ack_envelopes` (signed ACKs sent), `acks_resent`,
   * `acks_resend_coalesced`, `acks_skipped` (ACK traffic passed over unparsed, see `ConsumeOptions.acks`), `duplicates_suppressed`, `digest_conflicts`, `ack_failures`, `prune_failures`,
   * and the guaranteed messages refused: `msg_id_too_long`, `no_timestamp`, `stale`, `from_future`.
   */
  readonly stats: ReasonCounts = this.#stats.view
  readonly #acksSent = new ReasonCounter()
  /** Messages acknowledged (ACK committed to the inbox and sent), by disposition: `received`, `processed`, `rejected`. */
  readonly acksSent: ReasonCounts = this.#acksSent.view

  constructor(options: ReliableConsumerOptions) {
    const signer = options.bus.signer
    if (signer === undefined) throw new ConfigError('a consumer that acknowledges needs a certificate to sign ACKs with (sign_messages: true)')
    this.#bus = options.bus
    this.#inbox = options.inbox
    this.#clock = options.clock
    const retention = options.retentionMs ?? DEFAULT_INBOX_RETENTION_MS
    if (typeof retention !== 'number' || !Number.isFinite(retention) || retention <= CLOCK_SKEW_MARGIN_MS) {
      throw InvalidArgumentError.format('retentionMs', `a number of milliseconds > ${CLOCK_SKEW_MARGIN_MS} (the clock skew margin)`, retention)
    }
    this.#retentionMs = retention
    this.#maxAgeMs = retention - CLOCK_SKEW_MARGIN_MS
    this.#cn = signer.cn
    this.#onError = options.onError
    this.#batcher = new AckBatcher(options.bus, (acks, sealed) => this.#persist(acks, sealed))
  }

  /** The CN this consumer acknowledges as. */
  get cn(): string {
    return this.#cn
  }

  /**
   * Prunes inbox entries past the retention window, opens the socket ACKs go
   * out on, and from then on prunes every {@link INBOX_PRUNE_INTERVAL_MS} (on
   * the clock's timer, which does not keep the process alive; a failed prune
   * is counted as `prune_failures` and given to `onError`) until `close()`.
   */
  async start(): Promise<void> {
    await this.#inbox.prune(this.#clock.now() - this.#retentionMs)
    await this.#bus.openPublisher()
    this.#armPrune()
  }

  #armPrune(): void {
    if (this.#closed) return
    this.#cancelPrune = this.#clock.setTimer(() => {
      this.#cancelPrune = undefined
      this.#pruning = this.#inbox
        .prune(this.#clock.now() - this.#retentionMs)
        .then(
          () => undefined,
          (e: unknown) => {
            this.#stats.add('prune_failures')
            this.#onError?.(e)
          },
        )
        .finally(() => {
          this.#pruning = undefined
          this.#armPrune()
        })
    }, INBOX_PRUNE_INTERVAL_MS)
  }

  /**
   * Stops the pruning timer, then waits for a prune in progress and for the
   * messages being handled and the ACKs queued (also manual `ack()`/`reject()`): their
   * batches are signed, committed to the inbox and sent before this resolves (call it
   * before closing the bus and the inbox), or after {@link CLOSE_DRAIN_TIMEOUT_MS} at most.
   * Messages still arriving meanwhile are handled too; close the subscriptions
   * first to stop taking work. Idempotent; the inbox stays open (its owner closes it).
   */
  async close(): Promise<void> {
    this.#closed = true
    this.#cancelPrune?.()
    this.#cancelPrune = undefined
    await this.#pruning
    let cancel: (() => void) | undefined
    const timedOut = new Promise<void>((resolve) => {
      cancel = this.#clock.setTimer(resolve, CLOSE_DRAIN_TIMEOUT_MS)
    })
    await Promise.race([this.#drain(), timedOut])
    cancel?.()
  }

  async #drain(): Promise<void> {
    while (this.#handling.size > 0) await Promise.all(this.#handling.values())
    await this.#batcher.drain()
  }

  /** Subscribes to topics starting with `prefixes`; see {@link ReliableSubscription}. */
  async subscribe(prefixes: string | readonly string[], options: ConsumeOptions = {}): Promise<ReliableSubscription> {
    const mode = options.ack ?? 'auto'
    if (mode !== 'auto' && mode !== 'manual') throw InvalidArgumentError.format('ack', '"auto" or "manual"', mode)
    const skipTopic = this.#skipper(options)
    const sub = await this.#bus.subscribe(prefixes, skipTopic === undefined ? {} : { skipTopic })
    return new ReliableSubscription(sub, async (m) => {
      const key = inboxKey(m.signer ?? '', m.msgId)
      const before = this.#handling.get(key)
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
      this.#handling.set(key, work)
      try {
        return await work
      } finally {
        if (this.#handling.get(key) === work) this.#handling.delete(key)
      }
    })
  }

  #skipper(options: ConsumeOptions): ((topic: string) => boolean) | undefined {
    const skip = options.skipTopic
    if (options.acks === true) return skip
    return (topic) => {
      if (skip?.(topic) === true) return true
      if (!isAckTopic(topic)) return false
      this.#stats.add('acks_skipped')
      return true
    }
  }

  /** Decides what to do with one validated message; returns the delivery to yield, if any. */
  async #handle(m: BusMessage, mode: AckMode): Promise<Delivery | undefined> {
    if (!m.envelope.has(VERSION_FIELD)) return this.#delivery(m, false, mode)
    const refused = refusal(m.msgId, m.envelope, this.#clock.now(), this.#maxAgeMs)
    if (refused !== undefined) {
      this.#stats.add(refused)
      return undefined
    }
    const signer = m.signer ?? ''
    const key = inboxKey(signer, m.msgId)
    if (!mustAck(m.envelope, this.#cn)) return this.#unaddressedDelivery(m, key, mode)
    const found = this.#inbox.get(signer, m.msgId)
    // An entry from before the inbox was keyed by signer is this message only if the signed bytes are the same.
    const seen = found !== undefined && (found.signer !== undefined || found.digest === m.digest) ? found : undefined
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
    if (mode === 'auto') {
      await this.#acknowledge(m, Disposition.Received)
      return this.#delivery(m, true, mode)
    }
    if (this.#unacked.has(key)) {
      this.#stats.add('duplicates_suppressed')
      return undefined
    }
    this.#unacked.add(key)
    return this.#delivery(m, true, mode)
  }

  /** A guaranteed message this consumer must not acknowledge: handed over once per process (best-effort), never stored. */
  #unaddressedDelivery(m: BusMessage, key: string, mode: AckMode): Delivery | undefined {
    const digest = this.#unaddressed.get(key)
    if (digest !== undefined) {
      this.#stats.add(digest === m.digest ? 'duplicates_suppressed' : 'digest_conflicts')
      return undefined
    }
    this.#unaddressed.set(key, m.digest)
    return this.#delivery(m, false, mode)
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
    if (this.#reacked.size >= REACK_MEMORY) {
      for (const [b, t] of this.#reacked) if (now - t >= REACK_WINDOW_MS) this.#reacked.delete(b)
      if (this.#reacked.size >= REACK_MEMORY) this.#reacked.clear()
    }
    this.#reacked.set(body, now)
    return true
  }

  /** Queues the ACK; it is signed with others of this turn, committed to the inbox, then sent. */
  async #acknowledge(m: BusMessage, disposition: Disposition, reason?: string): Promise<void> {
    const signer = m.signer ?? ''
    const key = inboxKey(signer, m.msgId)
    const group = m.envelope.get(RECIPIENTS_FIELD) === undefined ? `alone:${key}` : `publisher:${signer}`
    await this.#batcher.ack(ackBody(m.msgId, m.digest, disposition, reason), signer, group)
    this.#unacked.delete(key)
    this.#stats.add('acks_sent')
    this.#acksSent.add(disposition)
  }

  async #persist(acks: readonly QueuedAck[], sealed: SealedMessage): Promise<void> {
    const receivedAt = this.#clock.now()
    await Promise.all(
      acks.map(({ ack, signer }) =>
        this.#inbox.put({ signer, msgId: ack.ack_msg_id, digest: ack.ack_digest ?? '', receivedAt, ackTopic: sealed.topic, ackBody: sealed.body }),
      ),
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
    const signer = m.signer ?? ''
    return {
      ...m,
      requiresAck,
      ack: () => settle(Disposition.Processed),
      release: () => {
        if (settled) return
        settled = true
        this.#unacked.delete(inboxKey(signer, m.msgId))
      },
      startAttempt: () => {
        if (!requiresAck) return Promise.reject(new InvalidArgumentError(`startAttempt: message ${m.msgId} needs no ACK from this consumer`))
        return this.#inbox.addAttempt(signer, m.msgId, this.#clock.now())
      },
      reject: (reason: string) => {
        if (typeof reason !== 'string' || reason === '') {
          return Promise.reject(InvalidArgumentError.format('reject', 'a non-empty reason', reason))
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
 * once per signer CN and msg_id, resends included (across restarts for those
 * this consumer acknowledges, within the process for the others); plain
 * fedmsg messages pass through as they come, with `requiresAck: false`.
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
