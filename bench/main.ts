/**
 * The gilmsg benchmark (issue #4): every line measures gilmsg and its
 * baseline in the same run, in separate processes over tcp on 127.0.0.1
 * where a network is involved. Progress goes to stderr, the table to stdout,
 * the results to a JSON file, and on request an HTML report with plots.
 *
 *   node dist/bench/main.js [--quick] [--only CASE,...] [--out FILE] [--report FILE.html]
 *   node dist/bench/main.js --report-from RESULTS.json [--report FILE.html]
 */
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, release, tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import type { Pki } from './lib/pki.js'
import { busCase } from './cases/bus.js'
import { canonicalCase } from './cases/canonical.js'
import { cliCase } from './cases/cli.js'
import { cryptoCase } from './cases/crypto.js'
import { deliveryCase } from './cases/delivery.js'
import { diskCase } from './cases/disk.js'
import { memoryCase } from './cases/memory.js'
import { outboxCase } from './cases/outbox.js'
import { scalingCase } from './cases/scaling.js'
import { relayCase } from './cases/relay.js'
import { resultsTable } from './lib/format.js'
import { killAll, killAllNow, liveChildren } from './lib/proc.js'
import { makeBenchPki } from './lib/setup.js'
import type { BenchCase, BenchContext, BenchReport, CaseEntry, CaseResult } from './lib/types.js'

/** Every case group, in the order they run. */
export const CASES: readonly BenchCase[] = [canonicalCase, cryptoCase, busCase, relayCase, deliveryCase, outboxCase, diskCase, memoryCase, cliCase, scalingCase]

/** `gilmsg bench --help` / `node dist/bench/main.js --help`. */
export const BENCH_HELP = `Usage: gilmsg bench [--quick] [--only CASE,...] [--out FILE] [--report FILE.html]
       gilmsg bench --report-from RESULTS.json [--report FILE.html]

Measures gilmsg beside a baseline for each figure, in one run, every network party its own
process on 127.0.0.1 tcp. Progress goes to stderr, a table (case, figure, baseline, ratio,
target, verdict) to stdout, and every measurement to a JSON file.
  --quick          every case with tiny counts (about a minute; what the test suite runs)
  --only CASE,...  run only these case groups: ${CASES.map((c) => c.id).join(', ')}
  --out FILE       the JSON results (default gilmsg-bench-<ISO timestamp>.json in the current
                   directory)
  --report FILE    also write one self-contained HTML page (no script, nothing fetched): the
                   machine, the table and the plots (latency by percentile, throughput against
                   the in-flight window, scaling lines, each figure against its floor)
  --report-from F  measure nothing: render the report of an existing results file F (to
                   --report, default F with .html in place of .json)
The figures are only as quiet as the machine: the load average is recorded with them.
Environment: GILMSG_BENCH_VERBOSE=1 echoes the workers' output; GILMSG_BENCH_WORKER_ARGS
adds node options to the workers (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof");
GILMSG_BENCH_KEEP=1 keeps the temporary working directory (certificates, configs, stores).
Exit codes: 0 every case ran (targets missed or not), 1 a case failed or the report could not
be written, 2 usage error (--report-from: a file that is not a results file included).`

export type { BenchReport, CaseEntry } from './lib/types.js'

/** Where `--report-from FILE` writes its page without `--report`: FILE with `.html` in place of `.json`. */
export function defaultReportPath(resultsFile: string): string {
  return resultsFile.replace(/\.json$/i, '') + '.html'
}

/** Renders `report` to `file` (HTML); resolves with the absolute path written. */
async function writeReport(report: BenchReport, file: string): Promise<string> {
  const { renderReportHtml } = await import('./lib/report.js')
  const html = await renderReportHtml(report)
  const path = resolve(file)
  mkdirSync(dirname(path), { recursive: true })
  writeFileSync(path, html)
  return path
}

/** `--report-from FILE [--report OUT]`: 0 written, 1 not written, 2 FILE unreadable or not a results file. */
async function reportFrom(file: string, out: string | undefined): Promise<number> {
  const { parseBenchResults } = await import('./lib/report.js')
  let report: BenchReport
  try {
    report = parseBenchResults(readFileSync(file, 'utf8'))
  } catch (e) {
    process.stderr.write(`gilmsg bench: --report-from ${file}: ${(e as Error).message}\n`)
    return 2
  }
  try {
    const path = await writeReport(report, out ?? defaultReportPath(file))
    process.stdout.write(`report: ${path}\n`)
    return 0
  } catch (e) {
    process.stderr.write(`gilmsg bench: the report could not be written: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`)
    return 1
  }
}

/** The results file when there is no --out: in the current directory, never inside the installed package. */
function defaultOut(startedAt: string): string {
  return resolve(`gilmsg-bench-${startedAt.replaceAll(':', '-')}.json`)
}

function round(x: number[]): number[] {
  return x.map((v) => Number(v.toFixed(2)))
}

/**
 * Runs the benchmark with command-line `argv` (without the program name)
 * and resolves with the exit code: 0 when every selected case ran (whether
 * its targets were met or not), 1 when a case failed, 2 for a usage error.
 * Never rejects. Every child process is killed before it resolves.
 */
