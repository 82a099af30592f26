import { ClosedError, InvalidArgumentError } from '../errors.js'
import { DEFAULT_MAX_MESSAGE_BYTES } from '../util/defaults.js'
import { checkInteger } from '../util/options.js'
import { checkPrefix, checkPrefixes, checkSendArguments, secondIteratorError, validateFrames } from './frames.js'
import { SubscriptionWaiters } from './subscriptions.js'
import type {
  DropListener,
  PubSocket,
  RawMessage,
  SubscriberOptions,
  SubSocket,
  Transport,
  WaitForSubscribersOptions,
} from './transport.js'

/** One message on its way from one transport (`from`) to one subscriber's transport (`to`). */
export interface Delivery {
  readonly topic: string
  /** Frame 1. The gate must not modify it. */
  readonly body: Buffer
  readonly from: string
  readonly to: string
}

/** A delivery the gate held back, waiting in {@link MemoryHub.held}. */
export interface HeldDelivery extends Delivery {
  /** Unique within the hub, increasing in the order the deliveries were held. */
  readonly id: number
}

/** What happens to one delivery: now, never, or when the test decides. */
export type GateDecision = 'deliver' | 'drop' | 'hold'

/**
 * Decides the fate of each delivery (one per matching subscriber, in
 * publish order). Called synchronously inside `send()`.
 */
export type Gate = (delivery: Delivery) => GateDecision

interface HeldEntry {
  readonly delivery: HeldDelivery
  readonly target: MemorySubSocket
}

/**
 * An in-memory bus shared by {@link MemoryTransport}s. A publish is offered
 * to every open subscriber whose prefix matches frame 0; each such delivery
 * goes through the gate (default: deliver everything). Deliveries land in the
 * subscriber's queue synchronously, so `send()` has delivered (or held or
 * dropped) before it resolves. Tests reorder, delay, duplicate or lose
 * messages by holding them and later calling {@link release},
 * {@link duplicate} or {@link discard} on positions of {@link held}.
 */
export class MemoryHub {
  #gate: Gate | undefined
  readonly #subscribers = new Set<MemorySubSocket>()
  readonly #listeners = new Set<() => void>()
  #held: HeldEntry[] = []
  #nextId = 1

  /** Sets the gate; `undefined` restores deliver-everything. Held deliveries stay held. */
  setGate(gate: Gate | undefined): void {
    this.#gate = gate
  }

  /** The held deliveries, oldest first (a copy). */
  get held(): readonly HeldDelivery[] {
    return this.#held.map((e) => e.delivery)
  }

  /**
   * Delivers the held delivery at `index` of {@link held} and removes it (later
   * positions shift down). Returns false if its subscriber has closed since
   * (the message is then lost). Throws `InvalidArgumentError` for a bad index.
   */
  release(index: number): boolean {
    const entry = this.#take(index)
    return entry.target.deliver([Buffer.from(entry.delivery.topic), Buffer.from(entry.delivery.body)])
  }

  /**
   * Delivers a copy of the held delivery at `index` and keeps it held, so it
   * can be delivered again. Returns false if its subscriber has closed.
   * Throws `InvalidArgumentError` for a bad index.
   */
  duplicate(index: number): boolean {
    const entry = this.#at(index)
    return entry.target.deliver([Buffer.from(entry.delivery.topic), Buffer.from(entry.delivery.body)])
  }

  /** Removes the held delivery at `index` without delivering it. Throws `InvalidArgumentError` for a bad index. */
  discard(index: number): void {
    this.#take(index)
  }

