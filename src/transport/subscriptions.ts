import { InvalidArgumentError } from '../errors.js'
import type { WaitForSubscribersOptions } from './transport.js'

const INT32_MAX = 2 ** 31 - 1

interface Waiter {
  readonly topic: string
  readonly count: number
  finish(result: boolean): void
}

/**
 * The `waitForSubscribers` machinery shared by the publishers: pending waits,
 * their timeouts and abort signals. The owner supplies `matching(topic)`, the
 * number of live subscriptions whose prefix `topic` starts with, calls
 * {@link SubscriptionWaiters.changed} whenever that number may have grown and
 * {@link SubscriptionWaiters.close} when the socket closes.
 */
export class SubscriptionWaiters {
  readonly #matching: (topic: string) => number
  readonly #waiters = new Set<Waiter>()
  #closed = false

  constructor(matching: (topic: string) => number) {
    this.#matching = matching
  }

  /**
   * Implements `PubSocket.waitForSubscribers`. Throws (synchronously)
   * {@link InvalidArgumentError} when `count` is not an integer >= 0 or
   * `timeoutMs` is neither `Infinity` nor an integer in [0, 2^31 - 1]; the
   * returned promise never rejects. Order of checks: closed (false), already
   * satisfied (true), signal already aborted or `timeoutMs` 0 (false).
   */
  wait(topic: string, options: WaitForSubscribersOptions = {}): Promise<boolean> {
    const count = options.count ?? 1
    if (!Number.isInteger(count) || count < 0) {
      throw InvalidArgumentError.format('waitForSubscribers: count', 'an integer >= 0', count)
    }
    const timeoutMs = options.timeoutMs ?? Infinity
    if (timeoutMs !== Infinity && !(Number.isInteger(timeoutMs) && timeoutMs >= 0 && timeoutMs <= INT32_MAX)) {
      throw InvalidArgumentError.format('waitForSubscribers: timeoutMs', `Infinity or an integer in [0, ${INT32_MAX}]`, timeoutMs)
    }
    if (typeof topic !== 'string') {
      throw InvalidArgumentError.format('waitForSubscribers: topic', 'a string', topic)
    }
    const signal = options.signal
    if (this.#closed) return Promise.resolve(false)
    if (this.#matching(topic) >= count) return Promise.resolve(true)
    if (signal?.aborted === true || timeoutMs === 0) return Promise.resolve(false)
    return new Promise<boolean>((resolve) => {
      let timer: NodeJS.Timeout | undefined
      const onAbort = (): void => waiter.finish(false)
      const waiter: Waiter = {
        topic,
        count,
        finish: (result) => {
          if (!this.#waiters.delete(waiter)) return
          clearTimeout(timer)
          signal?.removeEventListener('abort', onAbort)
          resolve(result)
        },
      }
      this.#waiters.add(waiter)
      if (timeoutMs !== Infinity) timer = setTimeout(() => waiter.finish(false), timeoutMs)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  /** Re-checks every pending wait, resolving with true those now satisfied. */
  changed(): void {
    for (const waiter of [...this.#waiters]) {
      if (this.#matching(waiter.topic) >= waiter.count) waiter.finish(true)
    }
  }

  /** Resolves every pending wait, and every later one, with false. Idempotent. */
  close(): void {
    this.#closed = true
    for (const waiter of [...this.#waiters]) waiter.finish(false)
  }
}

/**
 * Live subscriptions by prefix, counted as the subscribe (+1) and unsubscribe
 * (-1, never below 0) messages arrive. Prefixes are compared as bytes.
 */
export class SubscriptionCounts {
  // Prefix bytes as a latin1 string (one char per byte, so startsWith compares bytes) -> count.
  readonly #counts = new Map<string, number>()

  /** Applies one subscribe or unsubscribe of `prefix` (raw bytes). */
  apply(subscribe: boolean, prefix: Buffer): void {
    const key = prefix.toString('latin1')
    const n = (this.#counts.get(key) ?? 0) + (subscribe ? 1 : -1)
    if (n > 0) this.#counts.set(key, n)
    else this.#counts.delete(key)
  }

  /** The number of live subscriptions whose prefix `topic` (UTF-8) starts with. */
  matching(topic: string): number {
    const key = Buffer.from(topic, 'utf8').toString('latin1')
    let total = 0
    for (const [prefix, n] of this.#counts) if (key.startsWith(prefix)) total += n
    return total
  }
}
