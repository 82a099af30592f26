import type { Socket } from 'zeromq'

/**
 * How long after a connection of a connecting socket ends gilmsg waits for
 * libzmq's own reconnect to start (its `connect:retry` event) before it
 * concludes that libzmq closed the connection for a protocol error and will
 * not reconnect: 500 ms. libzmq starts the reconnect in the same I/O thread
 * right after the `disconnect` event (microseconds apart), so the wait only
 * has to cover a busy event loop.
 */
export const RECONNECT_GRACE_MS = 500

/** What {@link ConnectionWatch} reports. The callbacks must not throw. */
export interface ConnectionWatchOptions {
  /** The addresses the socket connects to (as given to `connect`); empty for a socket that only binds. */
  readonly connected: readonly string[]
  /** Called for every connection a connecting socket makes (libzmq's `connect` event). */
  readonly onConnect?: (address: string) => void
  /** Called for every connection a bound socket accepts (libzmq's `accept` event). */
  readonly onAccept?: (address: string) => void
  /** Called for every connection that ends (a peer left, or libzmq closed it). */
  readonly onDisconnect?: (address: string) => void
  /**
   * Called when a connection to one of `connected` ended and libzmq did not
   * start reconnecting within `graceMs`: libzmq closed it for a protocol
   * error, which for an established connection means a frame over
   * ZMQ_MAXMSGSIZE, and it never reconnects after that (see
   * {@link reconnectAbandoned}).
   */
  readonly onAbandoned?: (address: string) => void
  /** Default {@link RECONNECT_GRACE_MS}. */
  readonly graceMs?: number
}

/**
 * Follows a socket's connection events (`socket.events`) until the socket
 * closes. libzmq (4.3.5) drops a peer that sends a frame over ZMQ_MAXMSGSIZE
 * with nothing but the `disconnect` event a peer that leaves also causes. On
 * a connecting socket the two differ: after a peer left libzmq reconnects
 * (`connect:retry`), after a protocol error it gives the address up for
 * good. On a bound socket they do not differ at all.
 */
export class ConnectionWatch {
  readonly #socket: Socket
  readonly #options: ConnectionWatchOptions
  readonly #graceMs: number
  readonly #timers = new Map<string, NodeJS.Timeout>()
  #stopped = false
  /** Resolves once the socket has closed; no callback runs after that. Never rejects. */
  readonly done: Promise<void>

  constructor(socket: Socket, options: ConnectionWatchOptions) {
    this.#socket = socket
    this.#options = options
    this.#graceMs = options.graceMs ?? RECONNECT_GRACE_MS
    this.done = this.#watch()
  }

  async #watch(): Promise<void> {
    const events = this.#socket.events
    for (;;) {
      let event: Awaited<ReturnType<typeof events.receive>>
      try {
        event = await events.receive()
      } catch {
        break // EAGAIN: the observer closed with its socket
      }
      if (this.#stopped || event.type === 'end') break
      if (!('address' in event)) continue
      const address = event.address
      if (event.type === 'accept') {
        this.#options.onAccept?.(address)
      } else if (event.type === 'disconnect') {
        this.#options.onDisconnect?.(address)
        if (this.#options.connected.includes(address) && !this.#timers.has(address)) {
          this.#timers.set(address, setTimeout(() => this.#abandoned(address), this.#graceMs))
        }
      } else if (event.type === 'connect:retry' || event.type === 'connect:delay' || event.type === 'connect') {
        clearTimeout(this.#timers.get(address))
        this.#timers.delete(address)
        if (event.type === 'connect') this.#options.onConnect?.(address)
      }
    }
    this.stop()
  }

  #abandoned(address: string): void {
    this.#timers.delete(address)
    if (this.#stopped || this.#socket.closed) return
    this.#options.onAbandoned?.(address)
  }

  /** Stops watching and cancels pending timers (no more callbacks). Idempotent. */
  stop(): void {
    this.#stopped = true
    for (const t of this.#timers.values()) clearTimeout(t)
    this.#timers.clear()
  }
}

/**
 * Makes again a connection libzmq gave up (see
 * {@link ConnectionWatchOptions.onAbandoned}): forgets `address`, then
 * connects to it with `connect`. Rejects with what `connect` rejects with.
 */
export async function reconnectAbandoned(socket: Socket, address: string, connect: () => Promise<void>): Promise<void> {
  try {
    socket.disconnect(address)
  } catch (err) {
    // ENOENT: libzmq already forgot the address; connecting again is all that is needed.
    if ((err as { code?: unknown }).code !== 'ENOENT') throw err
  }
  await connect()
}