  /** Releases every held delivery, oldest first. Returns how many reached an open subscriber. */
  releaseAll(): number {
    let delivered = 0
    while (this.#held.length > 0) if (this.release(0)) delivered++
    return delivered
  }

  /**
   * Throws raw frames (any number, any bytes) at every open subscriber whose
   * prefix matches frame 0, bypassing the gate. Subscribers validate them as
   * the ZeroMQ transport does and report drops to their `onDrop`.
   */
  inject(...frames: (Buffer | string)[]): void {
    const buffers = frames.map((f) => (typeof f === 'string' ? Buffer.from(f) : f))
    if (buffers.length === 0) return
    for (const sub of [...this.#subscribers]) {
      if (sub.matches(buffers[0] as Buffer)) sub.deliver(buffers.map((b) => Buffer.from(b)))
    }
  }

  /** @internal */
  attach(sub: MemorySubSocket): void {
    this.#subscribers.add(sub)
    this.subscriptionsChanged()
  }

  /** @internal The number of subscriptions (prefixes of open subscribers) that `topic` starts with. */
  matchingSubscriptions(topic: string): number {
    const topicBytes = Buffer.from(topic)
    let n = 0
    for (const sub of this.#subscribers) n += sub.matchingPrefixes(topicBytes)
    return n
  }

  /** @internal Calls `listener` after every subscriber attach or new subscription; returns the remover. */
  onSubscriptionsChanged(listener: () => void): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  /** @internal */
  subscriptionsChanged(): void {
    for (const listener of [...this.#listeners]) listener()
  }

  /** @internal */
  detach(sub: MemorySubSocket): void {
    this.#subscribers.delete(sub)
  }

  /** @internal */
  publish(from: string, topic: string, body: Buffer): void {
    const topicBytes = Buffer.from(topic)
    for (const sub of [...this.#subscribers]) {
      if (!sub.matches(topicBytes)) continue
      const delivery: Delivery = { topic, body: Buffer.from(body), from, to: sub.name }
      const decision = this.#gate === undefined ? 'deliver' : this.#gate(delivery)
      if (decision === 'deliver') sub.deliver([Buffer.from(topicBytes), delivery.body])
      else if (decision === 'hold') this.#held.push({ delivery: { ...delivery, id: this.#nextId++ }, target: sub })
    }
  }

  #at(index: number): HeldEntry {
    const entry = Number.isInteger(index) ? this.#held[index] : undefined
    if (entry === undefined) {
      throw InvalidArgumentError.format('MemoryHub', `a held index in [0, ${this.#held.length - 1}]`, index)
    }
    return entry
  }

  #take(index: number): HeldEntry {
    const entry = this.#at(index)
    this.#held.splice(index, 1)
    return entry
  }
}

class MemoryPubSocket implements PubSocket {
  readonly endpoints: readonly string[]
  readonly #hub: MemoryHub
  readonly #name: string
  readonly #waiters: SubscriptionWaiters
  #unlisten: (() => void) | undefined
  #closing: Promise<void> | undefined

  constructor(hub: MemoryHub, name: string) {
    this.#hub = hub
    this.#name = name
    this.endpoints = [`memory://${name}`]
    this.#waiters = new SubscriptionWaiters((topic) => hub.matchingSubscriptions(topic))
  }

  // Counts the subscriptions (prefixes) of open subscribers on the hub, as the ZeroMQ publisher
  // counts subscriptions; the hub's gate plays no part. No slow joiner: a subscriber counts from
  // the moment openSubscriber() resolved.
  waitForSubscribers(topic: string, options?: WaitForSubscribersOptions): Promise<boolean> {
    const waiting = this.#waiters.wait(topic, options)
    // Listen to the hub from the first wait on, until close.
    if (this.#closing === undefined && this.#unlisten === undefined) {
      this.#unlisten = this.#hub.onSubscriptionsChanged(() => this.#waiters.changed())
    }
    return waiting
  }

  send(topic: string, body: Buffer | string): Promise<void> {
    const bytes = checkSendArguments(topic, body)
    if (this.#closing !== undefined) return Promise.reject(new ClosedError('MemoryTransport publisher'))
    this.#hub.publish(this.#name, topic, typeof bytes === 'string' ? Buffer.from(bytes) : bytes)
    return Promise.resolve()
  }

  close(): Promise<void> {
    if (this.#closing === undefined) {
      this.#closing = Promise.resolve()
      this.#unlisten?.()
      this.#unlisten = undefined
      this.#waiters.close()
    }
    return this.#closing
  }
}

const DONE: IteratorReturnResult<undefined> = { done: true, value: undefined }

/** What a subscriber's reader gets next: a message, or the exception its `onDrop` listener threw. */
type Queued = { readonly message: RawMessage } | { readonly error: unknown }

interface Reader {
  readonly resolve: (r: IteratorResult<RawMessage, undefined>) => void
  readonly reject: (err: unknown) => void
}

function startsWith(topic: Buffer, prefix: Buffer): boolean {
  return prefix.length <= topic.length && topic.compare(prefix, 0, prefix.length, 0, prefix.length) === 0
}

class MemorySubSocket implements SubSocket {
  readonly name: string
  readonly #hub: MemoryHub
  readonly #maxMessageBytes: number
  readonly #onDrop: DropListener | undefined
  #prefixes: Buffer[] = []
  #queue: Queued[] = []
  #head = 0
  #waiters: Reader[] = []
  #iterating = false
  #closing: Promise<void> | undefined

  constructor(hub: MemoryHub, name: string, maxMessageBytes: number, onDrop: DropListener | undefined) {
    this.#hub = hub
    this.name = name
    this.#maxMessageBytes = maxMessageBytes
    this.#onDrop = onDrop
  }

  subscribe(prefix: string): void {
    checkPrefix(prefix)
    if (this.#closing !== undefined) throw new ClosedError('MemoryTransport subscriber')
    this.#prefixes.push(Buffer.from(prefix))
    this.#hub.subscriptionsChanged()
  }

  matches(topic: Buffer): boolean {
    return this.#prefixes.some((p) => startsWith(topic, p))
  }

  matchingPrefixes(topic: Buffer): number {
    let n = 0
    for (const p of this.#prefixes) if (startsWith(topic, p)) n++
    return n
  }

  /**
   * Validates and queues frames; returns false if closed. Drops are reported
   * to `onDrop` at once; an exception it throws is queued in the message's
   * place, for the reader's `next()` to reject with (as over ZeroMQ).
   */
  deliver(frames: Buffer[]): boolean {
    if (this.#closing !== undefined) return false
    const result = validateFrames(frames, this.#maxMessageBytes)
    if (typeof result !== 'string') this.#enqueue({ message: result })
    else {
      try {
        this.#onDrop?.(result)
      } catch (err) {
        this.#enqueue({ error: err })
      }
    }
    return true
  }

  #enqueue(entry: Queued): void {
    const reader = this.#waiters.shift()
    if (reader === undefined) this.#queue.push(entry)
    else if ('message' in entry) reader.resolve({ done: false, value: entry.message })
    else reader.reject(entry.error)
  }

  [Symbol.asyncIterator](): AsyncIterator<RawMessage, undefined> {
    if (this.#iterating) throw secondIteratorError('MemoryTransport subscriber')
    this.#iterating = true
    let finished = false
    return {
      next: () => {
        if (finished || this.#closing !== undefined) return Promise.resolve(DONE)
        if (this.#head < this.#queue.length) {
          const entry = this.#queue[this.#head] as Queued
          this.#head++
          if (this.#head === this.#queue.length) {
            this.#queue = []
            this.#head = 0
          }
          return 'message' in entry ? Promise.resolve({ done: false, value: entry.message }) : Promise.reject(entry.error)
        }
        return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }))
      },
      return: () => {
        if (!finished) {
          finished = true
          this.#iterating = false
        }
        return Promise.resolve(DONE)
      },
    }
  }

  close(): Promise<void> {
    if (this.#closing === undefined) {
      this.#closing = Promise.resolve()
      this.#hub.detach(this)
      this.#queue = []
      this.#head = 0
      for (const reader of this.#waiters.splice(0)) reader.resolve(DONE)
    }
    return this.#closing
  }
}

export interface MemoryTransportOptions {
  /** Largest accepted message (topic + body bytes). Default {@link DEFAULT_MAX_MESSAGE_BYTES}. */
  readonly maxMessageBytes?: number
}

/**
 * A {@link Transport} on a {@link MemoryHub}, for tests. `name` identifies it
 * to the hub's gate (`from` for what it publishes, `to` for what its
 * subscribers receive). The same {@link Transport} contract as the ZeroMQ
 * transport (one conformance suite runs on both). Differences: no slow
 * joiner (a subscriber receives everything published after
 * `openSubscriber()` resolved, and `waitForSubscribers` counts it from then
 * on); a closed subscriber stops counting at once; a malformed message is
 * reported to `onDrop` when it arrives, not when the reader reaches it.
 */
export class MemoryTransport implements Transport {
  readonly hub: MemoryHub
  readonly name: string
  readonly #maxMessageBytes: number

  constructor(hub: MemoryHub, name: string, options: MemoryTransportOptions = {}) {
    this.hub = hub
    this.name = name
    this.#maxMessageBytes = checkInteger('maxMessageBytes', options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES, 1)
  }

  /** Resolves with a publisher whose `endpoints` is `['memory://<name>']`. Never rejects. */
  openPublisher(): Promise<PubSocket> {
    return Promise.resolve(new MemoryPubSocket(this.hub, this.name))
  }

  /**
   * Resolves with a subscriber attached to the hub, subscribed to `prefixes`
   * (default `['']`). Rejects with `InvalidArgumentError` when `prefixes` is
   * not an array of strings.
   */
  openSubscriber(options: SubscriberOptions = {}): Promise<SubSocket> {
    let prefixes: readonly string[]
    try {
      prefixes = checkPrefixes(options.prefixes)
    } catch (err) {
      return Promise.reject(err)
    }
    const sub = new MemorySubSocket(this.hub, this.name, this.#maxMessageBytes, options.onDrop)
    for (const prefix of prefixes) sub.subscribe(prefix)
    this.hub.attach(sub)
    return Promise.resolve(sub)
  }
}
