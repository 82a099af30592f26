import type { Clock } from '../../src/util/clock.js'

/** Lets every pending promise chain run: a few turns of the event loop. */
export async function settle(turns = 12): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise<void>((resolve) => setImmediate(resolve))
}

interface Timer {
  readonly at: number
  readonly seq: number
  readonly fn: () => void
}

/** A clock that only moves when the test says so. Timers fire in time order, then ties in creation order. */
export class FakeClock implements Clock {
  #now: number
  #seq = 0
  #timers: Timer[] = []

  constructor(start = Date.UTC(2026, 0, 1)) {
    this.#now = start
  }

  now(): number {
    return this.#now
  }

  setTimer(fn: () => void, ms: number): () => void {
    const timer = { at: this.#now + Math.max(0, ms), seq: this.#seq++, fn }
    this.#timers.push(timer)
    return () => {
      this.#timers = this.#timers.filter((t) => t !== timer)
    }
  }

  get pendingTimers(): number {
    return this.#timers.length
  }

  /** Moves time forward by `ms`, firing due timers one by one and settling after each. */
  async advance(ms: number): Promise<void> {
    const target = this.#now + ms
    for (;;) {
      let next: Timer | undefined
      for (const t of this.#timers) if (t.at <= target && (next === undefined || t.at < next.at || (t.at === next.at && t.seq < next.seq))) next = t
      if (next === undefined) break
      this.#timers = this.#timers.filter((t) => t !== next)
      this.#now = Math.max(this.#now, next.at)
      next.fn()
      await settle()
    }
    this.#now = target
    await settle()
  }
}
