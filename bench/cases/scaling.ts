/**
 * Case: scaling lines (issue 15, target 5), P-256, through the bench relay.
 *
 * 30 recipients or bystanders do not fit on 2 cores as 30 processes. They run
 * inside a few host processes (`bench/workers/host.ts`): each hosted
 * subscriber has its own config, sockets, certificate and SQLite inbox (a
 * Gilmsg of its own, as a process would); the recipients are spread over
 * {@link RECIPIENT_HOSTS} processes, the bystanders over two (one for each kind).
 * The publisher is the delivery case's publisher process (SQLite outbox,
 * synchronous FULL). Every point runs the same paced load (`rate` msgs/s,
 * `window` publish() calls in flight), so the machine is not saturated and the
 * CPU per message is work, not contention.
 *
 * - Recipients: 1, 3, 10, 30 recipients (all required). Figure: publisher CPU
 *   per acknowledged message per recipient; baseline: the same with 3.
 *   Target: within 1.3x from 3 to 30.
 * - Bystanders: 3 recipients, and 0, 10 or 30 bystanders on the same topics
 *   who are not recipients: half are gilmsg subscribers (with a certificate
 *   and an inbox, as an application runs them) on `<topic_prefix>.<env>.`,
 *   a prefix that also matches the ACK topic; half are plain `Bus.subscribe`
 *   subscribers of the application prefix (they validate every message and
 *   receive no ACK). Figures: the publisher's and the recipients' CPU per
 *   message vs with 0 bystanders (target <= 1.1x), and a gilmsg bystander's CPU
 *   per message it received vs a plain bus subscriber's (target <= 1.1x, i.e.
 *   no more within the noise), with the count of ACK messages the bystanders
 *   parsed (must be 0) and passed over unparsed.
 *
 * CPU: the publisher's from its own `process.cpuUsage()` over the run (microseconds);
 * the hosts' from /proc/PID/stat (10 ms ticks) over the same window.
 */
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { createPki, type Pki } from '../lib/pki.js'
import { CpuWindow } from '../lib/cpu.js'
import { fmt } from '../lib/format.js'
import { WorkerProcess } from '../lib/proc.js'
import { APP_PREFIX, ENVIRONMENT, startBenchRelay, TOPIC_PREFIX, writeConfig, type BenchRelay } from '../lib/setup.js'
import { line, type BenchCase, type BenchContext, type CaseResult, type Series } from '../lib/types.js'
import { publishRun, type RunResult } from './delivery.js'

/** Processes the recipients are spread over. */
export const RECIPIENT_HOSTS = 3

const TOPIC = 'scale'
const PUB = 'scale-pub'
const recipientName = (i: number): string => `scale-r${i}`
const bystanderName = (i: number): string => `scale-b${i}`

interface HostStats {
  readonly subscribers: number
  readonly delivered: number
  readonly ackDeliveries: number
  readonly acksSkipped: number
  readonly acksSent: number
  readonly ackEnvelopes: number
  readonly drops: Record<string, number>
}

/** One measured point: the publisher's run and each host's CPU and counters over it. */
interface Point {
  readonly run: RunResult
  /** Publisher CPU us per acknowledged message. */
  readonly publisherUs: number
  readonly hostCpuMs: Record<string, number>
  readonly hostDelta: Record<string, HostStats>
  readonly relayCpuMs: number
}

interface Parties {
  readonly pki: Pki
  readonly relay: BenchRelay
  readonly dir: string
  readonly pub: WorkerProcess
  readonly recipientHosts: readonly WorkerProcess[]
  readonly gilmsgBystanders: WorkerProcess
  readonly busBystanders: WorkerProcess
}

function configFor(p: Pick<Parties, 'pki' | 'relay' | 'dir'>, name: string): string {
  return writeConfig(p.dir, name, p.pki, { certname: name, family: 'ec', relay: p.relay, inboxPath: join(p.dir, `${name}.inbox.db`) })
}

