/**
 * `gilmsg bench --report FILE.html`: one self-contained HTML page from a run's
 * results (the JSON file): the machine, the table, and the plots as inline
 * SVG drawn with Vega-Lite in Node. No script, no stylesheet or font from
 * elsewhere: the page reads the same offline, printed, or in a screenshot.
 */
import { fmt, verdict } from './format.js'
import { latencyCharts, ratioChart, renderSvg, seriesCharts, vegaLiteVersion, vegaVersion, type Chart } from './report-plots.js'
import type { BenchReport, CaseEntry, CaseResult } from './types.js'

/** A results file that `--report-from` cannot read: says what was expected and what was found. */
export class BenchResultsFormatError extends TypeError {
  override readonly name = 'BenchResultsFormatError'
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x)
}

function describe(x: unknown): string {
  if (x === null) return 'null'
  if (Array.isArray(x)) return 'an array'
  if (typeof x === 'string') return `the string ${JSON.stringify(x.length > 40 ? x.slice(0, 40) + '...' : x)}`
  return typeof x === 'object' ? 'an object' : `${typeof x} ${String(x)}`
}

/**
 * Parses a results file written by `gilmsg bench` (its JSON text). Throws a
 * {@link BenchResultsFormatError} naming the first field that is not what a
 * results file holds. Lines are taken as written (plots skip what they
 * cannot draw, so files from older runs still render).
 */
export function parseBenchResults(text: string): BenchReport {
  let data: unknown
  try {
    data = JSON.parse(text)
  } catch (e) {
    throw new BenchResultsFormatError(`expected a gilmsg bench results file (JSON), got invalid JSON: ${(e as Error).message}`)
  }
  const need = (ok: boolean, field: string, expected: string, got: unknown): void => {
    if (!ok) throw new BenchResultsFormatError(`expected a gilmsg bench results file with ${field} ${expected}, got ${describe(got)}`)
  }
  need(isObject(data), 'a top level', 'object', data)
  const d = data as Record<string, unknown>
  const m = d['machine']
  need(isObject(m), '"machine"', 'object', m)
  const machine = m as Record<string, unknown>
  need(typeof machine['cpus'] === 'number', '"machine.cpus"', 'number', machine['cpus'])
  for (const k of ['model', 'node', 'platform']) need(typeof machine[k] === 'string', `"machine.${k}"`, 'string', machine[k])
  need(Array.isArray(machine['loadavg']), '"machine.loadavg"', 'array', machine['loadavg'])
  for (const k of ['startedAt', 'finishedAt']) need(typeof d[k] === 'string' && !Number.isNaN(Date.parse(d[k] as string)), `"${k}"`, 'ISO date', d[k])
  need(typeof d['quick'] === 'boolean', '"quick"', 'boolean', d['quick'])
  need(Array.isArray(d['cases']), '"cases"', 'array', d['cases'])
  const cases = d['cases'] as unknown[]
  cases.forEach((c, i) => {
    need(isObject(c), `"cases[${i}]"`, 'object', c)
    const e = c as Record<string, unknown>
    need(typeof e['id'] === 'string', `"cases[${i}].id"`, 'string', e['id'])
    if (typeof e['error'] === 'string') return
    for (const k of ['figure', 'baseline', 'ratio']) need(typeof e[k] === 'number' || e[k] === null, `"cases[${i}].${k}"`, 'number', e[k])
    for (const k of ['unit', 'baselineUnit', 'name']) need(typeof e[k] === 'string', `"cases[${i}].${k}"`, 'string', e[k])
    // JSON has no NaN: a ratio over a zero baseline was written as null.
    for (const k of ['figure', 'baseline', 'ratio']) if (e[k] === null) e[k] = NaN
    if (!isObject(e['details'])) e['details'] = {}
  })
  return { ...d, loadavgAtEnd: Array.isArray(d['loadavgAtEnd']) ? d['loadavgAtEnd'] : [] } as unknown as BenchReport
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }

