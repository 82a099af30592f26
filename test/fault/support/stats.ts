import { summarize } from '../../../bench/lib/stats.js'

const fmt = (ms: number): string => (ms < 10 ? ms.toFixed(1) : String(Math.round(ms)))

/** The distribution of `values` (ms) as `min=.. p50=.. p90=.. p99=.. max=.. ms` (nearest-rank percentiles). */
export function formatDistribution(values: readonly number[]): string {
  const d = summarize(values)
  return `min=${fmt(d.min)} p50=${fmt(d.p50)} p90=${fmt(d.p90)} p99=${fmt(d.p99)} max=${fmt(d.max)} ms`
}
