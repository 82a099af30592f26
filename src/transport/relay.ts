import { Publisher, Subscriber } from 'zeromq'
import { TransportError } from '../errors.js'
import { ReasonCounter } from '../util/counters.js'
import { checkAddresses, validateFrames } from './frames.js'
import type { DropListener } from './transport.js'
import type { ResolvedSocketOptions, ZmqSocketOptions } from './zmq.js'
import { applySocketOptions, bindAll, resolveSocketOptions } from './zmq.js'

export interface RelayOptions extends ZmqSocketOptions {
  /** Addresses the inbound SUB socket binds; publishers (`connect` mode) connect here. */
  readonly inbound: readonly string[]
  /** Addresses the outbound PUB socket binds; subscribers connect here. */
  readonly outbound: readonly string[]
  /** Called once per dropped message with the reason. */
  readonly onDrop?: DropListener
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
  readonly #drops = new ReasonCounter()
  #forwarded = 0
  #closing: Promise<void> | undefined

  constructor(
    inbound: Subscriber,
    outbound: Publisher,
    endpoints: { inbound: string[]; outbound: string[] },
    o: ResolvedSocketOptions,
    onDrop: DropListener | undefined,
  ) {
    this.#in = inbound
    this.#out = outbound
    this.endpoints = endpoints
    this.#maxMessageBytes = o.maxMessageBytes
    this.#onDrop = onDrop
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

  async #run(): Promise<void> {
    for (;;) {
      let frames: Buffer[]
      try {
        frames = await this.#in.receive()
      } catch (err) {
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
 * and counted. Resolves once both sockets are bound; rejects with
 * `TransportError` "cannot bind <address>: <reason>" (nothing is left open)
 * or `ConfigError` for an invalid option.
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
    return new ZmqRelay(inbound, outbound, endpoints, o, options.onDrop)
  } catch (err) {
    inbound.close()
    outbound.close()
    throw err
  }
}
