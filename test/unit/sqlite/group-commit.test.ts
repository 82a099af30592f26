import { join } from 'node:path'
import type Database from 'better-sqlite3'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { ClosedError, InvalidArgumentError, StoreError } from '../../../src/errors.js'
import { GroupCommit, type Durability } from '../../../src/sqlite/group-commit.js'
import { openSqlite } from '../../../src/sqlite/open.js'
import type { WalSync } from '../../../src/sqlite/wal-sync.js'
import { tempDir } from './helpers.js'

const tmp = tempDir('group-commit')
afterAll(() => tmp.remove())

let files = 0
const open: { db: Database.Database; walSync: WalSync | undefined }[] = []
afterEach(async () => {
  for (const { db, walSync } of open.splice(0)) {
    await walSync?.close()
    if (db.open) db.close()
  }
})

interface Setup {
  db: Database.Database
  batch: GroupCommit
  insert: (k: string) => void
  count: () => number
}

/** A store file opened FULL (the default): its batches are made durable by the real WalSync unless `durability` replaces it. */
function setup(maxOps = 512, durability?: Durability): Setup {
  files += 1
  const { db, id, walSync } = openSqlite('outbox', join(tmp.dir, `${files}.db`), {}, [
    { version: 1, up: (d) => d.exec('CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER)') },
  ])
  open.push({ db, walSync })
  const ins = db.prepare('INSERT INTO kv (k, v) VALUES (?, 1)')
  const cnt = db.prepare('SELECT COUNT(*) FROM kv').pluck()
  const d = durability ?? walSync
  return {
    db,
    batch: new GroupCommit(db, id, { maxOps, busyTimeoutMs: 10, ...(d ? { durability: d } : {}) }),
    insert: (k) => void ins.run(k),
    count: () => cnt.get() as number,
  }
}

/** A Durability whose syncs the test resolves or fails by hand. */
function manualDurability(): { durability: Durability; pending: { resolve: () => void; reject: (e: Error) => void }[] } {
  const pending: { resolve: () => void; reject: (e: Error) => void }[] = []
  return { pending, durability: { sync: () => new Promise<void>((resolve, reject) => pending.push({ resolve, reject })) } }
}

