/**
 * Keeping a running verifier's CRL current: the CRL file is polled (a stat of its
 * device, inode, size and times, every {@link DEFAULT_CRL_POLL_MS}) and reloaded when it
 * changes, or at once on a signal (SIGHUP for the CLI). A stat poll sees atomic renames
 * that directory watches miss, and costs one syscall per second.
 */
import { statSync } from 'node:fs'
import { readFile, stat } from 'node:fs/promises'
import type { Stats } from 'node:fs'
import { CertificateError, errorMessage, GilmsgError } from '../errors.js'
import { systemClock, type Clock } from '../util/clock.js'
import type { CrlMemory } from './crl-memory.js'
import type { CrlStatus } from './crl.js'
import type { X509Verifier } from './verifier.js'

/** How often the CRL file is checked for a change. */
export const DEFAULT_CRL_POLL_MS = 1000

/** What a {@link CrlWatcher} reports. */
export type CrlEvent =
  /** A CRL is in use: the one the process started with (`initial`), or a newly loaded one. */
  | { readonly type: 'crl:loaded'; readonly path: string; readonly initial: boolean; readonly status: CrlStatus }
  /** The CRL in use is past its nextUpdate (still enforced); at start, on each reload, and when it becomes stale. */
  | { readonly type: 'crl:stale'; readonly path: string; readonly status: CrlStatus }
  /** A CRL could not be read, fetched (`path` is then its URL) or was refused (bad signature, rollback...), or could not be remembered; the CRL in use stays. */
  | { readonly type: 'crl:error'; readonly path: string; readonly error: GilmsgError }
  /** The CA could not be fetched from its URL (`path`), or what came was refused: the cached copy is used. */
  | { readonly type: 'ca:error'; readonly path: string; readonly error: GilmsgError }

/** What {@link watchCrl} needs. */
export interface CrlWatchOptions {
  /** The CRL file. It may be missing: it is loaded once it appears. */
  readonly path: string
  readonly verifier: X509Verifier
  /** Receives every {@link CrlEvent}. */
  readonly onEvent: (event: CrlEvent) => void
  /** The identity ({@link crlFileIdentity}) of the file the verifier's CRL was read from; undefined when it did not exist. */
  readonly loadedIdentity: string | undefined
  /** Where the newest accepted CRL is remembered across restarts. Default: nowhere. */
  readonly memory?: CrlMemory | undefined
  /** Default {@link systemClock} (its timers never keep the process alive). */
  readonly clock?: Clock | undefined
  /** Default {@link DEFAULT_CRL_POLL_MS}. */
  readonly intervalMs?: number | undefined
  /** A signal that reloads the CRL at once (the CLI uses `SIGHUP`). Default: none. */
  readonly reloadSignal?: NodeJS.Signals | undefined
}

/** A running watch of one CRL file. */
export interface CrlWatcher extends Disposable {
  /** Reads and loads the CRL file now, changed or not. Resolves once done (failures are reported as events, never thrown). */
  reload(): Promise<void>
  /** Stops polling and removes the signal listener. Idempotent. */
  close(): void
}

const MISSING = 'missing'

function identityOf(s: Stats): string {
  return `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`
}

/**
 * What tells one state of a file from another (device, inode, size, modification and
 * change times), or undefined when the file does not exist. Throws for other errors.
 */
