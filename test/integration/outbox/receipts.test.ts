/**
 * Stored receipts still verify: a message body and the signed ACKs the outbox keeps, and the ACK an
 * inbox keeps to send again, each stored with its certificate apart (table `certificates`), read
 * back byte for byte and verified by the real verifier (node:crypto) against the CA; also after a
 * schema 2 file, written with whole bodies, is migrated.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createSigner } from '../../../src/crypto/signer.js'
import { createVerifier, type X509Verifier } from '../../../src/crypto/verifier.js'
import { buildEnvelope, openEnvelope, sealEnvelope, type SealedMessage } from '../../../src/envelope/envelope.js'
import { INBOX_SCHEMA_VERSION, MIGRATIONS as INBOX_MIGRATIONS, SqliteInboxStore } from '../../../src/inbox/sqlite.js'
import { MIGRATIONS as OUTBOX_MIGRATIONS } from '../../../src/outbox/sqlite-schema.js'
import { OUTBOX_SCHEMA_VERSION, SqliteOutboxStore } from '../../../src/outbox/sqlite.js'
import { ackBody, batchAckBody } from '../../../src/reliable/protocol.js'
import { contentHash } from '../../../src/sqlite/content-ids.js'
import { migrate } from '../../../src/sqlite/migrate.js'
import { createTestPki, type TestPki } from '../../support/pki.js'

const TOPIC = 'org.example.dev.app.thing'
const ACK_TOPIC = 'org.example.dev.gilmsg.ack'
const DAY = 24 * 60 * 60 * 1000

let dir: string
let pki: TestPki
let verifier: X509Verifier

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gilmsg-receipts-'))
  pki = await createTestPki(join(dir, 'pki'), [
    { name: 'pub', key: 'ec' },
    { name: 'alice', key: 'ec' },
    { name: 'bob', key: 'rsa' },
  ])
  verifier = await createVerifier({ caPem: pki.caPem })
}, 60_000)

afterAll(() => {
  rmSync(dir, { recursive: true, force: true })
})

function signerOf(name: string, mode: 'x509' | 'x509_sha256' = 'x509_sha256') {
  const leaf = pki.leaf(name)
  return createSigner({ mode, keyPem: leaf.keyPem, certPem: leaf.certPem })
}

let counter = 0
function message(recipients: readonly string[]): SealedMessage {
  const now = Date.now()
  const env = buildEnvelope({
    topic: TOPIC,
    msg: { n: ++counter, text: 'x'.repeat(400), certificate: 'a nested "certificate" is payload, not the signer\'s' },
    i: counter,
    nowMs: now,
    username: 'test',
    extra: { gilmsg_version: '1.0', gilmsg_recipients: recipients },
  })
  return sealEnvelope(env, signerOf('pub'))
}

function ackFor(name: string, messages: readonly SealedMessage[], mode: 'x509' | 'x509_sha256' = 'x509_sha256'): SealedMessage {
  const env = buildEnvelope({
    topic: ACK_TOPIC,
    msg: batchAckBody(messages.map((m) => ackBody(m.msgId, m.digest, 'received'))),
    i: 1,
    nowMs: Date.now(),
    username: 'test',
  })
  return sealEnvelope(env, signerOf(name, mode))
}

/** Verifies `body` as a receiver does; returns the signer's CN and the digest of what it signed. */
function verified(topic: string, body: string | undefined): { cn: string | undefined; digest: string } {
  expect(body).toBeDefined()
  const opened = openEnvelope(topic, body as string, { maxDepth: 64, verifier })
  if (!opened.ok) throw new Error(`does not verify: ${opened.reason}: ${opened.detail}`)
  return { cn: opened.message.signer, digest: opened.message.digest }
}

const count = (db: Database.Database, table: string): number => db.prepare(`SELECT COUNT(*) FROM ${table}`).pluck().get() as number

