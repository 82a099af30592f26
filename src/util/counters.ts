/** Counts events by reason (e.g. dropped messages). Reading it never resets it. */
export class ReasonCounter {
  readonly #counts = new Map<string, number>()

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

  /** A copy, as a plain object sorted by reason. */
  snapshot(): Record<string, number> {
    return Object.fromEntries([...this.#counts.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
  }
}
