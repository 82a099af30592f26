/**
 * One run of a `gilmsg consume --exec` command: spawned in its own process group (so a
 * kill reaches what a shell started too), input on stdin, stdout shared with gilmsg's,
 * stderr passed through to gilmsg's stderr while its last non-empty line is kept.
 */
import { spawn } from 'node:child_process'

/** What to run: `argv` as execFile would (no shell), or joined and given to /bin/sh with `shell`. */
export interface CommandSpec {
  readonly argv: readonly string[]
  readonly shell: boolean
}

export interface RunOptions {
  readonly input: string
  /** Added to gilmsg's own environment. */
  readonly env: Readonly<Record<string, string>>
  /** After this many ms (Infinity: never) the run is timed out: SIGTERM, then SIGKILL after `graceMs`. */
  readonly timeoutMs: number
  readonly graceMs: number
}

export interface RunResult {
  /** The exit code; null when a signal ended it or it could not start. */
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  /** True when the timeout killed it. */
  readonly timedOut: boolean
  /** Why it could not be started (e.g. ENOENT), if so. */
  readonly spawnError: string | undefined
  readonly durationMs: number
  /** The last non-empty line it wrote on stderr (at most {@link MAX_REASON_CHARS} characters). */
  readonly lastStderrLine: string | undefined
}

/** A running command. */
export interface Run {
  readonly result: Promise<RunResult>
  /** Sends `signal` to its process group (no-op once it exited). */
  kill(signal: NodeJS.Signals): void
}

/** The stderr tail kept to find the last line, and the longest reason taken from it. */
export const MAX_REASON_CHARS = 1000
/** How long the stderr pipe may stay open after CMD exited (a background child holding it). */
const STDERR_DRAIN_MS = 200

export function runCommand(spec: CommandSpec, options: RunOptions): Run {
  const started = performance.now()
  const [file, ...args] = spec.shell ? [spec.argv.join(' ')] : spec.argv
  const child = spawn(file as string, args, {
    shell: spec.shell,
    detached: true,
    stdio: ['pipe', 'inherit', 'pipe'],
    env: { ...process.env, ...options.env },
  })
  let exited = false
  const kill = (signal: NodeJS.Signals): void => {
    if (exited || child.pid === undefined) return
    try {
      process.kill(-child.pid, signal)
    } catch {
      // the group is gone already
    }
  }
  let tail = ''
  const stderrEnded = new Promise<void>((resolve) => {
    child.stderr.on('data', (chunk: Buffer) => {
      process.stderr.write(chunk)
      tail = (tail + chunk.toString('utf8')).slice(-4 * MAX_REASON_CHARS)
    })
    child.stderr.on('end', resolve)
    child.stderr.on('error', () => resolve())
  })
  // A command that does not read its stdin closes it early: EPIPE is its business, not ours.
  child.stdin.on('error', () => undefined)
  child.stdin.end(options.input)

  let timedOut = false
  let killTimer: NodeJS.Timeout | undefined
  const timeoutTimer = Number.isFinite(options.timeoutMs)
    ? setTimeout(() => {
        timedOut = true
        kill('SIGTERM')
        killTimer = setTimeout(() => kill('SIGKILL'), options.graceMs)
      }, options.timeoutMs)
    : undefined

  const result = new Promise<RunResult>((resolve) => {
    let finished = false
    const finish = async (code: number | null, signal: NodeJS.Signals | null, spawnError: string | undefined): Promise<void> => {
      if (finished) return
      finished = true
      exited = true
      clearTimeout(timeoutTimer)
      clearTimeout(killTimer)
      // Exit 0 needs no reason: settle at once, which shortens the time between CMD's success and its ACK's commit.
      if (code !== 0) {
        let drainTimer: NodeJS.Timeout | undefined
        await Promise.race([stderrEnded, new Promise<void>((r) => (drainTimer = setTimeout(r, STDERR_DRAIN_MS)))])
        clearTimeout(drainTimer)
      }
      resolve({ code, signal, timedOut, spawnError, durationMs: performance.now() - started, lastStderrLine: lastLine(tail) })
    }
    child.once('error', (e) => void finish(null, null, e.message))
    child.once('exit', (code, signal) => void finish(code, signal, undefined))
  })
  return { result, kill }
}

function lastLine(text: string): string | undefined {
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '')
  const last = lines.at(-1)
  return last === undefined ? undefined : last.slice(0, MAX_REASON_CHARS)
}