async function hostStats(h: WorkerProcess): Promise<HostStats> {
  return h.request<HostStats>({ cmd: 'stats' }, 'stats', 10_000)
}

function delta(a: HostStats, b: HostStats): HostStats {
  return {
    subscribers: b.subscribers,
    delivered: b.delivered - a.delivered,
    ackDeliveries: b.ackDeliveries - a.ackDeliveries,
    acksSkipped: b.acksSkipped - a.acksSkipped,
    acksSent: b.acksSent - a.acksSent,
    ackEnvelopes: b.ackEnvelopes - a.ackEnvelopes,
    drops: b.drops,
  }
}

/** Runs the paced load to `recipients` and measures every process over it. */
async function measure(p: Parties, recipients: readonly string[], load: { rate: number; window: number; durationMs: number }): Promise<Point> {
  const hosts: Record<string, WorkerProcess> = {
    ...Object.fromEntries(p.recipientHosts.map((h) => [h.label, h])),
    [p.gilmsgBystanders.label]: p.gilmsgBystanders,
    [p.busBystanders.label]: p.busBystanders,
  }
  const before = Object.fromEntries(await Promise.all(Object.entries(hosts).map(async ([k, h]) => [k, await hostStats(h)] as const)))
  const cpu = new CpuWindow({ relay: process.pid, ...Object.fromEntries(Object.entries(hosts).map(([k, h]) => [k, h.child.pid])) })
  const run = await publishRun(p.pub, { recipients, topic: TOPIC, window: load.window, durationMs: load.durationMs, maxCount: Number.MAX_SAFE_INTEGER, rate: load.rate })
  const used = cpu.stop()
  const after = Object.fromEntries(await Promise.all(Object.entries(hosts).map(async ([k, h]) => [k, await hostStats(h)] as const)))
  const hostDelta = Object.fromEntries(Object.keys(hosts).map((k) => [k, delta(before[k] as HostStats, after[k] as HostStats)]))
  const { relay, ...hostCpuMs } = used
  return { run, publisherUs: (run.cpuMs * 1000) / run.acked, hostCpuMs, hostDelta, relayCpuMs: relay ?? NaN }
}

/** Adds `names` as recipients spread over the recipient hosts. */
async function addRecipients(p: Parties, names: readonly string[]): Promise<void> {
  await Promise.all(
    p.recipientHosts.map((h, i) => {
      const mine = names.filter((_, j) => j % p.recipientHosts.length === i)
      return mine.length === 0 ? undefined : h.request({ cmd: 'add', kind: 'gilmsg', prefix: `${APP_PREFIX}${TOPIC}`, configs: mine.map((n) => configFor(p, n)) }, 'added', 60_000)
    }),
  )
}

async function clearAll(hosts: readonly WorkerProcess[]): Promise<void> {
  await Promise.all(hosts.map((h) => h.request({ cmd: 'clear' }, 'cleared', 30_000)))
}

async function warmup(p: Parties, recipients: readonly string[]): Promise<void> {
  await p.pub.request({ cmd: 'warmup', recipients, topic: TOPIC }, 'warm', 60_000)
}

function recipientsUsPerMsg(p: Parties, pt: Point): number {
  const ms = p.recipientHosts.reduce((a, h) => a + (pt.hostCpuMs[h.label] ?? NaN), 0)
  return (ms * 1000) / pt.run.acked
}

/** CPU us per message received, per subscriber of `host` (NaN when it received nothing). */
function perReceived(host: WorkerProcess, pt: Point): number {
  const d = pt.hostDelta[host.label]
  const ms = pt.hostCpuMs[host.label] ?? NaN
  return d === undefined || d.delivered === 0 ? NaN : (ms * 1000) / d.delivered
}

