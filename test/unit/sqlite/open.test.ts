import { statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { ErrorCode, StoreError, type StoreKind } from '../../../src/errors.js'
import * as gilmsg from '../../../src/index.js'
import type { Migration } from '../../../src/sqlite/migrate.js'
import { defaultStatePath, openSqlite, type OpenedSqlite } from '../../../src/sqlite/open.js'
import { DEFAULT_CACHE_SIZE_KIB, type SqliteStoreOptions } from '../../../src/sqlite/options.js'
import { DEFAULT_SQLITE_CACHE_SIZE_KIB } from '../../../src/config/defaults.js'
import { tempDir } from './helpers.js'

const tmp = tempDir('sqlite-open')
afterAll(() => tmp.remove())

const opened: OpenedSqlite[] = []
afterEach(async () => {
  for (const { db, walSync } of opened.splice(0)) {
    await walSync?.close()
    if (db.open) db.close()
  }
})

let files = 0
function newPath(): string {
  files += 1
  return join(tmp.dir, `store-${files}`, 'test.db')
}

const MIGRATIONS: readonly Migration[] = [
  { version: 1, up: (db) => db.exec('CREATE TABLE kv (k TEXT PRIMARY KEY)') },
  { version: 2, up: (db) => db.exec('ALTER TABLE kv ADD COLUMN v INTEGER') },
]

function open(store: StoreKind, path: string, options: SqliteStoreOptions = {}, migrations = MIGRATIONS): OpenedSqlite {
  const o = openSqlite(store, path, options, migrations)
  opened.push(o)
  return o
}

describe.each(['outbox', 'inbox'] as const)('openSqlite for an %s', (store) => {
  it('creates the file (0600) and missing directories (0700), in WAL mode, foreign keys on, migrated to the latest version', () => {
    const path = join(tmp.dir, store, 'deep', 'er', 'x.db')
    const { db, id } = open(store, path, { synchronous: 'NORMAL' })
    expect(id).toEqual({ store, path })
    expect(statSync(join(tmp.dir, store, 'deep', 'er')).mode & 0o777).toBe(0o700)
    expect(statSync(path).mode & 0o777).toBe(0o600)
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal')
    expect(db.pragma('foreign_keys', { simple: true })).toBe(1)
    expect(db.pragma('synchronous', { simple: true })).toBe(1)
    expect(db.pragma('user_version', { simple: true })).toBe(2)
    expect(db.prepare('SELECT name FROM pragma_table_info(?) ORDER BY cid').pluck().all('kv')).toEqual(['k', 'v'])
    expect(db.pragma('cache_size', { simple: true }), 'the default page cache, in KiB (negative)').toBe(-DEFAULT_CACHE_SIZE_KIB)
  })

  it('sizes the page cache as cacheSizeKib says (default 2 MiB, from config/defaults.ts)', () => {
    expect(DEFAULT_CACHE_SIZE_KIB).toBe(DEFAULT_SQLITE_CACHE_SIZE_KIB)
    expect(DEFAULT_CACHE_SIZE_KIB).toBe(2048)
    const { db } = open(store, newPath(), { cacheSizeKib: 1024 })
    expect(db.pragma('cache_size', { simple: true })).toBe(-1024)
  })

  it('runs only the steps newer than the file, in order', () => {
    const path = newPath()
    open(store, path, { synchronous: 'OFF' }, MIGRATIONS.slice(0, 1)).db.close()
    const { db } = open(store, path, { synchronous: 'OFF' }, [...MIGRATIONS].reverse())
    expect(db.pragma('user_version', { simple: true })).toBe(2)
    expect(db.prepare('SELECT name FROM pragma_table_info(?) ORDER BY cid').pluck().all('kv')).toEqual(['k', 'v'])
  })

  it('refuses a file with a newer schema, saying so', () => {
    const path = newPath()
    open(store, path).db.close()
    const db = new Database(path)
    db.pragma('user_version = 99')
    db.close()
    expect(() => open(store, path)).toThrow(/schema version 99 is newer than this gilmsg supports \(2\)/)
    expect(() => open(store, path)).toThrow(expect.objectContaining({ code: ErrorCode.Store, store, path }))
  })

  it('validates options: expected X, got Y', () => {
    expect(() => open(store, newPath(), { synchronous: 'full' as never })).toThrow(
      new RegExp(`^${store} option synchronous: expected one of FULL, NORMAL, OFF, got "full"`),
    )
    expect(() => open(store, newPath(), { busyTimeoutMs: -1 })).toThrow(/busyTimeoutMs: expected a non-negative integer, got -1/)
    expect(() => open(store, newPath(), { maxBatchOps: 0 })).toThrow(/maxBatchOps: expected a positive integer, got 0/)
    expect(() => open(store, newPath(), { maxBatchOps: 0 })).toThrow(expect.objectContaining({ code: ErrorCode.InvalidArgument }))
    expect(() => open(store, newPath(), { cacheSizeKib: 0 })).toThrow(/cacheSizeKib: expected a positive integer \(KiB\), got 0/)
    expect(() => open(store, newPath(), { cacheSizeKib: 1.5 })).toThrow(/cacheSizeKib: expected a positive integer \(KiB\), got 1.5/)
    expect(() => open(store, '')).toThrow(expect.objectContaining({ code: ErrorCode.InvalidArgument }))
  })

  it('names the store and the path when it is a directory', () => {
    expect(() => open(store, tmp.dir)).toThrow(StoreError)
    expect(() => open(store, tmp.dir)).toThrow(new RegExp(`^${store} ${tmp.dir}: cannot create the file \\(EISDIR\\): the path is a directory`))
    expect(() => open(store, tmp.dir)).toThrow(expect.objectContaining({ code: ErrorCode.Store, store, path: tmp.dir }))
  })

  it('names the path when a parent is a file', () => {
    const file = join(tmp.dir, `plain-file-${store}`)
    writeFileSync(file, 'x')
    expect(() => open(store, join(file, 'x.db'))).toThrow(/cannot create directory .*plain-file-\w+ \((ENOTDIR|EEXIST)\)/)
  })
})

describe('StoreError in the public API', () => {
  it('is exported; OutboxError (deprecated) is the same class and ErrorCode.Outbox the same code, for one release', () => {
    expect(gilmsg.StoreError).toBe(StoreError)
    expect(gilmsg.OutboxError).toBe(StoreError)
    expect(gilmsg.ErrorCode.Outbox).toBe(gilmsg.ErrorCode.Store)
    const e = new StoreError('inbox', 'inbox x.db: full', { path: 'x.db' })
    expect(e).toBeInstanceOf(gilmsg.OutboxError)
    expect(e).toBeInstanceOf(gilmsg.GilmsgError)
    expect(e).toMatchObject({ name: 'StoreError', code: 'GILMSG_STORE', store: 'inbox', path: 'x.db' })
  })
})

describe('defaultStatePath', () => {
  it('uses $XDG_STATE_HOME/gilmsg/<name>.<kind>.db', () => {
    expect(defaultStatePath('pub-1', 'outbox', { XDG_STATE_HOME: '/var/state', HOME: '/home/u' })).toBe('/var/state/gilmsg/pub-1.outbox.db')
    expect(defaultStatePath('pub-1', 'inbox', { XDG_STATE_HOME: '/var/state' })).toBe('/var/state/gilmsg/pub-1.inbox.db')
  })

  it('falls back to ~/.local/state when XDG_STATE_HOME is unset, empty or relative', () => {
    expect(defaultStatePath('a', 'outbox', { HOME: '/home/u' })).toBe('/home/u/.local/state/gilmsg/a.outbox.db')
    expect(defaultStatePath('a', 'outbox', { HOME: '/home/u', XDG_STATE_HOME: '' })).toBe('/home/u/.local/state/gilmsg/a.outbox.db')
    expect(defaultStatePath('a', 'outbox', { HOME: '/home/u', XDG_STATE_HOME: 'rel' })).toBe('/home/u/.local/state/gilmsg/a.outbox.db')
  })

  it('uses $STATE_DIRECTORY (systemd StateDirectory=) first: its first entry, if absolute', () => {
    const env = { STATE_DIRECTORY: '/var/lib/gilmsg', XDG_STATE_HOME: '/var/state', HOME: '/home/u' }
    expect(defaultStatePath('agent-1', 'outbox', env)).toBe('/var/lib/gilmsg/agent-1.outbox.db')
    expect(defaultStatePath('a', 'inbox', { STATE_DIRECTORY: '/var/lib/gilmsg:/var/lib/other' })).toBe('/var/lib/gilmsg/a.inbox.db')
    expect(defaultStatePath('a', 'outbox', { STATE_DIRECTORY: 'relative', XDG_STATE_HOME: '/var/state' })).toBe('/var/state/gilmsg/a.outbox.db')
    expect(defaultStatePath('a', 'outbox', { STATE_DIRECTORY: '', HOME: '/home/u' })).toBe('/home/u/.local/state/gilmsg/a.outbox.db')
  })

  it('replaces characters outside [A-Za-z0-9._-] and refuses an empty name', () => {
    expect(defaultStatePath('../evil/näme x', 'outbox', { HOME: '/h' })).toBe('/h/.local/state/gilmsg/.._evil_n_me_x.outbox.db')
    expect(() => defaultStatePath('', 'outbox', { HOME: '/h' })).toThrow(expect.objectContaining({ code: ErrorCode.InvalidArgument }))
  })
})
