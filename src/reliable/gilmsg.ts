import { ClosedError, ConfigError, InvalidArgumentError } from '../errors.js'
import type { Bus } from '../bus/bus.js'
import type { InboxStore } from '../inbox/store.js'
import type { OutboxStore } from '../outbox/store.js'
import { systemClock, type Clock } from '../util/clock.js'
import type { BackoffPolicy } from './backoff.js'
import { ReliableConsumer, type ConsumeOptions, type ReliableSubscription } from './consumer.js'
import {
  ReliablePublisher,
  type DeliveryReceipt,
  type Enqueued,
  type EnqueueOptions,
  type PublisherEvents,
  type ReliablePublishOptions,
} from './publisher.js'

export interface GilmsgOptions {
  /** The signed bus underneath (see `busFromConfig`). Closed by `Gilmsg.close()`. */
  readonly bus: Bus
  /** Where guaranteed messages are kept; without it `publish` with recipients and `enqueue` are refused. */
  readonly outbox?: OutboxStore | undefined
  /** Where received msg_ids are remembered; without it `subscribe` does not acknowledge. */
  readonly inbox?: InboxStore | undefined
  readonly clock?: Clock
  readonly backoff?: BackoffPolicy
  readonly random?: () => number
  /** Count ACKs without a digest (Python gilmsg 0.1.2 consumers). Default false. */
  readonly acceptLegacyAcks?: boolean
  /** See `ReliablePublisherOptions.awaitSubscriberMs` (default 250). */
  readonly awaitSubscriberMs?: number
  /** See `ReliablePublisherOptions.resendRate` (default 200 resends/s while nobody acknowledges). */
  readonly resendRate?: number
  /** Called when a received message could not be acknowledged (see `ReliableConsumerOptions.onError`). */
  readonly onConsumerError?: (error: unknown) => void
  /**
   * Acknowledge even though the bus validates nothing (no verifier: `validate_signatures`
   * false). Default false: an inbox on such a bus is refused, since a signed ACK would
   * vouch for a message anyone could have forged. Set it only to answer publishers whose
   * messages cannot validate, such as Python gilmsg 0.1.2 (it adds `gilmsg_version` after
   * signing).
   */
  readonly ackUnvalidated?: boolean
}

/**
 * Why a consumer on `bus` must not acknowledge, or undefined when it may: without a
 * verifier it acknowledges only with `ackUnvalidated`.
 */
export function whyNotAcknowledge(bus: Pick<Bus, 'verifier'>, ackUnvalidated: boolean | undefined): string | undefined {
  if (bus.verifier !== undefined || ackUnvalidated === true) return undefined
  return (
    'refusing to acknowledge messages whose signatures are not validated (validate_signatures is false): ' +
    'an ACK signed with this certificate would vouch for messages anyone could have forged ' +
    '(to acknowledge them anyway, e.g. for Python gilmsg 0.1.2 publishers, set ackUnvalidated: true, or run gilmsg tail --ack-unvalidated)'
  )
}

/**
 * gilmsg: a signed fedmsg bus where a publisher can name required recipients
 * and know that they got its message. Open with {@link Gilmsg.open} (or
 * `openGilmsg` from a config), then `publish`, `enqueue`, `subscribe`; `close()`
 * when done.
 */
export class Gilmsg implements AsyncDisposable {
  readonly bus: Bus
  readonly #publisher: ReliablePublisher | undefined
  readonly #consumer: ReliableConsumer | undefined
  readonly #outbox: OutboxStore | undefined
  readonly #inbox: InboxStore | undefined
  #closing: Promise<void> | undefined

