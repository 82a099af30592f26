/**
 * The benchmark never rots: `node dist/bench/main.js --quick` runs every case
 * with tiny counts, as a subprocess, and must exit 0 with the table on stdout
 * and a well-formed JSON file, and its HTML report (--report) must hold the
 * table and the plots, and come out the same from --report-from. No timing
 * is asserted (the machine is shared).
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'

const MAIN = fileURLToPath(new URL('../../dist/bench/main.js', import.meta.url))
const GROUPS = ['canonical', 'crypto', 'bus', 'relay', 'delivery', 'outbox', 'disk', 'memory', 'cli', 'scaling'] as const

const dir = mkdtempSync(join(tmpdir(), 'gilmsg-bench-test-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

async function run(args: readonly string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  const [code] = (await once(child, 'close')) as [number | null]
  clearTimeout(timer)
  return { code, stdout, stderr }
}

describe('bench --quick', () => {
  it('runs every case group, prints the table, writes the JSON results and the HTML report', async () => {
    const out = join(dir, 'results.json')
    const page = join(dir, 'report.html')
    const r = await run(['--quick', '--out', out, '--report', page], 200_000)
    expect(r.code, r.stderr.slice(-4000)).toBe(0)
    expect(r.stdout).toContain(`report: ${page}\n`)

    const header = r.stdout.split('\n')[0] ?? ''
    for (const column of ['case', 'figure', 'baseline', 'ratio', 'target', 'verdict']) expect(header).toContain(column)
    for (const group of GROUPS) expect(r.stdout).toMatch(new RegExp(`^${group}(\\.|\\s)`, 'm'))

    const report = JSON.parse(readFileSync(out, 'utf8')) as {
      machine: { cpus: number; model: string; node: string; platform: string; loadavg: number[] }
      quick: boolean
      startedAt: string
      cases: { id: string; error?: string; figure: unknown; baseline: unknown; unit: unknown; baselineUnit: unknown; ratio: unknown; details: unknown }[]
    }
    expect(report.quick).toBe(true)
    expect(report.machine.cpus).toBeGreaterThan(0)
    expect(report.machine.loadavg).toHaveLength(3)
    expect(Number.isNaN(Date.parse(report.startedAt))).toBe(false)
    for (const group of GROUPS) expect(report.cases.some((c) => c.id === group || c.id.startsWith(`${group}.`)), group).toBe(true)
    for (const c of report.cases) {
      expect(c.error, `${c.id} failed`).toBeUndefined()
      expect(typeof c.figure === 'number' && Number.isFinite(c.figure), `${c.id} figure ${String(c.figure)}`).toBe(true)
      expect(typeof c.baseline === 'number' && Number.isFinite(c.baseline), `${c.id} baseline ${String(c.baseline)}`).toBe(true)
      expect(typeof c.unit).toBe('string')
      expect(typeof c.baselineUnit).toBe('string')
      expect(typeof c.details).toBe('object')
    }
    // The outbox history is mostly copied in SQL (writing it all through the store takes minutes at full size).
    const history = report.cases.find((c) => c.id === 'outbox.e2e.full.10k')?.details as { fill?: { seeded: number; copied: number } } | undefined
    expect(history?.fill?.copied, 'rows copied in SQL').toBeGreaterThan(history?.fill?.seeded ?? 0)

    // One self-contained page: the table (a row per line) and the plots inlined as SVG, nothing fetched.
    const html = readFileSync(page, 'utf8')
    expect(html).not.toMatch(/<script|<link|<img|<iframe/i)
    expect(html).not.toMatch(/\b(?:src|href)\s*=\s*["']?\s*(?:https?:)?\/\//i)
    const table = html.slice(html.indexOf('<table'), html.indexOf('</table>'))
    for (const c of report.cases) expect(table).toContain(`<code>${c.id}</code>`)
    const plots = html.match(/<svg[\s\S]*?<\/svg>/g) ?? []
    for (const title of ['Each figure against its baseline or floor', 'Latency by percentile: delivery', 'Acknowledged messages/s against publish() calls in flight']) {
      expect(html).toContain(title)
    }
    expect(plots.length).toBeGreaterThanOrEqual(3)
    expect(plots.some((svg) => svg.includes('raw PUB/SUB round trip, direct') && svg.includes('99%'))).toBe(true)
    // The quick run's one-at-a-time lines carry HdrHistogram's percentile distribution.
    const serial = report.cases.find((c) => c.id === 'delivery.ec.r1.serial') as { latency?: { distribution?: { percentiles: unknown[] } }[] } | undefined
    expect(serial?.latency?.[0]?.distribution?.percentiles.length).toBeGreaterThan(5)

    // --report-from renders the same page again from the JSON, measuring nothing.
    const again = join(dir, 'again.html')
    const re = await run(['--report-from', out, '--report', again], 30_000)
    expect(re.code, re.stderr).toBe(0)
    expect(readFileSync(again, 'utf8')).toBe(html)
  }, 240_000)

  it('--help exits 0; an unknown --only case exits 2 naming the valid ones', async () => {
    const help = await run(['--help'], 20_000)
    expect(help.code).toBe(0)
    expect(help.stdout).toMatch(/--quick/)
    expect(help.stdout).toMatch(/--report FILE/)
    expect(help.stdout).toMatch(/--report-from/)
    const bad = await run(['--only', 'nope'], 20_000)
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain(`expected case ids from ${GROUPS.join(', ')}`)
  })
})
