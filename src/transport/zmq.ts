import { Subscriber, XPublisher } from 'zeromq'
import { ClosedError, errorMessage, TransportError } from '../errors.js'
import { checkAddresses, checkBoolean } from '../util/options.js'
import { checkPrefix, checkPrefixes, checkSendArguments, secondIteratorError, validateFrames } from './frames.js'
import { ConnectionWatch, reconnectAbandoned } from './connection-watch.js'
import { SubscriptionCounts, SubscriptionWaiters } from './subscriptions.js'
import { TransportDropReason } from './transport.js'
import type {
  DropListener,
  PubSocket,
  RawMessage,
  SubscriberOptions,
  SubSocket,
  Transport,
  WaitForSubscribersOptions,
} from './transport.js'
import { bindAll, bindFirst, codeOf, connectAll } from './zmq-connect.js'
import { applySocketOptions, DEFAULT_NO_DROP, resolveSocketOptions, type ResolvedSocketOptions, type ZmqTransportOptions } from './zmq-options.js'

export { RECONNECT_GRACE_MS } from './connection-watch.js'
export type { ZmqTransportOptions } from './zmq-options.js'

/** Longest pause between retries of a send blocked by the high-water mark (`noDrop`). */
export const NO_DROP_RETRY_MAX_MS = 20

interface PendingSend {
  readonly topic: string
  readonly body: Buffer | string
  readonly resolve: () => void
  readonly reject: (err: unknown) => void
}

// The publisher: an XPUB socket, so that it sees its subscribers' subscriptions (for
// waitForSubscribers); sending is exactly PUB's.
class ZmqPubSocket implements PubSocket {
  readonly endpoints: readonly string[]
  readonly #socket: XPublisher
  readonly #noDrop: boolean
  readonly #lingerMs: number
  #queue: (PendingSend | undefined)[] = []
  #head = 0
  #pumping = false
  #onDrained: (() => void) | undefined
  #closing: Promise<void> | undefined
  #retryTimer: NodeJS.Timeout | undefined
  #retryWake: (() => void) | undefined
  readonly #subscriptions = new SubscriptionCounts()
  readonly #waiters = new SubscriptionWaiters((topic) => this.#subscriptions.matching(topic))
  readonly #watching: Promise<void>

  // `socket` must have had `verbosity = 'allSubsUnsubs'` set before it was bound or connected.
  constructor(socket: XPublisher, endpoints: readonly string[], noDrop: boolean, lingerMs: number) {
    this.#socket = socket
    this.endpoints = endpoints
    this.#noDrop = noDrop
    this.#lingerMs = lingerMs
    this.#watching = this.#watch()
  }

  // Counting and its limits: see ZmqTransport.openPublisher.
  waitForSubscribers(topic: string, options?: WaitForSubscribersOptions): Promise<boolean> {
    return this.#waiters.wait(topic, options)
  }

