import type { XSubscriber } from 'zeromq'
import { TransportError } from '../errors.js'
import { ConnectionWatch } from './connection-watch.js'

/**
 * Counts a relay's inbound connections from its XSUB socket's monitor events, in both
 * relay modes (the monitor is read on the main thread, whoever forwards). Must be created
 * before the socket is bound and before libzmq's proxy takes the socket over.
 */
export class InboundWatch {
  accepted = 0
  disconnects = 0
  /** The exception `onDisconnect` threw, if it threw (then `onFail` was called once). */
  failure: { readonly error: unknown } | undefined
  readonly #watch: ConnectionWatch

  constructor(socket: XSubscriber, onDisconnect: ((address: string) => void) | undefined, onFail: () => void) {
    this.#watch = new ConnectionWatch(socket, {
      connected: [],
      onAccept: () => this.accepted++,
      onDisconnect: (address) => {
        this.disconnects++
        try {
          onDisconnect?.(address)
        } catch (err) {
          if (this.failure !== undefined) return
          this.failure = { error: err }
          onFail()
        }
      },
    })
  }

  /** What ends a relay that was cut short by its listener's exception (as an `Error`); undefined if none threw. */
  get error(): Error | undefined {
    return this.failure === undefined ? undefined : asError(this.failure.error)
  }

  /** No callback after this. Idempotent. */
  stop(): void {
    this.#watch.stop()
  }
}

/** `err` if it is an Error, else a `TransportError` saying what was thrown. */
export function asError(err: unknown): Error {
  return err instanceof Error ? err : new TransportError(String(err))
}
