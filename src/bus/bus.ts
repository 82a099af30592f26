import { ClosedError, errorMessage, GilmsgError, TransportError } from '../errors.js'
import type { Signer, Verifier } from '../crypto/types.js'
import {
  buildEnvelope,
  envelopeField,
  openEnvelope,
  osUsername,
  sealEnvelope,
  sealEnvelopeAsync,
  type OpenedMessage,
  type SealedMessage,
} from '../envelope/envelope.js'
import { fullTopic, type TopicParts } from '../envelope/topic.js'
import type { JsonObject } from '../json/value.js'
import type { ConnectionListener, PubSocket, SubSocket, Transport, WaitForSubscribersOptions } from '../transport/transport.js'
import { systemClock, type Clock } from '../util/clock.js'
import { ReasonCounter, type ReasonCounts } from '../util/counters.js'

/** A validated message from the bus. */
export interface BusMessage extends OpenedMessage {
  /** The payload (`msg` field) as a plain JS value. */
  readonly msg: unknown
  /** Frame 1 exactly as received. */
  readonly body: string
}

export interface BusOptions {
  readonly transport: Transport
  /** Signs what this bus publishes; undefined publishes unsigned (sign_messages false). */
  readonly signer: Signer | undefined
  /** Validates what this bus receives; undefined accepts unsigned (validate_signatures false). */
  readonly verifier: Verifier | undefined
  readonly topic: TopicParts
  readonly maxJsonDepth: number
  readonly clock?: Clock
  readonly username?: string
  /** Called for every message a subscription drops (it is also counted in `bus.drops`). */
  readonly onDrop?: (reason: string, detail: string) => void
  /** Told of each connection of a subscription's socket made and ended (see `SubscriberOptions.onConnection`). */
  readonly onConnection?: ConnectionListener
  /** Called once by `close()`, first: releases what the bus's maker attached to it (e.g. a CRL watch). */
  readonly onClose?: () => void
}

export interface PublishOptions {
  /** fedmsg's modname, the third topic component. Default `'gilmsg'`. */
  readonly modname?: string
  /** Extra top-level envelope fields, signed with the rest. */
  readonly extra?: Readonly<Record<string, unknown>>
}

export interface SubscribeOptions {
  /** Accept only messages signed by this CN (fedmsg's "signed by X"). */
  readonly signedBy?: string
  /**
   * Messages whose topic this returns true for are passed over before they are parsed or
   * validated (nothing is spent on them, nor counted as a drop): e.g. ACK traffic that a
   * subscriber has no use for.
   */
  readonly skipTopic?: (topic: string) => boolean
}

/** The default modname of messages published through the library. */
export const DEFAULT_MODNAME = 'gilmsg'

/**
 * The fedmsg layer: signed publish and validated subscribe over a
 * {@link Transport}. The publisher socket opens on first use.
 */
export class Bus {
  readonly #opts: BusOptions
  readonly #clock: Clock
  readonly #username: string
  #pub: Promise<PubSocket> | undefined
  #i = 0
  #closing: Promise<void> | undefined
  readonly #subs = new Set<Subscription>()
  readonly #drops = new ReasonCounter()
  /** Messages dropped by this bus's subscriptions, by reason (transport and validation). */
  readonly drops: ReasonCounts = this.#drops.view
  #published = 0

  constructor(options: BusOptions) {
    this.#opts = options
    this.#clock = options.clock ?? systemClock
    this.#username = options.username ?? osUsername()
  }

  get signer(): Signer | undefined {
    return this.#opts.signer
  }

  get verifier(): Verifier | undefined {
    return this.#opts.verifier
  }

  get topicParts(): TopicParts {
    return this.#opts.topic
  }