describe('the outbox keeps each certificate once and gives back receipts that verify', () => {
  it('message body and ACK bodies (two signers, one batched ACK for several messages) round-trip byte for byte across a reopen', async () => {
    const path = join(dir, 'round-trip.outbox.db')
    const ms = [message(['alice', 'bob']), message(['alice', 'bob']), message(['alice', 'bob'])]
    const fromAlice = ackFor('alice', ms)
    const fromBob = ackFor('bob', ms, 'x509')
    let store = SqliteOutboxStore.open(path)
    try {
      const now = Date.now()
      await Promise.all(ms.map((m) => store.add({ msgId: m.msgId, topic: m.topic, body: m.body, digest: m.digest, recipients: ['alice', 'bob'], createdAt: now, deadline: now + DAY, nextAttemptAt: now + 50 }).durable))
      for (const m of ms) {
        for (const [cn, ack] of [['alice', fromAlice], ['bob', fromBob]] as const) {
          const outcome = await store.recordAck({ msgId: m.msgId, cn, digest: m.digest, disposition: 'received', at: now, ackBody: ack.body, fingerprint: `fp-${cn}` }).durable
          expect(outcome.kind).toBe('counted')
        }
      }
      await store.close()
      store = SqliteOutboxStore.open(path)
      const db = store.database
      expect(count(db, 'certificates'), 'pub, alice and bob').toBe(3)
      const storedLengths = db.prepare(`SELECT length(body) FROM bodies`).pluck().all() as number[]
      for (const [i, m] of ms.entries()) expect(storedLengths[i]).toBeLessThan(m.body.length - 300)
      for (const m of ms) {
        const got = store.get(m.msgId)
        expect(got?.body).toBe(m.body)
        expect(verified(TOPIC, got?.body)).toEqual({ cn: 'pub', digest: m.digest })
        const rs = store.recipients(m.msgId)
        expect(rs.map((r) => r.ackBody)).toEqual([fromAlice.body, fromBob.body])
        expect(verified(ACK_TOPIC, rs[0]?.ackBody)).toEqual({ cn: 'alice', digest: fromAlice.digest })
        expect(verified(ACK_TOPIC, rs[1]?.ackBody)).toEqual({ cn: 'bob', digest: fromBob.digest })
      }
      // The listing, due and unsent paths read the same rows.
      expect(store.list().map((m) => m.body).sort()).toEqual(ms.map((m) => m.body).sort())
    } finally {
      await store.close()
    }
  })

  it('a schema 2 file (whole bodies) is migrated: certificates cut out once, every receipt still verifies, new rows reuse them', async () => {
    const path = join(dir, 'v2.outbox.db')
    const ms = [message(['alice']), message(['alice']), message(['alice'])]
    const ack = ackFor('alice', ms)
    const db = new Database(path)
    migrate(db, OUTBOX_MIGRATIONS.filter((m) => m.version <= 2), { store: 'outbox', path })
    expect(db.pragma('user_version', { simple: true })).toBe(2)
    const now = Date.now()
    const ackId = Number(db.prepare(`INSERT INTO ack_bodies (hash, body) VALUES (?, ?)`).run(contentHash([ack.body]), ack.body).lastInsertRowid)
    for (const m of ms) {
      db.prepare(`INSERT INTO messages (msg_id, topic, digest, created_at, deadline, state, attempts, next_attempt_at, finished_at) VALUES (?, ?, ?, ?, ?, 'acked', 1, ?, ?)`).run(
        m.msgId, m.topic, m.digest, now, now + DAY, now + 50, now + 10,
      )
      db.prepare(`INSERT INTO bodies (msg_id, body) VALUES (?, ?)`).run(m.msgId, m.body)
      db.prepare(`INSERT INTO recipients (msg_id, cn, position, state, at, disposition, ack_body_id, ack_fingerprint) VALUES (?, 'alice', 0, 'acked', ?, 'received', ?, 'fp')`).run(m.msgId, now + 10, ackId)
    }
    db.close()

    const store = SqliteOutboxStore.open(path)
    try {
      const sdb = store.database
      expect(sdb.pragma('user_version', { simple: true })).toBe(OUTBOX_SCHEMA_VERSION)
      expect(count(sdb, 'certificates'), 'pub and alice').toBe(2)
      expect(sdb.prepare(`SELECT COUNT(*) FROM bodies WHERE cert_id IS NULL`).pluck().get()).toBe(0)
      expect(sdb.prepare(`SELECT COUNT(*) FROM ack_bodies WHERE cert_id IS NULL`).pluck().get()).toBe(0)
      for (const m of ms) {
        expect(store.get(m.msgId)?.body).toBe(m.body)
        expect(verified(TOPIC, store.get(m.msgId)?.body).digest).toBe(m.digest)
        expect(verified(ACK_TOPIC, store.recipients(m.msgId)[0]?.ackBody)).toEqual({ cn: 'alice', digest: ack.digest })
        expect(store.recipients(m.msgId)[0]?.ackFingerprint, 'kept in the recipient row written before').toBe('fp')
      }
      // A message and ACK after the migration reuse the certificates' rows.
      const late = message(['alice'])
      await store.add({ msgId: late.msgId, topic: late.topic, body: late.body, digest: late.digest, recipients: ['alice'], createdAt: now, deadline: now + DAY, nextAttemptAt: now + 50 }).durable
      const again = ackFor('alice', [late])
      await store.recordAck({ msgId: late.msgId, cn: 'alice', digest: late.digest, disposition: 'received', at: now, ackBody: again.body, fingerprint: 'fp' }).durable
      expect(count(sdb, 'certificates')).toBe(2)
      expect(verified(ACK_TOPIC, store.recipients(late.msgId)[0]?.ackBody).cn).toBe('alice')
    } finally {
      await store.close()
    }
  })
})

