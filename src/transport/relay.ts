import { Publisher, Subscriber } from 'zeromq'
import { TransportError } from '../errors.js'
import { ReasonCounter } from '../util/counters.js'
import { ConnectionWatch } from './connection-watch.js'
import { checkAddresses } from '../util/options.js'
import { validateFrames } from './frames.js'
import type { DropListener } from './transport.js'
import { bindAll } from './zmq-connect.js'
import { applySocketOptions, resolveSocketOptions, type ResolvedSocketOptions, type ZmqSocketOptions } from './zmq-options.js'

export interface RelayOptions extends ZmqSocketOptions {
  /** Addresses the inbound SUB socket binds; publishers (`connect` mode) connect here. */
  readonly inbound: readonly string[]
  /** Addresses the outbound PUB socket binds; subscribers connect here. */
  readonly outbound: readonly string[]
  /** Called once per dropped message with the reason. */
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
  /** The real bound addresses (ports chosen for `:*`). */
  readonly endpoints: { readonly inbound: readonly string[]; readonly outbound: readonly string[] }
  /** Messages forwarded so far. */
  readonly forwarded: number
  /** Messages dropped so far, by reason (`frame_count`, `not_utf8`, `too_large`); a copy. */
  readonly dropped: Readonly<Record<string, number>>
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

class ZmqRelay implements Relay {
  readonly endpoints: { readonly inbound: readonly string[]; readonly outbound: readonly string[] }
  readonly closed: Promise<void | Error>
  readonly #in: Subscriber
  readonly #out: Publisher
  readonly #maxMessageBytes: number
  readonly #onDrop: DropListener | undefined
  readonly #onInboundDisconnect: ((address: string) => void) | undefined
  readonly #watch: ConnectionWatch
  readonly #drops = new ReasonCounter()
  #forwarded = 0
  #inboundDisconnects = 0
  #listenerError: { readonly error: unknown } | undefined
  #closing: Promise<void> | undefined

  constructor(
    inbound: Subscriber,
    outbound: Publisher,
    endpoints: { inbound: string[]; outbound: string[] },
    o: ResolvedSocketOptions,
    options: Pick<RelayOptions, 'onDrop' | 'onInboundDisconnect'>,
  ) {
    this.#in = inbound
    this.#out = outbound
    this.endpoints = endpoints
    this.#maxMessageBytes = o.maxMessageBytes
    this.#onDrop = options.onDrop
    this.#onInboundDisconnect = options.onInboundDisconnect
    this.#watch = new ConnectionWatch(inbound, { connected: [], onDisconnect: (address) => this.#inboundDisconnected(address) })
    this.closed = this.#run().then(
      () => undefined,
      (err: unknown) => {
        this.#closeSockets()
        return err instanceof Error ? err : new TransportError(String(err))
      },
    )
  }

  get forwarded(): number {
    return this.#forwarded
  }

  get dropped(): Readonly<Record<string, number>> {
    return this.#drops.snapshot()
  }

  get inboundDisconnects(): number {
    return this.#inboundDisconnects
  }

  #inboundDisconnected(address: string): void {
    this.#inboundDisconnects++
    try {
      this.#onInboundDisconnect?.(address)
    } catch (err) {
      this.#listenerError ??= { error: err }
      this.#closeSockets()
    }
  }

  async #run(): Promise<void> {
    for (;;) {
      let frames: Buffer[]
      try {
        frames = await this.#in.receive()
      } catch (err) {
        if (this.#listenerError !== undefined) throw this.#listenerError.error
        if (this.#in.closed) return
        throw new TransportError(`relay: receive failed: ${String(err)}`, { cause: err })
      }
      const result = validateFrames(frames, this.#maxMessageBytes)
      if (typeof result === 'string') {
        this.#drops.add(result)
        this.#onDrop?.(result)
        continue
      }
      try {
        await this.#out.send(frames)
      } catch (err) {
        if (this.#out.closed) return
        throw new TransportError(`relay: send failed: ${String(err)}`, { cause: err })
      }
      this.#forwarded++
    }
  }

  #closeSockets(): void {
    this.#watch.stop()
    this.#in.close()
    this.#out.close()
  }

  close(): Promise<void> {
    if (this.#closing === undefined) {
      this.#closeSockets()
      this.#closing = this.closed.then(() => undefined)
    }
    return this.#closing
  }
}

/**
 * Starts a relay: a SUB socket bound on `inbound` (subscribed to everything)
 * and a PUB socket bound on `outbound`. Well-formed two-frame messages are
 * forwarded byte for byte (never re-serialised); anything a Python fedmsg
 * subscriber would choke on (not 2 frames, not UTF-8, too large) is dropped
 * and counted. Every socket refuses frames over `maxMessageBytes` before
 * receiving them (see {@link ZmqSocketOptions.maxMessageBytes}): such a
 * publisher is disconnected (counted in `inboundDisconnects`), and forwarding
 * goes on. Resolves once both sockets are bound; rejects with
 * `TransportError` "cannot bind <address>: <reason>" (nothing is left open)
 * or `InvalidArgumentError` for an invalid option (nothing is opened).
 */
export async function startRelay(options: RelayOptions): Promise<Relay> {
  const o = resolveSocketOptions(options)
  const inboundAddresses = checkAddresses('inbound', options.inbound, true)
  const outboundAddresses = checkAddresses('outbound', options.outbound, true)
  const inbound = new Subscriber()
  const outbound = new Publisher()
  try {
    applySocketOptions(inbound, o)
    applySocketOptions(outbound, o)
    inbound.subscribe('')
    const endpoints = {
      inbound: await bindAll(inbound, inboundAddresses),
      outbound: await bindAll(outbound, outboundAddresses),
    }
    return new ZmqRelay(inbound, outbound, endpoints, o, options)
  } catch (err) {
    inbound.close()
    outbound.close()
    throw err
  }
}
