/** The exit code of a process stopped by a second signal during its shutdown: 128 + the signal's number, as a shell reports it. */
export const SECOND_SIGNAL_EXIT = { SIGINT: 130, SIGTERM: 143 } as const

type StopSignal = keyof typeof SECOND_SIGNAL_EXIT

/**
 * Resolves on the first SIGINT or SIGTERM (or when `signal` aborts) with its
 * name (`'abort'` for the abort). After a signal, the command shuts down
 * gracefully; a second SIGINT or SIGTERM meanwhile exits at once
 * ({@link SECOND_SIGNAL_EXIT}), whatever other listeners the process has.
 * Those second-signal handlers are removed when the process exits, so a
 * signal then gets its default action.
 */
export function untilInterrupted(signal?: AbortSignal): Promise<string> {
  return new Promise((resolve) => {
    const done = (why: string): void => {
      process.off('SIGINT', onInt)
      process.off('SIGTERM', onTerm)
      signal?.removeEventListener('abort', onAbort)
      if (why !== 'abort') exitOnSecondSignal()
      resolve(why)
    }
    const onInt = (): void => done('SIGINT')
    const onTerm = (): void => done('SIGTERM')
    const onAbort = (): void => done('abort')
    if (signal?.aborted) return resolve('abort')
    process.once('SIGINT', onInt)
    process.once('SIGTERM', onTerm)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

function exitOnSecondSignal(): void {
  const handlers = (Object.keys(SECOND_SIGNAL_EXIT) as StopSignal[]).map((name) => [name, () => process.exit(SECOND_SIGNAL_EXIT[name])] as const)
  for (const [name, handler] of handlers) process.once(name, handler)
  process.once('exit', () => {
    for (const [name, handler] of handlers) process.off(name, handler)
  })
}
