/**
 * A publisher holding many un-acknowledged messages (case 6).
 *
 *   memory --config FILE
 *
 * On `go {count, window, holdMs, recipient}` it opens gilmsg (SQLite outbox
 * from the config, synchronous FULL), notes its RSS, then enqueues `count`
 * messages for a recipient that never answers (deadline one day, so none
 * expires), `window` enqueues in flight. RSS (`process.memoryUsage().rss`)
 * is sampled every 20 ms; at 25%, 50% and 100% of `count` the current and
 * peak RSS are recorded. Then it keeps running for `holdMs` while the
 * resends go on, and reports the peak over everything, the resends done,
 * the CPU used and the event loop's delay, and an RSS timeline (one sample
 * a second). The kernel's `maxRSS` is reported too, but on Linux it starts
 * from the parent's RSS at fork time (`idleMaxRssMb` shows that), so the
 * sampled peak is the figure.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import { getHeapSpaceStatistics } from 'node:v8'
import { busFromConfig, Gilmsg, loadConfig, SqliteOutboxStore, storePath } from '../../src/index.js'
import { APP_MODNAME } from '../lib/names.js'
import { cpuMs, reply, serve, type Command } from '../lib/worker.js'

const MB = 1024 * 1024
const { values } = parseArgs({ options: { config: { type: 'string' } } })
const config = loadConfig({ file: values.config })

function rssMb(): number {
  return process.memoryUsage().rss / MB
}

// Where the RSS goes: V8's heap (used and reserved), memory V8 knows of outside it (Buffers), and the
// rest (native: SQLite's page cache, libzmq, malloc arenas, code).
function breakdown(): { heapUsedMb: number; heapTotalMb: number; externalMb: number; arrayBuffersMb: number; spacesMb: Record<string, number> } {
  const m = process.memoryUsage()
  // Each V8 heap space's reserved size (MB): which one grew.
  const spacesMb = Object.fromEntries(getHeapSpaceStatistics().map((s) => [s.space_name, Math.round((s.space_size / MB) * 10) / 10]))
  return { heapUsedMb: m.heapUsed / MB, heapTotalMb: m.heapTotal / MB, externalMb: m.external / MB, arrayBuffersMb: m.arrayBuffers / MB, spacesMb }
}

// The kernel's high-water mark of this process's RSS (getrusage ru_maxrss, in KiB).
function maxRssMb(): number {
  return process.resourceUsage().maxRSS / 1024
}

async function go(c: Command) {
  const count = Number(c['count'])
  const window = Number(c['window'])
  const holdMs = Number(c['holdMs'])
  const recipients = [String(c['recipient'])]
  const outbox = SqliteOutboxStore.open(storePath(config, 'outbox'), { synchronous: config.store_synchronous })
  const g = await Gilmsg.open({ bus: await busFromConfig(config), outbox })
  const pub = g.publisher
  if (pub === undefined) throw new Error('no publisher')
  let errors = 0
  g.on('background:error', () => void errors++)
  // The first enqueue opens the socket and warms the code paths.
  await g.enqueue('memory', { n: -1 }, { recipients, deadline: 24 * 3600_000, modname: APP_MODNAME })
  const idleRss = rssMb()
  const idle = breakdown()
  const idleMaxRss = maxRssMb()
  let peak = idleRss
  let done = 0
  const t0 = performance.now()
  const timeline: { s: number; rssMb: number; maxRssMb: number; enqueued: number; resends: number }[] = []
  const sampler = setInterval(() => {
    const rss = rssMb()
    peak = Math.max(peak, rss)
    const s = Math.floor((performance.now() - t0) / 1000)
    if (timeline.length === 0 || (timeline[timeline.length - 1] as { s: number }).s < s) {
      timeline.push({ s, rssMb: Math.round(rss), maxRssMb: Math.round(maxRssMb()), enqueued: done, resends: pub.resends })
    }
  }, 20)
  const checkpoints: Record<string, unknown>[] = []
  const marks = [0.25, 0.5, 1].map((f) => Math.max(1, Math.round(f * count)))
  let started = 0
  const cpu = process.cpuUsage()
  const lane = async (): Promise<void> => {
    while (started < count) {
      started++
      await g.enqueue('memory', { n: started, text: 'pending bench message' }, { recipients, deadline: 24 * 3600_000, modname: APP_MODNAME })
      done++
      if (done === marks[checkpoints.length]) {
        const rss = rssMb()
        peak = Math.max(peak, rss)
        checkpoints.push({
          pending: done,
          rssMb: rss,
          peakRssMb: peak,
          ...breakdown(),
          maxRssMb: maxRssMb(),
          ms: performance.now() - t0,
          resends: pub.resends,
        })
      }
    }
  }
  await Promise.all(Array.from({ length: window }, lane))
  const enqueueMs = performance.now() - t0
  const enqueueCpuMs = cpuMs(cpu)
  const resendsDuringEnqueue = pub.resends

  const holdCpu = process.cpuUsage()
  const loopDelay = monitorEventLoopDelay({ resolution: 10 })
  loopDelay.enable()
  const holdStart = performance.now()
  await new Promise((resolve) => setTimeout(resolve, holdMs))
  const holdElapsed = performance.now() - holdStart
  loopDelay.disable()
  clearInterval(sampler)
  peak = Math.max(peak, rssMb())
  const result = {
    type: 'result',
    count,
    idleRssMb: idleRss,
    idle,
    atEnd: breakdown(),
    peakRssMb: peak,
    idleMaxRssMb: idleMaxRss,
    maxRssMb: maxRssMb(),
    checkpoints,
    enqueueMs,
    enqueueCpuMs,
    resendsDuringEnqueue,
    holdMs: holdElapsed,
    resendsDuringHold: pub.resends - resendsDuringEnqueue,
    holdCpuMs: cpuMs(holdCpu),
    holdEventLoopDelayP99Ms: loopDelay.percentile(99) / 1e6,
    holdEventLoopDelayMaxMs: loopDelay.max / 1e6,
    pendingAtEnd: outbox.counts().pending,
    timeline,
    backgroundErrors: errors,
  }
  await g.close()
  return result
}

serve({ go })
reply({ type: 'ready' })
