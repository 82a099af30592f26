/**
 * Case 5: the outbox, SQLite synchronous FULL (durable, the default) vs
 * NORMAL vs the in-memory store; and a history of 1,000,000 finished
 * (acknowledged) rows vs an empty file.
 *
 * End to end (the lines with targets): the publisher process of case 4 with
 * each store in turn, one P-256 recipient process, 8 publish() calls in
 * flight for a fixed time, the same load for every store; figure =
 * acknowledged messages/s. The stores are alternated over the rounds so that
 * a noisy neighbour does not favour one.
 *
 * Store only (in this process, no network): what the publisher does to its
 * outbox per message, 128 messages in flight: `add`, `recordAck` (the
 * one recipient's ACK), then `get` and `recipients` (settling the receipt).
 *
 * The 1,000,000-row history (10,000 with --quick): a quarter of it, at most
 * 50,000 rows, is written through the store's own `add` and `recordAck`
 * (synchronous OFF), so it follows whatever the schema is: realistic rows (a
 * real signed P-256 body and a real signed ACK, each with its own msg_id,
 * created and finished over the last 6 days so that the publisher's purge at
 * open keeps them). The rest are SQL copies of those rows under new
 * msg_ids (see `replicate`), because a million rows through the API take
 * minutes on this machine.
 */
import { createHash } from 'node:crypto'
import type Database from 'better-sqlite3'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { MemoryOutboxStore, SqliteOutboxStore, type OutboxStore } from '../../src/index.js'
import { ackBody, buildEnvelope, createSigner, newMsgId, sealEnvelope } from '../../src/internal.js'
import type { Pki } from '../lib/pki.js'
import { fmt } from '../lib/format.js'
import { median } from '../lib/stats.js'
import { APP_PREFIX, certname, startBenchRelay, TOPIC_PREFIX, ENVIRONMENT } from '../lib/setup.js'
import { line, type BenchCase, type BenchContext, type CaseResult } from '../lib/types.js'
import { publishRun, startParties } from './delivery.js'

const DAY_MS = 24 * 60 * 60 * 1000
// publish() calls in flight end to end: the best window of case 4 for one P-256 recipient (deeper
// windows push the time to ACK past the first resend and cost more in resends than they gain).
const E2E_WINDOW = 8
// Messages in flight against the store alone: deep enough for group commit to matter.
const STORE_WINDOW = 128

interface Sample {
  readonly msgId: string
  readonly topic: string
  readonly body: string
  readonly digest: string
  readonly cn: string
  readonly ackBody: string
  readonly fingerprint: string
}

function sample(pki: Pki): Sample {
  const pubLeaf = pki.leaf(certname('ec', 'pub'))
  const rLeaf = pki.leaf(certname('ec', 'r1'))
  const signer = createSigner({ mode: 'x509_sha256', keyPem: pubLeaf.keyPem, certPem: pubLeaf.certPem })
  const acker = createSigner({ mode: 'x509_sha256', keyPem: rLeaf.keyPem, certPem: rLeaf.certPem })
  const now = Date.now()
  const msg = sealEnvelope(
    buildEnvelope({ topic: `${APP_PREFIX}one`, msg: { n: 1, at: now, text: 'guaranteed bench message' }, i: 1, nowMs: now, username: 'bench', extra: { gilmsg_version: '1.0', gilmsg_recipients: [acker.cn] } }),
    signer,
  )
  const ack = sealEnvelope(
    buildEnvelope({ topic: `${TOPIC_PREFIX}.${ENVIRONMENT}.gilmsg.ack`, msg: ackBody(msg.msgId, msg.digest, 'received'), i: 1, nowMs: now, username: 'bench' }),
    acker,
  )
  return { msgId: msg.msgId, topic: msg.topic, body: msg.body, digest: msg.digest, cn: acker.cn, ackBody: ack.body, fingerprint: 'f'.repeat(64) }
}

