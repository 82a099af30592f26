import type { ZmqSocket } from './zmq-options.js'
import { errorMessage, TransportError } from '../errors.js'

/** The `code` of a thrown value (libzmq errors carry one, e.g. `EAGAIN`), if any. */
export function codeOf(err: unknown): unknown {
  return typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined
}

/**
 * How often a libzmq call interrupted by a signal (EINTR) is tried again.
 * libzmq checks its command mailbox before doing anything, and a signal that
 * arrives meanwhile (a profiler's SIGPROF, SIGCHLD, SIGWINCH) fails the call
 * with EINTR; it did nothing, so trying again is safe.
 */
const EINTR_RETRIES = 16

/** Runs a libzmq bind or connect, again (up to {@link EINTR_RETRIES} times) when a signal interrupted it. */
async function retryInterrupted(call: () => unknown): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await call()
      return
    } catch (err) {
      if (codeOf(err) !== 'EINTR' || attempt >= EINTR_RETRIES) throw err
    }
  }
}

/**
 * Binds `socket` to each address in turn, trying again a call interrupted by
 * a signal. Resolves with the real bound addresses (`tcp://127.0.0.1:*`
 * becomes the chosen port). Rejects with {@link TransportError} "cannot bind
 * <address>: <reason>" at the first failure; the caller closes the socket.
 */
export async function bindAll(socket: ZmqSocket, addresses: readonly string[]): Promise<string[]> {
  const bound: string[] = []
  for (const address of addresses) {
    try {
      await retryInterrupted(() => socket.bind(address))
    } catch (err) {
      throw new TransportError(`cannot bind ${address}: ${errorMessage(err)}`, { cause: err })
    }
    bound.push(socket.lastEndpoint ?? address)
  }
  return bound
}

/**
 * Starts connecting `socket` to each address (the connection completes in the
 * background), trying again a call interrupted by a signal. Rejects with
 * {@link TransportError} "cannot connect <address>: <reason>" for an address
 * libzmq rejects; the caller closes the socket.
 */
export async function connectAll(socket: ZmqSocket, addresses: readonly string[]): Promise<void> {
  for (const address of addresses) {
    try {
      await retryInterrupted(() => socket.connect(address))
    } catch (err) {
      throw new TransportError(`cannot connect ${address}: ${errorMessage(err)}`, { cause: err })
    }
  }
}
