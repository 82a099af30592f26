import type { Summary } from './stats.js'
import type { CaseResult } from './types.js'

/** A number for people: thousands separated, about three significant digits below 100. */
export function fmt(x: number): string {
  if (!Number.isFinite(x)) return String(x)
  const abs = Math.abs(x)
  if (abs >= 100) return Math.round(x).toLocaleString('en-US')
  if (abs >= 10) return x.toFixed(1)
  if (abs >= 1) return x.toFixed(2)
  if (abs === 0) return '0'
  return x.toPrecision(2)
}

/** A duration (given in ms) to 3 significant digits, HdrHistogram's precision, in the unit that suits it: `170 us`, `2.50 ms`, `1.20 s`. */
export function fmtDuration(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms)
  const sig = (x: number): string => (x >= 100 ? x.toFixed(0) : x.toPrecision(3))
  if (ms < 1) return `${sig(ms * 1000)} us`
  if (ms < 1000) return `${sig(ms)} ms`
  return `${sig(ms / 1000)} s`
}

/**
 * The percentiles HdrHistogram summarises a distribution with, each with its
 * unit: `p50 2.50 ms, p90 2.91 ms, p99 3.40 ms, p99.9 3.51 ms, max 3.51 ms (n 400)`;
 * `no samples` when empty.
 */
export function formatLatency(s: Summary): string {
  if (s.n === 0) return 'no samples'
  const parts: [string, number][] = [['p50', s.p50], ['p90', s.p90], ['p99', s.p99], ['p99.9', s.p999], ['max', s.max]]
  return `${parts.map(([k, v]) => `${k} ${fmtDuration(v)}`).join(', ')} (n ${s.n})`
}

/** The verdict column: `met`, `not met`, or `n/a` without a target. */
export function verdict(r: CaseResult): string {
  if (r.target === undefined) return 'n/a'
  return r.met === true ? 'met' : 'not met'
}

/** Renders rows as a plain-text table with a header and aligned columns (numbers right-aligned). */
export function renderTable(header: readonly string[], rows: readonly (readonly string[])[], rightAligned: ReadonlySet<number> = new Set()): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const cell = (text: string, i: number): string => (rightAligned.has(i) ? text.padStart(widths[i] as number) : text.padEnd(widths[i] as number))
  const lines = [header.map(cell).join('  ').trimEnd(), widths.map((w) => '-'.repeat(w)).join('  ')]
  for (const r of rows) lines.push(header.map((_, i) => cell(r[i] ?? '', i)).join('  ').trimEnd())
  return lines.join('\n')
}

/** The results table printed on stdout: case, figure, baseline, ratio, target, verdict, notes. */
export function resultsTable(results: readonly CaseResult[]): string {
  const rows = results.map((r) => [
    r.id,
    `${fmt(r.figure)} ${r.unit}`,
    `${fmt(r.baseline)} ${r.baselineUnit}`,
    Number.isFinite(r.ratio) ? `${r.ratio.toFixed(r.ratio >= 10 ? 1 : r.ratio >= 0.1 ? 2 : 3)}x` : '-',
    r.target ?? '-',
    verdict(r),
    r.notes ?? '',
  ])
  return renderTable(['case', 'figure', 'baseline', 'ratio', 'target', 'verdict', 'notes'], rows, new Set([1, 2, 3]))
}
