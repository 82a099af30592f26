import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

/** The built CLI (`npm test` builds before running vitest). */
export const CLI = fileURLToPath(new URL('../../dist/src/cli/main.js', import.meta.url))

export interface RunResult {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
  readonly ms: number
}

/** Runs `gilmsg ...args` to completion (killed after `timeoutMs`). */
export async function runCli(args: readonly string[], options: { input?: string; env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  const started = performance.now()
  const child = spawn(process.execPath, [CLI, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, ...options.env },
    ...(options.cwd ? { cwd: options.cwd } : {}),
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  child.stdin.end(options.input ?? '')
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 20_000)
  const [code] = (await once(child, 'exit')) as [number | null]
  clearTimeout(timer)
  return { code, stdout, stderr, ms: performance.now() - started }
}

/** A long-running `gilmsg` process whose output lines the test can wait for. */
export class CliProcess {
  readonly child: ChildProcess
  readonly stdoutLines: string[] = []
  readonly stderrLines: string[] = []
  readonly exited: Promise<number | null>
  #waiters: { re: RegExp; stream: 'stdout' | 'stderr'; resolve: (line: string) => void }[] = []

  constructor(args: readonly string[], env: NodeJS.ProcessEnv = {}) {
    this.child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
    this.exited = once(this.child, 'exit').then(([code]) => code as number | null)
    for (const stream of ['stdout', 'stderr'] as const) {
      createInterface({ input: this.child[stream] as NodeJS.ReadableStream }).on('line', (line) => {
        ;(stream === 'stdout' ? this.stdoutLines : this.stderrLines).push(line)
        this.#waiters = this.#waiters.filter((w) => {
          if (w.stream !== stream || !w.re.test(line)) return true
          w.resolve(line)
          return false
        })
      })
    }
  }

  /** Resolves with the first line (already seen or coming) of `stream` matching `re`; rejects after `timeoutMs`. */
  waitFor(re: RegExp, stream: 'stdout' | 'stderr' = 'stderr', timeoutMs = 15_000): Promise<string> {
    const seen = (stream === 'stdout' ? this.stdoutLines : this.stderrLines).find((l) => re.test(l))
    if (seen !== undefined) return Promise.resolve(seen)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no ${stream} line matching ${re} within ${timeoutMs} ms; stderr:\n${this.stderrLines.join('\n')}`)),
        timeoutMs,
      )
      this.#waiters.push({ re, stream, resolve: (l) => (clearTimeout(timer), resolve(l)) })
    })
  }

  /** Stops the process (SIGTERM, then SIGKILL after 3 s) and resolves with its exit code. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill(signal)
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 3000)
      await this.exited
      clearTimeout(timer)
    }
    return this.exited
  }
}

/** The JSON log record of a service's stderr line (`--log-format json`, the default off a terminal), or undefined for another line. */
export function logRecord(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith('{')) return undefined
  try {
    return JSON.parse(line) as Record<string, unknown>
  } catch {
    return undefined
  }
}

/** The `stats` object of the last "stats" log record in `lines` (tail and relay with --stats), or undefined. */
export function statsOf(lines: readonly string[]): Record<string, number> | undefined {
  const records = lines.map(logRecord).filter((r) => r?.['msg'] === 'stats')
  return records.at(-1)?.['stats'] as Record<string, number> | undefined
}

/** A regexp matching the stderr log line whose `msg` starts with `text` (JSON format). */
export function logLine(text: string): RegExp {
  return new RegExp(`"msg":"${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`)
}
