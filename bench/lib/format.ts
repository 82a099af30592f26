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
