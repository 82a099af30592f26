import { InvalidArgumentError, type StoreKind } from '../errors.js'
import { DEFAULT_SQLITE_CACHE_SIZE_KIB } from '../util/defaults.js'

/** `PRAGMA synchronous` values a store accepts. */
export type SqliteSynchronous = 'FULL' | 'NORMAL' | 'OFF'

/** Options of `SqliteOutboxStore.open` and `SqliteInboxStore.open`. */
export interface SqliteStoreOptions {
  /**
   * Durability of a resolved write. `FULL` (default): it survives a power
   * cut; every commit's write-ahead log is fdatasync'ed before its writes
   * resolve, on libuv's thread pool rather than the event loop (see
   * `WalSync`: SQLite runs with `PRAGMA synchronous=NORMAL` plus that sync,
   * which is what its own FULL does, minus the stall). `NORMAL` survives a
   * process crash but may lose the last commits on power loss; `OFF` is for
   * tests and benchmarks.
   */
  readonly synchronous?: SqliteSynchronous
  /**
   * How long a write (and `open`) waits for another connection's write lock
   * before failing with a "locked" error, in ms. Default 5000. The wait blocks
   * the event loop (SQLite is synchronous).
   */
  readonly busyTimeoutMs?: number
  /** A batch is committed once it holds this many writes, without waiting for `setImmediate`. Default 512. */
  readonly maxBatchOps?: number
  /**
   * The connection's page cache (`PRAGMA cache_size`), in KiB: what SQLite
   * keeps in memory of the file. Default 2048 (2 MiB); a positive integer.
   */
  readonly cacheSizeKib?: number
}

/** Default of {@link SqliteStoreOptions.synchronous}. */
export const DEFAULT_SYNCHRONOUS: SqliteSynchronous = 'FULL'
/** Default of {@link SqliteStoreOptions.busyTimeoutMs}. */
export const DEFAULT_BUSY_TIMEOUT_MS = 5000
/** Default of {@link SqliteStoreOptions.maxBatchOps}. */
export const DEFAULT_MAX_BATCH_OPS = 512
/** Default of {@link SqliteStoreOptions.cacheSizeKib} (defined in `util/defaults.ts`). */
export const DEFAULT_CACHE_SIZE_KIB = DEFAULT_SQLITE_CACHE_SIZE_KIB

const SYNCHRONOUS_VALUES: readonly SqliteSynchronous[] = ['FULL', 'NORMAL', 'OFF']

/** {@link SqliteStoreOptions} with every default filled in. */
export interface ResolvedSqliteOptions {
  readonly synchronous: SqliteSynchronous
  readonly busyTimeoutMs: number
  readonly maxBatchOps: number
  readonly cacheSizeKib: number
}

/** `options` over the defaults, checked; throws an `InvalidArgumentError` naming the store and the option. */
export function resolveOptions(store: StoreKind, options: SqliteStoreOptions): ResolvedSqliteOptions {
  const o = {
    synchronous: DEFAULT_SYNCHRONOUS,
    busyTimeoutMs: DEFAULT_BUSY_TIMEOUT_MS,
    maxBatchOps: DEFAULT_MAX_BATCH_OPS,
    cacheSizeKib: DEFAULT_CACHE_SIZE_KIB,
    ...options,
  }
  if (!SYNCHRONOUS_VALUES.includes(o.synchronous)) {
    throw new InvalidArgumentError(`${store} option synchronous: expected one of ${SYNCHRONOUS_VALUES.join(', ')}, got ${JSON.stringify(o.synchronous)}`)
  }
  if (!Number.isInteger(o.busyTimeoutMs) || o.busyTimeoutMs < 0) {
    throw new InvalidArgumentError(`${store} option busyTimeoutMs: expected a non-negative integer, got ${String(o.busyTimeoutMs)}`)
  }
  if (!Number.isInteger(o.maxBatchOps) || o.maxBatchOps < 1) {
    throw new InvalidArgumentError(`${store} option maxBatchOps: expected a positive integer, got ${String(o.maxBatchOps)}`)
  }
  if (!Number.isInteger(o.cacheSizeKib) || o.cacheSizeKib < 1) {
    throw new InvalidArgumentError(`${store} option cacheSizeKib: expected a positive integer (KiB), got ${String(o.cacheSizeKib)}`)
  }
  return o
}
