import { AbortedError } from '../errors.js'

/** Throws {@link AbortedError} if `signal` has fired. */
export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw new AbortedError(`${what} was aborted`, { cause: signal.reason })
}

/**
 * Calls `onAbort` once if `signal` fires. Returns the function that removes
 * the listener; call it when the operation ends either way.
 */
export function onAbort(signal: AbortSignal | undefined, onAbort: (reason: unknown) => void): () => void {
  if (signal === undefined) return () => {}
  const listener = (): void => onAbort(signal.reason)
  signal.addEventListener('abort', listener, { once: true })
  return () => signal.removeEventListener('abort', listener)
}