  private constructor(options: GilmsgOptions) {
    const clock = options.clock ?? systemClock
    this.bus = options.bus
    this.#outbox = options.outbox
    this.#inbox = options.inbox
    if (options.outbox) {
      this.#publisher = new ReliablePublisher({
        bus: options.bus,
        store: options.outbox,
        clock,
        ...(options.backoff ? { backoff: options.backoff } : {}),
        ...(options.random ? { random: options.random } : {}),
        ...(options.acceptLegacyAcks !== undefined ? { acceptLegacyAcks: options.acceptLegacyAcks } : {}),
        ...(options.awaitSubscriberMs !== undefined ? { awaitSubscriberMs: options.awaitSubscriberMs } : {}),
        ...(options.resendRate !== undefined ? { resendRate: options.resendRate } : {}),
      })
    }
    if (options.inbox) {
      const refused = whyNotAcknowledge(options.bus, options.ackUnvalidated)
      if (refused !== undefined) throw new ConfigError(refused)
      this.#consumer = new ReliableConsumer({
        bus: options.bus,
        inbox: options.inbox,
        clock,
        ...(options.onConsumerError ? { onError: options.onConsumerError } : {}),
      })
    }
  }

  /**
   * Opens the reliability layer on a bus: subscribes to ACKs and resumes every
   * pending outbox message (when an outbox is given), prunes the inbox now
   * and hourly (when an inbox is given). Resolves once the ACK subscription
   * is open. Rejects with `ConfigError` when an inbox is given on a bus
   * without a verifier and `ackUnvalidated` is not set.
   */
  static async open(options: GilmsgOptions): Promise<Gilmsg> {
    const g = new Gilmsg(options)
    try {
      await g.#publisher?.start()
      await g.#consumer?.start()
    } catch (e) {
      await g.close()
      throw e
    }
    return g
  }

  #needPublisher(): ReliablePublisher {
    if (this.#closing) throw new ClosedError('gilmsg')
    if (this.#publisher === undefined) throw new InvalidArgumentError('this gilmsg instance was opened without an outbox: it cannot send guaranteed messages')
    return this.#publisher
  }

  /**
   * Publishes `msg` on `topic`. With `recipients`, resolves only when each has
   * returned a valid signed ACK for this exact message (with `quorum: k`, as
   * soon as k of them have; the others are resent to until they ACK or the
   * deadline passes); rejects with
   * `AckTimeoutError` (naming who acked and who did not) after `ackTimeout`
   * ms (default 10 s), or `DeliveryRejectedError`. Without recipients it is a
   * plain fire-and-forget publish.
   */
  publish(topic: string, msg: unknown, options: ReliablePublishOptions = {}): Promise<DeliveryReceipt> {
    if ((options.recipients ?? []).length === 0) {
      if (this.#closing) return Promise.reject(new ClosedError('gilmsg'))
      return this.bus
        .publish(topic, msg, options.modname !== undefined ? { modname: options.modname } : {})
        .then((s) => ({ msgId: s.msgId, digest: s.digest, topic: s.topic, recipients: [] }))
    }
    try {
      return this.#needPublisher().publish(topic, msg, options)
    } catch (e) {
      return Promise.reject(e)
    }
  }

  /** Commits a guaranteed message and returns; delivery continues in the background until its deadline (default 24 h). */
  enqueue(topic: string, msg: unknown, options: EnqueueOptions): Promise<Enqueued> {
    try {
      return this.#needPublisher().enqueue(topic, msg, options)
    } catch (e) {
      return Promise.reject(e)
    }
  }

  /** Listens for outcomes of guaranteed messages (`delivered`, `expired`, `rejected`, `background:error`). */
  on<K extends keyof PublisherEvents>(event: K, listener: PublisherEvents[K]): () => void {
    return this.#needPublisher().on(event, listener)
  }

  /**
   * Subscribes to topics starting with `prefixes`. Messages naming this
   * process's CN as a recipient are acknowledged (`ack: 'auto'`, the default,
   * on receipt; `'manual'` when the app calls `delivery.ack()`) and handed over
   * once per msg_id.
   */
  async subscribe(prefixes: string | readonly string[], options: ConsumeOptions = {}): Promise<ReliableSubscription> {
    if (this.#closing) throw new ClosedError('gilmsg')
    if (this.#consumer === undefined) throw new InvalidArgumentError('this gilmsg instance was opened without an inbox: it cannot acknowledge messages')
    return this.#consumer.subscribe(prefixes, options)
  }

  /** @internal The publishing half, for tools and tests. */
  get publisher(): ReliablePublisher | undefined {
    return this.#publisher
  }

  /** @internal The consuming half, for tools and tests. */
  get consumer(): ReliableConsumer | undefined {
    return this.#consumer
  }

  /** @internal The outbox, if opened with one: for metrics and health checks. */
  get outbox(): OutboxStore | undefined {
    return this.#outbox
  }

  /** @internal The inbox, if opened with one: for health checks. */
  get inbox(): InboxStore | undefined {
    return this.#inbox
  }

  /**
   * Stops resending and the inbox's pruning timer, finishes the ACKs in flight
   * (signed, committed to the inbox and sent), closes the subscriptions and
   * sockets (libzmq sends what it holds for `zmq_linger`), then the stores.
   * Pending messages stay in the outbox for the next open. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#publisher?.close()
      await this.#consumer?.close()
      await this.bus.close()
      await Promise.all([this.#outbox?.close(), this.#inbox?.close()])
    })()
    return this.#closing
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }
}
