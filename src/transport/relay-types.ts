import type { RelayMode } from '../util/defaults.js'
import type { DropListener } from './transport.js'
import type { ZmqSocketOptions } from './zmq-options.js'

export type { RelayMode } from '../util/defaults.js'

export interface RelayOptions extends ZmqSocketOptions {
  /** Addresses the inbound XSUB socket binds; publishers (`connect` mode) connect here. */
  readonly inbound: readonly string[]
  /** Addresses the outbound XPUB socket binds; subscribers connect here. */
  readonly outbound: readonly string[]
  /**
   * `native` (libzmq's proxy on a thread of its own: no JavaScript per message, no
   * checks nor counts per message) or `js` (a JavaScript loop that checks and counts
   * every message). Default `DEFAULT_RELAY_MODE` (`native`).
   */
  readonly mode?: RelayMode
  /** `js` mode only: called once per dropped message with the reason. */
  readonly onDrop?: DropListener
  /**
   * Called with the inbound address for every inbound connection that ends
   * (see {@link Relay.inboundDisconnects}). An exception it throws stops the
   * relay: `closed` resolves with it.
   */
  readonly onInboundDisconnect?: (address: string) => void
}

/** A running relay (fedmsg's relay_inbound -> relay_outbound). */
export interface Relay {
  /** How it forwards (see {@link RelayOptions.mode}). */
  readonly mode: RelayMode
  /** The real bound addresses (ports chosen for `:*`). */
  readonly endpoints: { readonly inbound: readonly string[]; readonly outbound: readonly string[] }
  /** Messages forwarded so far; `undefined` in `native` mode (libzmq's proxy counts nothing). */
  readonly forwarded: number | undefined
  /**
   * Messages dropped so far, by reason (`frame_count`, `not_utf8`, `too_large`); a copy.
   * `undefined` in `native` mode: it checks nothing but the frame size (ZMQ_MAXMSGSIZE),
   * and the subscribers drop the rest themselves.
   */
  readonly dropped: Readonly<Record<string, number>> | undefined
  /** Inbound connections accepted so far (publishers that connected; a reconnect counts again). */
  readonly inboundConnects: number
  /**
   * Inbound connections that ended so far: a publisher went away, or libzmq
   * closed the connection because the publisher sent a frame over
   * `maxMessageBytes` (refused after its header, nothing allocated for it).
   * libzmq 4.3.5 reports both with the same `disconnect` event on a bound
   * socket, so the relay cannot count the second as a drop of its own.
   */
  readonly inboundDisconnects: number
  /**
   * Resolves when the relay has stopped: with `undefined` after `close()`, or
   * with the error that stopped it (its sockets are then closed). Never rejects.
   */
  readonly closed: Promise<void | Error>
  /** Stops forwarding and closes both sockets. Idempotent: returns the same promise. Never rejects. */
  close(): Promise<void>
}