export function crlFileIdentity(path: string): string | undefined {
  try {
    return identityOf(statSync(path))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
}

function asGilmsgError(err: unknown, what: string): GilmsgError {
  return err instanceof GilmsgError ? err : new CertificateError(`${what}: ${errorMessage(err)}`, { cause: err })
}

function staleKey(status: CrlStatus): string {
  return `${status.crlNumber ?? ''}/${status.thisUpdate}/${status.nextUpdate}`
}

/**
 * Starts watching `path` for `verifier`. Reports the CRL in use at once (`crl:loaded`
 * with `initial`, and `crl:stale` if it is stale), then reloads the file whenever it
 * changes: a refused or unreadable file is reported once per state of the file and the
 * CRL in use is kept (a deleted file never removes the CRL). Each accepted CRL is
 * remembered in `memory`.
 */
export function watchCrl(options: CrlWatchOptions): CrlWatcher {
  return new PollingCrlWatcher(options)
}

class PollingCrlWatcher implements CrlWatcher {
  readonly #opts: CrlWatchOptions
  readonly #clock: Clock
  readonly #intervalMs: number
  #seen: string
  #staleReported: string | undefined
  #cancelTimer: (() => void) | undefined
  #running: Promise<void> = Promise.resolve()
  #closed = false
  readonly #onSignal = (): void => void this.reload()

  constructor(options: CrlWatchOptions) {
    this.#opts = options
    this.#clock = options.clock ?? systemClock
    this.#intervalMs = options.intervalMs ?? DEFAULT_CRL_POLL_MS
    this.#seen = options.loadedIdentity ?? MISSING
    const status = options.verifier.crlStatus()
    if (status !== undefined) {
      this.#emit({ type: 'crl:loaded', path: options.path, initial: true, status })
      this.#checkStale(true)
      this.#remember()
    }
    if (options.reloadSignal !== undefined) process.on(options.reloadSignal, this.#onSignal)
    this.#schedule()
  }

  reload(): Promise<void> {
    return this.#serially(async () => {
      this.#seen = await this.#identity()
      await this.#load()
    })
  }

  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.#cancelTimer?.()
    if (this.#opts.reloadSignal !== undefined) process.off(this.#opts.reloadSignal, this.#onSignal)
  }

  [Symbol.dispose](): void {
    this.close()
  }

  #serially(step: () => Promise<void>): Promise<void> {
    const run = this.#running.then(async () => {
      if (!this.#closed) await step()
    })
    this.#running = run
    return run
  }

  #schedule(): void {
    if (this.#closed) return
    this.#cancelTimer = this.#clock.setTimer(() => {
      void this.#serially(() => this.#poll()).finally(() => this.#schedule())
    }, this.#intervalMs)
  }

  async #poll(): Promise<void> {
    const id = await this.#identity()
    if (id !== this.#seen) {
      this.#seen = id
      if (id === MISSING) {
        this.#error(new CertificateError(`the CRL file ${this.#opts.path} is gone`))
      } else if (!id.startsWith('error:')) {
        await this.#load()
      }
    }
    this.#checkStale(false)
  }

  async #identity(): Promise<string> {
    try {
      return identityOf(await stat(this.#opts.path))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return MISSING
      const error = asGilmsgError(err, `cannot stat the CRL file ${this.#opts.path}`)
      const id = `error:${error.message}`
      if (id !== this.#seen) this.#error(error)
      return id
    }
  }

  async #load(): Promise<void> {
    const { path, verifier } = this.#opts
    let pem: string
    try {
      pem = await readFile(path, 'utf8')
    } catch (err) {
      this.#error(asGilmsgError(err, `cannot read the CRL file ${path}`))
      return
    }
    if (this.#closed) return
    try {
      await verifier.reloadCrl(pem)
    } catch (err) {
      this.#error(asGilmsgError(err, `cannot load the CRL file ${path}`))
      return
    }
    const status = verifier.crlStatus()
    if (status !== undefined) this.#emit({ type: 'crl:loaded', path, initial: false, status })
    this.#checkStale(true)
    this.#remember()
  }

  #checkStale(always: boolean): void {
    const status = this.#opts.verifier.crlStatus()
    if (status === undefined || !status.stale) return
    const key = staleKey(status)
    if (!always && key === this.#staleReported) return
    this.#staleReported = key
    this.#emit({ type: 'crl:stale', path: this.#opts.path, status })
  }

  #remember(): void {
    const { memory, verifier } = this.#opts
    const mark = verifier.crlMark
    if (memory === undefined || mark === undefined) return
    try {
      memory.write(verifier.caFingerprint, mark)
    } catch (err) {
      this.#error(asGilmsgError(err, 'cannot remember the newest CRL'))
    }
  }

  #error(error: GilmsgError): void {
    this.#emit({ type: 'crl:error', path: this.#opts.path, error })
  }

  #emit(event: CrlEvent): void {
    try {
      this.#opts.onEvent(event)
    } catch (err) {
      queueMicrotask(() => {
        throw err
      })
    }
  }
}

function iso(ms: number): string {
  return new Date(ms).toISOString()
}

function days(n: number): string {
  const d = Math.abs(n)
  return d < 1 ? `${Math.round(d * 24)} hours` : `${Math.floor(d)} days`
}

/** One line saying what `event` means, for logs and stderr. */
export function describeCrlEvent(event: CrlEvent): string {
  switch (event.type) {
    case 'crl:loaded': {
      const s = event.status
      const number = s.crlNumber === undefined ? 'no cRLNumber' : `cRLNumber ${s.crlNumber}`
      return `CRL ${event.path} ${event.initial ? 'in use' : 'reloaded'}: ${number}, ${s.revokedCount} revoked, next update ${iso(s.nextUpdate)}`
    }
    case 'crl:stale': {
      const s = event.status
      return (
        `CRL ${event.path} is stale: its nextUpdate ${iso(s.nextUpdate)} passed ${days(s.daysUntilNextUpdate)} ago. ` +
        `The ${s.revokedCount} certificates it revokes are still refused, but later revocations are unknown: ` +
        'have the CA re-issue it (gilmsg certs crl --dir DIR) and install it here'
      )
    }
    case 'crl:error':
      return `CRL ${event.path}: ${event.error.message}; the CRL in use (if any) is kept`
    case 'ca:error':
      return `CA ${event.path}: ${event.error.message}`
  }
}

/**
 * The reporter used when a library caller gives none: stale CRLs and errors become
 * process warnings (`process.emitWarning`, printed on stderr by default), code `GILMSG_CRL`.
 */
export function warnCrlEvent(event: CrlEvent): void {
  if (event.type === 'crl:loaded') return
  process.emitWarning(describeCrlEvent(event), { code: 'GILMSG_CRL' })
}
