import type Database from 'better-sqlite3'
import { storeError, type StoreId } from './errors.js'

/** One step of a schema: `up` runs inside the migration transaction; `version` goes into `PRAGMA user_version`. */
export interface Migration {
  readonly version: number
  up(db: Database.Database): void
}

/** The newest version among `migrations` (0 for none). */
export function latestVersion(migrations: readonly Migration[]): number {
  return migrations.reduce((v, m) => Math.max(v, m.version), 0)
}

/**
 * Brings `db` to the latest version of `migrations`, in one write
 * transaction (`BEGIN IMMEDIATE`: a file another process is writing fails
 * here, after the busy timeout): every step newer than `PRAGMA user_version`
 * runs in order, then the version is set. Throws a `StoreError` for a file
 * whose schema is newer than the latest step; a failed step rolls back all.
 */
export function migrate(db: Database.Database, migrations: readonly Migration[], id: StoreId): void {
  const latest = latestVersion(migrations)
  db.exec('BEGIN IMMEDIATE')
  try {
    const current = db.pragma('user_version', { simple: true }) as number
    if (current > latest) {
      throw storeError(id, `schema version ${current} is newer than this gilmsg supports (${latest}): upgrade gilmsg, or move the file aside`)
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
