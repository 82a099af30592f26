import { chmodSync, closeSync, mkdirSync, openSync, writeFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, describe, expect, it } from 'vitest'
import { ErrorCode, StoreError } from '../../../src/errors.js'
import { SqliteInboxStore } from '../../../src/inbox/sqlite.js'
import { SqliteOutboxStore } from '../../../src/outbox/sqlite.js'
import { ackOf, newMessage } from '../../unit/outbox/conformance.js'
import { isRoot, tempDir } from '../../unit/sqlite/helpers.js'

const tmp = tempDir('outbox-faults')
afterAll(() => tmp.remove())

let files = 0
function newPath(name = 'x.outbox.db'): string {
  files += 1
  return join(tmp.dir, String(files), name)
}

describe('SQLite store faults (real files)', () => {
  it('disk full (max_page_count): every write of the failing batch rejects, nothing of it is committed, earlier rows survive', async () => {
    const path = newPath()
    const store = SqliteOutboxStore.open(path)
    const kept = Array.from({ length: 5 }, () => newMessage({ recipients: ['alice', 'bob'] }))
    await Promise.all(kept.map((m) => store.add(m).durable))
    const db = store.database
    db.pragma(`max_page_count = ${String(db.pragma('page_count', { simple: true }))}`)

    const ack = store.recordAck(ackOf(kept[0]!, 'alice')).durable
    const big = Array.from({ length: 20 }, () => newMessage({ body: `{"pad":"${'x'.repeat(20_000)}"}` }))
    const adds = big.map((m) => store.add(m).durable)
    const results = await Promise.allSettled([ack, ...adds])

    expect(results.every((r) => r.status === 'rejected')).toBe(true)
    for (const r of results) {
      const error = (r as PromiseRejectedResult).reason as StoreError
      expect(error).toBeInstanceOf(StoreError)
      expect(error).toMatchObject({ code: ErrorCode.Store, store: 'outbox', path })
      expect(error.message).toContain(`outbox ${path}: disk is full (SQLITE_FULL)`)
      expect(error.message).toContain('nothing in this batch was committed')
      expect((error.cause as { code?: string }).code).toBe('SQLITE_FULL')
    }
    expect(store.stats.failedBatches).toBeGreaterThanOrEqual(1)
    expect(store.recipients(kept[0]!.msgId)[0]?.state).toBe('pending')
    expect(store.get(big[0]!.msgId)).toBeUndefined()
    await store.close()

    const again = SqliteOutboxStore.open(path)
    try {
      expect(again.counts()).toEqual({ pending: 5, acked: 0, expired: 0, rejected: 0 })
      expect(again.list().map((m) => m.msgId).sort()).toEqual(kept.map((m) => m.msgId).sort())
      expect(again.recipients(kept[0]!.msgId).map((r) => r.state)).toEqual(['pending', 'pending'])
      await again.add(big[0]!).durable
      expect(again.get(big[0]!.msgId)?.body).toBe(big[0]!.body)
    } finally {
      await again.close()
    }
  })

  describe('a file another connection is writing to', () => {
    for (const begin of ['BEGIN IMMEDIATE', 'BEGIN EXCLUSIVE']) {
      it(`${begin}: open() and writes fail after busyTimeoutMs with a "locked" error, and work once it is released`, async () => {
        const path = newPath()
        const store = SqliteOutboxStore.open(path, { busyTimeoutMs: 50 })
        const other = new Database(path)
        other.exec(begin)
        try {
          expect(() => SqliteOutboxStore.open(path, { busyTimeoutMs: 50 })).toThrow(StoreError)
          expect(() => SqliteOutboxStore.open(path, { busyTimeoutMs: 50 })).toThrow(
            `outbox ${path}: database is locked by another connection (SQLITE_BUSY after waiting 50 ms)`,
          )
          const m = newMessage()
          const started = Date.now()
          await expect(store.add(m).durable).rejects.toThrow(/locked by another connection .* nothing was written$/)
          expect(Date.now() - started).toBeGreaterThanOrEqual(40)
          expect(() => store.markAttempt(m.msgId, 1)).toThrow(/locked/)
          expect(store.get(m.msgId)).toBeUndefined()
        } finally {
          other.exec('ROLLBACK')
          other.close()
        }
        const m = newMessage()
        await store.add(m).durable
        expect(store.get(m.msgId)?.state).toBe('pending')
        await store.close()
      })
    }

    it('the inbox reports it the same way', async () => {
      const path = newPath('x.inbox.db')
      SqliteInboxStore.open(path).database.close()
      const other = new Database(path)
      other.exec('BEGIN IMMEDIATE')
      try {
        expect(() => SqliteInboxStore.open(path, { busyTimeoutMs: 20 })).toThrow(`inbox ${path}: database is locked by another connection`)
      } finally {
        other.exec('ROLLBACK')
        other.close()
      }
    })
  })

  it('a file that is not a database: "not a SQLite database", naming the path', () => {
    const path = newPath()
    mkdirSync(join(path, '..'), { recursive: true })
    writeFileSync(path, 'this is a text file, not an outbox\n'.repeat(300))
    expect(() => SqliteOutboxStore.open(path)).toThrow(StoreError)
    expect(() => SqliteOutboxStore.open(path)).toThrow(`outbox ${path}: not a SQLite database (SQLITE_NOTADB)`)
    expect(() => SqliteOutboxStore.open(path)).toThrow(/move it aside/)
    expect(() => SqliteInboxStore.open(path)).toThrow(`inbox ${path}: not a SQLite database (SQLITE_NOTADB)`)
  })

  it('a corrupt file: reads and writes fail with "corrupt", naming the path', async () => {
    const path = newPath()
    const store = SqliteOutboxStore.open(path)
    await Promise.all(Array.from({ length: 300 }, () => store.add(newMessage({ body: 'y'.repeat(3000) })).durable))
    await store.close()
    const db = new Database(path)
    db.pragma('wal_checkpoint(TRUNCATE)')
    const pageSize = db.pragma('page_size', { simple: true }) as number
    const pages = db.pragma('page_count', { simple: true }) as number
    db.close()
    const garbage = Buffer.alloc(pageSize * (pages - 2), 0xa5)
    const fd = openSync(path, 'r+')
    writeSync(fd, garbage, 0, garbage.length, pageSize)
    closeSync(fd)

    let opened: SqliteOutboxStore | undefined
    try {
      opened = SqliteOutboxStore.open(path)
      opened.list()
      expect.unreachable('a corrupt file was read without error')
    } catch (error) {
      expect(error).toBeInstanceOf(StoreError)
      expect((error as Error).message).toMatch(new RegExp(`^outbox ${path}: (database file is corrupt \\(SQLITE_CORRUPT|not a SQLite database)`))
    } finally {
      await opened?.close()
    }
  })

  it.skipIf(isRoot)(
    `a read-only directory: a clear error naming the path${isRoot ? ' (skipped: running as root, where chmod does not restrict)' : ''}`,
    () => {
      const dir = join(tmp.dir, 'readonly')
      mkdirSync(dir, { recursive: true })
      chmodSync(dir, 0o500)
      try {
        const path = join(dir, 'x.outbox.db')
        expect(() => SqliteOutboxStore.open(path)).toThrow(StoreError)
        expect(() => SqliteOutboxStore.open(path)).toThrow(`outbox ${path}: cannot create the file (EACCES)`)
      } finally {
        chmodSync(dir, 0o700)
      }
    },
  )

  it.skipIf(isRoot)(
    `an existing file in a read-only directory (no room for -wal): a clear error${isRoot ? ' (skipped: running as root, where chmod does not restrict)' : ''}`,
    async () => {
      const dir = join(tmp.dir, 'readonly-existing')
      const path = join(dir, 'x.outbox.db')
      await SqliteOutboxStore.open(path).close()
      chmodSync(dir, 0o500)
      try {
        expect(() => SqliteOutboxStore.open(path)).toThrow(new RegExp(`^outbox ${path}: .*(read-only|cannot open|writable)`))
      } finally {
        chmodSync(dir, 0o700)
      }
    },
  )
})