// Writes `rows` acknowledged messages (one recipient each) into a new outbox at `path`, synchronous
// OFF; resolves with the time taken (ms) and how the rows were made. A quarter of them (at most
// SEED_ROWS) go through the store's own add() and recordAck(), so they follow the schema whatever it
// is, each body and ACK carrying its own msg_id. The rest are copies of those made in SQL (see
// `replicate`), 20x faster; if copying fails (a schema it does not understand), the API writes them.
async function fillHistory(path: string, rows: number, s: Sample, progress: (m: string) => void): Promise<{ ms: number; seeded: number; copied: number }> {
  const t0 = performance.now()
  const store = SqliteOutboxStore.open(path, { synchronous: 'OFF', maxBatchOps: 20_000 })
  try {
    store.database.pragma('cache_size = -262144')
    const seeded = Math.min(SEED_ROWS, Math.ceil(rows / 4))
    await writeThroughApi(store, seeded, s)
    progress(`outbox: history: ${fmt(seeded)} rows written through the store in ${((performance.now() - t0) / 1000).toFixed(1)} s`)
    let copied = 0
    try {
      copied = replicate(store.database, rows - seeded, (n) => progress(`outbox: history: ${fmt(seeded + n)} / ${fmt(rows)} rows (${((performance.now() - t0) / 1000).toFixed(0)} s)`))
    } catch (e) {
      progress(`outbox: history: copying rows in SQL failed (${(e as Error).message}); writing the rest through the store`)
      await writeThroughApi(store, rows - seeded, s)
    }
    const counts = store.counts()
    if (counts.acked < rows) throw new Error(`history: expected ${rows} acknowledged rows, found ${JSON.stringify(counts)}`)
    store.database.pragma('wal_checkpoint(TRUNCATE)')
    return { ms: performance.now() - t0, seeded, copied }
  } finally {
    await store.close()
  }
}

// Rows written through the store before the rest is copied in SQL.
const SEED_ROWS = 50_000

// `rows` acknowledged messages created over the last 6 days, through add() and recordAck().
async function writeThroughApi(store: SqliteOutboxStore, rows: number, s: Sample): Promise<void> {
  const start = Date.now() - 6 * DAY_MS
  const step = (5.5 * DAY_MS) / rows
  // Sorted, the msg_ids are appended to the B-trees instead of scattered: 1.5x faster to write.
  const ids = Array.from({ length: rows }, () => newMsgId(start)).sort()
  const chunk = 5000
  for (let from = 0; from < rows; from += chunk) {
    const writes: Promise<unknown>[] = []
    for (let i = from; i < Math.min(rows, from + chunk); i++) {
      const created = Math.floor(start + i * step)
      const msgId = ids[i] as string
      const digest = createHash('sha256').update(msgId).digest('hex')
      writes.push(
        store.add({ msgId, topic: s.topic, body: s.body.replaceAll(s.msgId, msgId), digest, recipients: [s.cn], createdAt: created, deadline: created + DAY_MS, nextAttemptAt: created + 50 }).durable,
        store.recordAck({ msgId, cn: s.cn, digest, disposition: 'received', at: created + 8, ackBody: s.ackBody.replaceAll(s.msgId, msgId), fingerprint: s.fingerprint }).durable,
      )
    }
    await Promise.all(writes)
  }
}