/** `text` safe inside HTML elements and quoted attributes. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c] as string)
}

function isResult(e: CaseEntry): e is CaseResult {
  return !('error' in e)
}

function ratioCell(r: CaseResult): string {
  return Number.isFinite(r.ratio) ? `${r.ratio.toFixed(r.ratio >= 10 ? 1 : r.ratio >= 0.1 ? 2 : 3)}x` : '-'
}

function tableHtml(entries: readonly CaseEntry[]): string {
  const rows = entries.map((e) => {
    if (!isResult(e)) {
      const first = e.error.split('\n')[0] ?? e.error
      return `<tr class="failed"><td><code>${escapeHtml(e.id)}</code><div class="name">${escapeHtml(e.name)}</div></td><td class="num">-</td><td class="num">-</td><td class="num">-</td><td></td><td class="verdict">FAILED</td><td class="notes">${escapeHtml(first)}</td></tr>`
    }
    const v = verdict(e)
    return (
      `<tr class="${v === 'met' ? 'met' : v === 'not met' ? 'not-met' : 'na'}">` +
      `<td><code>${escapeHtml(e.id)}</code><div class="name">${escapeHtml(e.name)}</div></td>` +
      `<td class="num">${escapeHtml(fmt(e.figure))}<div class="unit">${escapeHtml(e.unit)}</div></td>` +
      `<td class="num">${escapeHtml(fmt(e.baseline))}<div class="unit">${escapeHtml(e.baselineUnit)}</div></td>` +
      `<td class="num ratio">${escapeHtml(ratioCell(e))}</td>` +
      `<td>${escapeHtml(e.target ?? '-')}</td>` +
      `<td class="verdict">${escapeHtml(v)}</td>` +
      `<td class="notes">${escapeHtml(e.notes ?? '')}</td></tr>`
    )
  })
  return (
    '<table><thead><tr><th>case</th><th>figure</th><th>baseline / floor</th><th>ratio</th><th>target</th><th>verdict</th><th>notes</th></tr></thead>' +
    `<tbody>${rows.join('\n')}</tbody></table>`
  )
}

const STYLE = `
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; margin: 24px 32px; color: #222; max-width: 1400px; }
h1 { margin: 0 0 4px; font-size: 26px; }
h2 { margin: 28px 0 10px; font-size: 19px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.sub { color: #555; margin: 0 0 14px; }
.quick { background: #fff4e5; border: 1px solid #f0b36b; padding: 6px 10px; display: inline-block; margin: 4px 0 10px; }
dl.machine { display: grid; grid-template-columns: max-content auto; gap: 2px 16px; margin: 0; }
dl.machine dt { color: #555; }
dl.machine dd { margin: 0; }
.summary { font-size: 15px; margin: 12px 0 0; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { border-bottom: 1px solid #e3e3e3; padding: 5px 8px; vertical-align: top; text-align: left; }
th { background: #f5f5f5; position: sticky; top: 0; }
td.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
td .unit, td .name { color: #666; font-size: 11px; }
td .name { max-width: 360px; }
td.ratio { font-weight: bold; }
td.notes { color: #444; font-size: 12px; max-width: 420px; }
td.verdict { white-space: nowrap; }
tr.met td.verdict { color: #2e7d32; font-weight: bold; }
tr.not-met td.verdict { color: #c62828; font-weight: bold; }
tr.na td.verdict { color: #757575; }
tr.failed td { background: #fdecea; }
.charts { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 28px 32px; }
figure { margin: 0 0 20px; }
figure svg { max-width: 100%; height: auto; }
figure h3 { margin: 0 0 4px; font-size: 15px; }
figcaption { color: #555; font-size: 12px; margin-top: 4px; }
footer { margin-top: 32px; color: #777; font-size: 12px; }
`

async function figureHtml(chart: Chart, index: number, wide: boolean): Promise<string> {
  const svg = await renderSvg(chart.spec, `chart${index}`)
  return `<figure${wide ? ' class="wide"' : ''}><h3>${escapeHtml(chart.title)}</h3>${svg}<figcaption>${escapeHtml(chart.caption)}</figcaption></figure>`
}

/**
 * The HTML page of `report`: the run's date and machine, the table (each
 * figure beside its baseline or floor, the ratio and the verdict), and the
 * plots the lines carry (see `CaseResult.latency` and `CaseResult.series`),
 * each rendered to inline SVG. Resolves with the page; rejects only if
 * Vega fails to render a chart.
 */
export async function renderReportHtml(report: BenchReport): Promise<string> {
  const results = report.cases.filter(isResult)
  const failed = report.cases.length - results.length
  const targets = results.filter((r) => r.target !== undefined)
  const met = targets.filter((r) => r.met === true).length
  const m = report.machine
  const ratio = ratioChart(results)
  const charts = [...latencyCharts(results), ...seriesCharts(results)]
  const figures: string[] = []
  for (const [i, c] of charts.entries()) figures.push(await figureHtml(c, i + 1, false))
  const ratioFigure = ratio === undefined ? '' : await figureHtml(ratio, 0, true)
  const date = report.startedAt.slice(0, 10)
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>gilmsg bench, ${escapeHtml(date)}</title>
<style>${STYLE}</style>
</head>
<body>
<header>
<h1>gilmsg bench</h1>
<p class="sub">Run started ${escapeHtml(report.startedAt)}, finished ${escapeHtml(report.finishedAt)}. Every figure is set beside a baseline or floor measured in the same run.</p>
${report.quick ? '<p class="quick">--quick: every case ran with tiny counts, so that the run takes about a minute. The figures only show that the bench works.</p>' : ''}
<dl class="machine">
<dt>CPUs</dt><dd>${m.cpus} x ${escapeHtml(m.model)}</dd>
<dt>Node.js</dt><dd>${escapeHtml(m.node)}</dd>
<dt>Platform</dt><dd>${escapeHtml(m.platform)}</dd>
<dt>Load average</dt><dd>${escapeHtml(m.loadavg.join(' '))} at start, ${escapeHtml(report.loadavgAtEnd.join(' ') || '-')} at end (1, 5, 15 min)</dd>
</dl>
<p class="summary"><b>${results.length}</b> lines, targets met <b>${met}/${targets.length}</b>${failed > 0 ? `, <b>${failed}</b> case group(s) FAILED` : ''}.</p>
</header>
<h2>Results</h2>
${tableHtml(report.cases)}
<h2>Plots</h2>
${ratioFigure}
<div class="charts">
${figures.join('\n')}
</div>
<footer>Drawn with Vega-Lite ${escapeHtml(vegaLiteVersion)} and Vega ${escapeHtml(vegaVersion)}, rendered to SVG when the report was written. Latencies recorded with HdrHistogram (3 significant digits).</footer>
</body>
</html>
`
}
