import type { XPublisher, XSubscriber } from 'zeromq'
import { TransportError } from '../errors.js'
import { ReasonCounter } from '../util/counters.js'
import { validateFrames } from './frames.js'
import type { Relay } from './relay-types.js'
import { asError, type InboundWatch } from './relay-watch.js'
import type { DropListener } from './transport.js'

/**
 * The `js` relay: a JavaScript loop forwards each well-formed message from the
 * inbound XSUB to the outbound XPUB, byte for byte, and drops and counts the
 * others; a second loop passes the subscriptions the XPUB receives up to the
 * XSUB, so publishers send only what somebody wants.
 */
export class JsRelay implements Relay {
  readonly mode = 'js'
  readonly endpoints: { readonly inbound: readonly string[]; readonly outbound: readonly string[] }
  readonly closed: Promise<void | Error>
  readonly #in: XSubscriber
  readonly #out: XPublisher
  readonly #maxMessageBytes: number
  readonly #onDrop: DropListener | undefined
  readonly #watch: InboundWatch
  readonly #drops = new ReasonCounter()
  #forwarded = 0
  #closing: Promise<void> | undefined

  constructor(
    sockets: { inbound: XSubscriber; outbound: XPublisher; watch: InboundWatch },
    endpoints: { inbound: string[]; outbound: string[] },
    maxMessageBytes: number,
    onDrop: DropListener | undefined,
  ) {
    this.#in = sockets.inbound
    this.#out = sockets.outbound
    this.#watch = sockets.watch
    this.endpoints = endpoints
    this.#maxMessageBytes = maxMessageBytes
    this.#onDrop = onDrop
    this.closed = Promise.all([this.#forward(), this.#subscriptions()]).then(
      () => this.#watch.error,
      (err: unknown) => {
        this.closeSockets()
        return asError(err)
      },
    )
  }

  get forwarded(): number {
    return this.#forwarded
  }

  get dropped(): Readonly<Record<string, number>> {
    return this.#drops.snapshot()
  }

  get inboundConnects(): number {
    return this.#watch.accepted
  }

  get inboundDisconnects(): number {
    return this.#watch.disconnects
  }

  async #forward(): Promise<void> {
    for (;;) {
      let frames: Buffer[]
      try {
        frames = await this.#in.receive()
      } catch (err) {
        return endOrThrow(this.#in, err, 'receive failed')
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
        return endOrThrow(this.#out, err, 'send failed')
      }
      this.#forwarded++
    }
  }

  // Subscriptions (and unsubscriptions) travel the other way, as libzmq's proxy passes them.
  async #subscriptions(): Promise<void> {
    for (;;) {
      let frames: Buffer[]
      try {
        frames = await this.#out.receive()
      } catch (err) {
        return endOrThrow(this.#out, err, 'receiving a subscription failed')
      }
      try {
        await this.#in.send(frames)
      } catch (err) {
        return endOrThrow(this.#in, err, 'passing a subscription upstream failed')
      }
    }
  }

  /** Closes both sockets (ending both loops). Also the relay's reaction to a failing listener. */
  closeSockets(): void {
    this.#watch.stop()
    this.#in.close()
    this.#out.close()
  }

  close(): Promise<void> {
    if (this.#closing === undefined) {
      this.closeSockets()
      this.#closing = this.closed.then(() => undefined)
    }
    return this.#closing
  }
}

/** A socket operation of a relay loop failed: the loop ends quietly once `socket` is closed, else with a `TransportError` saying `what` failed. */
function endOrThrow(socket: { readonly closed: boolean }, err: unknown, what: string): void {
  if (socket.closed) return
  throw new TransportError(`relay: ${what}: ${String(err)}`, { cause: err })
}
