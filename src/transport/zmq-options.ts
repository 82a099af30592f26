import { Publisher, Subscriber, XPublisher, XSubscriber } from 'zeromq'
import {
  DEFAULT_HIGH_WATER_MARK,
  DEFAULT_LINGER_MS,
  DEFAULT_MAX_MESSAGE_BYTES,
  DEFAULT_RECONNECT_IVL_MAX_MS,
  DEFAULT_RECONNECT_IVL_MS,
} from '../util/defaults.js'
import { checkBoolean, checkInteger } from '../util/options.js'

/**
 * The ZeroMQ socket options gilmsg sets, shared by {@link ZmqTransport} (zmq.ts) and the
 * relay (relay.ts): their schema, defaults ({@link defaultSocketOptions}), validation
 * ({@link resolveSocketOptions}) and how they are applied to a libzmq socket
 * ({@link applySocketOptions}).
 */

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

/** Socket options shared by `ZmqTransport` and the relay. */
export interface ZmqSocketOptions {
  /**
   * Messages queued per peer before PUB drops: an integer >= 1, or `Infinity` for no limit
   * (libzmq's and config files' 0). Default {@link DEFAULT_HIGH_WATER_MARK} (`Infinity`).
   */
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

/** Default of {@link ZmqTransportOptions.noDrop}: false. */
export const DEFAULT_NO_DROP = false

/** The options of `ZmqTransport`: its socket options, where it binds and connects, and `noDrop`. */
export interface ZmqTransportOptions extends ZmqSocketOptions {
  /** Addresses the publisher binds (e.g. `tcp://127.0.0.1:*`). */
  readonly bind?: readonly string[]
  /**
   * Addresses the publisher tries in turn, binding only the first it can bind (after
   * every `bind` address): fedmsg's way with a named process's `endpoints` list.
   */
  readonly bindFirstOf?: readonly string[]
  /** Addresses the publisher connects to, e.g. a relay's inbound (fedmsg's `active: true`). */
  readonly connect?: readonly string[]
  /** Endpoints every subscriber connects to. */
  readonly subscribeTo: readonly string[]
  /**
   * When the high-water mark is reached for a subscriber, wait (retrying every
   * 1..`NO_DROP_RETRY_MAX_MS` (zmq.ts) ms) instead of dropping (ZMQ_XPUB_NODROP).
   * A publisher with no subscribers never waits, but one subscriber that stops
   * reading blocks every later send until it reads, disconnects or the
   * publisher is closed. Meaningless with no high-water mark (`Infinity`). Default
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

/** Fills in defaults and validates. Throws `InvalidArgumentError` naming the bad option. */
export function resolveSocketOptions(options: ZmqSocketOptions): ResolvedSocketOptions {
  const d = defaultSocketOptions()
  const o: ResolvedSocketOptions = {
    highWaterMark: checkInteger('highWaterMark', options.highWaterMark ?? d.highWaterMark, 1, INT32_MAX, true),
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
    checkBoolean('tcpKeepalive.enabled', k.enabled)
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
export type ZmqSocket = Publisher | XPublisher | Subscriber | XSubscriber

/**
 * The largest frame (ZMQ_MAXMSGSIZE) `socket` accepts: a subscriber's (SUB or
 * XSUB) frames are messages (`maxMessageBytes`), a publisher's are subscriptions
 * (`maxMessageBytes` + {@link SUBSCRIPTION_FRAME_OVERHEAD}).
 */
export function maxFrameBytes(socket: ZmqSocket, o: ResolvedSocketOptions): number {
  return socket instanceof Subscriber || socket instanceof XSubscriber ? o.maxMessageBytes : o.maxMessageBytes + SUBSCRIPTION_FRAME_OVERHEAD
}

/**
 * Applies the options to a socket that is not yet bound or connected. The one place where
 * the API's "no limit" (`Infinity`) becomes libzmq's (0).
 */
export function applySocketOptions(socket: ZmqSocket, o: ResolvedSocketOptions): void {
  const hwm = o.highWaterMark === Infinity ? 0 : o.highWaterMark
  if (socket instanceof Publisher || socket instanceof XPublisher) socket.sendHighWaterMark = hwm
  else socket.receiveHighWaterMark = hwm
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
