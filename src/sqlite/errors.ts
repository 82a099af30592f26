import Database from 'better-sqlite3'
import { errorMessage, StoreError, type StoreKind } from '../errors.js'

/** Which store a file holds, and where: what every error about it names. */
export interface StoreId {
  readonly store: StoreKind
  readonly path: string
}

/** `"outbox /path/x.db"`: how messages name a store's file. */
export function storeLabel(id: StoreId): string {
  return `${id.store} ${id.path}`
}

/** A {@link StoreError} about `id`'s file: `"<store> <path>: <message>"`. */
export function storeError(id: StoreId, message: string, cause?: unknown): StoreError {
  return new StoreError(id.store, `${storeLabel(id)}: ${message}`, { path: id.path, cause })
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

/** A {@link StoreError} for a SQLite failure: `"<store> <path>: <what happened and what to do><suffix>"`, with the SQLite error as cause. */
export function storageError(id: StoreId, error: unknown, busyTimeoutMs: number, suffix = ''): StoreError {
  return storeError(id, `${explain(error, busyTimeoutMs)}${suffix}`, error)
}

/** A {@link StoreError} for a failed file system call made to create the file (`what`: "create the file"). */
export function fsError(id: StoreId, what: string, error: unknown): StoreError {
  const raw = (error as { code?: unknown } | null)?.code
  const code = typeof raw === 'string' ? raw : errorMessage(error)
  const hint =
    code === 'EISDIR'
      ? 'the path is a directory; give the path of a file'
      : code === 'ENOTDIR'
        ? 'a component of the path is a file, not a directory'
        : 'check that the directory is writable by this user, or choose another path'
  return storeError(id, `cannot ${what} (${code}): ${hint}`, error)
}
