import type Database from 'better-sqlite3'
import { ClosedError, GilmsgError, type StoreKind } from '../errors.js'
import { storageError, storeLabel, type StoreId } from './errors.js'
import { GroupCommit } from './group-commit.js'
import type { Migration } from './migrate.js'
import { openSqlite } from './open.js'
import type { SqliteStoreOptions } from './options.js'
import type { WalSync } from './wal-sync.js'

/**
 * What the SQLite stores share: an open connection (see `openSqlite`), its
 * group commit, the closed check and an idempotent close. Internal to the
 * stores.
 */
export class SqliteFile {
  readonly db: Database.Database
  /** The store and its path, which errors name. */
  readonly id: StoreId
  /** "outbox /path/x.db": how messages name the store. */
  readonly label: string
  readonly batch: GroupCommit
  readonly #busyTimeoutMs: number
  readonly #walSync: WalSync | undefined
  #closing: Promise<void> | undefined

  private constructor(
    db: Database.Database,
    id: StoreId,
    options: { readonly maxBatchOps: number; readonly busyTimeoutMs: number },
    walSync: WalSync | undefined,
  ) {
    this.db = db
    this.id = id
    this.label = storeLabel(id)
    this.#busyTimeoutMs = options.busyTimeoutMs
    this.#walSync = walSync
    this.batch = new GroupCommit(db, id, {
      maxOps: options.maxBatchOps,
      busyTimeoutMs: options.busyTimeoutMs,
      ...(walSync ? { durability: walSync } : {}),
    })
  }

  /**
   * Opens the file and prepares the store's statements with `prepare`; closes
   * the file again if that throws. Throws a `StoreError` or an
   * `InvalidArgumentError` (see `openSqlite`).
   */
  static open<S>(
    store: StoreKind,
    path: string,
    options: SqliteStoreOptions,
    migrations: readonly Migration[],
    prepare: (db: Database.Database) => S,
  ): { readonly file: SqliteFile; readonly statements: S } {
    const { db, id, options: resolved, walSync } = openSqlite(store, path, options, migrations)
    try {
      return { file: new SqliteFile(db, id, resolved, walSync), statements: prepare(db) }
    } catch (error) {
      db.close()
      void walSync?.close()
      throw storageError(id, error, resolved.busyTimeoutMs)
    }
  }

  /**
   * Runs a synchronous read. Throws a `ClosedError` once {@link close} was
   * called, a `GilmsgError` thrown by `read` as is, and any SQLite failure as
   * a `StoreError` naming the store and its file.
   */
  read<T>(read: () => T): T {
    if (this.#closing !== undefined) throw new ClosedError(this.label)
    try {
      return read()
    } catch (error) {
      if (error instanceof GilmsgError) throw error
      throw storageError(this.id, error, this.#busyTimeoutMs)
    }
  }

  /** Commits the current batch, waits until it is durable, then closes the connection. Idempotent: the same promise every time. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.batch.close()
      await this.#walSync?.close()
      try {
        this.db.close()
      } catch (error) {
        throw storageError(this.id, error, this.#busyTimeoutMs)
      }
    })()
    return this.#closing
  }
}
