import { createHash } from 'node:crypto'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import { ContentIds, contentHash } from '../../../src/sqlite/content-ids.js'
import { GroupCommit } from '../../../src/sqlite/group-commit.js'

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex')

describe('contentHash (stored on disk: its inputs must never change)', () => {
  it('one string: the SHA-256 of its UTF-8 bytes', () => {
    expect(contentHash(['{"ack_msg_id":"é"}']).toString('hex')).toBe(sha256('{"ack_msg_id":"é"}'))
  })

  it('a tuple: each part length-prefixed in bytes, `-;` for null', () => {
    expect(contentHash(['topic', 'é', null]).toString('hex')).toBe(sha256('5;topic2;é-;'))
  })

  it('no two different tuples hash alike: split points, null and empty strings differ', () => {
    const tuples = [['ab', 'c'], ['a', 'bc'], [null, ''], ['', null], [null, null], ['', ''], ['-;', null], [null, '-;']]
    const hashes = new Set(tuples.map((t) => contentHash(t).toString('hex')))
    expect(hashes.size).toBe(tuples.length)
  })
})

describe('ContentIds', () => {
  const dbs: Database.Database[] = []
  afterEach(() => {
    for (const db of dbs.splice(0)) db.close()
  })

  function setup() {
    const db = new Database(':memory:')
    dbs.push(db)
    db.exec('CREATE TABLE blobs (id INTEGER PRIMARY KEY, hash BLOB UNIQUE NOT NULL, topic TEXT, body TEXT)')
    const batch = new GroupCommit(db, { store: 'inbox', path: ':memory:' }, { maxOps: 512, busyTimeoutMs: 10 })
    const ids = new ContentIds(
      batch,
      db.prepare<[Buffer], number>('SELECT id FROM blobs WHERE hash = ?').pluck(),
      db.prepare<unknown[]>('INSERT INTO blobs (hash, topic, body) VALUES (?, ?, ?)'),
    )
    const rows = () => db.prepare('SELECT COUNT(*) FROM blobs').pluck().get() as number
    return { db, batch, ids, rows }
  }

  it('stores each distinct value once, across batches, and returns its id', async () => {
    const { batch, ids, rows } = setup()
    const [a, a2, b] = await batch.run(() => [ids.idOf(['t', 'x']), ids.idOf(['t', 'x']), ids.idOf(['t', 'y'])])
    expect(a2).toBe(a)
    expect(b).not.toBe(a)
    expect(await batch.run(() => ids.idOf(['t', 'x']))).toBe(a)
    expect(rows()).toBe(2)
  })

  it('knownId: the id of the last value looked up, in the same batch only', async () => {
    const { batch, ids } = setup()
    const id = await batch.run(() => {
      expect(ids.knownId(['t', 'x'])).toBeUndefined()
      const id = ids.idOf(['t', 'x'])
      expect(ids.knownId(['t', 'x'])).toBe(id)
      expect(ids.knownId(['t', 'other'])).toBeUndefined()
      return id
    })
    expect(id).toBeGreaterThan(0)
    await batch.run(() => expect(ids.knownId(['t', 'x'])).toBeUndefined())
  })

  it('a value inserted by a batch that failed is inserted again by the next one', async () => {
    const { batch, ids, rows } = setup()
    const failed = batch.run(() => {
      ids.idOf(['t', 'x'])
      throw new TypeError('bug')
    })
    await expect(failed).rejects.toThrow(/nothing in this batch was committed/)
    expect(rows()).toBe(0)
    const id = await batch.run(() => ids.idOf(['t', 'x']))
    expect(rows()).toBe(1)
    expect(await batch.run(() => ids.idOf(['t', 'x']))).toBe(id)
  })

  it('after forget(), a row deleted in the same batch is inserted again', async () => {
    const { db, batch, ids, rows } = setup()
    await batch.run(() => {
      ids.idOf(['t', 'x'])
      db.prepare('DELETE FROM blobs').run()
      ids.forget()
      ids.idOf(['t', 'x'])
    })
    expect(rows()).toBe(1)
  })
})