describe('the inbox keeps each certificate once and re-sends ACKs that verify', () => {
  it('a stored ACK round-trips byte for byte across a reopen, one certificate row for many ACKs', async () => {
    const path = join(dir, 'round-trip.inbox.db')
    let store = SqliteInboxStore.open(path)
    const ms = [message(['alice']), message(['alice']), message(['alice'])]
    const acks = ms.map((m) => ackFor('alice', [m]))
    try {
      await Promise.all(ms.map((m, i) => store.put({ signer: 'pub', msgId: m.msgId, digest: m.digest, receivedAt: Date.now(), ackTopic: ACK_TOPIC, ackBody: acks[i]!.body })))
      await store.close()
      store = SqliteInboxStore.open(path)
      expect(count(store.database, 'certificates')).toBe(1)
      for (const [i, m] of ms.entries()) {
        const entry = store.get('pub', m.msgId)
        expect(entry?.ackBody).toBe(acks[i]!.body)
        expect(verified(entry?.ackTopic ?? '', entry?.ackBody)).toEqual({ cn: 'alice', digest: acks[i]!.digest })
      }
    } finally {
      await store.close()
    }
  })

  it('a schema 2 file is migrated: its ACKs still verify', async () => {
    const path = join(dir, 'v2.inbox.db')
    const ms = [message(['alice']), message(['alice'])]
    const acks = ms.map((m) => ackFor('alice', [m]))
    const db = new Database(path)
    migrate(db, INBOX_MIGRATIONS.filter((m) => m.version <= 2), { store: 'inbox', path })
    for (const [i, m] of ms.entries()) {
      const ackId = Number(db.prepare(`INSERT INTO inbox_acks (hash, topic, body) VALUES (?, ?, ?)`).run(contentHash([ACK_TOPIC, acks[i]!.body]), ACK_TOPIC, acks[i]!.body).lastInsertRowid)
      db.prepare(`INSERT INTO inbox (msg_id, signer, digest, received_at, ack_id) VALUES (?, 'pub', ?, ?, ?)`).run(m.msgId, m.digest, Date.now(), ackId)
    }
    db.close()
    const store = SqliteInboxStore.open(path)
    try {
      expect(store.database.pragma('user_version', { simple: true })).toBe(INBOX_SCHEMA_VERSION)
      expect(count(store.database, 'certificates')).toBe(1)
      for (const [i, m] of ms.entries()) {
        const entry = store.get('pub', m.msgId)
        expect(entry?.ackBody).toBe(acks[i]!.body)
        expect(verified(ACK_TOPIC, entry?.ackBody).cn).toBe('alice')
      }
    } finally {
      await store.close()
    }
  })
})
