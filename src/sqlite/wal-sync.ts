import { closeSync, fdatasync, openSync } from 'node:fs'
import type { StoreError } from '../errors.js'
import { storeError, type StoreId } from './errors.js'

/** `fs.fdatasync`'s shape, injectable so tests can delay or fail it. */
export type FdatasyncFn = (fd: number, callback: (error: NodeJS.ErrnoException | null) => void) => void

/**
 * Makes a SQLite file's WAL durable without blocking the event loop.
 *
 * SQLite's `synchronous=FULL` in WAL mode differs from `NORMAL` by one thing:
 * an fsync of the WAL file after every commit (checkpoints and WAL resets are
 * synced in both modes). That fsync runs on the calling thread, so every
 * commit stalls the event loop for a disk flush (~0.25 ms here, far more on
 * a busy disk). A store opened `FULL` therefore commits with `NORMAL` and
 * calls {@link sync} after the commit: `fdatasync` of the same WAL file runs
 * on libuv's thread pool, and the writes of the batch resolve only once it
 * returns, which is exactly FULL's guarantee, while the loop goes on with the
 * next batch.
 *
 * Syncs are coalesced: one `fdatasync` in flight at a time; every call made
 * while one runs shares the next one, which starts when it returns (a running
 * fdatasync may have begun before the caller's write). A failed fdatasync
 * breaks the object: whether the kernel kept the data is unknown (it may
 * report the error once and then drop the pages), so every later sync rejects
 * too and the store must be reopened.
 */
export class WalSync {
  readonly #fd: number
  readonly #id: StoreId
  readonly #fdatasync: FdatasyncFn
  #running: Promise<void> | undefined
  #queued: Promise<void> | undefined
  #broken: StoreError | undefined
  #closed = false
  #syncs = 0

  /** `fd`: the WAL file, open for writing; `id`: the store, which errors name. */
  constructor(fd: number, id: StoreId, fdatasyncFn: FdatasyncFn = fdatasync) {
    this.#fd = fd
    this.#id = id
    this.#fdatasync = fdatasyncFn
  }

  /**
   * Opens `<path>-wal` of the store's file (SQLite creates it when the
   * database is put in WAL mode). The connection must stay open as long as
   * this object: SQLite deletes the WAL when its last connection closes.
   * Throws a `StoreError` if it cannot.
   */
  static open(id: StoreId): WalSync {
    try {
      return new WalSync(openSync(`${id.path}-wal`, 'r+'), id)
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? String(error)
      throw storeError(id, `cannot open the write-ahead log ${id.path}-wal to sync it (${code})`, error)
    }
  }

  /** fdatasyncs performed so far. */
  get syncs(): number {
    return this.#syncs
  }

  /** Resolves once everything written to the WAL before this call is on disk. */
  sync(): Promise<void> {
    if (this.#broken) return Promise.reject(this.#broken)
    if (this.#closed) return Promise.reject(storeError(this.#id, 'closed before its last commit was synced'))
    if (this.#queued) return this.#queued
    if (this.#running === undefined) return this.#start()
    const after = this.#running.then(
      () => undefined,
      () => undefined,
    )
    this.#queued = after.then(() => {
      this.#queued = undefined
      return this.#broken ? Promise.reject(this.#broken) : this.#start()
    })
    return this.#queued
  }

  #start(): Promise<void> {
    this.#syncs += 1
    const run = new Promise<void>((resolve, reject) => {
      this.#fdatasync(this.#fd, (error) => (error === null ? resolve() : reject(this.#break(error))))
    })
    const tracked = run.finally(() => {
      if (this.#running === tracked) this.#running = undefined
    })
    this.#running = tracked
    return tracked
  }

  #break(error: NodeJS.ErrnoException): StoreError {
    this.#broken ??= storeError(
      this.#id,
      `a commit could not be made durable (fdatasync of the write-ahead log failed: ${error.code ?? error.message}): ` +
        'check the disk (dmesg); what was committed since the last successful sync may be lost on power failure. Reopen the store',
      error,
    )
    return this.#broken
  }

  /** Waits for the syncs in flight, then closes the file. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return
    const last = this.#queued ?? this.#running
    this.#closed = true
    await last?.catch(() => undefined)
    closeSync(this.#fd)
  }
}
