import { percentile as nearestRank } from '../../../bench/lib/stats.js'

export interface Distribution {
  readonly n: number
  readonly min: number
  readonly p50: number
  readonly p90: number
  readonly p99: number
  readonly max: number
}

export function distribution(values: readonly number[]): Distribution {
  const sorted = [...values].sort((a, b) => a - b)
  const percentile = (p: number): number => nearestRank(sorted, p)
  return {
    n: values.length,
    min: percentile(0),
    p50: percentile(50),
    p90: percentile(90),
    p99: percentile(99),
    max: percentile(100),
  }
}

const fmt = (ms: number): string => (ms < 10 ? ms.toFixed(1) : String(Math.round(ms)))

/** `p50=.. p90=.. p99=.. max=.. ms` */
export function formatDistribution(d: Distribution): string {
  return `min=${fmt(d.min)} p50=${fmt(d.p50)} p90=${fmt(d.p90)} p99=${fmt(d.p99)} max=${fmt(d.max)} ms`
}
