/** Counts by reason, read-only: what a class exposes of its {@link ReasonCounter}. */
export interface ReasonCounts {
  /** The count for `reason` (0 if never counted). */
  get(reason: string): number
  /** The sum over every reason. */
  readonly total: number
  /** A copy, as a plain object sorted by reason. */
  snapshot(): Record<string, number>
}

/** Counts events by reason (e.g. dropped messages). Reading it never resets it. */
export class ReasonCounter implements ReasonCounts {
  readonly #counts = new Map<string, number>()
  /** A view of this counter that cannot change it: expose this, keep the counter private. */
  readonly view: ReasonCounts

  constructor() {
    const get = (reason: string): number => this.get(reason)
    const snapshot = (): Record<string, number> => this.snapshot()
    const counter = this
    this.view = Object.freeze({
      get,
      snapshot,
      get total(): number {
        return counter.total
      },
    })
  }

  add(reason: string, n = 1): void {
    this.#counts.set(reason, (this.#counts.get(reason) ?? 0) + n)
  }

  get(reason: string): number {
    return this.#counts.get(reason) ?? 0
  }

  get total(): number {
    let t = 0
    for (const n of this.#counts.values()) t += n
    return t
  }

  snapshot(): Record<string, number> {
    return Object.fromEntries([...this.#counts.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
  }
}
