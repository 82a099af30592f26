/**
 * The seam between gilmsg and the wire. A message on the wire is exactly two
 * frames: frame 0 the full topic (UTF-8), frame 1 the JSON envelope (UTF-8).
 * Implementations: ZeroMQ PUB/SUB (`zmq.ts`) and an in-memory hub that tests
 * control (`memory.ts`); test/integration/transport/conformance.ts checks
 * every promise below on both.
 *
 * Misuse by the caller (an argument of the wrong type or range, a second
 * iterator) throws `InvalidArgumentError`, synchronously from the
 * synchronous-looking calls (`send`, `waitForSubscribers`, `subscribe`,
 * `[Symbol.asyncIterator]`) and as a rejection from `openSubscriber`.
 */

/** One two-frame message as received. `body` holds frame 1's bytes unchanged. */
export interface RawMessage {
  readonly topic: string
  readonly body: Buffer
}

/**
 * Why a transport dropped an incoming message before the bus saw it.
 * `too_large`: received, then refused (topic + body over the limit).
 * `frame_too_large`: libzmq refused a frame over the limit before receiving
 * it and closed the connection (the ZeroMQ transport then connects again).
 */
export const TransportDropReason = {
  FrameCount: 'frame_count',
  NotUtf8: 'not_utf8',
  TooLarge: 'too_large',
  FrameTooLarge: 'frame_too_large',
} as const
export type TransportDropReason = (typeof TransportDropReason)[keyof typeof TransportDropReason]

/**
 * Called once for every message a subscriber drops, with the reason (a
 * {@link TransportDropReason}) and, for some reasons, what happened. If it
 * throws, the subscriber's `next()` rejects with that exception in the dropped
 * message's place; iterating again continues with the next message.
 */
export type DropListener = (reason: string, detail?: string) => void

/**
 * A subscriber's connection to one of the addresses it connects to was made (`connected`:
 * at start and after each reconnect) or ended (`disconnected`: libzmq keeps reconnecting).
 * Must not throw.
 */
export type ConnectionListener = (event: 'connected' | 'disconnected', address: string) => void

export interface PubSocket {
  /** Where this socket is bound (with the real port when bound to `:*`), or connected. */
  readonly endpoints: readonly string[]
  /**
   * Queues one two-frame message. Resolves once the socket accepted it (not when
   * any subscriber got it: PUB/SUB is fire-and-forget; with no subscriber it
   * resolves too). `body` is copied before `send` returns, so the caller may
   * modify its buffer at once. Messages from one publisher reach each
   * subscriber in the order `send` was called. Throws (synchronously)
   * `InvalidArgumentError` when `topic` is not a string or `body` neither a
   * Buffer nor a string; rejects with `ClosedError` after `close()`.
   */
  send(topic: string, body: Buffer | string): Promise<void>
  /**
   * Resolves true as soon as at least `count` (default 1) subscriptions
   * matching `topic` (a subscription prefix that `topic` starts with, compared
   * as UTF-8 bytes) are live on this socket, or false after `timeoutMs`
   * (default: no timeout) or when `signal` aborts. Resolves at once if they
   * already are. Never rejects; resolves false on close (pending waits too).
   * A message sent after it resolved true reaches those subscriptions: no
   * sleep or probe is needed against the slow joiner.
   *
   * Subscriptions are counted, not subscribers: one subscriber with two
   * prefixes matching `topic` counts twice. A closed subscriber stops
   * counting (over ZeroMQ, once its disconnect reaches the publisher). Throws (synchronously)
   * `InvalidArgumentError` for a `count` that is not an integer >= 0 or a
   * `timeoutMs` that is neither `Infinity` nor an integer in [0, 2^31 - 1],
   * also after `close()`.
   */
  waitForSubscribers(topic: string, options?: WaitForSubscribersOptions): Promise<boolean>
  /**
   * Closes the socket. Idempotent: later calls return the same promise.
   * Never rejects. `endpoints` stays as it was.
   */
  close(): Promise<void>
}

/** Options of {@link PubSocket.waitForSubscribers}. */
export interface WaitForSubscribersOptions {
  /** How many matching subscriptions to wait for. Default 1. */
  readonly count?: number
  /** Give up (resolve false) after this many ms. Default `Infinity`: wait until satisfied, aborted or closed. */
  readonly timeoutMs?: number
  /** Aborting it resolves the wait with false. */
  readonly signal?: AbortSignal
}

/**
 * A prefix-filtered stream of incoming messages. Iterating yields every
 * well-formed message whose topic starts with one of the prefixes (compared
 * as UTF-8 bytes), once even when several prefixes match; malformed ones are
 * dropped and reported to the `onDrop` listener given when it was opened.
 *
 * Only one iterator may be active: a second `[Symbol.asyncIterator]()`
 * throws `InvalidArgumentError` until the first is released by `return()`
 * (what `break` in `for await` calls), which does not close the socket;
 * the released iterator's later `next()` calls resolve `done`. Concurrent
 * `next()` calls resolve in call order. `next()` rejects only with what
 * `onDrop` threw or, over ZeroMQ, a `TransportError` for an unexpected socket
 * failure. The iteration ends (without error) after `close()`: a pending
 * `next()` and every later one resolve `done`, and messages not yet read are
 * discarded.
 */
export interface SubSocket extends AsyncIterable<RawMessage> {
  /**
   * Adds a topic prefix ('' means everything). Throws (synchronously)
   * `InvalidArgumentError` for a prefix that is not a string, `ClosedError`
   * after `close()`.
   */
  subscribe(prefix: string): void
  /** Closes the socket and ends iteration. Idempotent: later calls return the same promise. Never rejects. */
  close(): Promise<void>
}

export interface SubscriberOptions {
  /** Topic prefixes to receive; default `['']` (everything); `[]` receives nothing until `subscribe()`. */
  readonly prefixes?: readonly string[]
  readonly onDrop?: DropListener
  /** Told of each connection made and ended (a socket that does not reconnect tells nothing). */
  readonly onConnection?: ConnectionListener
}

export interface Transport {
  openPublisher(): Promise<PubSocket>
  /** Rejects with `InvalidArgumentError` when `prefixes` is not an array of strings. */
  openSubscriber(options?: SubscriberOptions): Promise<SubSocket>
}
