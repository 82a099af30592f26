import { Publisher, Subscriber, XPublisher } from 'zeromq'
import { ClosedError, ConfigError, errorMessage, TransportError } from '../errors.js'
import {
  checkAddresses,
  checkInteger,
  checkPrefix,
  checkPrefixes,
  checkSendArguments,
  DEFAULT_MAX_MESSAGE_BYTES,
  secondIteratorError,
  validateFrames,
} from './frames.js'
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

export { DEFAULT_MAX_MESSAGE_BYTES, validateFrames } from './frames.js'
export { RECONNECT_GRACE_MS } from './connection-watch.js'

/**
 * Default high-water mark (ZMQ_SNDHWM on publishers, ZMQ_RCVHWM on
 * subscribers): 0, no limit, as fedmsg's `high_water_mark`. libzmq's own
 * default (1000) silently dropped 31% of a 200k burst. The cost: a subscriber
 * that stops reading (but keeps its connection) makes the publisher queue
 * every message for it in memory until it reads again or disconnects; enable
 * TCP keepalive to notice dead peers. Set a limit to bound memory, accepting
 * drops (or blocking, with `noDrop`).
 */
export const DEFAULT_HIGH_WATER_MARK = 0

/**
 * Bytes a subscription frame carries besides its prefix: libzmq 4.3 sends a
 * subscription to a ZMTP 3.1 peer as a SUBSCRIBE command (`\x09SUBSCRIBE`
 * then the prefix, 10 bytes more), to a ZMTP 3.0 peer as `\x01` then the
 * prefix. A publisher accepts subscription frames up to
 * `maxMessageBytes` + this: a longer prefix could not match any topic a
 * subscriber with the same limit accepts.
 */
export const SUBSCRIPTION_FRAME_OVERHEAD = 10

/**
 * The smallest `maxMessageBytes` a ZeroMQ socket accepts: libzmq applies
 * ZMQ_MAXMSGSIZE to the ZMTP handshake too, which fails (and is retried
 * forever, silently) under about 32 bytes.
 */
export const MIN_ZMQ_MAX_MESSAGE_BYTES = 64

/** Default ZMQ_LINGER: 1000 ms, as fedmsg's `zmq_linger`. */
export const DEFAULT_LINGER_MS = 1000

/**
 * Default ZMQ_RECONNECT_IVL: 100 ms (libzmq's default). A subscriber started
 * before its publisher retries this soon, then backs off.
 */
export const DEFAULT_RECONNECT_IVL_MS = 100

/**
 * Default ZMQ_RECONNECT_IVL_MAX: 1000 ms. The back-off doubles from
 * {@link DEFAULT_RECONNECT_IVL_MS} up to this, so a subscriber whose publisher
 * starts late connects within about a second (the "slow joiner" window). A
 * retry per second to a dead endpoint costs nothing measurable.
 */
export const DEFAULT_RECONNECT_IVL_MAX_MS = 1000

/** Default of {@link ZmqTransportOptions.noDrop}: false. */
export const DEFAULT_NO_DROP = false

/** Longest pause between retries of a send blocked by the high-water mark (`noDrop`). */
export const NO_DROP_RETRY_MAX_MS = 20

/** TCP keepalive (ZMQ_TCP_KEEPALIVE*). Fields left out keep the OS default. */
export interface TcpKeepaliveOptions {
  readonly enabled: boolean
  /** ZMQ_TCP_KEEPALIVE_CNT: unanswered probes before the connection is dropped. */
  readonly count?: number
  /** ZMQ_TCP_KEEPALIVE_IDLE: idle seconds before the first probe. */
  readonly idleSec?: number
  /** ZMQ_TCP_KEEPALIVE_INTVL: seconds between probes. */
  readonly intervalSec?: number
}

/**
 * ZMTP heartbeats (ZMQ_HEARTBEAT_*): a PING every `intervalMs` on each
 * connection; one that hears nothing back within `timeoutMs` is closed and
 * re-made, which also resets TCP's retransmission back-off after a partition.
 */
export interface HeartbeatOptions {
  /** ZMQ_HEARTBEAT_IVL, ms (> 0). */
  readonly intervalMs: number
  /** ZMQ_HEARTBEAT_TIMEOUT, ms. Default: libzmq's (the interval). */
  readonly timeoutMs?: number
  /** ZMQ_HEARTBEAT_TTL, ms (rounded down to 100 ms by libzmq): how long the peer waits for traffic before closing. Default: libzmq's (none). */
  readonly ttlMs?: number
}