  // Reads subscription messages until the socket closes. The pending receive keeps the event
  // loop alive until then; close() rejects it, which ends the loop. Never rejects.
  async #watch(): Promise<void> {
    for (;;) {
      let frames: Buffer[]
      try {
        frames = await this.#socket.receive()
      } catch {
        // Closed (EAGAIN from the pending receive), or an error libzmq does not produce for XPUB
        // receives: either way stop counting; pending and later waits then end by timeout or close.
        return
      }
      const frame = frames.length === 1 ? frames[0] : undefined
      if (frame === undefined || frame.length === 0 || frame[0]! > 1) continue // not a (un)subscription
      this.#subscriptions.apply(frame[0] === 1, frame.subarray(1))
      if (frame[0] === 1) this.#waiters.changed()
    }
  }

  send(topic: string, body: Buffer | string): Promise<void> {
    // A copy: the send may wait in the queue, and libzmq sends large Buffers without copying.
    const bytes = checkSendArguments(topic, body)
    if (this.#closing !== undefined) return Promise.reject(new ClosedError('ZmqTransport publisher'))
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ topic, body: bytes, resolve, reject })
      if (!this.#pumping) void this.#pump()
    })
  }

  async #pump(): Promise<void> {
    this.#pumping = true
    while (this.#head < this.#queue.length) {
      const item = this.#queue[this.#head] as PendingSend
      this.#queue[this.#head++] = undefined
      try {
        await this.#sendOne(item.topic, item.body)
        item.resolve()
      } catch (err) {
        item.reject(err)
      }
    }
    this.#queue = []
    this.#head = 0
    this.#pumping = false
    this.#onDrained?.()
  }

  async #sendOne(topic: string, body: Buffer | string): Promise<void> {
    let delay = 1
    for (;;) {
      if (this.#socket.closed) throw new ClosedError('ZmqTransport publisher')
      try {
        await this.#socket.send([topic, body])
        return
      } catch (err) {
        if (this.#socket.closed) throw new ClosedError('ZmqTransport publisher')
        if (!(this.#noDrop && codeOf(err) === 'EAGAIN')) {
          throw new TransportError(`cannot send on ${this.endpoints.join(', ')}: ${errorMessage(err)}`, { cause: err })
        }
      }
      await new Promise<void>((resolve) => {
        this.#retryWake = resolve
        this.#retryTimer = setTimeout(resolve, delay)
      })
      this.#retryTimer = undefined
      this.#retryWake = undefined
      delay = Math.min(delay * 2, NO_DROP_RETRY_MAX_MS)
    }
  }

  /**
   * Stops accepting sends (they reject with `ClosedError`), waits up to the
   * linger time for queued sends to reach the socket (only `noDrop` can make
   * that take long), rejects the rest with `ClosedError`, then closes the
   * socket; libzmq keeps sending what it holds for the linger time.
   * Idempotent: later calls return the same promise. Never rejects.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close()
    return this.#closing
  }

  async #close(): Promise<void> {
    this.#waiters.close()
    if (this.#pumping) {
      let timer: NodeJS.Timeout | undefined
      await new Promise<void>((resolve) => {
        this.#onDrained = resolve
        if (this.#lingerMs >= 0) timer = setTimeout(resolve, this.#lingerMs)
      })
      clearTimeout(timer)
    }
    this.#socket.close()
    if (this.#pumping) {
      clearTimeout(this.#retryTimer)
      const drained = new Promise<void>((resolve) => {
        this.#onDrained = resolve
      })
      this.#retryWake?.()
      await drained
    }
    this.#onDrained = undefined
    await this.#watching
  }
}

const DONE: IteratorReturnResult<undefined> = { done: true, value: undefined }

class ZmqSubSocket implements SubSocket {
  readonly #socket: Subscriber
  readonly #maxMessageBytes: number
  readonly #onDrop: DropListener | undefined
  readonly #watch: ConnectionWatch | undefined
  /** What the next read rejects with: an exception of `onDrop` called from the watch, or a failed reconnect. */
  #failure: { readonly error: unknown } | undefined
  #iterating = false
  #closing: Promise<void> | undefined
  #inflight: Promise<IteratorResult<RawMessage, undefined>> | undefined

  // `addresses`: what `socket` connected to. With reconnectIvlMs <= 0 libzmq never reconnects,
  // so a connection it gave up cannot be told from one a peer closed: nothing is watched.
  constructor(socket: Subscriber, addresses: readonly string[], o: ResolvedSocketOptions, listeners: Pick<SubscriberOptions, 'onDrop' | 'onConnection'>) {
    this.#socket = socket
    this.#maxMessageBytes = o.maxMessageBytes
    this.#onDrop = listeners.onDrop
    const onConnection = listeners.onConnection
    this.#watch =
      o.reconnectIvlMs > 0
        ? new ConnectionWatch(socket, {
            connected: addresses,
            onAbandoned: (address) => this.#abandoned(address),
            ...(onConnection
              ? {
                  onConnect: (address: string) => onConnection('connected', address),
                  onDisconnect: (address: string) => {
                    if (addresses.includes(address)) onConnection('disconnected', address)
                  },
                }
              : {}),
          })
        : undefined
  }

  // libzmq closed the connection to `address` for a frame over ZMQ_MAXMSGSIZE and gave the
  // address up: count the drop, then connect again.
  #abandoned(address: string): void {
    try {
      this.#onDrop?.(
        TransportDropReason.FrameTooLarge,
        `libzmq closed the connection to ${address}: a frame over ${this.#maxMessageBytes} bytes (reconnecting)`,
      )
    } catch (err) {
      this.#failure ??= { error: err }
    }
    reconnectAbandoned(this.#socket, address, () => connectAll(this.#socket, [address])).catch((err: unknown) => {
      if (!this.#socket.closed) this.#failure ??= { error: err }
    })
  }

  /** Adds a topic prefix ('' = everything). Throws `InvalidArgumentError` for a non-string, `ClosedError` after close. */
  subscribe(prefix: string): void {
    checkPrefix(prefix)
    if (this.#closing !== undefined) throw new ClosedError('ZmqTransport subscriber')
    this.#socket.subscribe(prefix)
  }

  /**
   * Returns the message iterator. Throws `InvalidArgumentError` if another
   * iterator is active; `return()` (e.g. `break` in `for await`) releases it
   * without closing the socket. `next()` resolves with the next well-formed
   * message, or `done` once `close()` was called; it rejects only with an
   * exception thrown by the `onDrop` listener or an unexpected socket error
   * (`TransportError`, also for a connection that cannot be made again after
   * a `frame_too_large` drop). A `frame_too_large` drop is reported between
   * reads: what its listener throws, or the reconnect error, rejects the
   * first read that starts after it. Concurrent `next()` calls are served in
   * order.
   */
  [Symbol.asyncIterator](): AsyncIterator<RawMessage, undefined> {
    if (this.#iterating) throw secondIteratorError('ZmqTransport subscriber')
    this.#iterating = true
    let finished = false
    const read = (): Promise<IteratorResult<RawMessage, undefined>> => (finished ? Promise.resolve(DONE) : this.#read())
    const clear = (): void => {
      this.#inflight = undefined
    }
    return {
      next: () => {
        const previous = this.#inflight
        const p = previous === undefined ? read() : previous.then(read, read)
        this.#inflight = p
        p.then(() => {
          if (this.#inflight === p) clear()
        }, clear)
        return p
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

  async #read(): Promise<IteratorResult<RawMessage, undefined>> {
    for (;;) {
      if (this.#closing !== undefined) return DONE
      const failure = this.#failure
      if (failure !== undefined) {
        this.#failure = undefined
        throw failure.error
      }
      let frames: Buffer[]
      try {
        frames = await this.#socket.receive()
      } catch (err) {
        if (this.#socket.closed) return DONE
        throw new TransportError(`ZmqTransport subscriber: receive failed: ${errorMessage(err)}`, { cause: err })
      }
      const result = validateFrames(frames, this.#maxMessageBytes)
      if (typeof result !== 'string') return { done: false, value: result }
      this.#onDrop?.(result)
    }
  }

  /** Closes the socket; a pending `next()` resolves `done`. Idempotent: returns the same promise. */
  close(): Promise<void> {
    if (this.#closing === undefined) {
      this.#watch?.stop()
      this.#socket.close()
      this.#closing = Promise.resolve()
    }
    return this.#closing
  }
}

/**
 * ZeroMQ PUB/SUB transport, wire-compatible with fedmsg: every message is two
 * frames [topic UTF-8, body]. Publishers bind (`bind`) and/or connect
 * (`connect`, e.g. to a relay); subscribers connect to every `subscribeTo`
 * endpoint. Subscribers drop malformed messages (see {@link validateFrames}).
 */
export class ZmqTransport implements Transport {
  readonly bind: readonly string[]
  readonly bindFirstOf: readonly string[]
  readonly connect: readonly string[]
  readonly subscribeTo: readonly string[]
  readonly noDrop: boolean
  readonly socketOptions: ResolvedSocketOptions

  /** Throws `InvalidArgumentError` for an invalid option. Opens nothing. */
  constructor(options: ZmqTransportOptions) {
    this.socketOptions = resolveSocketOptions(options)
    this.bind = checkAddresses('bind', options.bind ?? [])
    this.bindFirstOf = checkAddresses('bindFirstOf', options.bindFirstOf ?? [])
    this.connect = checkAddresses('connect', options.connect ?? [])
    this.subscribeTo = checkAddresses('subscribeTo', options.subscribeTo)
    this.noDrop = checkBoolean('noDrop', options.noDrop ?? DEFAULT_NO_DROP)
  }

  /**
   * Opens a publisher (an XPUB socket: it sends exactly as PUB does, and also
   * sees subscriptions, for `waitForSubscribers`), binds every `bind` address,
   * binds the first of `bindFirstOf` that it can bind (when given), then connects to every `connect` address. A publisher that connects to a
   * relay sees the relay's subscription to everything once the connection is
   * up.
   *
   * `waitForSubscribers` counts the XPUB's subscription messages (with
   * ZMQ_XPUB_VERBOSER, so every subscriber's subscribe and unsubscribe is
   * seen, including the unsubscribes libzmq generates when a connection
   * ends): the count is subscriptions seen minus unsubscriptions seen. Limits:
   * a subscriber that subscribes the same prefix twice counts twice but sends
   * one unsubscribe (ZeroMQ's SUB side deduplicates those), leaving the count
   * one too high; a subscriber whose host vanished without closing the
   * connection counts until the connection is noticed dead (TCP keepalive).
   * While open, the socket waits for subscription messages, which keeps the
   * Node.js event loop alive: close it to let the process exit.
   *
   * Resolves with a socket whose `endpoints` are the real
   * bound addresses followed by the connected ones. Rejects with
   * {@link TransportError} naming the address that failed, or every address of
   * `bindFirstOf` tried when none could be bound (the socket is closed), or when
   * no address was given at all.
   */
  async openPublisher(): Promise<PubSocket> {
    if (this.bind.length === 0 && this.bindFirstOf.length === 0 && this.connect.length === 0) {
      throw new TransportError('ZmqTransport publisher: no bind or connect address configured')
    }
    const socket = new XPublisher()
    try {
      applySocketOptions(socket, this.socketOptions)
      socket.noDrop = this.noDrop
      socket.verbosity = 'allSubsUnsubs'
      const bound = await bindAll(socket, this.bind)
      if (this.bindFirstOf.length > 0) bound.push(await bindFirst(socket, this.bindFirstOf))
      await connectAll(socket, this.connect)
      return new ZmqPubSocket(socket, [...bound, ...this.connect], this.noDrop, this.socketOptions.lingerMs)
    } catch (err) {
      socket.close()
      throw err
    }
  }

  /**
   * Opens a SUB socket connected to every `subscribeTo` endpoint and
   * subscribed to `prefixes` (default `['']`). Rejects with
   * {@link TransportError} for an address libzmq rejects, with
   * `InvalidArgumentError` when `prefixes` is not an array of strings. Like
   * any ZeroMQ subscriber it misses what is published before its connection and
   * subscription reach the publisher (the slow joiner).
   *
   * libzmq refuses a frame over `maxMessageBytes` after reading its header
   * and closes that connection for good. The socket notices (a closed
   * connection libzmq does not retry within `RECONNECT_GRACE_MS`),
   * reports a `frame_too_large` drop to `onDrop` and connects again; what
   * the publisher sent meanwhile is lost, as after any reconnect. Needs
   * `reconnectIvlMs` > 0 (with reconnection off, nothing is watched). While
   * open, the socket watches its connection events, which keeps the Node.js
   * event loop alive: close it to let the process exit.
   */
  async openSubscriber(options: SubscriberOptions = {}): Promise<SubSocket> {
    const prefixes = checkPrefixes(options.prefixes)
    const socket = new Subscriber()
    let sub: ZmqSubSocket | undefined
    try {
      applySocketOptions(socket, this.socketOptions)
      // Before connecting, so that its connection events are all watched.
      sub = new ZmqSubSocket(socket, this.subscribeTo, this.socketOptions, options)
      await connectAll(socket, this.subscribeTo)
      for (const prefix of prefixes) socket.subscribe(prefix)
    } catch (err) {
      if (sub === undefined) socket.close()
      else await sub.close()
      throw err
    }
    return sub
  }
}
