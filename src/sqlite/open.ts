import { closeSync, mkdirSync, openSync, statSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import Database from 'better-sqlite3'
import { GilmsgError, InvalidArgumentError, type StoreKind } from '../errors.js'
import { stateDir } from '../util/paths.js'
import { fsError, storageError, storeError, type StoreId } from './errors.js'
import { migrate, type Migration } from './migrate.js'
import { resolveOptions, type ResolvedSqliteOptions, type SqliteStoreOptions } from './options.js'
import { WalSync } from './wal-sync.js'

/** What {@link openSqlite} returns. */
export interface OpenedSqlite {
  readonly db: Database.Database
  /** The store and its path: what errors name. */
  readonly id: StoreId
  readonly options: ResolvedSqliteOptions
  /** With `synchronous: 'FULL'` on a file: syncs the WAL after each commit (the connection itself runs NORMAL). */
  readonly walSync: WalSync | undefined
}

/**
 * Throws a `StoreError` for a file cut inside its last page. A database file is a whole number of pages; one cut inside its last page
 * still opens (SQLite reads the missing bytes as zeros) and would hand back
 * damaged message bodies, so it is refused.
 */
export function checkWholePages(db: Database.Database, id: StoreId): void {
  const pageSize = Number(db.pragma('page_size', { simple: true }))
  const size = statSync(id.path).size
  if (pageSize > 0 && size > pageSize && size % pageSize !== 0) {
    throw storeError(
      id,
      `the file is corrupt: truncated (${size} bytes is not a whole number of ${pageSize}-byte pages): ` +
        'it was damaged (a copy cut short, a full disk): move it aside and restore it from a backup, or start a new one',
    )
  }
}

/**
 * Opens (creating it and its directory if missing) a SQLite file for a store:
 * WAL mode, foreign keys on, `synchronous`, busy timeout and page cache as given, schema
 * migrated to the latest of `migrations` inside a write transaction (so a file
 * another process is writing fails here, after the busy timeout). A new
 * directory gets mode 0700 and a new file 0600. With `synchronous: 'FULL'` on
 * a file, the connection runs `NORMAL` and `walSync` does the sync FULL adds
 * (see `WalSync`). Throws a `StoreError` naming the store, its path and
 * what to do, or an `InvalidArgumentError` for a bad path or options.
 */
export function openSqlite(
  store: StoreKind,
  path: string,
  options: SqliteStoreOptions,
  migrations: readonly Migration[],
): OpenedSqlite {
  if (typeof path !== 'string' || path === '') {
    throw new InvalidArgumentError(`${store} path: expected a non-empty string, got ${JSON.stringify(path)}`)
  }
  const resolved = resolveOptions(store, options)
  const id: StoreId = { store, path }
  if (path !== ':memory:') {
    const dir = dirname(resolve(path))
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 })
    } catch (error) {
      throw fsError(id, `create directory ${dir}`, error)
    }
    try {
      closeSync(openSync(path, 'a', 0o600))
    } catch (error) {
      throw fsError(id, 'create the file', error)
    }
  }
  let db: Database.Database
  try {
    db = new Database(path, { timeout: resolved.busyTimeoutMs })
  } catch (error) {
    throw storageError(id, error, resolved.busyTimeoutMs)
  }
  try {
    const mode = db.pragma('journal_mode = WAL', { simple: true })
    if (mode !== 'wal' && path !== ':memory:') {
      throw storeError(id, `cannot use WAL mode (SQLite kept journal_mode ${String(mode)}): put the file on a local filesystem`)
    }
    db.pragma(`synchronous = ${resolved.synchronous}`)
    // Negative: a size in KiB, not in pages.
    db.pragma(`cache_size = -${resolved.cacheSizeKib}`)
    db.pragma('foreign_keys = ON')
    if (path !== ':memory:') checkWholePages(db, id)
    migrate(db, migrations, id)
  } catch (error) {
    db.close()
    if (error instanceof GilmsgError) throw error
    throw storageError(id, error, resolved.busyTimeoutMs)
  }
  if (resolved.synchronous !== 'FULL' || path === ':memory:') return { db, id, options: resolved, walSync: undefined }
  try {
    const walSync = WalSync.open(id)
    db.pragma('synchronous = NORMAL')
    return { db, id, options: resolved, walSync }
  } catch (error) {
    db.close()
    throw error
  }
}

/**
 * The default file of a store: `<state dir>/<name>.<kind>.db`, the state directory being
 * `$STATE_DIRECTORY` (systemd's `StateDirectory=`), else `$XDG_STATE_HOME/gilmsg`, else
 * `~/.local/state/gilmsg` (see `stateDir`). Characters of `name` outside `[A-Za-z0-9._-]` become `_`.
 * Throws an `InvalidArgumentError` for an empty name.
 */
export function defaultStatePath(name: string, kind: StoreKind, env: NodeJS.ProcessEnv = process.env): string {
  if (typeof name !== 'string' || name === '') {
    throw new InvalidArgumentError(`${kind} name: expected a non-empty string, got ${JSON.stringify(name)}`)
  }
  const safe = name.replace(/[^A-Za-z0-9._-]/g, '_')
  return join(stateDir(env), `${safe}.${kind}.db`)
}
