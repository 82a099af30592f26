/**
 * The report's plots as Vega-Lite specs, rendered to SVG in Node (vega's
 * headless View, renderer 'none'), so the page needs no script to be read.
 */
import { parse, View, version as vegaVersion } from 'vega'
import { compile, version as vegaLiteVersion, type TopLevelSpec } from 'vega-lite'
import type { CaseResult, LatencyCurve, Series } from './types.js'
import type { Summary } from './stats.js'

export { vegaLiteVersion, vegaVersion }

/** Width of one chart's plotting area, px (two fit side by side in a 1280 px window). */
export const CHART_WIDTH = 460
/** Height of one chart's plotting area, px. */
export const CHART_HEIGHT = 280

const COLOURS = { met: '#2e7d32', 'not met': '#c62828', 'n/a': '#757575' } as const

const CONFIG = {
  font: 'DejaVu Sans, Helvetica, Arial, sans-serif',
  background: 'white',
  view: { stroke: '#ccc' },
  axis: { labelFontSize: 11, titleFontSize: 12, gridColor: '#eee' },
  legend: { labelFontSize: 11, titleFontSize: 12, labelLimit: 0, orient: 'bottom', direction: 'vertical' },
  title: { fontSize: 14, anchor: 'start' },
} as const

/** A chart of the report: its title and its Vega-Lite spec. */
export interface Chart {
  readonly title: string
  /** What to read in it, under the chart. */
  readonly caption: string
  readonly spec: TopLevelSpec
}

/** Renders a Vega-Lite spec to an SVG string whose element ids are prefixed with `idPrefix` (several SVGs share one page). */
export async function renderSvg(spec: TopLevelSpec, idPrefix: string): Promise<string> {
  const view = new View(parse(compile(spec).spec), { renderer: 'none' })
  try {
    const svg = await view.toSVG()
    return scopeIds(svg, idPrefix)
  } finally {
    view.finalize()
  }
}

/** Prefixes every `id` of `svg` and every reference to one (`url(#id)`, `href="#id"`). */
export function scopeIds(svg: string, prefix: string): string {
  return svg
    .replace(/\bid="([^"]+)"/g, (_m, id: string) => `id="${prefix}-${id}"`)
    .replace(/url\(#([^)]+)\)/g, (_m, id: string) => `url(#${prefix}-${id})`)
    .replace(/href="#([^"]+)"/g, (_m, id: string) => `href="#${prefix}-${id}"`)
}

function ratioText(ratio: number): string {
  return `${ratio.toFixed(ratio >= 10 ? 1 : ratio >= 0.1 ? 2 : 3)}x`
}

/**
 * Every line's figure as a multiple of its baseline or floor (log scale, a
 * rule at 1x), coloured by verdict: the one axis all lines share, whatever
 * their units.
 */
export function ratioChart(results: readonly CaseResult[]): Chart | undefined {
  const rows = results
    .filter((r) => Number.isFinite(r.ratio) && r.ratio > 0)
    .map((r) => ({
      id: r.id,
      ratio: r.ratio,
      text: `${ratioText(r.ratio)}  (${r.unit} / ${r.baselineUnit})`,
      verdict: r.target === undefined ? 'n/a' : r.met === true ? 'met' : 'not met',
    }))
  if (rows.length === 0) return undefined
  const order = rows.map((r) => r.id)
  const y = { field: 'id', type: 'nominal', sort: order, title: null, axis: { labelLimit: 0 } } as const
  return {
    title: 'Each figure against its baseline or floor',
    caption:
      'figure / baseline for every line of the table, on a log scale; the grey rule is 1x (the figure equals what it is compared with). ' +
      'For times (ms) lower is better, for rates higher is better: the units beside each ratio say which. Colour: verdict on the line\'s target.',
    spec: {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      config: CONFIG,
      width: CHART_WIDTH + 320,
      height: { step: 20 },
      data: { values: rows },
      layer: [
        { mark: { type: 'rule', color: '#999', strokeWidth: 1.5 }, encoding: { x: { datum: 1, type: 'quantitative' } } },
        {
          mark: { type: 'point', filled: true, size: 90 },
          encoding: {
            y,
            x: { field: 'ratio', type: 'quantitative', scale: { type: 'log' }, title: 'figure / baseline (log scale)' },
            color: { field: 'verdict', type: 'nominal', scale: { domain: Object.keys(COLOURS), range: Object.values(COLOURS) }, title: 'verdict' },
          },
        },
        {
          mark: { type: 'text', align: 'left', dx: 9, fontSize: 11 },
          encoding: { y, x: { field: 'ratio', type: 'quantitative' }, text: { field: 'text' } },
        },
      ],
    } as TopLevelSpec,
  }
}

