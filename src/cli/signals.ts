/**
 * Resolves on the first SIGINT or SIGTERM (or when `signal` aborts). The
 * handlers are removed when it resolves, so a second Ctrl-C kills the process.
 */
export function untilInterrupted(signal?: AbortSignal): Promise<string> {
  return new Promise((resolve) => {
    const done = (why: string): void => {
      process.off('SIGINT', onInt)
      process.off('SIGTERM', onTerm)
      signal?.removeEventListener('abort', onAbort)
      resolve(why)
    }
    const onInt = (): void => done('SIGINT')
    const onTerm = (): void => done('SIGTERM')
    const onAbort = (): void => done('abort')
    process.once('SIGINT', onInt)
    process.once('SIGTERM', onTerm)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
