/** Nearest-rank percentile (p in 0..100) of `values`; NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)))
  return sorted[rank - 1] as number
}

export interface Distribution {
  readonly n: number
  readonly min: number
  readonly p50: number
  readonly p90: number
  readonly p99: number
  readonly max: number
}

export function distribution(values: readonly number[]): Distribution {
  return {
    n: values.length,
    min: percentile(values, 0),
    p50: percentile(values, 50),
    p90: percentile(values, 90),
    p99: percentile(values, 99),
    max: percentile(values, 100),
  }
}

const fmt = (ms: number): string => (ms < 10 ? ms.toFixed(1) : String(Math.round(ms)))

/** `p50=.. p90=.. p99=.. max=.. ms` */
export function formatDistribution(d: Distribution): string {
  return `min=${fmt(d.min)} p50=${fmt(d.p50)} p90=${fmt(d.p90)} p99=${fmt(d.p99)} max=${fmt(d.max)} ms`
}
