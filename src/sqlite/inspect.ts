import Database from 'better-sqlite3'
import { GilmsgError, type StoreKind } from '../errors.js'
import { storageError, type StoreId } from './errors.js'
import { checkWholePages } from './open.js'

/** How long {@link inspectSqlite} waits for a lock by default: 2 s. */
export const DEFAULT_INSPECT_TIMEOUT_MS = 2000

/** What {@link inspectSqlite} found in a store's file. */
export interface SqliteInspection<T> {
  /** `PRAGMA user_version`. */
  readonly schemaVersion: number
  /** The newest schema version this gilmsg writes. */
  readonly latestVersion: number
  /** What `PRAGMA quick_check` reported; empty when it said "ok". */
  readonly problems: readonly string[]
  /** What `read` returned, or undefined when the file has problems or another schema version. */
  readonly details: T | undefined
}

/**
 * Looks into an existing store file without changing it: opened read-only (never created,
 * never migrated, no write lock), `PRAGMA quick_check`, the schema version, then `read`
 * when the file is sound and at `latest`. Throws a `StoreError` naming the store and the
 * file when it is missing, cannot be opened or read, or is cut inside a page.
 */
export function inspectSqlite<T>(
  store: StoreKind,
  path: string,
  latest: number,
  read: (db: Database.Database) => T,
  timeoutMs = DEFAULT_INSPECT_TIMEOUT_MS,
): SqliteInspection<T> {
  const id: StoreId = { store, path }
  let db: Database.Database
  try {
    db = new Database(path, { readonly: true, fileMustExist: true, timeout: timeoutMs })
  } catch (error) {
    throw storageError(id, error, timeoutMs)
  }
  try {
    checkWholePages(db, id)
    const rows = db.pragma('quick_check') as { quick_check: string }[]
    const problems = rows.map((r) => r.quick_check).filter((r) => r !== 'ok')
    const schemaVersion = db.pragma('user_version', { simple: true }) as number
    const details = problems.length === 0 && schemaVersion === latest ? read(db) : undefined
    return { schemaVersion, latestVersion: latest, problems, details }
  } catch (error) {
    if (error instanceof GilmsgError) throw error
    throw storageError(id, error, timeoutMs)
  } finally {
    db.close()
  }
}