function isSummaryWithPercentiles(x: unknown): x is Summary {
  const s = x as Partial<Summary> | undefined
  return typeof s === 'object' && s !== null && Array.isArray(s.percentiles) && typeof s.n === 'number'
}

/** 1-2-5 ticks covering [lo, hi] (both > 0), for a log axis that would otherwise label every minor step. */
export function logTicks(lo: number, hi: number): number[] {
  const ticks: number[] = []
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of [1, 2, 5]) {
      const t = Number((m * 10 ** e).toPrecision(1))
      if (t >= lo / 1.0001 && t <= hi * 1.0001) ticks.push(t)
    }
  }
  return ticks
}

/** The ticks of an HdrHistogram percentile plot's x axis (1/(1-p)) up to `maxX`. */
const PERCENTILE_TICKS = [1, 2, 10, 100, 1_000, 10_000, 100_000, 1_000_000]

/**
 * One HdrHistogram percentile plot per case group with latency curves: value
 * (ms, log scale) against percentile (log scale of 1/(1-p), so that the tail
 * gets the room). Distributions are solid lines, baselines and floors dashed,
 * constants dashed rules.
 */
export function latencyCharts(results: readonly CaseResult[]): Chart[] {
  const groups = new Map<string, Map<string, LatencyCurve>>()
  for (const r of results) {
    for (const c of r.latency ?? []) {
      const group = r.id.split('.')[0] ?? r.id
      const curves = groups.get(group) ?? new Map<string, LatencyCurve>()
      groups.set(group, curves)
      if (!curves.has(c.label)) curves.set(c.label, c)
    }
  }
  const charts: Chart[] = []
  for (const [group, curves] of groups) {
    const points: { label: string; kind: string; x: number; percentile: number; value: number }[] = []
    const rules: { label: string; kind: string; value: number }[] = []
    for (const c of curves.values()) {
      if ('value' in c) {
        if (Number.isFinite(c.value) && c.value > 0) rules.push({ label: c.label, kind: 'floor or baseline', value: c.value })
        continue
      }
      if (!isSummaryWithPercentiles(c.distribution)) continue
      const kind = c.floor === true ? 'floor or baseline' : 'gilmsg'
      for (const p of c.distribution.percentiles) {
        // 100 % sits at infinity on this axis: the last finite step already holds the maximum.
        if (p.percentile >= 100 || !(p.value > 0)) continue
        points.push({ label: c.label, kind, x: 1 / (1 - p.percentile / 100), percentile: p.percentile, value: p.value })
      }
    }
    if (points.length === 0 && rules.length === 0) continue
    const maxX = Math.max(2, ...points.map((p) => p.x))
    const ticks = PERCENTILE_TICKS.filter((t) => t <= maxX * 1.0001)
    const labels = [...new Set([...points.map((p) => p.label), ...rules.map((r) => r.label)])]
    const colour = { field: 'label', type: 'nominal', title: null, scale: { domain: labels } } as const
    const dash = {
      field: 'kind',
      type: 'nominal',
      scale: { domain: ['gilmsg', 'floor or baseline'], range: [[1, 0], [6, 4]] },
      // The caption says what dashes mean; a second legend beside the first would make the chart too wide for its column.
      legend: null,
    } as const
    const values = [...points.map((p) => p.value), ...rules.map((r) => r.value)]
    const lo = 10 ** Math.floor(Math.log10(Math.min(...values)))
    const hi = 10 ** Math.ceil(Math.log10(Math.max(...values)))
    const y = {
      field: 'value',
      type: 'quantitative',
      scale: { type: 'log', domain: [lo, hi] as number[] },
      axis: { values: logTicks(lo, hi), format: '~g' },
      title: 'latency, ms (log scale)',
    } as const
    charts.push({
      title: `Latency by percentile: ${group}`,
      caption:
        'HdrHistogram percentile distribution of each run (3 significant digits): the time below which that share of the samples fell. ' +
        'The x axis spreads the tail (50 %, 90 %, 99 %, 99.9 %...); solid lines are gilmsg, dashed lines and rules what it is compared with.',
      spec: {
        $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
        config: CONFIG,
        width: CHART_WIDTH,
        height: CHART_HEIGHT,
        layer: [
          {
            data: { values: points },
            mark: { type: 'line', interpolate: 'step-before', strokeWidth: 2 },
            encoding: {
              x: {
                field: 'x',
                type: 'quantitative',
                scale: { type: 'log', domain: [1, maxX] },
                axis: { values: ticks, labelExpr: "datum.value <= 1 ? '0%' : format(100 - 100 / datum.value, '.6~f') + '%'" },
                title: 'percentile',
              },
              y,
              color: colour,
              strokeDash: dash,
            },
          },
          ...(rules.length > 0
            ? [{ data: { values: rules }, mark: { type: 'rule' as const, strokeWidth: 2 }, encoding: { y, color: colour, strokeDash: dash } }]
            : []),
        ],
      } as TopLevelSpec,
    })
  }
  return charts
}

