import { BoundedMap } from '../util/bounded-map.js'
import type { WaitForSubscribersOptions } from '../transport/transport.js'
import { UNHEARD_TOPICS_MAX } from './publisher-types.js'

/** What the gate needs of the bus: whether something subscribes to a topic, waiting at most a while. */
export interface SubscriberWatch {
  waitForSubscribers(topic: string, options?: WaitForSubscribersOptions): Promise<boolean>
}

/**
 * Holds a send back (at most `waitMs`) until something subscribes to its topic: no send into
 * the void of a fresh socket. A topic whose wait timed out is not waited for again until a
 * subscription for it is seen: behind a relay that passes subscriptions upstream, a topic
 * nobody wants would otherwise cost every message the whole wait. Remembers at most
 * {@link UNHEARD_TOPICS_MAX} such topics, the oldest forgotten first.
 */
export class SubscriberGate {
  readonly #bus: SubscriberWatch
  readonly #waitMs: number
  readonly #closing: () => boolean
  readonly #unheard = new BoundedMap<string, true>(UNHEARD_TOPICS_MAX)

  /** `waitMs` 0: never waits. `closing`: true once the owner closes (a wait cut short then teaches nothing). */
  constructor(bus: SubscriberWatch, waitMs: number, closing: () => boolean) {
    this.#bus = bus
    this.#waitMs = waitMs
    this.#closing = closing
  }

  /** Resolves once `topic` has a subscriber, the wait timed out, or `signal` aborted. Never rejects for a timeout. */
  async wait(topic: string, signal?: AbortSignal): Promise<void> {
    if (this.#waitMs === 0) return
    if (this.#unheard.get(topic) !== undefined) {
      if (await this.#bus.waitForSubscribers(topic, { timeoutMs: 0 })) this.#unheard.delete(topic)
      return
    }
    const heard = await this.#bus.waitForSubscribers(topic, { timeoutMs: this.#waitMs, ...(signal ? { signal } : {}) })
    if (!heard && signal?.aborted !== true && !this.#closing()) this.#unheard.set(topic, true)
  }
}
