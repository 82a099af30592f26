import type Database from 'better-sqlite3'
import { ClosedError, GilmsgError } from '../errors.js'
import { isStatementError, storageError, storeLabel, type StoreId } from './errors.js'

/** Counters of a {@link GroupCommit} (a snapshot; reading it resets nothing). */
export interface GroupCommitStats {
  /** Transactions committed. */
  readonly commits: number
  /** Writes run, including failed ones and fire-and-forget ones (`markAttempt`). */
  readonly ops: number
  /** Batches that failed as a whole (every write in them rejected). */
  readonly failedBatches: number
  /** Most writes in one committed transaction. */
  readonly largestBatch: number
  /** Commits made durable by a sync off the event loop (`synchronous: 'FULL'`; 0 otherwise; none for a batch that changed nothing or that nobody waits for). */
  readonly syncs: number
}

interface Waiter {
  readonly resolve: () => void
  readonly reject: (error: unknown) => void
  /** The write's own rejection (it changed nothing), kept when the batch fails too. */
  readonly ownError: unknown
  /** Called right after the COMMIT (before the sync). */
  readonly onCommitted: (() => void) | undefined
}

/** The two moments of a write run by {@link GroupCommit.runWithCommit}. */
export interface CommitAndSync<T> {
  /** Resolves with the write's result right after its batch's COMMIT, before the sync. */
  readonly committed: Promise<T>
  /** Resolves as {@link GroupCommit.run}'s promise does. */
  readonly durable: Promise<T>
}

type Outcome<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: unknown }

const NOTHING_COMMITTED = '; nothing in this batch was committed'

/** Makes committed transactions durable off the event loop (see `WalSync`). */
export interface Durability {
  /** Resolves once every transaction committed before the call is on disk. */
  sync(): Promise<void>
}

/**
 * Group commit over one better-sqlite3 connection. The first write opens a
 * transaction (`BEGIN IMMEDIATE`); every write runs at once inside it, so it
 * sees the writes before it and the connection's reads see it; the
 * transaction commits on `setImmediate` or when it holds `maxOps` writes,
 * and only then do the writes' promises settle.
 *
 * A write that throws a {@link GilmsgError} or a statement-level SQLite error
 * (constraint) before it changed any row rejects alone; the batch goes on.
 * Any other failure (a write that throws after changing rows, disk full, I/O
 * error, lock timeout, failed COMMIT) rolls back the whole batch and rejects
 * every write in it with one `StoreError` saying that nothing in the batch
 * was committed. (No savepoint per write: they cost up to 40% of the
 * throughput; `total_changes()` tells whether a failed write changed rows.)
 *
 * With a {@link Durability} (a store opened `synchronous: 'FULL'`), the
 * connection commits without fsync and the writes settle only after
 * `durability.sync()` resolves: the disk flush runs on the thread pool while
 * the event loop builds the next batch. A failed sync rejects the writes of
 * the batches it covered (their rows are committed but maybe not on disk).
 */
export class GroupCommit {
  readonly #db: Database.Database
  readonly #id: StoreId
  readonly #maxOps: number
  readonly #busyTimeoutMs: number
  readonly #begin: Database.Statement
  readonly #commit: Database.Statement
  readonly #rollback: Database.Statement
  readonly #totalChanges: Database.Statement<[], number>
  readonly #durability: Durability | undefined
  /** The sync of the last committed batch (syncs settle in order). */
  #lastSync: Promise<void> = Promise.resolve()
  #waiters: Waiter[] = []
  #opsInBatch = 0
  #inBatch = false
  #batches = 0
  #timer: NodeJS.Immediate | undefined
  #closed = false
  #commits = 0
  #ops = 0
  #failedBatches = 0
  #largestBatch = 0
  #syncs = 0
  /** `total_changes()` when the current batch began: a batch that changed nothing needs no sync. */
  #changesAtBegin = 0

  /** `id`: the store whose file `db` is, which errors name. */
  constructor(
    db: Database.Database,
    id: StoreId,
    options: { readonly maxOps: number; readonly busyTimeoutMs: number; readonly durability?: Durability },
  ) {
    this.#db = db
    this.#id = id
    this.#maxOps = options.maxOps
    this.#busyTimeoutMs = options.busyTimeoutMs
    this.#durability = options.durability
    this.#begin = db.prepare('BEGIN IMMEDIATE')
    this.#commit = db.prepare('COMMIT')
    this.#rollback = db.prepare('ROLLBACK')
    this.#totalChanges = db.prepare<[], number>('SELECT total_changes()').pluck()
  }

  /** A snapshot of the counters. */
  get stats(): GroupCommitStats {
    return {
      commits: this.#commits,
      ops: this.#ops,
      failedBatches: this.#failedBatches,
      largestBatch: this.#largestBatch,
      syncs: this.#syncs,
    }
  }

  /**
   * How many batches (transactions) have begun. Inside a write it identifies
   * the current transaction: a value cached by an earlier write with the same
   * number is still in the database (uncommitted, but the batch has not been
   * rolled back).
   */
  get batchNumber(): number {
    return this.#batches
  }

  /**
   * Runs `write` now, inside the current batch, and resolves with its result
   * once the batch is committed (and, with a durability, synced). Rejects
   * with its own error (if it refused before changing anything), with an
   * `StoreError` if the batch failed, or with a `ClosedError` after
   * {@link close}.
   */
  run<T>(write: () => T): Promise<T> {
    return this.#run(write, undefined)
  }