/** Socket options shared by {@link ZmqTransport} and the relay. */
export interface ZmqSocketOptions {
  /** Messages queued per peer before PUB drops (0 = no limit). Default {@link DEFAULT_HIGH_WATER_MARK}. */
  readonly highWaterMark?: number
  /** How long a closed socket keeps trying to send queued messages. Default {@link DEFAULT_LINGER_MS}. */
  readonly lingerMs?: number
  /** Default {@link DEFAULT_RECONNECT_IVL_MS}. */
  readonly reconnectIvlMs?: number
  /** 0 disables the back-off. Default {@link DEFAULT_RECONNECT_IVL_MAX_MS}. */
  readonly reconnectIvlMaxMs?: number
  /** Default: not set (the OS default, normally off). */
  readonly tcpKeepalive?: TcpKeepaliveOptions
  /**
   * ZMQ_TCP_MAXRT, ms: a connection whose unacknowledged data has been
   * retransmitted for this long is dropped and re-made (TCP_USER_TIMEOUT).
   * Bounds the stalls of heavy packet loss, where TCP's retransmission timeout
   * doubles up to minutes. What was queued on it is lost (gilmsg resends it).
   * Default: not set (the OS default, ~15 minutes on Linux).
   */
  readonly tcpMaxRetransmitMs?: number
  /**
   * ZMQ_CONNECT_TIMEOUT, ms: a connection attempt not established by then is
   * abandoned and retried after the reconnect interval, instead of waiting
   * out TCP's SYN back-off (1, 3, 7, 15 s... under heavy loss). Default: not set.
   */
  readonly connectTimeoutMs?: number
  /** Default: not set (no heartbeats). */
  readonly heartbeat?: HeartbeatOptions
  /**
   * Largest accepted message (topic + body bytes). Default
   * {@link DEFAULT_MAX_MESSAGE_BYTES}. Enforced by libzmq before a frame is
   * received: ZMQ_MAXMSGSIZE is set to this on every receiving socket (it
   * bounds each frame, the topic frame too), so a peer that sends a larger
   * frame is disconnected after its frame header, with nothing allocated for
   * the frame (a subscriber counts that as `frame_too_large` and connects
   * again). A message whose frames are each within the limit but together
   * over it is received, then dropped as `too_large`: one message costs at
   * most twice the limit. Publishers accept subscription frames up to this
   * plus {@link SUBSCRIPTION_FRAME_OVERHEAD}. At least {@link MIN_ZMQ_MAX_MESSAGE_BYTES}.
   */
  readonly maxMessageBytes?: number
}

export interface ZmqTransportOptions extends ZmqSocketOptions {
  /** Addresses the publisher binds (e.g. `tcp://127.0.0.1:*`). */
  readonly bind?: readonly string[]
  /** Addresses the publisher connects to, e.g. a relay's inbound (fedmsg's `active: true`). */
  readonly connect?: readonly string[]
  /** Endpoints every subscriber connects to. */
  readonly subscribeTo: readonly string[]
  /**
   * When the high-water mark is reached for a subscriber, wait (retrying every
   * 1..{@link NO_DROP_RETRY_MAX_MS} ms) instead of dropping (ZMQ_XPUB_NODROP).
   * A publisher with no subscribers never waits, but one subscriber that stops
   * reading blocks every later send until it reads, disconnects or the
   * publisher is closed. Meaningless with `highWaterMark: 0`. Default
   * {@link DEFAULT_NO_DROP}.
   */
  readonly noDrop?: boolean
}

/** {@link ZmqSocketOptions} with every default filled in and validated. */
export interface ResolvedSocketOptions {
  readonly highWaterMark: number
  readonly lingerMs: number
  readonly reconnectIvlMs: number
  readonly reconnectIvlMaxMs: number
  readonly tcpKeepalive: TcpKeepaliveOptions | undefined
  readonly tcpMaxRetransmitMs: number | undefined
  readonly connectTimeoutMs: number | undefined
  readonly heartbeat: HeartbeatOptions | undefined
  readonly maxMessageBytes: number
}

/** The defaults of {@link ZmqSocketOptions}. */
export function defaultSocketOptions(): ResolvedSocketOptions {
  return {
    highWaterMark: DEFAULT_HIGH_WATER_MARK,
    lingerMs: DEFAULT_LINGER_MS,
    reconnectIvlMs: DEFAULT_RECONNECT_IVL_MS,
    reconnectIvlMaxMs: DEFAULT_RECONNECT_IVL_MAX_MS,
    tcpKeepalive: undefined,
    tcpMaxRetransmitMs: undefined,
    connectTimeoutMs: undefined,
    heartbeat: undefined,
    maxMessageBytes: DEFAULT_MAX_MESSAGE_BYTES,
  }
}

const INT32_MAX = 2 ** 31 - 1