  /** The full topic a `publish(topic, …, { modname })` goes out on. */
  fullTopic(topic: string, modname = DEFAULT_MODNAME): string {
    return fullTopic(this.#opts.topic, modname, topic)
  }

  /**
   * Opens the publisher socket now (it otherwise opens on the first publish) and
   * resolves with its endpoints. Rejects with `TransportError` if it cannot bind.
   */
  async openPublisher(): Promise<readonly string[]> {
    return (await this.#publisher()).endpoints
  }

  /**
   * Opens the publisher if needed and resolves true once a subscriber (a relay
   * counts) has subscribed to a prefix of the full `topic`, or false after
   * `timeoutMs` / on abort / on close. Lets a fresh publisher avoid sending
   * into the void (PUB/SUB's slow joiner) without sleeping.
   */
  async waitForSubscribers(topic: string, options: WaitForSubscribersOptions = {}): Promise<boolean> {
    return (await this.#publisher()).waitForSubscribers(topic, options)
  }

  #publisher(): Promise<PubSocket> {
    if (this.#closing) return Promise.reject(new ClosedError('bus'))
    if (this.#pub === undefined) {
      this.#pub = this.#opts.transport.openPublisher()
      this.#pub.catch(() => {
        this.#pub = undefined
      })
    }
    return this.#pub
  }

  /** Builds and signs an envelope without sending it. */
  seal(topic: string, msg: unknown, options: PublishOptions = {}): SealedMessage {
    return sealEnvelope(this.#envelope(topic, msg, options), this.#opts.signer)
  }

  /**
   * As {@link seal}, with the signature from `Signer.signAsync` (on libuv's
   * thread pool for RSA keys): the event loop goes on meanwhile. The envelope
   * (its `i` and timestamp) is built at the call, so `i` follows the order of
   * the calls.
   */
  async sealAsync(topic: string, msg: unknown, options: PublishOptions = {}): Promise<SealedMessage> {
    return sealEnvelopeAsync(this.#envelope(topic, msg, options), this.#opts.signer)
  }

  #envelope(topic: string, msg: unknown, options: PublishOptions): JsonObject {
    return buildEnvelope({
      topic: this.fullTopic(topic, options.modname),
      msg,
      i: ++this.#i,
      nowMs: this.#clock.now(),
      username: this.#username,
      maxDepth: this.#opts.maxJsonDepth,
      ...(options.extra ? { extra: options.extra } : {}),
    })
  }

  /**
   * Signs and sends one message. Resolves once the socket accepted it (fire and
   * forget: PUB/SUB gives no delivery guarantee; `Gilmsg.publish` with
   * `recipients` gives one).
   */
  async publish(topic: string, msg: unknown, options: PublishOptions = {}): Promise<SealedMessage> {
    const sealed = this.seal(topic, msg, options)
    await this.send(sealed)
    this.#published++
    return sealed
  }

  /** Messages sent by {@link publish} (plain fedmsg messages; not guaranteed ones, resends or ACKs). */
  get published(): number {
    return this.#published
  }

  /**
   * Sends already sealed bytes unchanged (a resend keeps msg_id and signature). Rejects with
   * what the transport rejects with, a `GilmsgError`: anything else it throws becomes a
   * {@link TransportError}.
   */
  async send(sealed: Pick<SealedMessage, 'topic' | 'body'>): Promise<void> {
    const pub = await this.#publisher()
    try {
      await pub.send(sealed.topic, sealed.body)
    } catch (e) {
      throw e instanceof GilmsgError ? e : new TransportError(`cannot send ${sealed.topic}: ${errorMessage(e)}`, { cause: e })
    }
  }

  /**
   * Subscribes to topics starting with any of `prefixes` ('' = all). Resolves
   * once the socket is connected; messages published before the subscription
   * reaches the publisher are not seen (PUB/SUB's slow joiner).
   */
  async subscribe(prefixes: string | readonly string[], options: SubscribeOptions = {}): Promise<Subscription> {
    if (this.#closing) throw new ClosedError('bus')
    const list = typeof prefixes === 'string' ? [prefixes] : prefixes
    const socket = await this.#opts.transport.openSubscriber({
      prefixes: list,
      onDrop: (r, detail) => this.#drop(r, detail ?? 'at the transport'),
      ...(this.#opts.onConnection ? { onConnection: this.#opts.onConnection } : {}),
    })
    const sub = new Subscription(socket, (topic, body) => this.#open(topic, body, options), () => this.#subs.delete(sub))
    this.#subs.add(sub)
    return sub
  }

  /** Validates one received message; counts and returns undefined on failure. */
  #open(topic: string, body: Buffer, options: SubscribeOptions): BusMessage | undefined {
    if (options.skipTopic?.(topic) === true) return undefined
    const text = body.toString('utf8')
    const res = openEnvelope(topic, text, {
      maxDepth: this.#opts.maxJsonDepth,
      verifier: this.#opts.verifier,
      ...(options.signedBy === undefined ? {} : { signedBy: options.signedBy }),
    })
    if (!res.ok) {
      this.#drop(res.reason, res.detail)
      return undefined
    }
    return { ...res.message, msg: envelopeField(res.message.envelope, 'msg'), body: text }
  }

  #drop(reason: string, detail: string): void {
    this.#drops.add(reason)
    this.#opts.onDrop?.(reason, detail)
  }

  /** Closes every subscription and the publisher. Idempotent: returns the same promise. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#opts.onClose?.()
      await Promise.allSettled([...this.#subs].map((s) => s.close()))
      const pub = this.#pub
      if (pub) await pub.then((p) => p.close(), () => undefined)
    })()
    return this.#closing
  }
}

/**
 * A stream of validated messages. Iterate it once with `for await`; it ends
 * when `close()` is called. Invalid messages are dropped and counted in
 * `bus.drops`; an error that is not about the message (a bug, e.g. a
 * TypeError in a verifier) is thrown to the loop, which ends.
 */
export class Subscription implements AsyncIterable<BusMessage>, AsyncDisposable {
  readonly #socket: SubSocket
  readonly #open: (topic: string, body: Buffer) => BusMessage | undefined
  readonly #onClose: () => void
  #closing: Promise<void> | undefined

  /** @internal `open` validates a received message (undefined: dropped and counted). */
  constructor(socket: SubSocket, open: (topic: string, body: Buffer) => BusMessage | undefined, onClose: () => void) {
    this.#socket = socket
    this.#open = open
    this.#onClose = onClose
  }

  async *[Symbol.asyncIterator](): AsyncIterator<BusMessage> {
    for await (const raw of this.#socket) {
      const msg = this.#open(raw.topic, raw.body)
      if (msg !== undefined) yield msg
    }
  }

  /** Closes the socket and ends iteration. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#socket.close().finally(this.#onClose)
    return this.#closing
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }
}
