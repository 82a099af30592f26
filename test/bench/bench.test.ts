/**
 * The benchmark never rots: `node dist/bench/main.js --quick` runs every case
 * with tiny counts, as a subprocess, and must exit 0 with the table on stdout
 * and a well-formed JSON file. No timing is asserted (the machine is shared).
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'

const MAIN = fileURLToPath(new URL('../../dist/bench/main.js', import.meta.url))
const GROUPS = ['canonical', 'crypto', 'bus', 'delivery', 'outbox', 'memory', 'cli'] as const

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
  it('runs every case group, prints the table and writes the JSON results', async () => {
    const out = join(dir, 'results.json')
    const r = await run(['--quick', '--out', out], 115_000)
    expect(r.code, r.stderr.slice(-4000)).toBe(0)

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
  }, 120_000)

  it('--help exits 0; an unknown --only case exits 2 naming the valid ones', async () => {
    const help = await run(['--help'], 20_000)
    expect(help.code).toBe(0)
    expect(help.stdout).toMatch(/--quick/)
    const bad = await run(['--only', 'nope'], 20_000)
    expect(bad.code).toBe(2)
    expect(bad.stderr).toMatch(/canonical, crypto, bus, delivery, outbox, memory, cli/)
  })
})
