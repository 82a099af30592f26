/**
 * Child processes of the benchmark: every one is tracked, every wait is
 * bounded, and whatever is still running when the runner ends (or the
 * process exits) is killed.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

const children = new Set<ChildProcess>()
let exitHook = false

function track(child: ChildProcess): void {
  children.add(child)
  child.once('exit', () => children.delete(child))
  if (!exitHook) {
    exitHook = true
    process.once('exit', killAllNow)
  }
}

function running(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null
}

/** SIGKILLs every tracked child that is still running (synchronous; for exit paths). */
export function killAllNow(): void {
  for (const child of children) if (running(child)) child.kill('SIGKILL')
}

/** SIGKILLs every tracked child and waits (at most `timeoutMs`) until they are gone. */
export async function killAll(timeoutMs = 5000): Promise<void> {
  const list = [...children]
  killAllNow()
  await Promise.all(list.map((c) => waitExit(c, timeoutMs)))
}

/** How many tracked children are still running. */
export function liveChildren(): number {
  return [...children].filter(running).length
}

async function waitExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (!running(child)) return true
  let timer: NodeJS.Timeout | undefined
  const exited = await Promise.race([
    once(child, 'exit').then(() => true),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs)
    }),
  ])
  clearTimeout(timer)
  return exited || !running(child)
}

/** The compiled worker `bench/workers/<name>.ts` (i.e. `dist/bench/workers/<name>.js`). */
export function workerScript(name: string): string {
  return fileURLToPath(new URL(`../workers/${name}.js`, import.meta.url))
}

/** The compiled `gilmsg` CLI (`dist/src/cli/main.js`). */
export const CLI_SCRIPT = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url))

/** A message from a worker: a `type` and data. `error` messages make the waits reject. */
export interface WorkerMessage {
  readonly type: string
  readonly [key: string]: unknown
}

interface Waiter {
  readonly type: string
  readonly resolve: (m: WorkerMessage) => void
  readonly reject: (e: Error) => void
  readonly timer: NodeJS.Timeout
}

const TAIL_LINES = 40

/**
 * A worker (`bench/workers/*.ts`) forked with an IPC channel: commands go in
 * with {@link send}, typed replies come back through {@link next}. Its
 * stdout/stderr are kept (the last lines) for error messages, and echoed on
 * stderr when `GILMSG_BENCH_VERBOSE` is set.
 */
export class WorkerProcess {
  readonly label: string
  readonly child: ChildProcess
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  readonly #inbox: WorkerMessage[] = []
  #waiters: Waiter[] = []
  readonly #tail: string[] = []

  /** Forks `dist/bench/workers/<name>.js` with `args`. */
  constructor(label: string, name: string, args: readonly string[], options: { env?: NodeJS.ProcessEnv; execArgv?: readonly string[] } = {}) {
    this.label = label
    this.child = fork(workerScript(name), [...args], {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      env: { ...process.env, ...options.env },
      execArgv: [...(options.execArgv ?? [])],
    })
    track(this.child)
    this.exited = once(this.child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }))
    const verbose = process.env['GILMSG_BENCH_VERBOSE'] !== undefined && process.env['GILMSG_BENCH_VERBOSE'] !== ''
    for (const stream of [this.child.stdout, this.child.stderr]) {
      if (stream === null) continue
      createInterface({ input: stream }).on('line', (l) => {
        this.#tail.push(l)
        if (this.#tail.length > TAIL_LINES) this.#tail.shift()
        if (verbose) process.stderr.write(`  [${label}] ${l}\n`)
      })
    }
    this.child.on('message', (m: unknown) => this.#receive(m as WorkerMessage))
    void this.exited.then(({ code, signal }) => {
      const error = new Error(`${label} exited (code ${code}, signal ${signal}) before replying${this.describe()}`)
      for (const w of this.#waiters) {
        clearTimeout(w.timer)
        w.reject(error)
      }
      this.#waiters = []
    })
  }

  #receive(m: WorkerMessage): void {
    if (m.type === 'error') {
      const error = new Error(`${this.label}: ${String(m['message'])}${this.describe()}`)
      for (const w of this.#waiters) {
        clearTimeout(w.timer)
        w.reject(error)
      }
      this.#waiters = []
      this.#inbox.push(m)
      return
    }
    const i = this.#waiters.findIndex((w) => w.type === m.type)
    if (i < 0) {
      this.#inbox.push(m)
      return
    }
    const [w] = this.#waiters.splice(i, 1)
    if (w === undefined) return
    clearTimeout(w.timer)
    w.resolve(m)
  }

  /** The next message of `type` (already received or coming); rejects on an `error` message, on exit, or after `timeoutMs`. */
  next<T extends object = Record<string, unknown>>(type: string, timeoutMs: number): Promise<WorkerMessage & T> {
    const error = this.#inbox.find((m) => m.type === 'error')
    if (error !== undefined) return Promise.reject(new Error(`${this.label}: ${String(error['message'])}${this.describe()}`))
    const i = this.#inbox.findIndex((m) => m.type === type)
    if (i >= 0) return Promise.resolve(this.#inbox.splice(i, 1)[0] as WorkerMessage & T)
    if (!this.running) return Promise.reject(new Error(`${this.label} is not running${this.describe()}`))
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w.timer !== timer)
        reject(new Error(`${this.label}: no "${type}" within ${timeoutMs} ms${this.describe()}`))
      }, timeoutMs)
      this.#waiters.push({ type, resolve: resolve as (m: WorkerMessage) => void, reject, timer })
    })
  }

  /** Sends a command (ignored if the worker is gone). */
  send(message: { readonly cmd: string; readonly [key: string]: unknown }): void {
    if (this.child.connected) this.child.send(message)
  }

  /** Sends `message` and waits for the reply of type `replyType`. */
  request<T extends object = Record<string, unknown>>(message: { readonly cmd: string; readonly [key: string]: unknown }, replyType: string, timeoutMs: number): Promise<WorkerMessage & T> {
    const reply = this.next<T>(replyType, timeoutMs)
    this.send(message)
    return reply
  }

  get running(): boolean {
    return running(this.child)
  }

  /** The last output lines, for error messages. */
  describe(): string {
    return this.#tail.length === 0 ? '' : `\n  last output of ${this.label}:\n    ${this.#tail.slice(-15).join('\n    ')}`
  }

  /** Asks the worker to exit (`exit` command), waits up to `timeoutMs`, then SIGKILLs it. Never rejects. */
  async stop(timeoutMs = 5000): Promise<void> {
    if (!this.running) return
    this.send({ cmd: 'exit' })
    if (await waitExit(this.child, timeoutMs)) return
    this.child.kill('SIGKILL')
    await waitExit(this.child, 5000)
  }
}

