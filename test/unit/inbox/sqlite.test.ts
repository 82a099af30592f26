import { statSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { ErrorCode, StoreError } from '../../../src/errors.js'
import { INBOX_SCHEMA_VERSION, SqliteInboxStore } from '../../../src/inbox/sqlite.js'
import { restoreCertificate } from '../../../src/sqlite/certificates.js'
import type { SqliteStoreOptions } from '../../../src/sqlite/options.js'
import { tempDir } from '../sqlite/helpers.js'
import { describeInboxConformance, getOf, newEntry } from './conformance.js'
import { writeSchema1 } from './schema1.js'

const tmp = tempDir('inbox')
afterAll(() => tmp.remove())

let files = 0
function newPath(): string {
  files += 1
  return join(tmp.dir, `store-${files}`, 'test.inbox.db')
}

function sqliteUnderTest(options: SqliteStoreOptions) {
  return async () => {
    const path = newPath()
    return { store: SqliteInboxStore.open(path, options), reopen: async () => SqliteInboxStore.open(path, options) }
  }
}

describeInboxConformance('sqlite (synchronous FULL, default batches)', sqliteUnderTest({}))
describeInboxConformance('sqlite (synchronous NORMAL, batches of at most 3)', sqliteUnderTest({ synchronous: 'NORMAL', maxBatchOps: 3 }))

describe('SqliteInboxStore', () => {
  it('commits 1,000 concurrent puts in a few transactions (group commit)', async () => {
    const store = SqliteInboxStore.open(newPath())
    try {
      await Promise.all(Array.from({ length: 1000 }, () => store.put(newEntry())))
      expect(store.stats).toMatchObject({ ops: 1000, failedBatches: 0, largestBatch: 512 })
      expect(store.stats.commits).toBeLessThanOrEqual(3)
    } finally {
      await store.close()
    }
  })

  it('creates its own file (0600) in WAL mode with the inbox schema', async () => {
    const path = newPath()
    const store = SqliteInboxStore.open(path)
    try {
      expect(statSync(path).mode & 0o777).toBe(0o600)
      const db = store.database
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal')
      expect(db.pragma('synchronous', { simple: true })).toBe(1) // FULL: NORMAL commits, each followed by a WAL sync off the loop
      expect(db.pragma('user_version', { simple: true })).toBe(INBOX_SCHEMA_VERSION)
      expect(db.prepare(`SELECT name FROM sqlite_schema WHERE type IN ('table', 'index') AND name LIKE 'inbox%' ORDER BY name`).pluck().all()).toEqual([
        'inbox',
        'inbox_ack',
        'inbox_acks',
        'inbox_attempts',
        'inbox_attempts_last',
        'inbox_key',
        'inbox_received',
      ])
      expect(
        db
          .prepare(`EXPLAIN QUERY PLAN SELECT * FROM inbox WHERE msg_id = 'x' AND (signer = 'y' OR signer IS NULL)`)
          .all()
          .map((r) => (r as { detail: string }).detail)
          .join(' '),
      ).toMatch(/inbox_key/)
      expect(
        db
          .prepare(`EXPLAIN QUERY PLAN DELETE FROM inbox WHERE received_at < 5`)
          .all()
          .map((r) => (r as { detail: string }).detail)
          .join(' '),
      ).toMatch(/inbox_received/)
    } finally {
      await store.close()
    }
  })

  it("its errors name the inbox: a StoreError (GILMSG_STORE) with store 'inbox' and the path, at open and for a failed batch", async () => {
    expect(() => SqliteInboxStore.open(tmp.dir)).toThrow(StoreError)
    expect(() => SqliteInboxStore.open(tmp.dir)).toThrow(
      expect.objectContaining({ code: ErrorCode.Store, store: 'inbox', path: tmp.dir, message: expect.stringMatching(`^inbox ${tmp.dir}: cannot create the file`) }),
    )
    const path = newPath()
    const store = SqliteInboxStore.open(path, { synchronous: 'OFF' })
    try {
      await store.put(newEntry())
      const db = store.database
      db.pragma(`max_page_count = ${String(db.pragma('page_count', { simple: true }))}`)
      const full = store.put(newEntry({ ackBody: 'x'.repeat(100_000) }))
      await expect(full).rejects.toBeInstanceOf(StoreError)
      await expect(full).rejects.toMatchObject({
        code: ErrorCode.Store,
        store: 'inbox',
        path,
        message: expect.stringMatching(/^inbox .*: disk is full \(SQLITE_FULL\).*; nothing in this batch was committed$/),
      })
    } finally {
      await store.close()
    }
  })
})

describe('SqliteInboxStore migrates a schema 1 file (keyed by msg_id alone)', () => {
  const T0 = 1_700_000_000_000

  it('keeps the old entries without a signer: get returns one for its msgId whatever the signer, until the signer has its own; prune deletes them', async () => {
    const path = newPath()
    writeSchema1(path, [
      { msgId: '2024-old-acked', digest: 'd1', receivedAt: T0, ackBody: '{"ack":1}' },
      { msgId: '2024-old-manual', digest: 'd2', receivedAt: T0 + 1 },
    ])
    const store = SqliteInboxStore.open(path)
    try {
      expect(store.database.pragma('user_version', { simple: true })).toBe(INBOX_SCHEMA_VERSION)
      const legacy = { signer: undefined, msgId: '2024-old-acked', digest: 'd1', receivedAt: T0, ackTopic: 'org.example.dev.gilmsg.ack', ackBody: '{"ack":1}' }
      expect(store.get('publisher', '2024-old-acked')).toEqual(legacy)
      expect(store.get('mallory', '2024-old-acked')).toEqual(legacy)
      expect(store.get('publisher', '2024-old-manual')).toEqual({ signer: undefined, msgId: '2024-old-manual', digest: 'd2', receivedAt: T0 + 1, ackTopic: undefined, ackBody: undefined })
      // Another signer's message with that msg_id (the legacy row's digest differs) gets its own entry; the legacy one stays.
      const own = newEntry({ signer: 'publisher', msgId: '2024-old-acked', digest: 'd9', receivedAt: T0 + 5 })
      await store.put(own)
      expect(getOf(store, own)).toEqual(own)
      expect(store.get('mallory', '2024-old-acked')).toEqual(legacy)
      await expect(store.prune(T0 + 2)).resolves.toBe(2)
      expect(store.get('mallory', '2024-old-acked')).toBeUndefined()
      expect(getOf(store, own)).toEqual(own)
      expect(store.database.prepare('SELECT count(*) FROM inbox_acks').pluck().get()).toBe(1)
    } finally {
      await store.close()
    }
  })
})

describe('SqliteInboxStore stores each distinct ACK once', () => {
  const T0 = 1_700_000_000_000
  const ACK_TOPIC = 'org.example.dev.gilmsg.ack'
  // The stored ACKs, each with its certificate put back.
  const acks = (store: SqliteInboxStore): unknown[] =>
    (
      store.database
        .prepare(`SELECT a.topic, a.body, a.cert_at, c.certificate FROM inbox_acks a LEFT JOIN certificates c ON c.id = a.cert_id ORDER BY a.id`)
        .all() as { topic: string | null; body: string | null; cert_at: number | null; certificate: string | null }[]
    ).map((r) => ({ topic: r.topic, body: r.body === null ? null : restoreCertificate(r.body, r.cert_at, r.certificate) }))

  /** A batched ACK's frame 1: about 10 KB, as with the signer's certificate. */
  function bigAckBody(tag: string): string {
    return `{"acks":"${tag}","certificate":"${'MIIC'.repeat(2500)}"}`
  }

  it('64 puts with the same 10 KB ACK store one row; get returns topic and body exactly; prune deletes it', async () => {
    const store = SqliteInboxStore.open(newPath())
    try {
      const body = bigAckBody('one')
      const es = Array.from({ length: 64 }, (_, i) => newEntry({ receivedAt: T0 + i, ackTopic: ACK_TOPIC, ackBody: body }))
      await Promise.all(es.map((e) => store.put(e)))
      expect(acks(store)).toEqual([{ topic: ACK_TOPIC, body }])
      for (const e of es) expect(getOf(store, e)).toEqual(e)
      await expect(store.prune(T0 + 32)).resolves.toBe(32)
      expect(acks(store)).toHaveLength(1)
      expect(getOf(store, es[63]!)?.ackBody).toBe(body)
      await expect(store.prune(T0 + 64)).resolves.toBe(32)
      expect(acks(store)).toEqual([])
    } finally {
      await store.close()
    }
  })

  it('entries without an ACK store none; a missing topic or body, and empty strings, round-trip', async () => {
    const store = SqliteInboxStore.open(newPath())
    try {
      const none = newEntry({ ackTopic: undefined, ackBody: undefined })
      const topicOnly = newEntry({ ackTopic: ACK_TOPIC, ackBody: undefined })
      const bodyOnly = newEntry({ ackTopic: undefined, ackBody: ACK_TOPIC })
      const empty = newEntry({ ackTopic: '', ackBody: '' })
      const swapped = newEntry({ ackTopic: '', ackBody: ACK_TOPIC })
      await store.put(none)
      expect(acks(store)).toEqual([])
      for (const e of [topicOnly, bodyOnly, empty, swapped]) await store.put(e)
      for (const e of [none, topicOnly, bodyOnly, empty, swapped]) expect(getOf(store, e)).toEqual(e)
      expect(acks(store)).toHaveLength(4)
    } finally {
      await store.close()
    }
  })

  it('the same body under another topic is another ACK; an equal ACK put later or after a restart reuses its row', async () => {
    const path = newPath()
    let store = SqliteInboxStore.open(path)
    try {
      const body = bigAckBody('two')
      await store.put(newEntry({ ackTopic: ACK_TOPIC, ackBody: body }))
      await store.put(newEntry({ ackTopic: `${ACK_TOPIC}.other`, ackBody: body }))
      await store.put(newEntry({ ackTopic: ACK_TOPIC, ackBody: [...body].join('') }))
      await store.close()
      store = SqliteInboxStore.open(path)
      const later = newEntry({ ackTopic: ACK_TOPIC, ackBody: bigAckBody('two') })
      await store.put(later)
      expect(acks(store)).toEqual([
        { topic: ACK_TOPIC, body },
        { topic: `${ACK_TOPIC}.other`, body },
      ])
      expect(getOf(store, later)?.ackBody).toBe(body)
    } finally {
      await store.close()
    }
  })

  it("replacing an entry's ACK deletes the old one unless another entry still uses it", async () => {
    const store = SqliteInboxStore.open(newPath())
    try {
      const a = newEntry({ ackBody: 'a' })
      const b = newEntry({ ackBody: 'shared' })
      const c = newEntry({ ackBody: 'shared' })
      await Promise.all([store.put(a), store.put(b), store.put(c)])
      await store.put({ ...a, ackBody: 'a2' })
      await store.put({ ...b, ackTopic: undefined, ackBody: undefined })
      expect(acks(store).map((r) => (r as { body: string }).body)).toEqual(['shared', 'a2'])
      await store.put({ ...c, ackBody: 'a2' })
      expect(acks(store).map((r) => (r as { body: string }).body)).toEqual(['a2'])
      // In one batch: an ACK deleted by a replacement is stored again by the next put that carries it.
      const d = newEntry({ ackBody: 'd' })
      const none = { ackTopic: undefined, ackBody: undefined }
      await Promise.all([
        store.put({ ...a, ackBody: 'x' }),
        store.put({ ...c, ...none }),
        store.put({ ...a, ...none }),
        store.put({ ...d, ackBody: 'x' }),
        store.put({ ...b, ackBody: 'y' }),
      ])
      expect(store.stats.failedBatches).toBe(0)
      expect(getOf(store, d)?.ackBody).toBe('x')
      expect(getOf(store, b)?.ackBody).toBe('y')
      expect(acks(store).map((r) => (r as { body: string }).body)).toEqual(['x', 'y'])
    } finally {
      await store.close()
    }
  })

  it('6,400 entries acked in batches of 64 with a 10 KB ACK keep the file small', async () => {
    const path = newPath()
    const store = SqliteInboxStore.open(path, { synchronous: 'OFF' })
    try {
      for (let i = 0; i < 6400; i += 64) {
        const body = bigAckBody(`batch ${i}`)
        await Promise.all(Array.from({ length: 64 }, () => store.put(newEntry({ ackTopic: ACK_TOPIC, ackBody: body }))))
      }
      expect(acks(store)).toHaveLength(100)
    } finally {
      await store.close()
    }
    expect(statSync(path).size).toBeLessThan(5_000_000)
  })
})