/** One chart per distinct `plot` title among the lines' {@link Series}: measured lines with points, floors as dashed rules. */
export function seriesCharts(results: readonly CaseResult[]): Chart[] {
  const plots = new Map<string, Series[]>()
  for (const r of results) {
    for (const s of r.series ?? []) {
      const list = plots.get(s.plot) ?? []
      plots.set(s.plot, list)
      list.push(s)
    }
  }
  const charts: Chart[] = []
  for (const [title, series] of plots) {
    const first = series[0] as Series
    const points = series.flatMap((s) => s.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y)).map((p) => ({ label: s.label, kind: 'measured', x: p.x, y: p.y })))
    const floors = series
      .filter((s) => s.floor !== undefined && Number.isFinite(s.floor))
      .map((s) => ({ label: s.label, kind: s.floorLabel ?? 'floor', y: s.floor as number }))
    if (points.length === 0) continue
    const xs = [...new Set(points.map((p) => p.x))].sort((a, b) => a - b)
    const xLog = first.xScale === 'log' && xs.every((x) => x > 0)
    const yLog = first.yScale === 'log' && points.every((p) => p.y > 0) && floors.every((f) => f.y > 0)
    const labels = [...new Set(series.map((s) => s.label))]
    const colour = { field: 'label', type: 'nominal', title: null, scale: { domain: labels } } as const
    const ys = [...points.map((p) => p.y), ...floors.map((f) => f.y)]
    const yLo = 10 ** Math.floor(Math.log10(Math.min(...ys)))
    const yHi = 10 ** Math.ceil(Math.log10(Math.max(...ys)))
    const y = {
      field: 'y',
      type: 'quantitative',
      title: first.yTitle,
      ...(yLog ? { scale: { type: 'log', domain: [yLo, yHi] as number[] }, axis: { values: logTicks(yLo, yHi), format: '~s' } } : {}),
    } as const
    const x = {
      field: 'x',
      type: 'quantitative',
      title: first.xTitle,
      scale: xLog ? { type: 'log', domain: [(xs[0] as number) / 1.5, (xs[xs.length - 1] as number) * 1.5] } : { zero: false },
      ...(xs.length <= 12 ? { axis: { values: xs, format: '~s' } } : {}),
    } as const
    charts.push({
      title,
      caption:
        'Each line is one configuration, measured at each point in this run; a dashed rule of the same colour is the floor (or baseline) it is read against' +
        (floors.length > 0 ? ` (${[...new Set(floors.map((f) => f.kind))].join('; ')}).` : '.'),
      spec: {
        $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
        config: CONFIG,
        width: CHART_WIDTH,
        height: CHART_HEIGHT,
        layer: [
          {
            data: { values: points },
            mark: { type: 'line', point: { filled: true, size: 50 }, strokeWidth: 2 },
            encoding: { x, y, color: colour },
          },
          ...(floors.length > 0
            ? [{ data: { values: floors }, mark: { type: 'rule' as const, strokeDash: [6, 4], strokeWidth: 1.5 }, encoding: { y, color: colour } }]
            : []),
        ],
      } as TopLevelSpec,
    })
  }
  return charts
}
