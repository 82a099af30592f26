/**
 * The seam between gilmsg and the wire. A message on the wire is exactly two
 * frames: frame 0 the full topic (UTF-8), frame 1 the JSON envelope (UTF-8).
 * Implementations: ZeroMQ PUB/SUB (`zmq.ts`) and an in-memory hub that tests
 * control (`memory.ts`).
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

/** Called once for every message a subscriber drops, with the reason and, for some reasons, what happened. */
export type DropListener = (reason: string, detail?: string) => void

export interface PubSocket {
  /** Where this socket is bound (with the real port when bound to `:*`), or connected. */
  readonly endpoints: readonly string[]
  /**
   * Queues one two-frame message. Resolves once the socket accepted it (not when
   * any subscriber got it: PUB/SUB is fire-and-forget). Rejects with
   * `ClosedError` after `close()`.
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
   * prefixes matching `topic` counts twice. Throws (synchronously)
   * `InvalidArgumentError` for a `count` that is not an integer >= 0 or a
   * `timeoutMs` that is neither `Infinity` nor an integer in [0, 2^31 - 1].
   */
  waitForSubscribers(topic: string, options?: WaitForSubscribersOptions): Promise<boolean>
  /** Closes the socket. Idempotent: later calls return the same promise. */
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
 * well-formed message; malformed ones are dropped and reported to the
 * `onDrop` listener given when it was opened. Only one iterator may be active.
 * The iteration ends (without error) after `close()`.
 */
export interface SubSocket extends AsyncIterable<RawMessage> {
  /** Adds a topic prefix ('' means everything). */
  subscribe(prefix: string): void
  /** Closes the socket and ends iteration. Idempotent. */
  close(): Promise<void>
}

export interface SubscriberOptions {
  /** Topic prefixes to receive; default `['']` (everything). */
  readonly prefixes?: readonly string[]
  readonly onDrop?: DropListener
}

export interface Transport {
  openPublisher(): Promise<PubSocket>
  openSubscriber(options?: SubscriberOptions): Promise<SubSocket>
}
