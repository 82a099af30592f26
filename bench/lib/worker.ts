/**
 * The worker side of `proc.ts`: commands arrive over the IPC channel and are
 * handled one at a time; replies and errors go back the same way. A worker
 * exits when its parent goes away, on the `exit` command, or after a maximum
 * lifetime, so that none outlives the benchmark.
 */
import type { WorkerMessage } from './proc.js'

/** A command from the runner: `cmd` and its data. */
export interface Command {
  readonly cmd: string
  readonly [key: string]: unknown
}

/** Handles one command; a returned message is sent back as the reply. */
export type Handler = (command: Command) => Promise<WorkerMessage | void> | WorkerMessage | void

/** Default maximum lifetime of a worker: 15 minutes. */
export const DEFAULT_WORKER_MAX_MS = 15 * 60 * 1000

/** Sends a message to the runner (a no-op without an IPC channel). */
export function reply(message: WorkerMessage): void {
  if (process.connected) process.send?.(message)
}

function errorText(e: unknown): string {
  return e instanceof Error ? (e.stack ?? e.message) : String(e)
}

/**
 * Serves commands: each `handlers[cmd]` runs after the previous command
 * finished; a thrown error is sent as an `error` message. `exit` runs
 * `onExit` (bounded by 5 s) and exits 0. Also exits when the parent
 * disconnects, and with code 3 after `maxMs`.
 */
export function serve(handlers: Record<string, Handler>, options: { onExit?: () => Promise<void>; maxMs?: number } = {}): void {
  let chain: Promise<void> = Promise.resolve()
  const exit = async (code: number): Promise<never> => {
    const timer = setTimeout(() => process.exit(code), 5000)
    timer.unref()
    try {
      await options.onExit?.()
    } catch (e) {
      process.stderr.write(`worker: cleanup failed: ${errorText(e)}\n`)
    }
    process.exit(code)
  }
  process.on('message', (m: unknown) => {
    const command = m as Command
    chain = chain.then(async () => {
      if (command.cmd === 'exit') return void (await exit(0))
      const handler = handlers[command.cmd]
      try {
        if (handler === undefined) throw new Error(`unknown command ${JSON.stringify(command.cmd)}`)
        const out = await handler(command)
        if (out !== undefined) reply(out)
      } catch (e) {
        reply({ type: 'error', message: errorText(e) })
      }
    })
  })
  process.on('disconnect', () => void exit(0))
  process.on('unhandledRejection', (e) => {
    reply({ type: 'error', message: `unhandled rejection: ${errorText(e)}` })
    process.stderr.write(`worker: unhandled rejection: ${errorText(e)}\n`)
    process.exit(1)
  })
  const lifetime = setTimeout(() => {
    process.stderr.write(`worker: still running after ${options.maxMs ?? DEFAULT_WORKER_MAX_MS} ms, exiting\n`)
    process.exit(3)
  }, options.maxMs ?? DEFAULT_WORKER_MAX_MS)
  lifetime.unref()
}

/** CPU time used since `since` (a `process.cpuUsage()`), in ms: user + system. */
export function cpuMs(since: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(since)
  return (d.user + d.system) / 1000
}