// Copies the messages already in the file (and every row of every table with a msg_id column) until
// `extra` more exist. A copy's msg_id is its original's with the UUID's version nibble made `c` and
// the last 4 hex digits replaced by the copy number, also inside its TEXT columns (bodies, ACKs);
// rows of tables without a msg_id (such as shared ACK bodies) are referenced, not copied. Runs in one transaction per copy; throws on any
// constraint it cannot satisfy (the transaction is then rolled back). Returns the rows added.
function replicate(db: Database.Database, extra: number, progress: (copied: number) => void): number {
  if (extra <= 0) return 0
  const tables = db.prepare<[], string>(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`).pluck().all()
  const columns = (t: string): { name: string; type: string }[] => db.prepare(`PRAGMA table_info(${JSON.stringify(t)})`).all() as { name: string; type: string }[]
  const withMsgId = tables.filter((t) => columns(t).some((c) => c.name === 'msg_id'))
  if (!withMsgId.includes('messages')) throw new Error('no messages table')
  const ordered = ['messages', ...withMsgId.filter((t) => t !== 'messages')]
  db.exec(`DROP TABLE IF EXISTS temp.seed; CREATE TEMP TABLE seed (msg_id TEXT PRIMARY KEY); INSERT INTO temp.seed SELECT msg_id FROM messages`)
  const seed = db.prepare<[], number>(`SELECT COUNT(*) FROM temp.seed`).pluck().get() ?? 0
  if (seed === 0) throw new Error('nothing to copy')
  const odd = db.prepare<[], number>(`SELECT COUNT(*) FROM temp.seed WHERE msg_id NOT GLOB '*-????????-????-[47]???-????-????????????'`).pluck().get() ?? 0
  if (odd > 0) throw new Error(`${odd} msg_ids are not <year>-<uuid7> (or uuid4)`)
  // <year>-<uuid7>: the version nibble (22nd character from the end, 7 or 4) becomes c, so that a
  // copy never equals an original; the last 4 hex digits become the copy number.
  const newId = `substr(msg_id, 1, length(msg_id) - 22) || 'c' || substr(msg_id, length(msg_id) - 20, 17) || printf('%04x', @k)`
  const copies = ordered.map((t) => {
    const cols = columns(t)
    const exprs = cols.map((c) => (c.name === 'msg_id' ? newId : /TEXT/i.test(c.type) ? `replace(${JSON.stringify(c.name)}, msg_id, ${newId})` : JSON.stringify(c.name)))
    return db.prepare(
      `INSERT INTO ${JSON.stringify(t)} (${cols.map((c) => JSON.stringify(c.name)).join(', ')}) SELECT ${exprs.join(', ')} FROM ${JSON.stringify(t)} ` +
        `WHERE msg_id IN (SELECT msg_id FROM temp.seed ORDER BY msg_id LIMIT @n)`,
    )
  })
  const copy = db.transaction((k: number, n: number) => {
    for (const c of copies) c.run({ k, n })
  })
  let added = 0
  for (let k = 1; added < extra; k++) {
    const n = Math.min(seed, extra - added)
    copy(k, n)
    added += n
    if (k % 4 === 0 || added >= extra) progress(added)
  }
  db.exec('DROP TABLE temp.seed')
  return added
}

// Messages/s through `store` doing what the publisher does per message, `window` in flight, for `ms`.
async function storeRate(store: OutboxStore, s: Sample, ms: number, window: number): Promise<number> {
  let done = 0
  const t0 = performance.now()
  const stop = t0 + ms
  const lane = async (): Promise<void> => {
    while (performance.now() < stop) {
      const msgId = newMsgId(Date.now())
      const now = Date.now()
      await store.add({ msgId, topic: s.topic, body: s.body, digest: s.digest, recipients: [s.cn], createdAt: now, deadline: now + DAY_MS, nextAttemptAt: now + 50 }).durable
      const outcome = await store.recordAck({ msgId, cn: s.cn, digest: s.digest, disposition: 'received', at: Date.now(), ackBody: s.ackBody, fingerprint: s.fingerprint }).durable
      if (outcome.kind !== 'counted') throw new Error(`recordAck: ${outcome.kind}`)
      store.get(msgId)
      store.recipients(msgId)
      done++
    }
  }
  await Promise.all(Array.from({ length: window }, lane))
  return (done * 1000) / (performance.now() - t0)
}

type StoreKind = 'memory' | 'full' | 'normal' | 'full1m' | 'normal1m'
const KINDS: readonly StoreKind[] = ['memory', 'full', 'normal', 'full1m', 'normal1m']

export const outboxCase: BenchCase = {
  id: 'outbox',
  title: 'outbox',
  async run(ctx: BenchContext): Promise<CaseResult[]> {
    const pki = await ctx.pki()
    const q = ctx.quick
    const historyRows = q ? 10_000 : 1_000_000
    const rowsLabel = q ? '10k' : '1M'
    const dir = join(ctx.dir, 'outbox')
    mkdirSync(dir, { recursive: true })
    const s = sample(pki)
    const historyPath = join(dir, 'history.outbox.db')
    ctx.progress(`outbox: writing a history of ${fmt(historyRows)} acknowledged rows`)
    const fill = await fillHistory(historyPath, historyRows, s, ctx.progress)
    const fillMs = fill.ms
    ctx.progress(`outbox: history written in ${(fillMs / 1000).toFixed(1)} s (${fmt(fill.seeded)} through the store, ${fmt(fill.copied)} copied in SQL)`)

    // Store only, in this process.
    const storeMs = q ? 150 : 1000
    const storeReps = q ? 1 : 3
    const storeRuns: Record<string, number[]> = { memory: [], full: [], normal: [], full1m: [] }
    const openStore = (k: string): OutboxStore =>
      k === 'memory'
        ? new MemoryOutboxStore()
        : SqliteOutboxStore.open(k === 'full1m' ? historyPath : join(dir, `store-${k}.outbox.db`), { synchronous: k === 'normal' ? 'NORMAL' : 'FULL' })
    for (let rep = 0; rep < storeReps; rep++) {
      for (const k of Object.keys(storeRuns)) {
        const store = openStore(k)
        try {
          storeRuns[k]!.push(await storeRate(store, s, storeMs, STORE_WINDOW))
        } finally {
          await store.close()
        }
      }
      ctx.progress(`outbox: store only, round ${rep + 1}: ${Object.entries(storeRuns).map(([k, v]) => `${k} ${fmt(v[v.length - 1] ?? NaN)}/s`).join(', ')}`)
    }
    const storeRate1 = (k: string): number => median(storeRuns[k] ?? [])

    // End to end.
    const relay = await startBenchRelay()
    const e2eRuns: Record<StoreKind, number[]> = { memory: [], full: [], normal: [], full1m: [], normal1m: [] }
    const e2eDetails: Record<string, unknown>[] = []
    try {
      const parties = await startParties(ctx, pki, relay, 'ec', join(dir, 'e2e'), ['r1'])
      try {
        const { pub } = parties
        const recipients = [certname('ec', 'r1')]
        const rounds = q ? 1 : 3
        const pathOf = (k: StoreKind): string | undefined =>
          k === 'memory' ? undefined : k === 'full1m' || k === 'normal1m' ? historyPath : join(dir, `e2e-${k}.outbox.db`)
        for (let round = 0; round < rounds; round++) {
          for (const k of KINDS) {
            const store = k === 'memory' ? 'memory' : k.startsWith('full') ? 'full' : 'normal'
            const path = pathOf(k)
            const opened = await pub.request<{ ms: number; rows: number }>({ cmd: 'open', store, ...(path ? { path } : {}) }, 'opened', 60_000)
            await pub.request({ cmd: 'warmup', recipients, topic: 'one' }, 'warm', 40_000)
            const r = await publishRun(pub, { recipients, topic: 'one', window: E2E_WINDOW, durationMs: q ? 600 : 4000, maxCount: q ? 120 : Number.MAX_SAFE_INTEGER })
            await pub.request({ cmd: 'close' }, 'closed', 30_000)
            e2eRuns[k].push(r.rate)
            e2eDetails.push({ store: k, round, openMs: opened.ms, rowsAtOpen: opened.rows, ...r })
            ctx.progress(`outbox: end to end, ${k}: ${fmt(r.rate)} acked msgs/s (${r.resends} resends, ${r.outboxCommits ?? '-'} commits)`)
          }
        }
      } finally {
        await parties.stop()
      }
    } finally {
      await relay.relay.close()
    }
    const e2e = (k: StoreKind): number => median(e2eRuns[k])
    const usPer = (rate: number): number => 1e6 / rate
    // FULL carries the targets; NORMAL is shown beside it for what the fsync costs.
    const e2eVsMemory = (mode: 'full' | 'normal') =>
      line({
        id: `outbox.e2e.${mode}`,
        name: `end to end, 1 P-256 recipient: SQLite ${mode.toUpperCase()} vs in-memory store`,
        figure: e2e(mode),
        unit: 'acked msgs/s',
        baseline: e2e('memory'),
        baselineUnit: 'acked msgs/s (memory)',
        target: mode === 'full' ? { text: '>= 0.9x in-memory', met: (_f, _b, ratio) => ratio >= 0.9 } : undefined,
        notes: `runs ${e2eRuns[mode].map((r) => fmt(r)).join(', ')} msgs/s`,
        details: mode === 'full' ? { runs: e2eRuns, window: E2E_WINDOW, all: e2eDetails } : { runs: e2eRuns.normal },
      })
    const e2eVsEmpty = (mode: 'full' | 'normal') => {
      const history: StoreKind = mode === 'full' ? 'full1m' : 'normal1m'
      return line({
        id: `outbox.e2e.${mode}.${rowsLabel}`,
        name: `end to end, SQLite ${mode.toUpperCase()}: cost per message with ${fmt(historyRows)} rows vs empty`,
        figure: usPer(e2e(history)),
        unit: 'us/msg',
        baseline: usPer(e2e(mode)),
        baselineUnit: 'us/msg (empty)',
        target: mode === 'full' ? { text: '<= 1.2x empty', met: (_f, _b, ratio) => ratio <= 1.2 } : undefined,
        notes: `${fmt(e2e(history))} vs ${fmt(e2e(mode))} msgs/s`,
        details: { historyRows, ...(mode === 'full' ? { fill } : {}), runs: { history: e2eRuns[history], empty: e2eRuns[mode] } },
      })
    }
    return [
      e2eVsMemory('full'),
      e2eVsMemory('normal'),
      e2eVsEmpty('full'),
      e2eVsEmpty('normal'),
      line({
        id: 'outbox.store.full',
        name: 'store only (add + recordAck + reads per message, in process): SQLite FULL vs memory',
        figure: storeRate1('full'),
        unit: 'msgs/s',
        baseline: storeRate1('memory'),
        baselineUnit: 'msgs/s (memory)',
        notes: `${fmt(usPer(storeRate1('full')))} us/msg vs ${fmt(usPer(storeRate1('memory')))} us/msg`,
        details: { runs: storeRuns, window: STORE_WINDOW, ms: storeMs },
      }),
      line({
        id: 'outbox.store.normal',
        name: 'store only: SQLite NORMAL vs memory',
        figure: storeRate1('normal'),
        unit: 'msgs/s',
        baseline: storeRate1('memory'),
        baselineUnit: 'msgs/s (memory)',
        notes: `${fmt(usPer(storeRate1('normal')))} us/msg`,
        details: { runs: storeRuns['normal'] },
      }),
      line({
        id: `outbox.store.full.${rowsLabel}`,
        name: `store only, SQLite FULL: cost per message with ${fmt(historyRows)} rows vs empty`,
        figure: usPer(storeRate1('full1m')),
        unit: 'us/msg',
        baseline: usPer(storeRate1('full')),
        baselineUnit: 'us/msg (empty)',
        target: { text: '<= 1.2x empty', met: (_f, _b, ratio) => ratio <= 1.2 },
        notes: `${fmt(storeRate1('full1m'))} vs ${fmt(storeRate1('full'))} msgs/s`,
        details: { runs: { history: storeRuns['full1m'], empty: storeRuns['full'] } },
      }),
    ]
  },
}