export async function runBench(argv: readonly string[]): Promise<number> {
  let values: { quick?: boolean; only?: string; out?: string; report?: string; 'report-from'?: string; help?: boolean }
  try {
    values = parseArgs({
      args: [...argv],
      options: {
        quick: { type: 'boolean' },
        only: { type: 'string' },
        out: { type: 'string' },
        report: { type: 'string' },
        'report-from': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }).values
  } catch (e) {
    process.stderr.write(`gilmsg bench: ${(e as Error).message}\n\n${BENCH_HELP}\n`)
    return 2
  }
  if (values.help) {
    process.stdout.write(BENCH_HELP + '\n')
    return 0
  }
  const from = values['report-from']
  if (from !== undefined) {
    const measuring = (['quick', 'only', 'out'] as const).filter((k) => values[k] !== undefined)
    if (measuring.length > 0) {
      process.stderr.write(`gilmsg bench: --report-from measures nothing: expected none of --quick, --only, --out with it, got ${measuring.map((k) => `--${k}`).join(', ')}\n`)
      return 2
    }
    return reportFrom(from, values.report)
  }
  const only = values.only?.split(',').map((s) => s.trim()).filter((s) => s !== '')
  const unknown = only?.filter((id) => !CASES.some((c) => c.id === id)) ?? []
  if (unknown.length > 0 || (only !== undefined && only.length === 0)) {
    process.stderr.write(`gilmsg bench: --only: expected case ids from ${CASES.map((c) => c.id).join(', ')}, got "${values.only}"\n`)
    return 2
  }
  const selected = CASES.filter((c) => only === undefined || only.includes(c.id))
  const quick = values.quick ?? false
  const startedAt = new Date().toISOString()
  const out = resolve(values.out ?? defaultOut(startedAt))
  const dir = mkdtempSync(join(tmpdir(), 'gilmsg-bench-'))
  const keep = process.env['GILMSG_BENCH_KEEP'] !== undefined && process.env['GILMSG_BENCH_KEEP'] !== ''
  const t0 = performance.now()
  const progress = (m: string): void => void process.stderr.write(`[${((performance.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${m}\n`)
  let pki: Promise<Pki> | undefined
  const workerArgs = process.env['GILMSG_BENCH_WORKER_ARGS']
  const ctx: BenchContext = {
    quick,
    dir,
    childEnv: { XDG_STATE_HOME: join(dir, 'state'), GILMSG_CONFIG: '' },
    workerExecArgv: workerArgs ? workerArgs.split(/\s+/).filter((a) => a !== '') : [],
    progress,
    pki: () => (pki ??= makeBenchPki(join(dir, 'pki'))),
  }
  const onSignal = (signal: NodeJS.Signals): void => {
    killAllNow()
    rmSync(dir, { recursive: true, force: true })
    process.stderr.write(`gilmsg bench: ${signal}, stopped\n`)
    process.exit(130)
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)

  const machine = { cpus: cpus().length, model: cpus()[0]?.model ?? 'unknown', node: process.version, platform: `${process.platform} ${release()} ${process.arch}`, loadavg: round(loadavg()) }
  progress(`gilmsg bench${quick ? ' --quick' : ''}: ${selected.map((c) => c.id).join(', ')}; ${machine.cpus} x ${machine.model}, node ${machine.node}, load average ${machine.loadavg.join(' ')}`)
  const entries: CaseEntry[] = []
  const results: CaseResult[] = []
  let failed = 0
  try {
    for (const c of selected) {
      const started = performance.now()
      const load = round(loadavg())
      progress(`${c.id}: ${c.title} (load average ${load.join(' ')})`)
      try {
        const lines = await c.run(ctx)
        for (const l of lines) Object.assign(l.details, { caseLoadavg: load })
        entries.push(...lines)
        results.push(...lines)
        progress(`${c.id}: done in ${((performance.now() - started) / 1000).toFixed(1)} s`)
      } catch (e) {
        failed++
        const message = e instanceof Error ? (e.stack ?? e.message) : String(e)
        entries.push({ id: c.id, name: c.title, error: message })
        progress(`${c.id}: FAILED: ${message}`)
      } finally {
        if (liveChildren() > 0) {
          progress(`${c.id}: ${liveChildren()} child process(es) still running after the case: killing them`)
          await killAll()
        }
      }
    }
  } finally {
    await killAll()
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    if (keep) progress(`kept the working directory ${dir}`)
    else rmSync(dir, { recursive: true, force: true })
  }
  const report: BenchReport = { machine, quick, startedAt, finishedAt: new Date().toISOString(), loadavgAtEnd: round(loadavg()), cases: entries }
  mkdirSync(dirname(out), { recursive: true })
  writeFileSync(out, JSON.stringify(report, null, 2) + '\n')
  process.stdout.write(resultsTable(results) + '\n')
  const met = results.filter((r) => r.met === true).length
  const targets = results.filter((r) => r.target !== undefined).length
  process.stdout.write(
    `\n${results.length} lines, targets met ${met}/${targets}${failed ? `, ${failed} case group(s) FAILED` : ''}; ` +
      `load average ${machine.loadavg.join(' ')} at start, ${report.loadavgAtEnd.join(' ')} at end; results: ${out}\n`,
  )
  let reportFailed = false
  if (values.report !== undefined) {
    try {
      const path = await writeReport(report, values.report)
      process.stdout.write(`report: ${path}\n`)
    } catch (e) {
      reportFailed = true
      process.stderr.write(`gilmsg bench: the report could not be written (the results are in ${out}): ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`)
    }
  }
  progress(`finished in ${((performance.now() - t0) / 1000).toFixed(1)} s`)
  return failed > 0 || reportFailed ? 1 : 0
}

function isMain(): boolean {
  const script = process.argv[1]
  if (script === undefined) return false
  try {
    return import.meta.url === pathToFileURL(realpathSync(script)).href
  } catch {
    return false
  }
}

if (isMain()) {
  runBench(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code
      // Anything still holding the event loop (a socket in linger) gets 2 s.
      setTimeout(() => process.exit(code), 2000).unref()
    },
    (e: unknown) => {
      process.stderr.write(`gilmsg bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`)
      process.exit(1)
    },
  )
}
