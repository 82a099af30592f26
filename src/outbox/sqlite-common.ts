import { closeSync, mkdirSync, openSync, statSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import Database from 'better-sqlite3'
import { ErrorCode, errorMessage, GilmsgError } from '../errors.js'
import { stateDir } from '../util/paths.js'
import { OutboxError } from './errors.js'
import { WalSync } from './wal-sync.js'

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
}

/** Default of {@link SqliteStoreOptions.synchronous}. */
export const DEFAULT_SYNCHRONOUS: SqliteSynchronous = 'FULL'
/** Default of {@link SqliteStoreOptions.busyTimeoutMs}. */
export const DEFAULT_BUSY_TIMEOUT_MS = 5000
/** Default of {@link SqliteStoreOptions.maxBatchOps}. */
export const DEFAULT_MAX_BATCH_OPS = 512

const SYNCHRONOUS_VALUES: readonly SqliteSynchronous[] = ['FULL', 'NORMAL', 'OFF']

/** {@link SqliteStoreOptions} with every default filled in. */
export interface ResolvedSqliteOptions {
  readonly synchronous: SqliteSynchronous
  readonly busyTimeoutMs: number
  readonly maxBatchOps: number
}

/** One step of a schema: `up` runs inside the migration transaction; `version` goes into `PRAGMA user_version`. */
export interface Migration {
  readonly version: number
  up(db: Database.Database): void
}

/** What {@link openSqlite} returns. */
export interface OpenedSqlite {
  readonly db: Database.Database
  /** "outbox /path/x.db": how errors name the store. */
  readonly label: string
  readonly options: ResolvedSqliteOptions
  /** With `synchronous: 'FULL'` on a file: syncs the WAL after each commit (the connection itself runs NORMAL). */
  readonly walSync: WalSync | undefined
}

function usage(message: string): GilmsgError {
  return new GilmsgError(ErrorCode.Usage, message)
}

function resolveOptions(kind: string, options: SqliteStoreOptions): ResolvedSqliteOptions {
  const o = { synchronous: DEFAULT_SYNCHRONOUS, busyTimeoutMs: DEFAULT_BUSY_TIMEOUT_MS, maxBatchOps: DEFAULT_MAX_BATCH_OPS, ...options }
  if (!SYNCHRONOUS_VALUES.includes(o.synchronous)) {
    throw usage(`${kind} option synchronous: expected one of ${SYNCHRONOUS_VALUES.join(', ')}, got ${JSON.stringify(o.synchronous)}`)
  }
  if (!Number.isInteger(o.busyTimeoutMs) || o.busyTimeoutMs < 0) {
    throw usage(`${kind} option busyTimeoutMs: expected a non-negative integer, got ${String(o.busyTimeoutMs)}`)
  }
  if (!Number.isInteger(o.maxBatchOps) || o.maxBatchOps < 1) {
    throw usage(`${kind} option maxBatchOps: expected a positive integer, got ${String(o.maxBatchOps)}`)
  }
  return o
}

function sqliteCode(error: unknown): string | undefined {
  if (error instanceof Database.SqliteError) return error.code
  return undefined
}

/** True for SQLite errors that concern one statement only (the transaction stays usable). */
export function isStatementError(error: unknown): boolean {
  const code = sqliteCode(error)
  if (code === undefined) return false
  return code.startsWith('SQLITE_CONSTRAINT') || code === 'SQLITE_TOOBIG' || code === 'SQLITE_MISMATCH' || code === 'SQLITE_RANGE'
}

/** What a SQLite error means for the user, and what to do about it. */
function explain(error: unknown, busyTimeoutMs: number): string {
  const code = sqliteCode(error)
  const message = errorMessage(error)
  if (code === undefined) return message
  if (code === 'SQLITE_FULL') return `disk is full (SQLITE_FULL): free space on the disk that holds it`
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
    return (
      `database is locked by another connection (${code} after waiting ${busyTimeoutMs} ms): ` +
      `another process (a second gilmsg using the same file?) is writing to it; stop that process or give each its own file`
    )
  }
  if (code === 'SQLITE_NOTADB') {
    return `not a SQLite database (SQLITE_NOTADB): the file is damaged or is something else; move it aside (a new empty store is then created, and what the old one held is not resent)`
  }
  if (code.startsWith('SQLITE_CORRUPT')) {
    return `database file is corrupt (${code}): restore it from a backup or move it aside (a new empty store is then created)`
  }
  if (code.startsWith('SQLITE_CANTOPEN')) {
    return `cannot open the file (${code}): check that its directory exists and is writable by this user and that the path is not a directory`
  }
  if (code.startsWith('SQLITE_READONLY')) {
    return `the file or its directory is read-only (${code}): make both writable by this user (SQLite also creates -wal and -shm files beside it)`
  }
  if (code.startsWith('SQLITE_IOERR')) return `disk I/O error (${code}): check the disk and the filesystem (dmesg)`
  if (code === 'SQLITE_PERM' || code === 'SQLITE_AUTH') return `permission denied (${code}): check the file's permissions`
  if (code === 'SQLITE_NOMEM') return `out of memory (SQLITE_NOMEM)`
  return `${message} (${code})`
}

/** An {@link OutboxError} for a SQLite failure: `"<label>: <what happened and what to do><suffix>"`, with the SQLite error as cause. */
export function storageError(label: string, error: unknown, busyTimeoutMs: number, suffix = ''): OutboxError {
  return new OutboxError(`${label}: ${explain(error, busyTimeoutMs)}${suffix}`, { cause: error })
}