/** Fills in defaults and validates. Throws {@link ConfigError} naming the bad option. */
export function resolveSocketOptions(options: ZmqSocketOptions): ResolvedSocketOptions {
  const d = defaultSocketOptions()
  const o: ResolvedSocketOptions = {
    highWaterMark: checkInteger('highWaterMark', options.highWaterMark ?? d.highWaterMark, 0, INT32_MAX),
    lingerMs: checkInteger('lingerMs', options.lingerMs ?? d.lingerMs, -1, INT32_MAX),
    reconnectIvlMs: checkInteger('reconnectIvlMs', options.reconnectIvlMs ?? d.reconnectIvlMs, -1, INT32_MAX),
    reconnectIvlMaxMs: checkInteger('reconnectIvlMaxMs', options.reconnectIvlMaxMs ?? d.reconnectIvlMaxMs, 0, INT32_MAX),
    tcpKeepalive: options.tcpKeepalive ?? d.tcpKeepalive,
    tcpMaxRetransmitMs:
      options.tcpMaxRetransmitMs === undefined ? d.tcpMaxRetransmitMs : checkInteger('tcpMaxRetransmitMs', options.tcpMaxRetransmitMs, 1, INT32_MAX),
    connectTimeoutMs:
      options.connectTimeoutMs === undefined ? d.connectTimeoutMs : checkInteger('connectTimeoutMs', options.connectTimeoutMs, 1, INT32_MAX),
    heartbeat: options.heartbeat ?? d.heartbeat,
    maxMessageBytes: checkInteger('maxMessageBytes', options.maxMessageBytes ?? d.maxMessageBytes, MIN_ZMQ_MAX_MESSAGE_BYTES),
  }
  const k = o.tcpKeepalive
  if (k !== undefined) {
    if (typeof k.enabled !== 'boolean') {
      throw new ConfigError(`tcpKeepalive.enabled: expected a boolean, got ${typeof k.enabled}`)
    }
    if (k.count !== undefined) checkInteger('tcpKeepalive.count', k.count, 1, INT32_MAX)
    if (k.idleSec !== undefined) checkInteger('tcpKeepalive.idleSec', k.idleSec, 1, INT32_MAX)
    if (k.intervalSec !== undefined) checkInteger('tcpKeepalive.intervalSec', k.intervalSec, 1, INT32_MAX)
  }
  const h = o.heartbeat
  if (h !== undefined) {
    checkInteger('heartbeat.intervalMs', h.intervalMs, 1, INT32_MAX)
    if (h.timeoutMs !== undefined) checkInteger('heartbeat.timeoutMs', h.timeoutMs, 1, INT32_MAX)
    if (h.ttlMs !== undefined) checkInteger('heartbeat.ttlMs', h.ttlMs, 100, 6_553_500)
  }
  return o
}

/** The ZeroMQ socket types gilmsg opens. */
export type ZmqSocket = Publisher | XPublisher | Subscriber

/**
 * The largest frame (ZMQ_MAXMSGSIZE) `socket` accepts: a subscriber's frames
 * are messages (`maxMessageBytes`), a publisher's are subscriptions
 * (`maxMessageBytes` + {@link SUBSCRIPTION_FRAME_OVERHEAD}).
 */
export function maxFrameBytes(socket: ZmqSocket, o: ResolvedSocketOptions): number {
  return socket instanceof Subscriber ? o.maxMessageBytes : o.maxMessageBytes + SUBSCRIPTION_FRAME_OVERHEAD
}

/** Applies the options to a socket that is not yet bound or connected. */
export function applySocketOptions(socket: ZmqSocket, o: ResolvedSocketOptions): void {
  if (socket instanceof Publisher || socket instanceof XPublisher) socket.sendHighWaterMark = o.highWaterMark
  else socket.receiveHighWaterMark = o.highWaterMark
  socket.maxMessageSize = maxFrameBytes(socket, o)
  socket.linger = o.lingerMs
  socket.reconnectInterval = o.reconnectIvlMs
  socket.reconnectMaxInterval = o.reconnectIvlMaxMs
  const k = o.tcpKeepalive
  if (k !== undefined) {
    socket.tcpKeepalive = k.enabled ? 1 : 0
    if (k.count !== undefined) socket.tcpKeepaliveCount = k.count
    if (k.idleSec !== undefined) socket.tcpKeepaliveIdle = k.idleSec
    if (k.intervalSec !== undefined) socket.tcpKeepaliveInterval = k.intervalSec
  }
  if (o.tcpMaxRetransmitMs !== undefined) socket.tcpMaxRetransmitTimeout = o.tcpMaxRetransmitMs
  if (o.connectTimeoutMs !== undefined) socket.connectTimeout = o.connectTimeoutMs
  const h = o.heartbeat
  if (h !== undefined) {
    socket.heartbeatInterval = h.intervalMs
    if (h.timeoutMs !== undefined) socket.heartbeatTimeout = h.timeoutMs
    if (h.ttlMs !== undefined) socket.heartbeatTimeToLive = h.ttlMs
  }
}


