import { Proxy, type XPublisher, type XSubscriber } from 'zeromq'
import { TransportError } from '../errors.js'
import type { Relay } from './relay-types.js'
import type { InboundWatch } from './relay-watch.js'

/**
 * The `native` relay: libzmq's proxy (`zmq_proxy_steerable`, through zeromq.js's
 * `Proxy`) forwards every message from the inbound XSUB to the outbound XPUB and
 * every subscription back, on a thread of libuv's pool, with no JavaScript per
 * message. It forwards whatever it receives, byte for byte, without checking it;
 * ZMQ_MAXMSGSIZE still refuses a frame over the limit at the inbound socket. It
 * counts nothing per message: only the connection counts of the monitor remain.
 */
export class NativeRelay implements Relay {
  readonly mode = 'native'
  readonly endpoints: { readonly inbound: readonly string[]; readonly outbound: readonly string[] }
  readonly closed: Promise<void | Error>
  readonly forwarded = undefined
  readonly dropped = undefined
  readonly #proxy: Proxy<XSubscriber, XPublisher>
  readonly #watch: InboundWatch
  #terminated = false
  #closing: Promise<void> | undefined

  /** `proxy`'s sockets must be bound; `watch` must watch its front end. */
  constructor(proxy: Proxy<XSubscriber, XPublisher>, watch: InboundWatch, endpoints: { inbound: string[]; outbound: string[] }) {
    this.#proxy = proxy
    this.#watch = watch
    this.endpoints = endpoints
    // run() throws synchronously for unbound sockets (excluded by the caller); it resolves once
    // terminate() has been handled and both sockets are closed.
    this.closed = proxy.run().then(
      () => {
        this.#watch.stop()
        return this.#watch.error
      },
      (err: unknown) => {
        this.#watch.stop()
        return new TransportError(`relay: libzmq's proxy failed: ${String(err)}`, { cause: err })
      },
    )
  }

  get inboundConnects(): number {
    return this.#watch.accepted
  }

  get inboundDisconnects(): number {
    return this.#watch.disconnects
  }

  /** Asks the proxy thread to stop (it then closes both sockets). Idempotent. */
  closeSockets(): void {
    if (this.#terminated) return
    this.#terminated = true
    try {
      this.#proxy.terminate()
    } catch {
      // EBADF: the proxy has already stopped (closed resolves with why).
    }
  }

  close(): Promise<void> {
    if (this.#closing === undefined) {
      this.closeSockets()
      this.#closing = this.closed.then(() => undefined)
    }
    return this.#closing
  }
}
