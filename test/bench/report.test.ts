/**
 * `gilmsg bench --report`: one self-contained HTML page (nothing fetched, no
 * script) with the machine, the table and Vega-Lite plots inlined as SVG;
 * `--report-from` renders it again from a results file.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { BenchResultsFormatError, escapeHtml, parseBenchResults, renderReportHtml } from '../../bench/lib/report.js'
import { logTicks, renderSvg } from '../../bench/lib/report-plots.js'
import { summarize } from '../../bench/lib/stats.js'
import { line, type BenchReport } from '../../bench/lib/types.js'

const MAIN = fileURLToPath(new URL('../../dist/bench/main.js', import.meta.url))
const dir = mkdtempSync(join(tmpdir(), 'gilmsg-report-test-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const ramp = (n: number, from: number, to: number): number[] => Array.from({ length: n }, (_, i) => from + ((to - from) * i) / (n - 1))

/** A results file as a run writes it: a latency line with its raw round trip, a pipelined line with its window series, a floor, a failed group. */
function sampleReport(): BenchReport {
  const serial = summarize(ramp(400, 2, 6))
  const rtt = summarize(ramp(3000, 0.15, 0.9))
  return {
    machine: { cpus: 2, model: 'Test CPU <model>', node: 'v20.99.0', platform: 'linux test x64', loadavg: [0.25, 0.5, 0.75] },
    quick: false,
    startedAt: '2026-01-02T03:04:05.000Z',
    finishedAt: '2026-01-02T03:14:05.000Z',
    loadavgAtEnd: [1.25, 1.5, 1.75],
    cases: [
      line({
        id: 'delivery.ec.r1.serial',
        name: 'P-256, 1 recipient, one at a time',
        figure: serial.p50,
        unit: 'ms p50',
        baseline: rtt.p50,
        baselineUnit: 'ms rtt p50',
        target: { text: '<= 3x raw rtt p50', met: (_f, _b, r) => r <= 3 },
        notes: 'ack <b>notes</b> & more',
        latency: [
          { label: 'P-256, 1 recipient(s), one at a time', distribution: serial },
          { label: 'raw PUB/SUB round trip, direct', distribution: rtt, floor: true },
        ],
      }),
      line({
        id: 'delivery.ec.r1.floor',
        name: 'P-256, 1 recipient: p50 vs the floor',
        figure: serial.p50,
        unit: 'ms p50',
        baseline: 1.1,
        baselineUnit: 'ms floor',
        latency: [{ label: 'floor of signed, durable delivery', value: 1.1 }],
      }),
      line({
        id: 'delivery.ec.r3.pipelined',
        name: 'P-256, 3 recipients, pipelined',
        figure: 1786,
        unit: 'acked msgs/s',
        baseline: 10_000,
        baselineUnit: 'msgs/s crypto floor',
        target: { text: '>= 0.4x the crypto CPU floor', met: (_f, _b, r) => r >= 0.4 },
        series: [
          {
            plot: 'Acknowledged messages/s against publish() calls in flight',
            label: 'P-256, 3 recipient(s)',
            xTitle: 'publish() calls in flight',
            yTitle: 'acknowledged messages/s',
            xScale: 'log',
            yScale: 'log',
            points: [
              { x: 8, y: 1200 },
              { x: 32, y: 1786 },
              { x: 128, y: 1500 },
            ],
            floor: 10_000,
            floorLabel: 'crypto CPU floor',
          },
        ],
      }),
      { id: 'scaling', name: 'scaling lines', error: 'Error: worker died\n    at somewhere' },
    ],
  }
}

function svgs(html: string): string[] {
  return html.match(/<svg[\s\S]*?<\/svg>/g) ?? []
}