/** What {@link runTimed} observed. */
export interface TimedRun {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  /** From just before `spawn` to the `exit` event, in ms. */
  readonly ms: number
  readonly stdout: string
  readonly stderr: string
}

/** Runs `command args` to completion, timing it from spawn to exit; SIGKILL after `timeoutMs`. */
export async function runTimed(command: string, args: readonly string[], options: { env?: NodeJS.ProcessEnv; timeoutMs: number }): Promise<TimedRun> {
  const started = performance.now()
  const child = spawn(command, [...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } })
  track(child)
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  const closed = once(child, 'close')
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs)
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null]
  const ms = performance.now() - started
  clearTimeout(timer)
  await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 2000).unref())])
  return { code, signal, ms, stdout, stderr }
}

/** A long-running command (e.g. `gilmsg tail`) whose output lines can be waited for. */
export class LineProcess {
  readonly label: string
  readonly child: ChildProcess
  readonly lines: string[] = []
  #listeners: ((line: string) => void)[] = []

  constructor(label: string, command: string, args: readonly string[], env: NodeJS.ProcessEnv = {}) {
    this.label = label
    this.child = spawn(command, [...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
    track(this.child)
    const verbose = process.env['GILMSG_BENCH_VERBOSE'] !== undefined && process.env['GILMSG_BENCH_VERBOSE'] !== ''
    for (const stream of [this.child.stdout, this.child.stderr]) {
      if (stream === null) continue
      createInterface({ input: stream }).on('line', (l) => {
        this.lines.push(l)
        if (this.lines.length > 200) this.lines.shift()
        if (verbose) process.stderr.write(`  [${label}] ${l}\n`)
        for (const f of this.#listeners) f(l)
      })
    }
  }

  /** Resolves with the first output line (stdout or stderr) matching `re`; rejects on exit or after `timeoutMs`. */
  waitForLine(re: RegExp, timeoutMs: number): Promise<string> {
    const seen = this.lines.find((l) => re.test(l))
    if (seen !== undefined) return Promise.resolve(seen)
    return new Promise((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer)
        this.#listeners = this.#listeners.filter((f) => f !== listener)
        this.child.off('exit', onExit)
      }
      const listener = (l: string): void => {
        if (!re.test(l)) return
        done()
        resolve(l)
      }
      const onExit = (): void => {
        done()
        reject(new Error(`${this.label} exited before printing ${re}:\n    ${this.lines.slice(-10).join('\n    ')}`))
      }
      const timer = setTimeout(() => {
        done()
        reject(new Error(`${this.label}: no line matching ${re} within ${timeoutMs} ms:\n    ${this.lines.slice(-10).join('\n    ')}`))
      }, timeoutMs)
      this.#listeners.push(listener)
      this.child.once('exit', onExit)
    })
  }

  /** SIGTERM, then SIGKILL after `timeoutMs`. Never rejects. */
  async stop(timeoutMs = 3000): Promise<void> {
    if (!running(this.child)) return
    this.child.kill('SIGTERM')
    if (await waitExit(this.child, timeoutMs)) return
    this.child.kill('SIGKILL')
    await waitExit(this.child, 5000)
  }
}