  /**
   * {@link run}, also telling when the COMMIT succeeded, before the sync:
   * the write then survives a crash of this process (not yet a power loss).
   * Whatever rejects `durable` before the commit rejects `committed` too;
   * a failed sync rejects `durable` only.
   */
  runWithCommit<T>(write: () => T): CommitAndSync<T> {
    let settle!: { resolve: (value: T) => void; reject: (error: unknown) => void }
    const committed = new Promise<T>((resolve, reject) => (settle = { resolve, reject }))
    return { committed, durable: this.#run(write, settle) }
  }

  #run<T>(write: () => T, commit: { resolve: (value: T) => void; reject: (error: unknown) => void } | undefined): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const fail = commit === undefined ? reject : (error: unknown) => (commit.reject(error), reject(error))
      let outcome: Outcome<T>
      try {
        outcome = this.#exec(write)
      } catch (error) {
        fail(error)
        return
      }
      this.#waiters.push(
        outcome.ok
          ? { resolve: () => resolve(outcome.value), reject: fail, ownError: undefined, onCommitted: commit && (() => commit.resolve(outcome.value)) }
          : { resolve: () => reject(outcome.error), reject: fail, ownError: outcome.error, onCommitted: commit && (() => commit.reject(outcome.error)) },
      )
      if (this.#opsInBatch >= this.#maxOps) this.flush()
    })
  }

  /** Runs `write` inside the current batch without waiting for the commit. Throws what {@link run} would reject with. */
  runDetached(write: () => void): void {
    const outcome = this.#exec(write)
    if (!outcome.ok) throw outcome.error
    if (this.#opsInBatch >= this.#maxOps) this.flush()
  }

  /** Commits the current batch now and settles its writes. A no-op without one. Never throws. */
  flush(): void {
    if (!this.#inBatch) return
    const { waiters, ops } = this.#endBatch()
    let changed: boolean
    try {
      changed = this.#totalChanges.get() !== this.#changesAtBegin
      this.#commit.run()
    } catch (error) {
      this.#fail(waiters, error)
      return
    }
    this.#commits += 1
    this.#largestBatch = Math.max(this.#largestBatch, ops)
    for (const w of waiters) w.onCommitted?.()
    if (this.#durability === undefined) {
      for (const w of waiters) w.resolve()
      return
    }
    if (!changed || waiters.length === 0) {
      // Nothing of its own to make durable (its writes changed nothing), or nobody waits for it
      // (fire-and-forget writes: the next sync covers them): no fdatasync; what it read is
      // durable once the syncs before it are.
      if (waiters.length > 0) {
        this.#lastSync = this.#lastSync.then(() => {
          for (const w of waiters) w.resolve()
        })
      }
      return
    }
    this.#syncs += 1
    this.#lastSync = this.#durability.sync().then(
      () => {
        for (const w of waiters) w.resolve()
      },
      (error: unknown) => {
        this.#failedBatches += 1
        for (const w of waiters) w.reject(w.ownError ?? error)
      },
    )
  }

  /**
   * Commits the current batch; later writes reject with a `ClosedError`.
   * Resolves once what was committed is durable (never rejects: a failed
   * sync rejects the writes it covered). Idempotent.
   */
  close(): Promise<void> {
    this.#closed = true
    this.flush()
    return this.#lastSync
  }

  #endBatch(): { readonly waiters: readonly Waiter[]; readonly ops: number } {
    if (this.#timer !== undefined) clearImmediate(this.#timer)
    this.#timer = undefined
    const ended = { waiters: this.#waiters, ops: this.#opsInBatch }
    this.#waiters = []
    this.#opsInBatch = 0
    this.#inBatch = false
    return ended
  }

  #fail(waiters: readonly Waiter[], cause: unknown): GilmsgError {
    if (this.#db.inTransaction) {
      try {
        this.#rollback.run()
      } catch {
        // SQLite already rolled back, or the connection is unusable; the commit failure is what we report.
      }
    }
    this.#failedBatches += 1
    const error = storageError(this.#id, cause, this.#busyTimeoutMs, NOTHING_COMMITTED)
    for (const w of waiters) w.reject(w.ownError ?? error)
    return error
  }

  #exec<T>(write: () => T): Outcome<T> {
    if (this.#closed) throw new ClosedError(storeLabel(this.#id))
    if (!this.#inBatch) {
      try {
        this.#begin.run()
      } catch (error) {
        throw storageError(this.#id, error, this.#busyTimeoutMs, '; nothing was written')
      }
      this.#inBatch = true
      this.#batches += 1
      this.#changesAtBegin = this.#totalChanges.get() ?? -1 // unknown: counts as changed
      this.#timer = setImmediate(() => this.flush())
    }
    this.#ops += 1
    this.#opsInBatch += 1
    let changes: number | undefined
    try {
      changes = this.#totalChanges.get()
      return { ok: true, value: write() }
    } catch (error) {
      if ((error instanceof GilmsgError || isStatementError(error)) && this.#unchanged(changes)) return { ok: false, error }
      throw this.#fail(this.#endBatch().waiters, error)
    }
  }

  #unchanged(before: number | undefined): boolean {
    if (before === undefined || !this.#db.inTransaction) return false
    try {
      return this.#totalChanges.get() === before
    } catch {
      return false
    }
  }
}
