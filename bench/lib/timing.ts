import { median } from './stats.js'

/** Runs `fn` in batches of `batch` calls for at least `ms` milliseconds; resolves with calls per second. */
export function opsPerSecond(fn: () => void, ms: number, batch = 16): number {
  const start = performance.now()
  const stop = start + ms
  let calls = 0
  let t = start
  do {
    for (let i = 0; i < batch; i++) fn()
    calls += batch
    t = performance.now()
  } while (t < stop)
  return (calls * 1000) / (t - start)
}

/** Rates of two functions measured alternately (a, b, a, b, ...), `reps` times each after one short warm-up of both. */
export interface Comparison {
  readonly a: number
  readonly b: number
  readonly aRuns: readonly number[]
  readonly bRuns: readonly number[]
}

/**
 * Measures `a` and `b` alternately, `reps` rounds of `ms` each, and returns
 * the median rate of each: alternating spreads a noisy neighbour's load over
 * both sides instead of charging it to one.
 */
export function compareOps(a: () => void, b: () => void, options: { ms: number; reps: number; batch?: number }): Comparison {
  const batch = options.batch ?? 16
  const warm = Math.max(20, options.ms / 4)
  opsPerSecond(a, warm, batch)
  opsPerSecond(b, warm, batch)
  const aRuns: number[] = []
  const bRuns: number[] = []
  for (let i = 0; i < options.reps; i++) {
    aRuns.push(opsPerSecond(a, options.ms, batch))
    bRuns.push(opsPerSecond(b, options.ms, batch))
  }
  return { a: median(aRuns), b: median(bRuns), aRuns, bRuns }
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** `promise`, or a rejection naming `what` after `ms` (the timer never outlives the race). */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}