describe('GroupCommit', () => {
  it('runs writes at once in one transaction and settles them after its commit', async () => {
    const { db, batch, insert, count } = setup()
    const settled: string[] = []
    const a = batch.run(() => (insert('a'), 'A')).then((v) => settled.push(v))
    const b = batch.run(() => (insert('b'), 'B')).then((v) => settled.push(v))
    expect(count()).toBe(2)
    expect(db.inTransaction).toBe(true)
    await Promise.resolve()
    expect(settled).toEqual([])
    await Promise.all([a, b])
    expect(settled).toEqual(['A', 'B'])
    expect(db.inTransaction).toBe(false)
    expect(batch.stats).toEqual({ commits: 1, ops: 2, failedBatches: 0, largestBatch: 2, syncs: 1 })
  })

  it('a constraint error rolls back and rejects that write only', async () => {
    const { batch, insert, count } = setup()
    const results = await Promise.allSettled([batch.run(() => insert('a')), batch.run(() => insert('a')), batch.run(() => insert('b'))])
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled'])
    expect(((results[1] as PromiseRejectedResult).reason as { code: string }).code).toBe('SQLITE_CONSTRAINT_PRIMARYKEY')
    expect(count()).toBe(2)
    expect(batch.stats.commits).toBe(1)
  })

  it('a GilmsgError thrown before any change rejects that write only', async () => {
    const { batch, insert, count } = setup()
    const refused = new InvalidArgumentError('refused')
    const results = await Promise.allSettled([
      batch.run(() => insert('a')),
      batch.run(() => {
        throw refused
      }),
      batch.run(() => insert('b')),
    ])
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled'])
    expect(results[1]).toEqual({ status: 'rejected', reason: refused })
    expect(count()).toBe(2)
  })

  it('a write that throws after changing rows fails the whole batch (nothing partial is committed)', async () => {
    const { batch, insert, count } = setup()
    const a = batch.run(() => insert('a'))
    const half = batch.run(() => {
      insert('b')
      insert('a')
    })
    await expect(a).rejects.toThrow(/UNIQUE constraint failed.*; nothing in this batch was committed$/)
    await expect(half).rejects.toBeInstanceOf(StoreError)
    expect(count()).toBe(0)
    expect(batch.stats.failedBatches).toBe(1)
  })

  it('any other error fails the whole batch: every write rejects, nothing is committed', async () => {
    const { batch, insert, count } = setup()
    const a = batch.run(() => insert('a'))
    const boom = batch.run(() => {
      throw new TypeError('bug')
    })
    const after = batch.run(() => insert('c'))
    await expect(a).rejects.toThrow(/: bug; nothing in this batch was committed$/)
    await expect(boom).rejects.toBeInstanceOf(StoreError)
    await expect(after).resolves.toBeUndefined()
    expect(count()).toBe(1)
    expect(batch.stats).toMatchObject({ commits: 1, failedBatches: 1 })
  })

  it('commits as soon as a batch holds maxOps writes', async () => {
    const { db, batch, insert } = setup(3)
    const ps = ['a', 'b', 'c', 'd'].map((k) => batch.run(() => insert(k)))
    expect(batch.stats.commits).toBe(1)
    expect(db.inTransaction).toBe(true)
    await Promise.all(ps)
    expect(batch.stats).toEqual({ commits: 2, ops: 4, failedBatches: 0, largestBatch: 3, syncs: 2 })
  })

  it('runDetached joins the batch and throws its own error synchronously', async () => {
    const { batch, insert, count } = setup()
    batch.runDetached(() => insert('a'))
    expect(() => batch.runDetached(() => insert('a'))).toThrow(/UNIQUE constraint failed/)
    await batch.run(() => insert('b'))
    expect(count()).toBe(2)
    expect(batch.stats.commits).toBe(1)
  })

  it('a failed COMMIT rejects every write of the batch', async () => {
    const { db, batch, insert, count } = setup()
    const a = batch.run(() => insert('a'))
    db.exec('ROLLBACK') // the batch's transaction ends under its feet: its own COMMIT then fails
    batch.flush()
    await expect(a).rejects.toThrow(/nothing in this batch was committed/)
    expect(batch.stats.failedBatches).toBe(1)
    expect(count()).toBe(0)
  })

  it('close() commits the open batch; later writes reject with ClosedError; flush() is then a no-op', async () => {
    const { batch, insert, count } = setup()
    const a = batch.run(() => insert('a'))
    batch.close()
    batch.close()
    await a
    expect(count()).toBe(1)
    await expect(batch.run(() => insert('b'))).rejects.toBeInstanceOf(ClosedError)
    expect(() => batch.runDetached(() => insert('b'))).toThrow(ClosedError)
    expect(() => batch.flush()).not.toThrow()
  })

  it('a FULL store commits without fsync on the event loop and syncs its WAL once per batch', () => {
    const { db } = setup()
    expect(db.pragma('synchronous', { simple: true })).toBe(1) // NORMAL: the WAL sync is WalSync's job
    const entry = open.at(-1)
    expect(entry?.walSync).toBeDefined()
  })

  it('with a Durability, writes settle only after the sync that follows their commit, in order', async () => {
    const { durability, pending } = manualDurability()
    const { db, batch, insert, count } = setup(512, durability)
    const settled: string[] = []
    const a = batch.run(() => (insert('a'), 'A')).then((v) => settled.push(v))
    batch.flush()
    expect(db.inTransaction).toBe(false)
    expect(count()).toBe(1) // committed and visible to reads...
    const b = batch.run(() => (insert('b'), 'B')).then((v) => settled.push(v))
    batch.flush()
    await new Promise((r) => setImmediate(r))
    expect(settled).toEqual([]) // ...but not settled before its sync
    expect(pending).toHaveLength(2)
    pending[0]?.resolve()
    await a
    expect(settled).toEqual(['A'])
    pending[1]?.resolve()
    await b
    expect(settled).toEqual(['A', 'B'])
  })

  it('runWithCommit: committed resolves right after the COMMIT, before the sync; it rejects for a refused write or a failed batch', async () => {
    const { durability, pending } = manualDurability()
    const { batch, insert, count } = setup(512, durability)
    const events: string[] = []
    const a = batch.runWithCommit(() => (insert('a'), 'A'))
    void a.committed.then((v) => events.push(`committed ${v} (${count()} rows)`))
    const settledA = a.durable.then(() => events.push('settled a'))
    const dup = batch.runWithCommit(() => insert('a'))
    const dupCommitted = dup.committed.then(
      () => events.push('committed dup'),
      () => events.push('dup not committed'),
    )
    const dupSettled = dup.durable.catch(() => events.push('refused dup'))
    expect(events).toEqual([])
    batch.flush()
    await new Promise((r) => setImmediate(r))
    expect(events).toEqual(['committed A (1 rows)', 'dup not committed'])
    pending[0]?.resolve()
    await Promise.all([settledA, dupCommitted, dupSettled])
    expect(events).toEqual(['committed A (1 rows)', 'dup not committed', 'settled a', 'refused dup'])

    // A sync that fails rejects durable only: the write was committed.
    const c = batch.runWithCommit(() => (insert('c'), 'C'))
    batch.flush()
    await expect(c.committed).resolves.toBe('C')
    pending[1]?.reject(new Error('fdatasync failed: EIO'))
    await expect(c.durable).rejects.toThrow(/EIO/)

    // A batch whose COMMIT fails: nobody is told it committed.
    const failing = setup(512, durability)
    failing.db.exec('CREATE TRIGGER no_commit BEFORE INSERT ON kv WHEN NEW.k = \'poison\' BEGIN SELECT RAISE(FAIL, \'disk I/O error\'); END')
    const b = failing.batch.runWithCommit(() => failing.insert('b'))
    const poisoned = failing.batch.run(() => {
      failing.insert('c')
      failing.insert('poison')
    })
    await expect(poisoned).rejects.toThrow()
    await expect(b.committed).rejects.toThrow(/nothing in this batch was committed/)
    await expect(b.durable).rejects.toThrow(/nothing in this batch was committed/)
  })

  it('a failed sync rejects the writes of its batch (its own error kept) and close() still resolves', async () => {
    const { durability, pending } = manualDurability()
    const { batch, insert } = setup(512, durability)
    const a = batch.run(() => insert('a'))
    const dup = batch.run(() => insert('a'))
    const closed = batch.close()
    pending[0]?.reject(new Error('fdatasync failed: EIO'))
    await expect(a).rejects.toThrow(/EIO/)
    await expect(dup).rejects.toThrow(/UNIQUE constraint failed/)
    await expect(closed).resolves.toBeUndefined()
    expect(batch.stats.failedBatches).toBe(1)
  })

  it('no sync for a batch that changed nothing (it settles after the syncs before it) or that nobody awaits', async () => {
    const { durability, pending } = manualDurability()
    const { db, batch, insert } = setup(512, durability)
    const count = db.prepare('SELECT COUNT(*) FROM kv').pluck()
    const a = batch.run(() => insert('a'))
    batch.flush()
    expect(pending).toHaveLength(1)
    let readSettled = false
    const read = batch.run(() => count.get()).then((n) => ((readSettled = true), n)) // a write that changes nothing
    batch.flush()
    batch.runDetached(() => insert('b')) // fire and forget
    batch.flush()
    expect(pending).toHaveLength(1)
    expect(batch.stats).toMatchObject({ commits: 3, syncs: 1 })
    await new Promise((r) => setImmediate(r))
    expect(readSettled).toBe(false) // it read what the first batch wrote, not durable yet
    pending[0]?.resolve()
    await a
    await expect(read).resolves.toBe(1)
  })

  it('close() resolves only once the last batch is durable', async () => {
    const { durability, pending } = manualDurability()
    const { batch, insert } = setup(512, durability)
    void batch.run(() => insert('a'))
    let closed = false
    const c = batch.close().then(() => (closed = true))
    await new Promise((r) => setImmediate(r))
    expect(closed).toBe(false)
    pending[0]?.resolve()
    await c
    expect(closed).toBe(true)
  })
})
