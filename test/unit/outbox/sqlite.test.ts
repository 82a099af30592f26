import { statSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, describe, expect, it } from 'vitest'
import { OUTBOX_SCHEMA_VERSION, SqliteOutboxStore } from '../../../src/outbox/sqlite.js'
import { restoreCertificate } from '../../../src/sqlite/certificates.js'
import { contentHash } from '../../../src/sqlite/content-ids.js'
import type { SqliteStoreOptions } from '../../../src/outbox/sqlite.js'
import type { NewOutboxMessage } from '../../../src/outbox/store.js'
import { ackOf, describeOutboxConformance, newMessage } from './conformance.js'
import { tempDir } from '../sqlite/helpers.js'

/** The ACK bodies as the table holds them, each with its certificate put back. */
function storedAckBodies(store: SqliteOutboxStore): string[] {
  const rows = store.database
    .prepare(`SELECT a.body, a.cert_at, c.certificate FROM ack_bodies a LEFT JOIN certificates c ON c.id = a.cert_id ORDER BY a.id`)
    .all() as { body: string; cert_at: number | null; certificate: string | null }[]
  return rows.map((r) => restoreCertificate(r.body, r.cert_at, r.certificate))
}

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
      await Promise.all(ms.map((m) => store.add(m).durable))
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
      await store.add(m).durable
      await store.recordAck(ackOf(m, 'alice')).durable
      store.markAttempt(m.msgId, 1)
      await store.expire(m.msgId, 2)
      expect(store.stats).toEqual({ commits: 3, ops: 4, failedBatches: 0, largestBatch: 2, syncs: 3 })
    } finally {
      await store.close()
    }
  })

  it('an awaited write is committed: another connection reads it', async () => {
    const path = newPath()
    const store = SqliteOutboxStore.open(path)
    const m = newMessage()
    const pending = store.add(m).durable
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
      expect(db.pragma('user_version', { simple: true })).toBe(OUTBOX_SCHEMA_VERSION)
      const tables = db.prepare(`SELECT name FROM sqlite_schema WHERE type IN ('table', 'index') ORDER BY name`).pluck().all()
      expect(tables).toEqual(
        expect.arrayContaining([
          'ack_bodies',
          'bodies',
          'messages',
          'messages_created',
          'messages_deadline',
          'messages_due',
          'messages_finished',
          'messages_unsent',
          'recipients',
          'recipients_ack_body',
        ]),
      )
    } finally {
      await store.close()
    }
  })

  it('defaults to synchronous FULL: the connection commits NORMAL and every commit is then synced off the event loop', async () => {
    const store = SqliteOutboxStore.open(newPath())
    expect(store.database.pragma('synchronous', { simple: true })).toBe(1)
    await store.add(newMessage()).durable
    await Promise.all([store.add(newMessage()).durable, store.add(newMessage()).durable])
    expect(store.stats).toMatchObject({ commits: 2, syncs: 2 })
    await store.close()
  })

  it('NORMAL and OFF commit without a sync of their own', async () => {
    for (const synchronous of ['NORMAL', 'OFF'] as const) {
      const store = SqliteOutboxStore.open(newPath(), { synchronous })
      expect(store.database.pragma('synchronous', { simple: true })).toBe(synchronous === 'NORMAL' ? 1 : 0)
      await store.add(newMessage()).durable
      expect(store.stats).toMatchObject({ commits: 1, syncs: 0 })
      await store.close()
    }
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
      expect(plan(`SELECT msg_id FROM messages WHERE state = 'pending' AND attempts = 0 ORDER BY created_at, msg_id LIMIT 10`)).toMatch(/messages_unsent/)
      expect(plan(`SELECT 1 FROM recipients WHERE ack_body_id = 5`)).toMatch(/recipients_ack_body/)
    } finally {
      await store.close()
    }
  })

  it('the urgent resend query (due with deadlineBy) uses the deadline index', async () => {
    const store = SqliteOutboxStore.open(newPath())
    try {
      const plan = store.database
        .prepare(`EXPLAIN QUERY PLAN SELECT msg_id FROM messages WHERE state = 'pending' AND deadline <= 5 AND next_attempt_at <= 5 ORDER BY deadline, msg_id LIMIT 10`)
        .all()
        .map((r) => (r as { detail: string }).detail)
        .join('; ')
      expect(plan).toMatch(/messages_deadline/)
    } finally {
      await store.close()
    }
  })

  it('an ACK body whose every ACK is refused is not stored (nothing that a purge would not find)', async () => {
    const store = SqliteOutboxStore.open(newPath())
    try {
      const m = newMessage({ recipients: ['alice'] })
      await store.add(m).durable
      const body = '{"acks":"nothing for us"}'
      const outcomes = await Promise.all([
        store.recordAck(ackOf(newMessage(), 'alice', { ackBody: body })).durable,
        store.recordAck(ackOf(m, 'mallory', { ackBody: body })).durable,
        store.recordAck(ackOf(m, 'alice', { ackBody: body, digest: 'other' })).durable,
      ])
      expect(outcomes.map((o) => o.kind)).toEqual(['unknown', 'not_recipient', 'digest_mismatch'])
      expect(store.database.prepare('SELECT COUNT(*) FROM ack_bodies').pluck().get()).toBe(0)
    } finally {
      await store.close()
    }
  })

  it('deletes recipients and bodies with their message (foreign keys cascade)', async () => {
    const store = SqliteOutboxStore.open(newPath())
    try {
      const m = newMessage({ recipients: ['alice'] })
      await store.add(m).durable
      await store.recordAck(ackOf(m, 'alice')).durable
      await store.purge(Number.MAX_SAFE_INTEGER)
      const db = store.database
      expect(db.prepare('SELECT COUNT(*) FROM bodies').pluck().get()).toBe(0)
      expect(db.prepare('SELECT COUNT(*) FROM recipients').pluck().get()).toBe(0)
    } finally {
      await store.close()
    }
  })

  describe('stores each distinct ACK body once', () => {
    const count = (store: SqliteOutboxStore, table: string): unknown => store.database.prepare(`SELECT COUNT(*) FROM ${table}`).pluck().get()

    /** A batched ACK's frame 1: about 10 KB, as with the signer's certificate. */
    function bigAckBody(tag: string): string {
      return `{"acks":"${tag}","certificate":"${'MIIC'.repeat(2500)}"}`
    }

    /** Adds `n` messages (alice must ACK) and records one ACK per message, `batch` at a time sharing one body. */
    async function ackInBatches(store: SqliteOutboxStore, n: number, batch: number): Promise<{ ms: NewOutboxMessage[]; bodies: string[] }> {
      const ms = Array.from({ length: n }, () => newMessage({ recipients: ['alice'] }))
      await Promise.all(ms.map((m) => store.add(m).durable))
      const bodies: string[] = []
      for (let i = 0; i < n; i += batch) {
        const body = bigAckBody(`batch ${i}`)
        bodies.push(body)
        const outcomes = await Promise.all(ms.slice(i, i + batch).map((m) => store.recordAck(ackOf(m, 'alice', { ackBody: body })).durable))
        for (const o of outcomes) expect(o).toMatchObject({ kind: 'counted', state: 'acked' })
      }
      return { ms, bodies }
    }

    it('64 ACKs carrying the same 10 KB body store one row, and every receipt returns the text exactly', async () => {
      const store = SqliteOutboxStore.open(newPath())
      try {
        const { ms, bodies } = await ackInBatches(store, 64, 64)
        expect(count(store, 'ack_bodies')).toBe(1)
        for (const m of ms) expect(store.recipients(m.msgId)[0]).toMatchObject({ state: 'acked', ackBody: bodies[0], ackFingerprint: 'fp-alice' })
        const stored = store.database.prepare(`SELECT hash, body FROM ack_bodies`).get() as { hash: Buffer; body: string }
        expect(storedAckBodies(store)).toEqual([bodies[0]])
        expect(stored.body.length, 'the certificate is stored apart').toBe(bodies[0]!.length - 10_000)
        expect(count(store, 'certificates')).toBe(1)
        expect(stored.hash, 'keyed by body and signer fingerprint').toEqual(contentHash([bodies[0]!, 'fp-alice']))
        expect(store.database.prepare(`SELECT COUNT(*) FROM recipients WHERE ack_fingerprint IS NOT NULL`).pluck().get(), 'the fingerprint is kept once, with the body').toBe(0)
      } finally {
        await store.close()
      }
    })

    it('one row per distinct body; an equal body sent later (or after a restart) reuses its row', async () => {
      const path = newPath()
      let store = SqliteOutboxStore.open(path)
      try {
        const [m1, m2, m3, m4] = [1, 2, 3, 4].map(() => newMessage({ recipients: ['alice', 'bob'] })) as [
          NewOutboxMessage,
          NewOutboxMessage,
          NewOutboxMessage,
          NewOutboxMessage,
        ]
        for (const m of [m1, m2, m3, m4]) await store.add(m).durable
        const a = bigAckBody('a')
        await store.recordAck(ackOf(m1, 'alice', { ackBody: a })).durable
        await store.recordAck(ackOf(m1, 'bob', { ackBody: 'b' })).durable
        await store.recordAck(ackOf(m2, 'alice', { ackBody: [...a].join('') })).durable // equal text, another string, another batch
        expect(count(store, 'ack_bodies')).toBe(2)
        await store.close()
        store = SqliteOutboxStore.open(path)
        await Promise.all([
          store.recordAck(ackOf(m3, 'alice', { ackBody: bigAckBody('a') })).durable,
          store.recordAck(ackOf(m3, 'bob', { ackBody: '' })).durable,
          store.recordAck(ackOf(m4, 'alice', { ackBody: 'b' })).durable,
        ])
        // m3's bob sent a new body; m4's alice the text bob sent, but signed by another certificate: another receipt.
        expect(count(store, 'ack_bodies')).toBe(4)
        expect(store.recipients(m4.msgId)[0]?.ackFingerprint).toBe('fp-alice')
        expect(store.recipients(m1.msgId)[1]?.ackFingerprint).toBe('fp-bob')
        expect(store.recipients(m1.msgId).map((r) => r.ackBody)).toEqual([a, 'b'])
        expect(store.recipients(m2.msgId).map((r) => r.ackBody)).toEqual([a, undefined])
        expect(store.recipients(m3.msgId).map((r) => r.ackBody)).toEqual([a, ''])
        expect(store.recipients(m4.msgId).map((r) => r.ackBody)).toEqual(['b', undefined])
      } finally {
        await store.close()
      }
    })

    it('a refused ACK stores no body', async () => {
      const store = SqliteOutboxStore.open(newPath())
      try {
        const m = newMessage({ recipients: ['alice'] })
        await store.add(m).durable
        await expect(store.recordAck(ackOf(m, 'mallory', { ackBody: 'x' })).durable).resolves.toEqual({ kind: 'not_recipient' })
        await expect(store.recordAck(ackOf(m, 'alice', { ackBody: 'y', digest: 'other' })).durable).resolves.toEqual({ kind: 'digest_mismatch' })
        expect(count(store, 'ack_bodies')).toBe(0)
      } finally {
        await store.close()
      }
    })

    it('purge deletes the bodies no longer referenced, and keeps those still referenced', async () => {
      const store = SqliteOutboxStore.open(newPath())
      try {
        const T = 1_700_000_000_000
        const ms = Array.from({ length: 4 }, () => newMessage({ recipients: ['alice'] }))
        await Promise.all(ms.map((m) => store.add(m).durable))
        const shared = bigAckBody('shared')
        await Promise.all([
          store.recordAck(ackOf(ms[0]!, 'alice', { ackBody: shared, at: T + 1 })).durable,
          store.recordAck(ackOf(ms[1]!, 'alice', { ackBody: shared, at: T + 5 })).durable,
          store.recordAck(ackOf(ms[2]!, 'alice', { ackBody: 'own', at: T + 1 })).durable,
        ])
        expect(count(store, 'ack_bodies')).toBe(2)
        await expect(store.purge(T + 2)).resolves.toBe(2)
        expect(storedAckBodies(store)).toEqual([shared])
        expect(store.recipients(ms[1]!.msgId)[0]?.ackBody).toBe(shared)
        await expect(store.purge(Number.MAX_SAFE_INTEGER)).resolves.toBe(1)
        expect(count(store, 'ack_bodies')).toBe(0)
        expect(store.recipients(ms[3]!.msgId)[0]?.state).toBe('pending')
      } finally {
        await store.close()
      }
    })

    it('purging all of 640 messages acked in batches of 64 leaves ack_bodies empty', async () => {
      const store = SqliteOutboxStore.open(newPath(), { synchronous: 'OFF' })
      try {
        await ackInBatches(store, 640, 64)
        expect(count(store, 'ack_bodies')).toBe(10)
        await expect(store.purge(Number.MAX_SAFE_INTEGER)).resolves.toBe(640)
        expect(count(store, 'ack_bodies')).toBe(0)
        expect(count(store, 'recipients')).toBe(0)
      } finally {
        await store.close()
      }
    })

    it('a body purged earlier in the same batch is stored again', async () => {
      const store = SqliteOutboxStore.open(newPath())
      try {
        const [m1, m2] = [newMessage({ recipients: ['alice'] }), newMessage({ recipients: ['alice'] })]
        await Promise.all([store.add(m1).durable, store.add(m2).durable])
        const body = bigAckBody('again')
        await Promise.all([
          store.recordAck(ackOf(m1, 'alice', { ackBody: body })).durable,
          store.purge(Number.MAX_SAFE_INTEGER),
          store.recordAck(ackOf(m2, 'alice', { ackBody: body })).durable,
        ])
        expect(store.stats.commits).toBe(2)
        expect(store.get(m1.msgId)).toBeUndefined()
        expect(store.recipients(m2.msgId)[0]?.ackBody).toBe(body)
        expect(count(store, 'ack_bodies')).toBe(1)
      } finally {
        await store.close()
      }
    })

    it('a body inserted by a batch that failed is stored again by the next one', async () => {
      const store = SqliteOutboxStore.open(newPath())
      try {
        const [m1, m2] = [newMessage({ recipients: ['alice'] }), newMessage({ recipients: ['alice'] })]
        await Promise.all([store.add(m1).durable, store.add(m2).durable])
        const db = store.database
        db.exec(`CREATE TEMP TRIGGER fail_ack BEFORE UPDATE ON recipients WHEN old.msg_id = '${m1.msgId}' BEGIN SELECT RAISE(ABORT, 'boom'); END`)
        const body = bigAckBody('rolled back')
        // The body is inserted, then the recipient update fails: the whole batch is rolled back.
        await expect(store.recordAck(ackOf(m1, 'alice', { ackBody: body })).durable).rejects.toThrow(/nothing in this batch was committed/)
        expect(store.stats.failedBatches).toBe(1)
        expect(count(store, 'ack_bodies')).toBe(0)
        db.exec(`DROP TRIGGER fail_ack`)
        await expect(store.recordAck(ackOf(m2, 'alice', { ackBody: body })).durable).resolves.toMatchObject({ kind: 'counted' })
        await expect(store.recordAck(ackOf(m1, 'alice', { ackBody: body })).durable).resolves.toMatchObject({ kind: 'counted' })
        expect(count(store, 'ack_bodies')).toBe(1)
        expect(store.recipients(m1.msgId)[0]?.ackBody).toBe(body)
        expect(store.recipients(m2.msgId)[0]?.ackBody).toBe(body)
      } finally {
        await store.close()
      }
    })

    it('6,400 messages acked in batches of 64 with a 10 KB body keep the file small', async () => {
      const path = newPath()
      const store = SqliteOutboxStore.open(path, { synchronous: 'OFF' })
      try {
        await ackInBatches(store, 6400, 64)
        expect(count(store, 'ack_bodies')).toBe(100)
      } finally {
        await store.close()
      }
      // 100 bodies of 10 KB, plus the messages; one body per message would be 64 MB.
      expect(statSync(path).size).toBeLessThan(5_000_000)
    })
  })
})
