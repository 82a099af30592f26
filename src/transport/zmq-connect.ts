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

/**
 * Binds `socket` to the first of `addresses` it can bind, trying each in turn as
 * fedmsg does for a named process's `endpoints` list, so that several processes of
 * one service share one list. Resolves with the real bound address. Rejects with
 * {@link TransportError} naming every address tried and why each failed when none
 * can be bound (or when `addresses` is empty); the caller closes the socket.
 */
export async function bindFirst(socket: ZmqSocket, addresses: readonly string[]): Promise<string> {
  const failures: string[] = []
  for (const address of addresses) {
    try {
      await retryInterrupted(() => socket.bind(address))
      return socket.lastEndpoint ?? address
    } catch (err) {
      failures.push(`${address} (${errorMessage(err)})`)
    }
  }
  throw new TransportError(
    addresses.length === 0 ? 'cannot bind: no address to try' : `cannot bind any of ${addresses.length} addresses, each is in use or refused: ${failures.join(', ')}`,
  )
}

const LOOPBACK_HOST = /^(?:127(?:\.\d{1,3}){3}|localhost|\[::1\])$/i

/**
 * The address a named process binds for an `endpoints` entry, as fedmsg binds it: a
 * `tcp://` host is replaced by `*` (every interface), since the list names the host as
 * other machines reach it: `tcp://app01.example.com:3000` becomes `tcp://*:3000`.
 * A loopback host (`127.x.x.x`, `localhost`, `[::1]`) is kept, so that a single-host
 * setup is never exposed to the network. Other transports (`ipc://`, `inproc://`) are
 * returned unchanged.
 */
export function bindAddressOf(address: string): string {
  const m = /^tcp:\/\/(\[[^\]]*\]|[^:/[\]]*):([^:/]+)$/.exec(address)
  if (m === null || LOOPBACK_HOST.test(m[1] ?? '')) return address
  return `tcp://*:${m[2]}`
}
