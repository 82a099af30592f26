import { statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, describe, expect, it } from 'vitest'
import { ErrorCode } from '../../../src/errors.js'
import { OutboxError } from '../../../src/outbox/errors.js'
import { defaultStatePath, SqliteOutboxStore } from '../../../src/outbox/sqlite.js'
import type { SqliteStoreOptions } from '../../../src/outbox/sqlite.js'
import { ackOf, describeOutboxConformance, newMessage } from './conformance.js'
import { tempDir } from './helpers.js'

const tmp = tempDir('outbox')
afterAll(() => tmp.remove())

let files = 0
function newPath(): string {
  files += 1
  return join(tmp.dir, `store-${files}`, 'test.outbox.db')
}

function sqliteUnderTest(options: SqliteStoreOptions) {
  return async () => {
    const path = newPath()
    return { store: SqliteOutboxStore.open(path, options), reopen: async () => SqliteOutboxStore.open(path, options) }
  }
}

describeOutboxConformance('sqlite (synchronous FULL, default batches)', sqliteUnderTest({}))
describeOutboxConformance('sqlite (synchronous NORMAL, batches of at most 3)', sqliteUnderTest({ synchronous: 'NORMAL', maxBatchOps: 3 }))

describe('SqliteOutboxStore', () => {
  it('commits 1,000 concurrent adds in a few transactions (group commit)', async () => {
    const store = SqliteOutboxStore.open(newPath())
    try {
      const ms = Array.from({ length: 1000 }, () => newMessage())
      await Promise.all(ms.map((m) => store.add(m)))
      const stats = store.stats
      expect(stats.ops).toBe(1000)
      expect(stats.commits).toBeLessThanOrEqual(3)
      expect(stats.largestBatch).toBe(512)
      expect(stats.failedBatches).toBe(0)
      expect(store.counts().pending).toBe(1000)
    } finally {
      await store.close()
    }
  })

  it('commits once per event-loop turn when writes are awaited one by one; markAttempt rides along', async () => {
    const store = SqliteOutboxStore.open(newPath())
    try {
      const m = newMessage()
      await store.add(m)
      await store.recordAck(ackOf(m, 'alice'))
      store.markAttempt(m.msgId, 1)
      await store.expire(m.msgId, 2)
      expect(store.stats).toEqual({ commits: 3, ops: 4, failedBatches: 0, largestBatch: 2 })
    } finally {
      await store.close()
    }
  })

  it('an awaited write is committed: another connection reads it', async () => {
    const path = newPath()
    const store = SqliteOutboxStore.open(path)
    const m = newMessage()
    const pending = store.add(m)
    const other = new Database(path, { readonly: true })
    try {
      const count = other.prepare('SELECT COUNT(*) FROM messages WHERE msg_id = ?').pluck()
      expect(count.get(m.msgId)).toBe(0)
      await pending
      expect(count.get(m.msgId)).toBe(1)
    } finally {
      other.close()
      await store.close()
    }
  })

  it('close() returns the same promise every time', async () => {
    const store = SqliteOutboxStore.open(newPath())
    const first = store.close()
    expect(store.close()).toBe(first)
    await first
  })

  it('creates the file (0600) and missing directories (0700), in WAL mode with the schema', async () => {
    const path = join(tmp.dir, 'deep', 'er', 'x.outbox.db')
    const store = SqliteOutboxStore.open(path, { synchronous: 'NORMAL' })
    try {
      expect(statSync(join(tmp.dir, 'deep', 'er')).mode & 0o777).toBe(0o700)
      expect(statSync(path).mode & 0o777).toBe(0o600)
      const db = store.database
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal')
      expect(db.pragma('foreign_keys', { simple: true })).toBe(1)
      expect(db.pragma('synchronous', { simple: true })).toBe(1)
      expect(db.pragma('user_version', { simple: true })).toBe(1)
      const tables = db.prepare(`SELECT name FROM sqlite_schema WHERE type IN ('table', 'index') ORDER BY name`).pluck().all()
      expect(tables).toEqual(
        expect.arrayContaining(['bodies', 'messages', 'messages_created', 'messages_deadline', 'messages_due', 'messages_finished', 'recipients']),
      )
    } finally {
      await store.close()
    }
  })

  it('defaults to synchronous FULL', async () => {
    const store = SqliteOutboxStore.open(newPath())
    expect(store.database.pragma('synchronous', { simple: true })).toBe(2)
    await store.close()
  })

  it('the hot queries use the partial indexes', async () => {
    const store = SqliteOutboxStore.open(newPath())
    try {
      const plan = (sql: string): string =>
        store.database
          .prepare(`EXPLAIN QUERY PLAN ${sql}`)
          .all()
          .map((r) => (r as { detail: string }).detail)
          .join('; ')
      expect(plan(`SELECT msg_id FROM messages WHERE state = 'pending' AND next_attempt_at <= 5 ORDER BY next_attempt_at, msg_id LIMIT 10`)).toMatch(
        /messages_due/,
      )
      expect(plan(`SELECT MIN(next_attempt_at) FROM messages WHERE state = 'pending'`)).toMatch(/messages_due/)
      expect(plan(`SELECT msg_id FROM messages WHERE state = 'pending' AND deadline <= 5 ORDER BY deadline, msg_id`)).toMatch(/messages_deadline/)
      expect(plan(`DELETE FROM messages WHERE state != 'pending' AND finished_at < 5`)).toMatch(/messages_finished/)
    } finally {
      await store.close()
    }
  })

  it('deletes recipients and bodies with their message (foreign keys cascade)', async () => {
    const store = SqliteOutboxStore.open(newPath())
    try {
      const m = newMessage({ recipients: ['alice'] })
      await store.add(m)
      await store.recordAck(ackOf(m, 'alice'))
      await store.purge(Number.MAX_SAFE_INTEGER)
      const db = store.database
      expect(db.prepare('SELECT COUNT(*) FROM bodies').pluck().get()).toBe(0)
      expect(db.prepare('SELECT COUNT(*) FROM recipients').pluck().get()).toBe(0)
    } finally {
      await store.close()
    }
  })

  it('refuses a file with a newer schema, saying so', () => {
    const path = newPath()
    SqliteOutboxStore.open(path).database.close()
    const db = new Database(path)
    db.pragma('user_version = 99')
    db.close()
    expect(() => SqliteOutboxStore.open(path)).toThrow(/schema version 99 is newer than this gilmsg supports \(1\)/)
  })

  it('validates options: expected X, got Y', () => {
    expect(() => SqliteOutboxStore.open(newPath(), { synchronous: 'full' as never })).toThrow(
      /synchronous: expected one of FULL, NORMAL, OFF, got "full"/,
    )
    expect(() => SqliteOutboxStore.open(newPath(), { busyTimeoutMs: -1 })).toThrow(/busyTimeoutMs: expected a non-negative integer, got -1/)
    expect(() => SqliteOutboxStore.open(newPath(), { maxBatchOps: 0 })).toThrow(/maxBatchOps: expected a positive integer, got 0/)
    expect(() => SqliteOutboxStore.open('')).toThrow(expect.objectContaining({ code: ErrorCode.Usage }))
  })

  it('names the path when it is a directory', () => {
    expect(() => SqliteOutboxStore.open(tmp.dir)).toThrow(OutboxError)
    expect(() => SqliteOutboxStore.open(tmp.dir)).toThrow(new RegExp(`outbox ${tmp.dir}: cannot create the file \\(EISDIR\\): the path is a directory`))
  })

  it('names the path when a parent is a file', () => {
    const file = join(tmp.dir, 'plain-file')
    writeFileSync(file, 'x')
    expect(() => SqliteOutboxStore.open(join(file, 'x.db'))).toThrow(/cannot create directory .*plain-file \((ENOTDIR|EEXIST)\)/)
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

  it('replaces characters outside [A-Za-z0-9._-] and refuses an empty name', () => {
    expect(defaultStatePath('../evil/näme x', 'outbox', { HOME: '/h' })).toBe('/h/.local/state/gilmsg/.._evil_n_me_x.outbox.db')
    expect(() => defaultStatePath('', 'outbox', { HOME: '/h' })).toThrow(expect.objectContaining({ code: ErrorCode.Usage }))
  })
})