/** Every src/href/url() in the page that would fetch something (a scheme or a protocol-relative address). */
function externalRefs(html: string): string[] {
  return [...html.matchAll(/(?:\b(?:src|href|srcset|action|data)\s*=\s*["']?|url\(\s*["']?|@import\s+["']?)\s*((?:[a-z][a-z0-9+.-]*:|\/\/)[^"')\s>]*)/gi)].map((m) => m[1] as string)
}

describe('renderReportHtml', () => {
  it('one page: machine facts, the date, the table with each figure beside its baseline, ratio and verdict, and the plots as inline SVG', async () => {
    const html = await renderReportHtml(sampleReport())
    expect(html.startsWith('<!doctype html>')).toBe(true)
    for (const fact of ['2 x Test CPU &lt;model&gt;', 'v20.99.0', 'linux test x64', '0.25 0.5 0.75', '1.25 1.5 1.75', '2026-01-02T03:04:05.000Z']) expect(html).toContain(fact)
    // The table: one row per line, the failed group too.
    const table = html.slice(html.indexOf('<table'), html.indexOf('</table>'))
    for (const id of ['delivery.ec.r1.serial', 'delivery.ec.r1.floor', 'delivery.ec.r3.pipelined', 'scaling']) expect(table).toContain(`<code>${id}</code>`)
    expect(table).toMatch(/<td class="num">1,786<div class="unit">acked msgs\/s<\/div><\/td><td class="num">10,000<div class="unit">msgs\/s crypto floor<\/div><\/td><td class="num ratio">0.18x<\/td>/)
    expect(table).toContain('<td class="verdict">not met</td>')
    expect(table).toContain('<td class="verdict">FAILED</td>')
    expect(table).toContain('ack &lt;b&gt;notes&lt;/b&gt; &amp; more')
    expect(html).toContain('targets met <b>0/2</b>, <b>1</b> case group(s) FAILED')

    // Plots: every figure against its baseline, the latency percentile plot, the window series.
    const plots = svgs(html)
    expect(plots).toHaveLength(3)
    expect(html).toContain('Each figure against its baseline or floor')
    expect(html).toContain('Latency by percentile: delivery')
    expect(html).toContain('Acknowledged messages/s against publish() calls in flight')
    const latencyPlot = plots.find((s) => s.includes('raw PUB/SUB round trip, direct')) ?? ''
    expect(latencyPlot).toContain('P-256, 1 recipient(s), one at a time')
    expect(latencyPlot).toContain('floor of signed, durable delivery')
    for (const tick of ['50%', '90%', '99%', '99.9%']) expect(latencyPlot).toContain(`>${tick}</text>`)
    expect(plots.some((s) => s.includes('P-256, 3 recipient(s)') && s.includes('publish() calls in flight'))).toBe(true)
  })

  it('is self-contained: no script, no stylesheet or image fetched, element ids unique across the inlined SVGs', async () => {
    const html = await renderReportHtml(sampleReport())
    expect(externalRefs(html)).toEqual([])
    expect(html).not.toMatch(/<script|<link|<iframe|<img/i)
    const ids = [...html.matchAll(/\bid="([^"]+)"/g)].map((m) => m[1])
    expect(new Set(ids).size).toBe(ids.length)
    for (const ref of html.matchAll(/url\(#([^)]+)\)/g)) expect(ids).toContain(ref[1])
  })

  it('a file from an older run (no latency or series) still renders its table and the ratio plot', async () => {
    const old = sampleReport()
    const cases = old.cases.map((c) => {
      if ('error' in c) return c
      const { latency: _l, series: _s, ...rest } = c
      return rest
    })
    const html = await renderReportHtml({ ...old, cases })
    expect(svgs(html)).toHaveLength(1)
    expect(html).toContain('<code>delivery.ec.r3.pipelined</code>')
  })
})

describe('renderSvg', () => {
  it('prefixes element ids and their references, so that two clipped charts on one page keep their own clip paths', async () => {
    const spec = {
      data: { values: [{ x: 1, y: 1 }, { x: 2, y: 5 }] },
      mark: { type: 'line' as const, clip: true },
      encoding: { x: { field: 'x', type: 'quantitative' as const }, y: { field: 'y', type: 'quantitative' as const, scale: { domain: [0, 2] } } },
    }
    const a = await renderSvg(spec, 'one')
    const b = await renderSvg(spec, 'two')
    const idsOf = (svg: string): string[] => [...svg.matchAll(/\bid="([^"]+)"/g)].map((m) => m[1] as string)
    expect(idsOf(a).length).toBeGreaterThan(0)
    expect(idsOf(a).every((id) => id.startsWith('one-'))).toBe(true)
    expect(idsOf(b).every((id) => id.startsWith('two-'))).toBe(true)
    for (const [svg, ids] of [[a, idsOf(a)], [b, idsOf(b)]] as const) {
      const refs = [...svg.matchAll(/url\(#([^)]+)\)/g)].map((m) => m[1])
      expect(refs.length).toBeGreaterThan(0)
      for (const ref of refs) expect(ids).toContain(ref)
    }
  })

  it('logTicks gives 1-2-5 steps inside the range', () => {
    expect(logTicks(0.1, 100)).toEqual([0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100])
    expect(logTicks(3, 40)).toEqual([5, 10, 20])
  })
})

describe('parseBenchResults', () => {
  it('reads back what a run writes; a ratio over a zero baseline (null in JSON) becomes NaN again', () => {
    const report = sampleReport()
    const zero = line({ id: 'x.zero', name: 'zero baseline', figure: 1, unit: 'u', baseline: 0, baselineUnit: 'u' })
    const text = JSON.stringify({ ...report, cases: [...report.cases, zero] })
    const parsed = parseBenchResults(text)
    expect(parsed.machine).toEqual(report.machine)
    const last = parsed.cases.at(-1) as { ratio: number }
    expect(last.ratio).toBeNaN()
  })

  it('names what is wrong with a file that is not a results file', () => {
    expect(() => parseBenchResults('not json')).toThrow(BenchResultsFormatError)
    expect(() => parseBenchResults('not json')).toThrow(/expected a gilmsg bench results file \(JSON\), got invalid JSON/)
    expect(() => parseBenchResults('[]')).toThrow(/with a top level object, got an array/)
    expect(() => parseBenchResults(JSON.stringify({ ...sampleReport(), machine: { cpus: '2' } }))).toThrow(/"machine.cpus" number, got the string "2"/)
    expect(() => parseBenchResults(JSON.stringify({ ...sampleReport(), cases: [{ id: 'a', figure: 'x' }] }))).toThrow(/"cases\[0\].figure" number, got the string "x"/)
  })

  it('escapeHtml escapes the five characters that matter in text and attributes', () => {
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;')
  })
})

async function run(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  const timer = setTimeout(() => child.kill('SIGKILL'), 25_000)
  const [code] = (await once(child, 'close')) as [number | null]
  clearTimeout(timer)
  return { code, stdout, stderr }
}

describe('gilmsg bench --report-from (subprocess)', () => {
  it('re-renders an existing results file without measuring, to --report or beside the file', async () => {
    const results = join(dir, 'results.json')
    writeFileSync(results, JSON.stringify(sampleReport(), null, 2))
    const out = join(dir, 'out', 'page.html')
    const r = await run(['--report-from', results, '--report', out])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe(`report: ${out}\n`)
    const html = readFileSync(out, 'utf8')
    expect(html).toBe(await renderReportHtml(parseBenchResults(readFileSync(results, 'utf8'))))
    expect(svgs(html)).toHaveLength(3)

    const beside = await run(['--report-from', results])
    expect(beside.code, beside.stderr).toBe(0)
    expect(existsSync(join(dir, 'results.html'))).toBe(true)
  })

  it('exits 2 for a file that is not a results file, a missing file, or options that would measure', async () => {
    const bad = join(dir, 'bad.json')
    writeFileSync(bad, JSON.stringify({ hello: 'world' }))
    const notResults = await run(['--report-from', bad, '--report', join(dir, 'bad.html')])
    expect(notResults.code).toBe(2)
    expect(notResults.stderr).toMatch(/expected a gilmsg bench results file with "machine" object, got undefined/)
    expect(existsSync(join(dir, 'bad.html'))).toBe(false)
    const missing = await run(['--report-from', join(dir, 'nope.json')])
    expect(missing.code).toBe(2)
    expect(missing.stderr).toMatch(/nope\.json: ENOENT/)
    const measuring = await run(['--report-from', bad, '--quick'])
    expect(measuring.code).toBe(2)
    expect(measuring.stderr).toMatch(/--report-from measures nothing: expected none of --quick, --only, --out with it, got --quick/)
  })
})
