/**
 * Case 3: bus throughput, publisher process -> subscriber process over tcp on
 * 127.0.0.1 (no relay), per key family.
 *
 * gilmsg: the publisher signs every message (`Bus.publish`), the subscriber
 * validates every one (`Bus.subscribe`: parse, canonicalise, certificate,
 * signature). Raw: zeromq.js PUB/SUB of frames gilmsg sealed beforehand
 * (identical topic and bodies), no parsing on either side. Both with
 * high-water mark 0 (nothing dropped).
 *
 * Timed at the subscriber, from the first message received to the last:
 * messages/s = (received - 1) / that time.
 */
import { WorkerProcess } from '../lib/proc.js'
import { line, type BenchCase, type BenchContext, type CaseResult } from '../lib/types.js'
import { certname, writeConfig, type KeyFamily } from '../lib/setup.js'

interface Flow {
  readonly received: number
  readonly ms: number
  readonly rate: number
  readonly subCpuMs: number
  readonly pubCpuMs: number
  readonly pubMs: number
  readonly bodyBytes: number
  readonly drops: unknown
}

async function flow(ctx: BenchContext, label: string, config: string, kind: 'gilmsg' | 'raw', count: number): Promise<Flow> {
  const env = { env: ctx.childEnv, execArgv: ctx.workerExecArgv }
  const pub = new WorkerProcess(`${label}-pub`, 'bus-pub', ['--config', config, '--kind', kind], env)
  let sub: WorkerProcess | undefined
  try {
    const { endpoint } = await pub.next<{ endpoint: string }>('ready', 20_000)
    sub = new WorkerProcess(`${label}-sub`, 'bus-sub', ['--config', config, '--kind', kind, '--connect', endpoint, '--count', String(count)], env)
    await sub.next('ready', 20_000)
    pub.send({ cmd: 'go', count })
    const budget = 120_000
    const done = await sub.next<{ received: number; ms: number; cpuMs: number; drops?: unknown }>('done', budget)
    const sent = await pub.next<{ ms: number; cpuMs: number; bodyBytes: number }>('sent', 30_000)
    if (done.received < count) throw new Error(`${label}: the subscriber got ${done.received} of ${count} messages`)
    return {
      received: done.received,
      ms: done.ms,
      rate: ((done.received - 1) * 1000) / done.ms,
      subCpuMs: done.cpuMs,
      pubCpuMs: sent.cpuMs,
      pubMs: sent.ms,
      bodyBytes: sent.bodyBytes,
      drops: done.drops ?? {},
    }
  } finally {
    await Promise.all([pub.stop(), sub?.stop()])
  }
}

export const busCase: BenchCase = {
  id: 'bus',
  title: 'bus throughput',
  async run(ctx: BenchContext): Promise<CaseResult[]> {
    const pki = await ctx.pki()
    const out: CaseResult[] = []
    const families: readonly { family: KeyFamily; gilmsg: number; raw: number }[] = ctx.quick
      ? [
          { family: 'ec', gilmsg: 1000, raw: 5000 },
          { family: 'rsa', gilmsg: 300, raw: 5000 },
        ]
      : [
          { family: 'ec', gilmsg: 20_000, raw: 200_000 },
          { family: 'rsa', gilmsg: 6000, raw: 200_000 },
        ]
    for (const f of families) {
      const config = writeConfig(ctx.dir, `bus-${f.family}`, pki, { certname: certname(f.family, 'pub'), family: f.family })
      ctx.progress(`bus: ${f.family}: raw zeromq.js PUB/SUB, ${f.raw} messages`)
      const raw = await flow(ctx, `bus-raw-${f.family}`, config, 'raw', f.raw)
      ctx.progress(`bus: ${f.family}: raw ${Math.round(raw.rate)} msgs/s; gilmsg signed + validated, ${f.gilmsg} messages`)
      const g = await flow(ctx, `bus-gilmsg-${f.family}`, config, 'gilmsg', f.gilmsg)
      ctx.progress(`bus: ${f.family}: gilmsg ${Math.round(g.rate)} msgs/s`)
      const cpuPerMsg = (cpu: number, n: number): number => (cpu * 1000) / n
      out.push(
        line({
          id: `bus.${f.family}`,
          name: `bus, ${f.family === 'rsa' ? 'x509 RSA-2048' : 'x509_sha256 P-256'}: signed + validated vs raw PUB/SUB of identical frames`,
          figure: g.rate,
          unit: 'msgs/s',
          baseline: raw.rate,
          baselineUnit: 'msgs/s',
          notes: `${g.bodyBytes} B bodies; CPU/msg pub ${cpuPerMsg(g.pubCpuMs, g.received).toFixed(0)} us, sub ${cpuPerMsg(g.subCpuMs, g.received).toFixed(0)} us`,
          details: { gilmsg: g, raw },
        }),
      )
    }
    return out
  },
}
