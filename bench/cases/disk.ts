/**
 * Case: bytes on disk per acknowledged message (issue 15, target 6).
 *
 * In this process, no network: what a publisher's outbox holds once every
 * recipient acknowledged. Messages are real signed P-256 envelopes with a
 * 400-byte payload; each recipient (P-256) acknowledges them with real
 * signed, batched ACKs of `ACK_BATCH` messages (what a consumer under load
 * sends, see src/reliable/ack-batcher.ts), recorded with the store's own
 * `add` and `recordAck`. Figure: the file's bytes (after a checkpoint, free
 * pages left out) per message; baseline: the message's signed size without
 * its certificate (the canonical envelope plus its signature member). Beside
 * it, the same messages and ACKs written the way schema 2 stored them (each
 * body whole, certificate included): the "before" in the same run.
 *
 * The floor line: what a receipt cannot do without, per message: the signed
 * message without certificate, plus each recipient's share of its ACK's
 * signed bytes without certificate (an ACK of `ACK_BATCH` messages divided
 * among them); SQLite's rows, keys, indexes and page slack come on top.
 */
import { createHash, X509Certificate } from 'node:crypto'
import { mkdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { SqliteOutboxStore } from '../../src/index.js'
import { buildEnvelope, createSigner, sealEnvelope, type SealedMessage } from '../../src/internal.js'
import { MIGRATIONS } from '../../src/outbox/sqlite-schema.js'
import { ackBody, batchAckBody } from '../../src/reliable/protocol.js'
import { contentHash } from '../../src/sqlite/content-ids.js'
import { findCertificate } from '../../src/sqlite/certificates.js'
import { migrate } from '../../src/sqlite/migrate.js'
import { fmt } from '../lib/format.js'
import { APP_PREFIX, certname, ENVIRONMENT, TOPIC_PREFIX, type Role } from '../lib/setup.js'
import { line, type BenchCase, type BenchContext, type CaseResult } from '../lib/types.js'

const DAY_MS = 24 * 60 * 60 * 1000
/** Messages per signed ACK. */
const ACK_BATCH = 16
const PAYLOAD_BYTES = 400
const ACK_TOPIC = `${TOPIC_PREFIX}.${ENVIRONMENT}.gilmsg.ack`

/** UTF-8 bytes of a signed body without its `"certificate":"..."` member (and its comma). */
function withoutCertificate(body: string): number {
  const span = findCertificate(body)
  if (span === undefined) return Buffer.byteLength(body)
  return Buffer.byteLength(body) - Buffer.byteLength(body.slice(span.start, span.end)) - '"certificate":"",'.length
}

interface Written {
  readonly messages: readonly SealedMessage[]
  /** Per message: each recipient's ACK (shared by the messages of a batch). */
  readonly acks: readonly { readonly cn: string; readonly ack: SealedMessage; readonly fingerprint: string }[][]
}

function makeTraffic(ctx: BenchContext, pki: Awaited<ReturnType<BenchContext['pki']>>, roles: readonly Role[], count: number): Written {
  const leaf = (role: Role) => pki.leaf(certname('ec', role))
  const pub = createSigner({ mode: 'x509_sha256', keyPem: leaf('pub').keyPem, certPem: leaf('pub').certPem })
  const ackers = roles.map((role) => {
    const l = leaf(role)
    const signer = createSigner({ mode: 'x509_sha256', keyPem: l.keyPem, certPem: l.certPem })
    return { signer, fingerprint: createHash('sha256').update(new X509Certificate(l.certPem).raw).digest('hex') }
  })
  const recipients = ackers.map((a) => a.signer.cn)
  const messages: SealedMessage[] = []
  const acks: { cn: string; ack: SealedMessage; fingerprint: string }[][] = []
  const now = Date.now()
  for (let i = 0; i < count; i++) {
    const env = buildEnvelope({
      topic: `${APP_PREFIX}disk`,
      msg: { n: i, text: 'x'.repeat(PAYLOAD_BYTES) },
      i: i + 1,
      nowMs: now,
      username: 'bench',
      extra: { gilmsg_version: '1.0', gilmsg_recipients: recipients },
    })
    messages.push(sealEnvelope(env, pub))
  }
  for (let from = 0; from < count; from += ACK_BATCH) {
    const batch = messages.slice(from, from + ACK_BATCH)
    const signed = ackers.map(({ signer, fingerprint }, k) => {
      const acked = batch.map((m) => ackBody(m.msgId, m.digest, 'received'))
      const msg = acked.length === 1 ? acked[0] : batchAckBody(acked)
      const ack = sealEnvelope(buildEnvelope({ topic: ACK_TOPIC, msg, i: from + k + 1, nowMs: now, username: 'bench' }), signer)
      return { cn: signer.cn, ack, fingerprint }
    })
    for (let j = 0; j < batch.length; j++) acks.push(signed)
  }
  ctx.progress(`disk: ${fmt(count)} messages and their ACKs signed for ${roles.length} recipient(s)`)
  return { messages, acks }
}

/** Bytes the file holds (page count less free pages) after a checkpoint, and the bytes of each table and index. */
function fileBytes(path: string): { readonly bytes: number; readonly fileSize: number; readonly byObject: Record<string, number> } {
  const db = new Database(path)
  try {
    db.pragma('wal_checkpoint(TRUNCATE)')
    const pageSize = db.pragma('page_size', { simple: true }) as number
    const pages = db.pragma('page_count', { simple: true }) as number
    const free = db.pragma('freelist_count', { simple: true }) as number
    const byObject: Record<string, number> = {}
    for (const r of db.prepare(`SELECT name, SUM(pgsize) AS bytes FROM dbstat GROUP BY name ORDER BY bytes DESC`).all() as { name: string; bytes: number }[]) byObject[r.name] = r.bytes
    return { bytes: (pages - free) * pageSize, fileSize: statSync(path).size, byObject }
  } finally {
    db.close()
  }
}

async function writeThroughStore(path: string, w: Written): Promise<void> {
  const store = SqliteOutboxStore.open(path, { synchronous: 'OFF', maxBatchOps: 20_000 })
  try {
    const now = Date.now()
    for (let from = 0; from < w.messages.length; from += 1000) {
      const writes: Promise<unknown>[] = []
      for (let i = from; i < Math.min(w.messages.length, from + 1000); i++) {
        const m = w.messages[i]!
        const acks = w.acks[i]!
        writes.push(store.add({ msgId: m.msgId, topic: m.topic, body: m.body, digest: m.digest, recipients: acks.map((a) => a.cn), createdAt: now, deadline: now + DAY_MS, nextAttemptAt: now + 50 }).durable)
        for (const a of acks) {
          writes.push(store.recordAck({ msgId: m.msgId, cn: a.cn, digest: m.digest, disposition: 'received', at: now + 5, ackBody: a.ack.body, fingerprint: a.fingerprint }).durable)
        }
      }
      await Promise.all(writes)
    }
    const counts = store.counts()
    if (counts.acked !== w.messages.length) throw new Error(`disk: expected ${w.messages.length} acknowledged messages, found ${JSON.stringify(counts)}`)
  } finally {
    await store.close()
  }
}

/** The same rows as schema 2 stored them (every message and ACK body whole): the "before". */
function writeSchema2(path: string, w: Written): void {
  const db = new Database(path)
  try {
    db.pragma('journal_mode = WAL')
    db.pragma('synchronous = OFF')
    migrate(db, MIGRATIONS.filter((m) => m.version <= 2), { store: 'outbox', path })
    const now = Date.now()
    const insertMessage = db.prepare(
      `INSERT INTO messages (msg_id, topic, digest, created_at, deadline, state, attempts, next_attempt_at, finished_at) VALUES (?, ?, ?, ?, ?, 'acked', 1, ?, ?)`,
    )
    const insertBody = db.prepare(`INSERT INTO bodies (msg_id, body) VALUES (?, ?)`)
    const findAck = db.prepare(`SELECT id FROM ack_bodies WHERE hash = ?`).pluck()
    const insertAck = db.prepare(`INSERT INTO ack_bodies (hash, body) VALUES (?, ?)`)
    const insertRecipient = db.prepare(
      `INSERT INTO recipients (msg_id, cn, position, state, at, disposition, ack_body_id, ack_fingerprint) VALUES (?, ?, ?, 'acked', ?, 'received', ?, ?)`,
    )
    db.transaction(() => {
      w.messages.forEach((m, i) => {
        insertMessage.run(m.msgId, m.topic, m.digest, now, now + DAY_MS, now + 50, now + 5)
        insertBody.run(m.msgId, m.body)
        w.acks[i]!.forEach((a, position) => {
          const hash = contentHash([a.ack.body])
          const id = (findAck.get(hash) as number | undefined) ?? Number(insertAck.run(hash, a.ack.body).lastInsertRowid)
          insertRecipient.run(m.msgId, a.cn, position, now + 5, id, a.fingerprint)
        })
      })
    })()
  } finally {
    db.close()
  }
}

export const diskCase: BenchCase = {
  id: 'disk',
  title: 'bytes on disk',
  async run(ctx: BenchContext): Promise<CaseResult[]> {
    const pki = await ctx.pki()
    const count = ctx.quick ? 640 : 20_000
    const dir = join(ctx.dir, 'disk')
    mkdirSync(dir, { recursive: true })
    const results: CaseResult[] = []
    for (const roles of [['r1'], ['r1', 'r2', 'r3']] as const satisfies readonly (readonly Role[])[]) {
      const r = roles.length
      const w = makeTraffic(ctx, pki, roles, count)
      const now = join(dir, `r${r}.outbox.db`)
      const before = join(dir, `r${r}.schema2.outbox.db`)
      await writeThroughStore(now, w)
      writeSchema2(before, w)
      const after = fileBytes(now)
      const old = fileBytes(before)
      const signed = w.messages.reduce((s, m) => s + withoutCertificate(m.body), 0) / count
      const whole = w.messages.reduce((s, m) => s + Buffer.byteLength(m.body), 0) / count
      const ackShare = w.acks.reduce((s, acks) => s + acks.reduce((t, a) => t + withoutCertificate(a.ack.body), 0), 0) / count / r / ACK_BATCH
      const perMessage = after.bytes / count
      const beforePerMessage = old.bytes / count
      const perObject = (o: Record<string, number>): Record<string, number> => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, Math.round(v / count)]))
      ctx.progress(
        `disk: ${r} recipient(s): ${fmt(perMessage)} B/msg (schema 2: ${fmt(beforePerMessage)}), signed ${fmt(signed)} B without certificate (${fmt(whole)} with); by table: ${JSON.stringify(perObject(after.byObject))}`,
      )
      results.push(
        line({
          id: `disk.ec.r${r}`,
          name: `outbox bytes per acknowledged message, ${r} P-256 recipient${r > 1 ? 's' : ''} (ACKs of ${ACK_BATCH}) vs its signed size without certificate`,
          figure: perMessage,
          unit: 'B/msg',
          baseline: signed,
          baselineUnit: 'B signed (no certificate)',
          target: { text: '<= 1.3x', met: (_f, _b, ratio) => ratio <= 1.3 },
          notes: `schema 2 (whole bodies): ${fmt(beforePerMessage)} B/msg = ${(beforePerMessage / signed).toFixed(2)}x; ${fmt(count)} messages`,
          details: {
            messages: count,
            ackBatch: ACK_BATCH,
            payloadBytes: PAYLOAD_BYTES,
            signedWithCertificate: whole,
            after: { ...after, perMessageByObject: perObject(after.byObject) },
            before: { ...old, perMessage: beforePerMessage, perMessageByObject: perObject(old.byObject) },
          },
        }),
        line({
          id: `disk.ec.r${r}.floor`,
          name: `outbox bytes per acknowledged message, ${r} recipient${r > 1 ? 's' : ''}, vs the floor (signed message + each recipient's share of its ACK, no certificates)`,
          figure: perMessage,
          unit: 'B/msg',
          baseline: signed + ackShare * r,
          baselineUnit: 'B floor',
          notes: `floor = ${fmt(signed)} B message + ${r} x ${fmt(ackShare)} B ACK share; the rest is rows, keys, indexes and page slack`,
          details: { message: signed, ackSharePerRecipient: ackShare },
        }),
      )
    }
    return results
  },
}