function fsError(label: string, what: string, error: unknown): OutboxError {
  const raw = (error as { code?: unknown } | null)?.code
  const code = typeof raw === 'string' ? raw : errorMessage(error)
  const hint =
    code === 'EISDIR'
      ? 'the path is a directory; give the path of a file'
      : code === 'ENOTDIR'
        ? 'a component of the path is a file, not a directory'
        : 'check that the directory is writable by this user, or choose another path'
  return new OutboxError(`${label}: cannot ${what} (${code}): ${hint}`, { cause: error })
}

function migrate(db: Database.Database, migrations: readonly Migration[], label: string): void {
  const latest = migrations.reduce((v, m) => Math.max(v, m.version), 0)
  db.exec('BEGIN IMMEDIATE')
  try {
    const current = db.pragma('user_version', { simple: true }) as number
    if (current > latest) {
      throw new OutboxError(
        `${label}: schema version ${current} is newer than this gilmsg supports (${latest}): upgrade gilmsg, or move the file aside`,
      )
    }
    for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
      if (m.version > current) m.up(db)
    }
    if (current !== latest) db.pragma(`user_version = ${latest}`)
    db.exec('COMMIT')
  } catch (error) {
    if (db.inTransaction) db.exec('ROLLBACK')
    throw error
  }
}

/**
 * A database file is a whole number of pages; one cut inside its last page
 * still opens (SQLite reads the missing bytes as zeros) and would hand back
 * damaged message bodies, so it is refused.
 */
function checkWholePages(db: Database.Database, path: string, label: string): void {
  const pageSize = Number(db.pragma('page_size', { simple: true }))
  const size = statSync(path).size
  if (pageSize > 0 && size > pageSize && size % pageSize !== 0) {
    throw new OutboxError(
      `${label}: the file is corrupt: truncated (${size} bytes is not a whole number of ${pageSize}-byte pages): ` +
        'it was damaged (a copy cut short, a full disk): move it aside and restore it from a backup, or start a new one',
    )
  }
}

/**
 * Opens (creating it and its directory if missing) a SQLite file for a store:
 * WAL mode, foreign keys on, `synchronous` and busy timeout as given, schema
 * migrated to the latest of `migrations` inside a write transaction (so a file
 * another process is writing fails here, after the busy timeout). A new
 * directory gets mode 0700 and a new file 0600. With `synchronous: 'FULL'` on
 * a file, the connection runs `NORMAL` and `walSync` does the sync FULL adds
 * (see `WalSync`). Throws an {@link OutboxError}
 * naming the path and what to do, or a `GILMSG_USAGE` error for bad options.
 */
export function openSqlite(
  kind: 'outbox' | 'inbox',
  path: string,
  options: SqliteStoreOptions,
  migrations: readonly Migration[],
): OpenedSqlite {
  if (typeof path !== 'string' || path === '') throw usage(`${kind} path: expected a non-empty string, got ${JSON.stringify(path)}`)
  const resolved = resolveOptions(kind, options)
  const label = `${kind} ${path}`
  if (path !== ':memory:') {
    const dir = dirname(resolve(path))
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 })
    } catch (error) {
      throw fsError(label, `create directory ${dir}`, error)
    }
    try {
      closeSync(openSync(path, 'a', 0o600))
    } catch (error) {
      throw fsError(label, 'create the file', error)
    }
  }
  let db: Database.Database
  try {
    db = new Database(path, { timeout: resolved.busyTimeoutMs })
  } catch (error) {
    throw storageError(label, error, resolved.busyTimeoutMs)
  }
  try {
    const mode = db.pragma('journal_mode = WAL', { simple: true })
    if (mode !== 'wal' && path !== ':memory:') {
      throw new OutboxError(`${label}: cannot use WAL mode (SQLite kept journal_mode ${String(mode)}): put the file on a local filesystem`)
    }
    db.pragma(`synchronous = ${resolved.synchronous}`)
    db.pragma('foreign_keys = ON')
    if (path !== ':memory:') checkWholePages(db, path, label)
    migrate(db, migrations, label)
  } catch (error) {
    db.close()
    if (error instanceof GilmsgError) throw error
    throw storageError(label, error, resolved.busyTimeoutMs)
  }
  if (resolved.synchronous !== 'FULL' || path === ':memory:') return { db, label, options: resolved, walSync: undefined }
  try {
    const walSync = WalSync.open(path, label)
    db.pragma('synchronous = NORMAL')
    return { db, label, options: resolved, walSync }
  } catch (error) {
    db.close()
    throw error
  }
}

/**
 * The default file of a store: `$XDG_STATE_HOME/gilmsg/<name>.<kind>.db`, or
 * `~/.local/state/gilmsg/<name>.<kind>.db` when `XDG_STATE_HOME` is unset or
 * not absolute. Characters of `name` outside `[A-Za-z0-9._-]` become `_`.
 * Throws a `GILMSG_USAGE` error for an empty name.
 */
export function defaultStatePath(name: string, kind: 'outbox' | 'inbox', env: NodeJS.ProcessEnv = process.env): string {
  if (typeof name !== 'string' || name === '') throw usage(`${kind} name: expected a non-empty string, got ${JSON.stringify(name)}`)
  const safe = name.replace(/[^A-Za-z0-9._-]/g, '_')
  return join(stateDir(env), `${safe}.${kind}.db`)
}
