/** Percentiles and the like of a sample (times in ms unless said otherwise). */
export interface Summary {
  readonly n: number
  readonly min: number
  readonly p50: number
  readonly p90: number
  readonly p99: number
  readonly max: number
  readonly mean: number
}

/** Nearest-rank percentile of an ascending array; NaN when empty. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] as number
}

/** {@link Summary} of `samples` (not modified); every field NaN when empty (n 0). */
export function summarize(samples: readonly number[]): Summary {
  const s = [...samples].sort((a, b) => a - b)
  const sum = s.reduce((a, b) => a + b, 0)
  return {
    n: s.length,
    min: s[0] ?? NaN,
    p50: percentile(s, 50),
    p90: percentile(s, 90),
    p99: percentile(s, 99),
    max: s[s.length - 1] ?? NaN,
    mean: s.length === 0 ? NaN : sum / s.length,
  }
}

/** The median (the mean of the middle two for an even count); NaN when empty. */
export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b)
  if (s.length === 0) return NaN
  const mid = s.length >> 1
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2
}

/** `summary` rounded to microseconds, for the JSON file. */
export function roundSummary(summary: Summary, digits = 3): Summary {
  const r = (x: number): number => (Number.isFinite(x) ? Number(x.toFixed(digits)) : x)
  return { n: summary.n, min: r(summary.min), p50: r(summary.p50), p90: r(summary.p90), p99: r(summary.p99), max: r(summary.max), mean: r(summary.mean) }
}
