/**
 * The publisher of guaranteed messages (cases 4 and 5).
 *
 *   publisher --config FILE
 *
 * Commands:
 * - `open {store: full|normal|memory, path?}`: (re)opens gilmsg on a fresh
 *   bus with that outbox (SQLite at `path` with synchronous FULL / NORMAL,
 *   or the in-memory store). Replies `opened {ms, rows}`.
 * - `warmup {recipients, topic}`: publishes until one message is acknowledged
 *   by every recipient (absorbs PUB/SUB's slow joiner). Replies `warm`.
 * - `run {recipients, topic, window, durationMs, maxCount, ackTimeoutMs}`:
 *   `window` loops each call `publish()` and await its receipt, until
 *   `durationMs` passed or `maxCount` were started; every started publish is
 *   awaited. With `rate` (msgs/s), message n starts no earlier than n / rate
 *   after the first (a paced load, the same for every configuration compared). Replies `result` with the acknowledged count, the elapsed time
 *   (first call to last receipt), the time from each call to its receipt,
 *   resends, CPU time and the outbox's commit counters.
 * - `close`: closes gilmsg (the outbox too). Replies `closed`.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import {
  busFromConfig,
  Gilmsg,
  loadConfig,
  MemoryOutboxStore,
  SqliteOutboxStore,
  storePath,
  type OutboxStore,
} from '../../src/index.js'
import { APP_MODNAME } from '../lib/names.js'
import { roundSummary, summarize } from '../lib/stats.js'
import { cpuMs, reply, serve, type Command } from '../lib/worker.js'

const { values } = parseArgs({ options: { config: { type: 'string' } } })
const config = loadConfig({ file: values.config })
let g: Gilmsg | undefined
let store: OutboxStore | undefined

function need(): Gilmsg {
  if (g === undefined) throw new Error('not open: send "open" first')
  return g
}

function diff(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [k, v] of Object.entries(after)) if (v - (before[k] ?? 0) !== 0) out[k] = v - (before[k] ?? 0)
  return out
}

function commits(): { commits: number; ops: number; largestBatch: number } | undefined {
  return store instanceof SqliteOutboxStore ? { ...store.stats } : undefined
}

async function open(c: Command) {
  await g?.close()
  g = undefined
  const t0 = performance.now()
  const kind = String(c['store'])
  const path = typeof c['path'] === 'string' ? c['path'] : storePath(config, 'outbox')
  store = kind === 'memory' ? new MemoryOutboxStore() : SqliteOutboxStore.open(path, { synchronous: kind === 'normal' ? 'NORMAL' : 'FULL' })
  const bus = await busFromConfig(config)
  g = await Gilmsg.open({ bus, outbox: store })
  g.on('background:error', (e) => process.stderr.write(`publisher: background error: ${e.message}\n`))
  const counts = store.counts()
  return { type: 'opened', ms: performance.now() - t0, rows: Object.values(counts).reduce((a, b) => a + b, 0) }
}

async function warmup(c: Command) {
  const gm = need()
  const recipients = c['recipients'] as string[]
  let last: unknown
  for (let attempt = 1; attempt <= 5; attempt++) {
    try {
      await gm.publish(String(c['topic']), { warmup: attempt }, { recipients, ackTimeout: 5000, modname: APP_MODNAME })
      return { type: 'warm', attempts: attempt }
    } catch (e) {
      last = e
    }
  }
  throw new Error(`warm-up: no message acknowledged by ${recipients.join(', ')} in 5 attempts: ${(last as Error)?.message}`)
}

async function run(c: Command) {
  const gm = need()
  const pub = gm.publisher
  if (pub === undefined) throw new Error('no publisher')
  const recipients = c['recipients'] as string[]
  const topic = String(c['topic'])
  const window = Number(c['window'])
  const durationMs = Number(c['durationMs'])
  const maxCount = Number(c['maxCount'])
  const ackTimeout = Number(c['ackTimeoutMs'] ?? 30_000)
  const intervalMs = typeof c['rate'] === 'number' && c['rate'] > 0 ? 1000 / c['rate'] : 0
  const latencies: number[] = []
  let started = 0
  let failed = 0
  let firstError: string | undefined
  const resends0 = pub.resends
  const postponed0 = pub.resendsPostponed
  const ignored0 = pub.ignoredAcks.snapshot()
  const commits0 = commits()
  const cpu = process.cpuUsage()
  const loopDelay = monitorEventLoopDelay({ resolution: 10 })
  loopDelay.enable()
  const t0 = performance.now()
  const stopAt = t0 + durationMs
  const lane = async (): Promise<void> => {
    while (started < maxCount && performance.now() < stopAt) {
      const n = started++
      const due = t0 + n * intervalMs
      if (due > performance.now()) await new Promise((resolve) => setTimeout(resolve, due - performance.now()))
      if (performance.now() >= stopAt) break
      const s = performance.now()
      try {
        await gm.publish(topic, { n, at: Date.now(), text: 'guaranteed bench message' }, { recipients, ackTimeout, modname: APP_MODNAME })
        latencies.push(performance.now() - s)
      } catch (e) {
        failed++
        firstError ??= (e as Error).message
      }
    }
  }
  await Promise.all(Array.from({ length: window }, lane))
  const ms = performance.now() - t0
  loopDelay.disable()
  const commits1 = commits()
  return {
    type: 'result',
    acked: latencies.length,
    failed,
    ...(firstError !== undefined ? { firstError } : {}),
    ms,
    rate: (latencies.length * 1000) / ms,
    latency: roundSummary(summarize(latencies)),
    resends: pub.resends - resends0,
    resendsPostponed: pub.resendsPostponed - postponed0,
    ignoredAcks: diff(pub.ignoredAcks.snapshot(), ignored0),
    cpuMs: cpuMs(cpu),
    eventLoopDelayP99Ms: loopDelay.percentile(99) / 1e6,
    ...(commits0 && commits1 ? { outboxCommits: commits1.commits - commits0.commits, outboxWrites: commits1.ops - commits0.ops } : {}),
  }
}

async function close() {
  await g?.close()
  g = undefined
  return { type: 'closed' }
}

serve({ open, warmup, run, close }, { onExit: async () => void (await g?.close()) })
reply({ type: 'ready' })
