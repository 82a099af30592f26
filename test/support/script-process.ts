import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { waitUntil, withTimeout } from './reliable-net.js'

/**
 * A Node script run as a child process (e.g. a fixture under test/fixtures),
 * its output collected line by line, with bounded waits and SIGKILL.
 */
export class ScriptProcess {
  readonly child: ChildProcess
  readonly stdoutLines: string[] = []
  readonly stderrLines: string[] = []
  readonly #lineListeners: ((line: string) => void)[] = []
  /** Resolves once the process exited and its stdout/stderr are fully read. */
  readonly closed: Promise<{ code: number | null; signal: NodeJS.Signals | null }>

  constructor(
    readonly label: string,
    script: string,
    args: readonly string[],
    env: NodeJS.ProcessEnv = {},
  ) {
    this.child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
    this.closed = once(this.child, 'close').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }))
    createInterface({ input: this.child.stdout as NodeJS.ReadableStream }).on('line', (l) => {
      this.stdoutLines.push(l)
      for (const listener of this.#lineListeners) listener(l)
    })
    createInterface({ input: this.child.stderr as NodeJS.ReadableStream }).on('line', (l) => this.stderrLines.push(l))
  }

  /** Calls `listener` for every stdout line from now on, as it is read (e.g. to kill at an exact point). */
  onLine(listener: (line: string) => void): void {
    this.#lineListeners.push(listener)
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null
  }

  /** Waits (at most `timeoutMs`) until `predicate` holds for the stdout lines so far. */
  async waitFor(predicate: (lines: readonly string[]) => boolean, what: string, timeoutMs = 15_000, everyMs = 5): Promise<void> {
    await waitUntil(
      () => predicate(this.stdoutLines) || !this.running,
      timeoutMs,
      `${this.label}: ${what}`,
      () => this.describe(),
      everyMs,
    )
    if (!predicate(this.stdoutLines)) throw new Error(`${this.label} exited before ${what}: ${this.describe()}`)
  }

  /** Waits for the first stdout line matching `re`. */
  async waitForLine(re: RegExp, timeoutMs = 15_000): Promise<string> {
    await this.waitFor((lines) => lines.some((l) => re.test(l)), `a line matching ${re}`, timeoutMs)
    return this.stdoutLines.find((l) => re.test(l)) as string
  }

  /** Sends `signal` (default SIGKILL) and waits until the process is gone and its output read. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.running) this.child.kill(signal)
    await withTimeout(this.closed, 10_000, `${this.label} to exit after ${signal}`)
  }

  /** The last lines of output, for failure messages. */
  describe(): string {
    return `exit=${this.child.exitCode} signal=${this.child.signalCode}\n  stdout tail: ${this.stdoutLines.slice(-3).join(' | ')}\n  stderr: ${this.stderrLines.slice(-10).join('\n  ')}`
  }
}
