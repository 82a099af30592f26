/**
 * Case `relay`: what a relay hop costs, native (libzmq's proxy) and js (a JavaScript loop),
 * the relay in a process of its own, against raw zeromq.js PUB/SUB between two processes.
 *
 * - Round trip, one message at a time (`pingpong` workers, bodies the size of a signed P-256
 *   message): through the relay vs direct, p50.
 * - Throughput, one way (`flow` workers, same bodies, high-water marks off): through the relay
 *   vs direct, timed at the subscriber.
 * - Relay CPU per message: utime + stime of the relay process (/proc/PID/stat) over the
 *   throughput run, divided by the messages; native vs js.
 */
import { CpuWindow } from '../lib/cpu.js'
import { fmt, formatLatency } from '../lib/format.js'
import { WorkerProcess } from '../lib/proc.js'
import { roundSummary, summarize, type Summary } from '../lib/stats.js'
import { line, type BenchCase, type BenchContext, type CaseResult } from '../lib/types.js'
import { ecBodySize, pingPong } from './delivery.js'

type Mode = 'native' | 'js'

interface Flow {
  readonly received: number
  readonly ms: number
  readonly rate: number
  /** CPU ms of the relay process over the run; undefined when direct. */
  readonly relayCpuMs: number | undefined
}

async function withRelay<T>(ctx: BenchContext, mode: Mode, f: (relay: { inbound: string; outbound: string; pid: number | undefined }) => Promise<T>): Promise<T> {
  const w = new WorkerProcess(`relay-${mode}`, 'relay', ['--mode', mode], { env: ctx.childEnv, execArgv: ctx.workerExecArgv })
  try {
    const ready = await w.next<{ inbound: string; outbound: string }>('ready', 20_000)
    return await f({ inbound: ready.inbound, outbound: ready.outbound, pid: w.child.pid })
  } finally {
    await w.stop()
  }
}

async function flow(ctx: BenchContext, relay: { inbound: string; outbound: string; pid: number | undefined } | undefined, count: number, size: number): Promise<Flow> {
  const env = { env: ctx.childEnv, execArgv: ctx.workerExecArgv }
  const pub = new WorkerProcess('flow-pub', 'flow', relay ? ['--role', 'pub', '--connect', relay.inbound] : ['--role', 'pub'], env)
  let sub: WorkerProcess | undefined
  try {
    const { endpoint } = await pub.next<{ endpoint: string }>('ready', 20_000)
    sub = new WorkerProcess('flow-sub', 'flow', ['--role', 'sub', '--connect', relay ? relay.outbound : endpoint, '--count', String(count)], env)
    await sub.next('ready', 20_000)
    const cpu = new CpuWindow({ relay: relay?.pid })
    pub.send({ cmd: 'go', count, size })
    const done = await sub.next<{ received: number; ms: number }>('done', 120_000)
    const relayCpuMs = relay ? cpu.stop()['relay'] : undefined
    await pub.next('sent', 30_000)
    return { received: done.received, ms: done.ms, rate: ((done.received - 1) * 1000) / done.ms, relayCpuMs }
  } finally {
    await Promise.all([pub.stop(), sub?.stop()])
  }
}

export const relayCase: BenchCase = {
  id: 'relay',
  title: 'relay hop: native proxy and js loop vs direct PUB/SUB',
  async run(ctx: BenchContext): Promise<CaseResult[]> {
    const size = ecBodySize(await ctx.pki())
    const rttCount = ctx.quick ? 200 : 3000
    const flowCount = ctx.quick ? 5000 : 200_000
    const modes: readonly Mode[] = ['native', 'js']

    ctx.progress(`relay: raw round trips, ${rttCount} x ${size} B, direct and through each relay`)
    const direct = summarize(await pingPong(ctx, undefined, rttCount, size))
    const rtt = {} as Record<Mode, Summary>
    for (const mode of modes) rtt[mode] = summarize(await withRelay(ctx, mode, (r) => pingPong(ctx, r, rttCount, size)))
    ctx.progress(`relay: p50 round trip direct ${fmt(direct.p50 * 1000)} us, native ${fmt(rtt.native.p50 * 1000)} us, js ${fmt(rtt.js.p50 * 1000)} us`)

    ctx.progress(`relay: raw throughput, ${flowCount} x ${size} B, direct and through each relay`)
    const directFlow = await flow(ctx, undefined, flowCount, size)
    const flows = {} as Record<Mode, Flow>
    for (const mode of modes) flows[mode] = await withRelay(ctx, mode, (r) => flow(ctx, r, flowCount, size))
    const cpuUs = (f: Flow): number => ((f.relayCpuMs ?? NaN) * 1000) / f.received
    ctx.progress(
      `relay: ${fmt(directFlow.rate)} msgs/s direct, native ${fmt(flows.native.rate)} (${fmt(cpuUs(flows.native))} us CPU/msg), js ${fmt(flows.js.rate)} (${fmt(cpuUs(flows.js))} us CPU/msg)`,
    )

    const out: CaseResult[] = []
    for (const mode of modes) {
      out.push(
        line({
          id: `relay.${mode}.rtt`,
          name: `relay (${mode}) round trip p50 vs direct raw PUB/SUB, relay in its own process`,
          figure: rtt[mode].p50 * 1000,
          unit: 'us',
          baseline: direct.p50 * 1000,
          baselineUnit: 'us',
          ...(mode === 'native' ? { target: { text: '<= 2x direct', met: (_f: number, _b: number, r: number) => r <= 2 } } : {}),
          notes: `${size} B; relay ${formatLatency(rtt[mode])}; direct ${formatLatency(direct)}`,
          details: { mode, count: rttCount, size, relay: roundSummary(rtt[mode]), direct: roundSummary(direct) },
          latency: [
            { label: `through the ${mode} relay`, distribution: roundSummary(rtt[mode]) },
            { label: 'direct raw PUB/SUB', distribution: roundSummary(direct), floor: true },
          ],
        }),
      )
    }
    for (const mode of modes) {
      out.push(
        line({
          id: `relay.${mode}.throughput`,
          name: `relay (${mode}) throughput vs direct raw PUB/SUB`,
          figure: flows[mode].rate,
          unit: 'msgs/s',
          baseline: directFlow.rate,
          baselineUnit: 'msgs/s',
          ...(mode === 'native' ? { target: { text: '>= 0.8x direct', met: (_f: number, _b: number, r: number) => r >= 0.8 } } : {}),
          notes: `${flowCount} x ${size} B; relay CPU ${fmt(cpuUs(flows[mode]))} us/msg`,
          details: { mode, count: flowCount, size, relay: flows[mode], direct: directFlow },
        }),
      )
    }
    out.push(
      line({
        id: 'relay.cpu',
        name: 'relay CPU per message: native proxy vs js loop (relay process, /proc/PID/stat)',
        figure: cpuUs(flows.native),
        unit: 'us/msg',
        baseline: cpuUs(flows.js),
        baselineUnit: 'us/msg',
        target: { text: '<= 1/3 of the js loop', met: (_f, _b, r) => r <= 1 / 3 },
        notes: `over ${flowCount} messages each; CLK_TCK resolution 10 ms`,
        details: { nativeCpuMs: flows.native.relayCpuMs, jsCpuMs: flows.js.relayCpuMs, messages: flowCount },
      }),
    )
    return out
  },
}