export const scalingCase: BenchCase = {
  id: 'scaling',
  title: 'scaling with recipients and bystanders',
  async run(ctx: BenchContext): Promise<CaseResult[]> {
    const q = ctx.quick
    const counts = q ? [1, 3] : [1, 3, 10, 30]
    const bystanderCounts = q ? [0, 2] : [0, 10, 30]
    const maxRecipients = Math.max(...counts)
    const maxBystanders = Math.max(...bystanderCounts)
    const load = q ? { rate: 50, window: 8, durationMs: 600 } : { rate: 80, window: 16, durationMs: 6000 }
    const dir = join(ctx.dir, 'scaling')
    mkdirSync(dir, { recursive: true })
    ctx.progress(`scaling: certificates for ${maxRecipients} recipients and ${maxBystanders} bystanders`)
    const pki = await createPki(join(dir, 'pki'), [
      { name: PUB, key: 'ec' },
      ...Array.from({ length: maxRecipients }, (_, i) => ({ name: recipientName(i + 1), key: 'ec' as const })),
      ...Array.from({ length: Math.ceil(maxBystanders / 2) }, (_, i) => ({ name: bystanderName(i + 1), key: 'ec' as const })),
    ])
    const relay = await startBenchRelay()
    const env = { env: ctx.childEnv, execArgv: ctx.workerExecArgv }
    const workers: WorkerProcess[] = []
    const spawn = (label: string, name: string, args: string[]): WorkerProcess => {
      const w = new WorkerProcess(label, name, args, env)
      workers.push(w)
      return w
    }
    try {
      const pubCfg = writeConfig(dir, PUB, pki, { certname: PUB, family: 'ec', relay, outboxPath: join(dir, 'pub.outbox.db') })
      const parties: Parties = {
        pki,
        relay,
        dir,
        pub: spawn('scale-pub', 'publisher', ['--config', pubCfg]),
        recipientHosts: Array.from({ length: RECIPIENT_HOSTS }, (_, i) => spawn(`recipient-host-${i + 1}`, 'host', [])),
        gilmsgBystanders: spawn('bystanders-gilmsg', 'host', []),
        busBystanders: spawn('bystanders-bus', 'host', []),
      }
      await Promise.all(workers.map((w) => w.next('ready', 30_000)))
      await parties.pub.request({ cmd: 'open', store: 'full' }, 'opened', 30_000)

      // Recipients: 1, 3, 10, 30.
      const byCount: { recipients: number; point: Point }[] = []
      for (const n of counts) {
        const names = Array.from({ length: n }, (_, i) => recipientName(i + 1))
        ctx.progress(`scaling: ${n} recipient(s) in ${Math.min(n, RECIPIENT_HOSTS)} host process(es), ${load.rate} msgs/s for ${load.durationMs} ms`)
        await addRecipients(parties, names)
        await warmup(parties, names)
        const point = await measure(parties, names, load)
        ctx.progress(
          `scaling: ${n} recipient(s): ${fmt(point.run.rate)} acked msgs/s, publisher ${fmt(point.publisherUs)} us/msg = ${fmt(point.publisherUs / n)} us/msg/recipient; ${point.run.resends} resends`,
        )
        byCount.push({ recipients: n, point })
        await clearAll(parties.recipientHosts)
      }

      // Bystanders with 3 recipients.
      const three = Array.from({ length: 3 }, (_, i) => recipientName(i + 1))
      await addRecipients(parties, three)
      const byBystanders: { bystanders: number; point: Point }[] = []
      let hosting = 0
      for (const b of bystanderCounts) {
        const half = b / 2
        if (half > hosting) {
          const names = Array.from({ length: half - hosting }, (_, i) => bystanderName(hosting + i + 1))
          await Promise.all([
            parties.gilmsgBystanders.request({ cmd: 'add', kind: 'gilmsg', prefix: `${TOPIC_PREFIX}.${ENVIRONMENT}.`, configs: names.map((n) => configFor(parties, n)) }, 'added', 60_000),
            parties.busBystanders.request({ cmd: 'add', kind: 'bus', prefix: APP_PREFIX, configs: names.map((n) => configFor(parties, n)) }, 'added', 60_000),
          ])
          hosting = half
        }
        ctx.progress(`scaling: 3 recipients, ${b} bystanders (${half} gilmsg, ${half} plain bus), ${load.rate} msgs/s for ${load.durationMs} ms`)
        await warmup(parties, three)
        const point = await measure(parties, three, load)
        ctx.progress(
          `scaling: ${b} bystanders: publisher ${fmt(point.publisherUs)} us/msg, recipients ${fmt(recipientsUsPerMsg(parties, point))} us/msg; ` +
            `gilmsg bystander ${fmt(perReceived(parties.gilmsgBystanders, point))} us/received msg, bus subscriber ${fmt(perReceived(parties.busBystanders, point))}`,
        )
        byBystanders.push({ bystanders: b, point })
      }

      const out: CaseResult[] = []
      const perRecipient = (n: number): number => {
        const e = byCount.find((c) => c.recipients === n)
        return e === undefined ? NaN : e.point.publisherUs / n
      }
      const series = {
        x: 'recipients',
        y: 'publisher CPU us per acked message per recipient',
        points: byCount.map((c) => ({
          x: c.recipients,
          y: c.point.publisherUs / c.recipients,
          rate: c.point.run.rate,
          resends: c.point.run.resends,
          recipientsUsPerMsgPerRecipient: recipientsUsPerMsg(parties, c.point) / c.recipients,
        })),
      }
      const recipientsPlot = 'CPU per acked message per recipient against the number of recipients'
      const recipientSeries: Series[] = [
        {
          plot: recipientsPlot,
          label: 'publisher',
          xTitle: 'required recipients',
          yTitle: 'CPU us per acked message per recipient',
          xScale: 'log',
          yScale: 'log',
          points: byCount.map((c) => ({ x: c.recipients, y: c.point.publisherUs / c.recipients })),
        },
        {
          plot: recipientsPlot,
          label: 'recipients (their host processes together)',
          xTitle: 'required recipients',
          yTitle: 'CPU us per acked message per recipient',
          xScale: 'log',
          yScale: 'log',
          points: byCount.map((c) => ({ x: c.recipients, y: recipientsUsPerMsg(parties, c.point) / c.recipients })),
        },
      ]
      let plotted = false
      for (const n of counts.filter((c) => c !== 3)) {
        const e = byCount.find((c) => c.recipients === n)
        const plot = plotted ? {} : { series: recipientSeries }
        plotted = true
        out.push(
          line({
            id: `scaling.recipients.${n}`,
            name: `publisher CPU per acked message per recipient, ${n} vs 3 recipients (P-256, ${load.rate} msgs/s paced)`,
            figure: perRecipient(n),
            unit: `us/msg/recipient (${n})`,
            baseline: perRecipient(3),
            baselineUnit: 'us/msg/recipient (3)',
            target: n > 3 ? { text: '<= 1.3x (flat from 3 to 30)', met: (_f, _b, ratio) => ratio <= 1.3 } : undefined,
            notes: e === undefined ? '' : `${fmt(e.point.run.rate)} acked/s, ack p50 ${fmt(e.point.run.latency.p50)} ms, ${e.point.run.resends} resends; recipients in ${Math.min(n, RECIPIENT_HOSTS)} host processes`,
            details: { series, point: e?.point },
            ...plot,
          }),
        )
      }
      const zero = byBystanders.find((b) => b.bystanders === 0)?.point
      const bystanderSeries = {
        x: 'bystanders',
        y: 'CPU us per acked message',
        points: byBystanders.map((b) => ({
          x: b.bystanders,
          publisher: b.point.publisherUs,
          recipients: recipientsUsPerMsg(parties, b.point),
          gilmsgBystanderPerReceived: perReceived(parties.gilmsgBystanders, b.point),
          busSubscriberPerReceived: perReceived(parties.busBystanders, b.point),
        })),
      }
      const bystandersPlot = 'CPU per message against bystanders (3 recipients)'
      const bystanderLine = (label: string, y: (pt: Point) => number): Series => ({
        plot: bystandersPlot,
        label,
        xTitle: 'bystanders (half gilmsg, half plain bus subscribers)',
        yTitle: 'CPU us per message',
        points: byBystanders.map((b) => ({ x: b.bystanders, y: y(b.point) })),
      })
      const bystanderPlotSeries: Series[] = [
        bystanderLine('publisher, per acked message', (pt) => pt.publisherUs),
        bystanderLine('recipients, per acked message', (pt) => recipientsUsPerMsg(parties, pt)),
        bystanderLine('a gilmsg bystander, per message received', (pt) => perReceived(parties.gilmsgBystanders, pt)),
        bystanderLine('a plain bus subscriber, per message received', (pt) => perReceived(parties.busBystanders, pt)),
      ]
      for (const { bystanders: b, point } of byBystanders.filter((x) => x.bystanders > 0)) {
        const g = point.hostDelta[parties.gilmsgBystanders.label]
        const ackNote = g === undefined ? '' : `; gilmsg bystanders: ${g.ackDeliveries} ACKs parsed, ${g.acksSkipped} passed over unparsed`
        out.push(
          line({
            id: `scaling.bystanders.${b}.publisher`,
            name: `publisher CPU per acked message, 3 recipients, ${b} bystanders vs none`,
            figure: point.publisherUs,
            unit: `us/msg (${b} bystanders)`,
            baseline: zero?.publisherUs ?? NaN,
            baselineUnit: 'us/msg (none)',
            target: { text: '<= 1.1x', met: (_f, _b, ratio) => ratio <= 1.1 },
            notes: `${fmt(point.run.rate)} acked/s, ${point.run.resends} resends${ackNote}`,
            details: { series: bystanderSeries, point },
          }),
          line({
            id: `scaling.bystanders.${b}.recipients`,
            name: `3 recipients' CPU per acked message (their ${RECIPIENT_HOSTS} host processes), ${b} bystanders vs none`,
            figure: recipientsUsPerMsg(parties, point),
            unit: `us/msg (${b} bystanders)`,
            baseline: zero === undefined ? NaN : recipientsUsPerMsg(parties, zero),
            baselineUnit: 'us/msg (none)',
            target: { text: '<= 1.1x', met: (_f, _b, ratio) => ratio <= 1.1 },
            details: { series: bystanderSeries },
          }),
        )
      }
      const last = byBystanders[byBystanders.length - 1]
      if (last !== undefined && last.bystanders > 0) {
        const g = last.point.hostDelta[parties.gilmsgBystanders.label]
        const parsedNone = g !== undefined && g.ackDeliveries === 0
        out.push(
          line({
            id: 'scaling.bystander.vs.bus',
            name: `a gilmsg bystander (prefix matching the ACK topic) vs a plain bus subscriber: CPU per message received, ${last.bystanders / 2} of each`,
            figure: perReceived(parties.gilmsgBystanders, last.point),
            unit: 'us/msg (gilmsg bystander)',
            baseline: perReceived(parties.busBystanders, last.point),
            baselineUnit: 'us/msg (bus subscriber)',
            target: { text: '<= 1.1x, no ACK parsed', met: (_f, _b, ratio) => ratio <= 1.1 && parsedNone },
            notes: g === undefined ? '' : `gilmsg bystanders: ${g.delivered} messages handed over, ${g.ackDeliveries} ACKs parsed, ${g.acksSkipped} ACKs passed over unparsed`,
            details: { series: bystanderSeries, gilmsg: g, bus: last.point.hostDelta[parties.busBystanders.label] },
            series: bystanderPlotSeries,
          }),
        )
      }
      return out
    } finally {
      await Promise.all(workers.map((w) => w.stop()))
      await relay.relay.close()
    }
  },
}
