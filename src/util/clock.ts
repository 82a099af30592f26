/** Time, injected so that tests can drive it. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number
  /** Calls `fn` after `ms`; the returned function cancels it (a no-op once fired). */
  setTimer(fn: () => void, ms: number): () => void
}

/** The real clock. Timers are unref'd so that they never keep a process alive. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(fn, ms) {
    const t = setTimeout(fn, ms)
    t.unref()
    return () => clearTimeout(t)
  },
}