function codeOf(err: unknown): unknown {
  return typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined
}

/**
 * How often a libzmq call interrupted by a signal (EINTR) is tried again.
 * libzmq checks its command mailbox before doing anything, and a signal that
 * arrives meanwhile (a profiler's SIGPROF, SIGCHLD, SIGWINCH) fails the call
 * with EINTR; it did nothing, so trying again is safe.
 */
const EINTR_RETRIES = 16

/** Runs a libzmq bind or connect, again (up to {@link EINTR_RETRIES} times) when a signal interrupted it. */
async function retryInterrupted(call: () => unknown): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await call()
      return
    } catch (err) {
      if (codeOf(err) !== 'EINTR' || attempt >= EINTR_RETRIES) throw err
    }
  }
}

/**
 * Binds `socket` to each address in turn, trying again a call interrupted by
 * a signal. Resolves with the real bound addresses (`tcp://127.0.0.1:*`
 * becomes the chosen port). Rejects with {@link TransportError} "cannot bind
 * <address>: <reason>" at the first failure; the caller closes the socket.
 */
export async function bindAll(socket: ZmqSocket, addresses: readonly string[]): Promise<string[]> {
  const bound: string[] = []
  for (const address of addresses) {
    try {
      await retryInterrupted(() => socket.bind(address))
    } catch (err) {
      throw new TransportError(`cannot bind ${address}: ${errorMessage(err)}`, { cause: err })
    }
    bound.push(socket.lastEndpoint ?? address)
  }
  return bound
}

/**
 * Starts connecting `socket` to each address (the connection completes in the
 * background), trying again a call interrupted by a signal. Rejects with
 * {@link TransportError} "cannot connect <address>: <reason>" for an address
 * libzmq rejects; the caller closes the socket.
 */
export async function connectAll(socket: ZmqSocket, addresses: readonly string[]): Promise<void> {
  for (const address of addresses) {
    try {
      await retryInterrupted(() => socket.connect(address))
    } catch (err) {
      throw new TransportError(`cannot connect ${address}: ${errorMessage(err)}`, { cause: err })
    }
  }
}

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
  constructor(socket: Subscriber, addresses: readonly string[], o: ResolvedSocketOptions, onDrop: DropListener | undefined) {
    this.#socket = socket
    this.#maxMessageBytes = o.maxMessageBytes
    this.#onDrop = onDrop
    this.#watch =
      o.reconnectIvlMs > 0 ? new ConnectionWatch(socket, { connected: addresses, onAbandoned: (address) => this.#abandoned(address) }) : undefined
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
  readonly connect: readonly string[]
  readonly subscribeTo: readonly string[]
  readonly noDrop: boolean
  readonly socketOptions: ResolvedSocketOptions

  /** Throws {@link ConfigError} for an invalid option. Opens nothing. */
  constructor(options: ZmqTransportOptions) {
    this.socketOptions = resolveSocketOptions(options)
    this.bind = checkAddresses('bind', options.bind ?? [])
    this.connect = checkAddresses('connect', options.connect ?? [])
    this.subscribeTo = checkAddresses('subscribeTo', options.subscribeTo)
    const noDrop = options.noDrop ?? DEFAULT_NO_DROP
    if (typeof noDrop !== 'boolean') throw new ConfigError(`noDrop: expected a boolean, got ${typeof noDrop}`)
    this.noDrop = noDrop
  }

  /**
   * Opens a publisher (an XPUB socket: it sends exactly as PUB does, and also
   * sees subscriptions, for `waitForSubscribers`), binds every `bind` address,
   * then connects to every `connect` address. A publisher that connects to a
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
   * {@link TransportError} naming the address that failed (the socket is
   * closed), or when neither `bind` nor `connect` was given.
   */
  async openPublisher(): Promise<PubSocket> {
    if (this.bind.length === 0 && this.connect.length === 0) {
      throw new TransportError('ZmqTransport publisher: no bind or connect address configured')
    }
    const socket = new XPublisher()
    try {
      applySocketOptions(socket, this.socketOptions)
      socket.noDrop = this.noDrop
      socket.verbosity = 'allSubsUnsubs'
      const bound = await bindAll(socket, this.bind)
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
      sub = new ZmqSubSocket(socket, this.subscribeTo, this.socketOptions, options.onDrop)
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
