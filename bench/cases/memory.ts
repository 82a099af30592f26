/**
 * Case 6: memory of a publisher holding many pending (un-acknowledged)
 * messages: one publisher process (`bench/workers/memory.ts`, SQLite outbox
 * synchronous FULL) connected to a relay, with no recipient running. It
 * enqueues N messages for a recipient that never answers (N = 100,000;
 * 2,000 with --quick), then keeps running while they are resent.
 *
 * Figure: peak RSS over the whole run (sampled every 20 ms; a timeline with
 * one sample a second is in the details). Baseline: the same process's RSS after opening
 * and one enqueue, before the load. "Flat" means RSS at 100% of N is at most
 * 1.2x RSS at 25% of N. The resends done meanwhile (every pending message is
 * resent with backoff capped at 2 s) and the CPU they cost are reported too.
 */
import { join } from 'node:path'
import { fmt } from '../lib/format.js'
import { WorkerProcess } from '../lib/proc.js'
import { certname, startBenchRelay, writeConfig } from '../lib/setup.js'
import { line, type BenchCase, type BenchContext, type CaseResult } from '../lib/types.js'

interface Checkpoint {
  readonly pending: number
  readonly rssMb: number
  readonly peakRssMb: number
  readonly heapUsedMb: number
  readonly ms: number
  readonly resends: number
}

interface MemoryResult {
  readonly count: number
  readonly idleRssMb: number
  readonly peakRssMb: number
  readonly maxRssMb: number
  readonly idleMaxRssMb: number
  readonly timeline: readonly { s: number; rssMb: number; maxRssMb: number; enqueued: number; resends: number }[]
  readonly checkpoints: readonly Checkpoint[]
  readonly enqueueMs: number
  readonly enqueueCpuMs: number
  readonly resendsDuringEnqueue: number
  readonly holdMs: number
  readonly resendsDuringHold: number
  readonly holdCpuMs: number
  readonly holdEventLoopDelayP99Ms: number
  readonly holdEventLoopDelayMaxMs: number
  readonly pendingAtEnd: number
  readonly backgroundErrors: number
}

export const memoryCase: BenchCase = {
  id: 'memory',
  title: 'memory with pending messages',
  async run(ctx: BenchContext): Promise<CaseResult[]> {
    const pki = await ctx.pki()
    const count = ctx.quick ? 2000 : 100_000
    const holdMs = ctx.quick ? 1000 : 10_000
    const relay = await startBenchRelay()
    let worker: WorkerProcess | undefined
    try {
      const config = writeConfig(ctx.dir, 'memory-pub', pki, {
        certname: certname('ec', 'pub'),
        family: 'ec',
        relay,
        outboxPath: join(ctx.dir, 'memory.outbox.db'),
      })
      worker = new WorkerProcess('memory-pub', 'memory', ['--config', config], { env: ctx.childEnv, execArgv: ctx.workerExecArgv })
      await worker.next('ready', 30_000)
      ctx.progress(`memory: enqueueing ${fmt(count)} messages nobody acknowledges, then ${holdMs / 1000} s of resends`)
      const r = await worker.request<MemoryResult>({ cmd: 'go', count, window: 256, holdMs, recipient: 'nobody' }, 'result', 300_000 + holdMs)
      const at = (f: number): Checkpoint | undefined => r.checkpoints[[0.25, 0.5, 1].indexOf(f)]
      const q1 = at(0.25)
      const full = at(1)
      const flat = q1 !== undefined && full !== undefined && full.rssMb <= 1.2 * q1.rssMb
      const resendRate = (r.resendsDuringHold * 1000) / r.holdMs
      const holdCpu = r.holdCpuMs / r.holdMs
      ctx.progress(
        `memory: RSS idle ${fmt(r.idleRssMb)} MB, ${r.checkpoints.map((c) => `${fmt(c.pending)} pending ${fmt(c.rssMb)} MB`).join(', ')}; peak ${fmt(r.peakRssMb)} MB; ` +
          `${fmt(resendRate)} resends/s while holding (${(holdCpu * 100).toFixed(0)}% CPU)`,
      )
      return [
        line({
          id: 'memory.pending',
          name: `peak RSS of a publisher with ${fmt(count)} pending messages vs the same process idle`,
          figure: r.peakRssMb,
          unit: 'MB peak RSS',
          baseline: r.idleRssMb,
          baselineUnit: 'MB idle RSS',
          target: { text: '<= 120 MB, flat', met: (f) => f <= 120 && flat },
          notes:
            `RSS ${r.checkpoints.map((c) => fmt(c.rssMb)).join(' / ')} MB at 25/50/100%${flat ? ' (flat)' : ' (NOT flat)'}; ` +
            `enqueue ${fmt((count * 1000) / r.enqueueMs)}/s; holding: ${fmt(resendRate)} resends/s, ${(holdCpu * 100).toFixed(0)}% CPU, loop delay p99 ${fmt(r.holdEventLoopDelayP99Ms)} ms`,
          details: { ...r, flat, resendsPerSecondHolding: resendRate, cpuShareHolding: holdCpu },
        }),
      ]
    } finally {
      await worker?.stop()
      await relay.relay.close()
    }
  },
}
