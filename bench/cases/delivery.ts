/**
 * Case 4: guaranteed delivery, every party its own process, through a relay
 * on 127.0.0.1 tcp (the relay runs in the runner's process).
 *
 * Per key family (RSA-2048 with fedmsg's `x509`; P-256 with `x509_sha256`):
 * three recipient processes (`bench/workers/recipient.ts`: gilmsg, SQLite
 * inbox, automatic ACK), one publisher process (`publisher.ts`: SQLite
 * outbox, synchronous FULL, the default). r1 subscribes to every application
 * topic, r2 and r3 only to `...app.all`, so a 1-recipient run (topic `one`)
 * costs r2 and r3 nothing. After a warm-up, four runs:
 * - pipelined: `window` publish() calls in flight for a fixed time, for each
 *   of {@link WINDOWS}; figure = the best acknowledged messages/s (every
 *   recipient's signed ACK recorded); baseline = raw node:crypto sign/s of
 *   that family's key on one core, measured just before the family's
 *   processes start.
 * - one at a time: figure = p50 of the time from publish() to its receipt;
 *   baseline = p50 of a raw zeromq.js PUB/SUB round trip between two
 *   processes (direct; the round trip through the relay is in the details).
 *   With one recipient, a second line sets the same p50 beside the floor of
 *   signed, durable delivery, each part measured raw in this run: the round
 *   trip through the relay, two signatures and two verifications with the
 *   family's keys, and one fdatasync on the disk the stores use (the
 *   recipient's inbox is durable before it acknowledges). Target: p50 <= 1.5x
 *   that floor (P-256).
 * - the crypto CPU floor (3 recipients, pipelined): the acknowledged msgs/s
 *   of the best window beside what the machine's cores could sustain if they
 *   did nothing but the signatures and verifications one message needs: 1
 *   signature, 1 verification per recipient, and the ACK signatures and their
 *   verifications by the publisher at the batch size observed in that run
 *   (ACK envelopes signed by the recipients / messages acknowledged), each
 *   priced at the raw rate measured in this run. Target (P-256): >= 0.4x.
 *   Every run also records each process's CPU time per acknowledged message
 *   (utime + stime from /proc/PID/stat over the run: publisher, relay, each
 *   recipient), so the gap shows by process; the relay runs in the runner's
 *   process (`startBenchRelay`), whose own share is the waiting for replies.
 */
import { mkdirSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { buildEnvelope, createSigner, sealEnvelope } from '../../src/internal.js'
import type { Pki } from '../lib/pki.js'
import { CpuWindow } from '../lib/cpu.js'
import { WorkerProcess } from '../lib/proc.js'
import { APP_PREFIX, certname, startBenchRelay, writeConfig, type BenchRelay, type KeyFamily } from '../lib/setup.js'
import { fdatasyncLatencies } from '../lib/disk.js'
import { fmt, formatLatency } from '../lib/format.js'
import { roundSummary, summarize, type Summary } from '../lib/stats.js'
import { line, type BenchCase, type BenchContext, type CaseResult } from '../lib/types.js'
import { samplePayload } from './canonical.js'
import { rawSignRate, rawVerifyRate } from './crypto.js'

/**
 * publish() calls in flight in the pipelined runs: each window runs in turn and
 * the line reports the best (the others are in its notes and details). Resends
 * start 12.5-50 ms after a send, so a deep window that pushes the time to ACK
 * past that costs resends; a shallow one leaves the pipes idle.
 */
export const WINDOWS: readonly number[] = [8, 32, 128]

/** What the publisher worker's `run` replies. */
export interface RunResult {
  readonly acked: number
  readonly failed: number
  readonly firstError?: string
  readonly ms: number
  readonly rate: number
  readonly latency: Summary
  readonly resends: number
  /** First resends that came due before the retransmission timeout of the moment, and waited. */
  readonly resendsPostponed: number
  readonly ignoredAcks: Record<string, number>
  readonly cpuMs: number
  readonly eventLoopDelayP99Ms: number
  readonly outboxCommits?: number
  readonly outboxWrites?: number
}

/** What a recipient worker's `stats` replies (the counters this case reads). */
export interface RecipientStats {
  readonly delivered: number
  readonly consumer: Readonly<Record<string, number>>
}

/** A publisher run with the CPU every process spent on it (ms, /proc/PID/stat) and the ACK envelopes the recipients signed meanwhile. */
export interface MeasuredRun {
  readonly result: RunResult
  readonly cpuMs: Record<string, number>
  /** CPU microseconds per acknowledged message, by process. */
  readonly cpuUsPerMsg: Record<string, number>
  readonly ackEnvelopes: number
}

/** The labels of {@link MeasuredRun.cpuMs}: `publisher`, `relay`, then each recipient's label. */
export function partyPids(pub: WorkerProcess, recipients: readonly WorkerProcess[], relayPid: number = process.pid): Record<string, number | undefined> {
  return { publisher: pub.child.pid, relay: relayPid, ...Object.fromEntries(recipients.map((r) => [r.label, r.child.pid])) }
}

function ackEnvelopes(stats: readonly RecipientStats[]): number {
  return stats.reduce((a, s) => a + (s.consumer['ack_envelopes'] ?? 0), 0)
}

/** {@link publishRun} with each process's CPU time over the run and the recipients' ACK envelopes. */
export async function measuredRun(pub: WorkerProcess, recipients: readonly WorkerProcess[], spec: Parameters<typeof publishRun>[1]): Promise<MeasuredRun> {
  const stats = (): Promise<RecipientStats[]> => Promise.all(recipients.map((r) => r.request<RecipientStats>({ cmd: 'stats' }, 'stats', 10_000)))
  const before = await stats()
  const cpu = new CpuWindow(partyPids(pub, recipients))
  const result = await publishRun(pub, spec)
  const cpuMs = cpu.stop()
  const after = await stats()
  const cpuUsPerMsg = Object.fromEntries(Object.entries(cpuMs).map(([k, v]) => [k, Math.round((v * 1000) / result.acked)]))
  return { result, cpuMs, cpuUsPerMsg, ackEnvelopes: ackEnvelopes(after) - ackEnvelopes(before) }
}

/** `publisher 466, relay 159, r1 364 ... us/msg`. */
export function cpuNote(m: MeasuredRun): string {
  const parts = Object.entries(m.cpuUsPerMsg).map(([k, v]) => `${k.replace(/^(rsa|ec)-/, '')} ${fmt(v)}`)
  const total = Object.values(m.cpuUsPerMsg).reduce((a, b) => a + b, 0)
  return `CPU us/acked msg: ${parts.join(', ')} (total ${fmt(total)})`
}

/**
 * The crypto CPU floor of pipelined delivery to `recipients` recipients: the msgs/s that
 * `cores` cores reach doing only 1 signature, `recipients` verifications, and `ackEnvelopesPerMsg`
 * ACK signatures and as many verifications per message, at the given raw per-core rates.
 */
export function cryptoFloor(p: { cores: number; signRate: number; verifyRate: number; recipients: number; ackEnvelopesPerMsg: number }): {
  readonly rate: number
  readonly cpuUsPerMsg: number
  readonly signsPerMsg: number
  readonly verifiesPerMsg: number
} {
  const signsPerMsg = 1 + p.ackEnvelopesPerMsg
  const verifiesPerMsg = p.recipients + p.ackEnvelopesPerMsg
  const cpuUsPerMsg = (signsPerMsg * 1e6) / p.signRate + (verifiesPerMsg * 1e6) / p.verifyRate
  return { rate: (p.cores * 1e6) / cpuUsPerMsg, cpuUsPerMsg, signsPerMsg, verifiesPerMsg }
}

/** Raw zeromq.js PUB/SUB round trips (ms) between two processes, direct or through `relay`. */
export async function pingPong(ctx: BenchContext, relay: Pick<BenchRelay, 'inbound' | 'outbound'> | undefined, count: number, size: number): Promise<number[]> {
  const env = { env: ctx.childEnv, execArgv: ctx.workerExecArgv }
  const pong = new WorkerProcess('pong', 'pingpong', relay ? ['--role', 'pong', '--in', relay.inbound, '--out', relay.outbound] : ['--role', 'pong', '--bind'], env)
  let ping: WorkerProcess | undefined
  try {
    const ready = await pong.next<{ in: string; out: string }>('ready', 20_000)
    ping = new WorkerProcess('ping', 'pingpong', ['--role', 'ping', '--in', ready.in, '--out', ready.out, '--size', String(size)], env)
    await ping.next('ready', 20_000)
    const r = await ping.request<{ samples: number[] }>({ cmd: 'go', count }, 'rtt', 60_000 + count * 10)
    return r.samples
  } finally {
    await Promise.all([pong.stop(), ping?.stop()])
  }
}

/** The size of a signed P-256 envelope like the ones the delivery runs send, for the raw round trip's frames. */
export function ecBodySize(pki: Pki): number {
  const leaf = pki.leaf(certname('ec', 'pub'))
  const signer = createSigner({ mode: 'x509_sha256', keyPem: leaf.keyPem, certPem: leaf.certPem })
  const env = buildEnvelope({ topic: `${APP_PREFIX}all`, msg: { n: 1, at: Date.now(), text: 'guaranteed bench message' }, i: 1, nowMs: Date.now(), username: 'bench', extra: { gilmsg_version: '1.0', gilmsg_recipients: ['r1-ec', 'r2-ec', 'r3-ec'] } })
  return Buffer.byteLength(sealEnvelope(env, signer).body)
}

/** Starts recipient processes r1..r3 and a publisher for `family` on `relay`; resolves once all are ready and warmed up. */
export async function startParties(
  ctx: BenchContext,
  pki: Pki,
  relay: BenchRelay,
  family: KeyFamily,
  dir: string,
  roles: readonly ('r1' | 'r2' | 'r3')[],
): Promise<{ pub: WorkerProcess; recipients: WorkerProcess[]; stop(): Promise<void> }> {
  mkdirSync(dir, { recursive: true })
  const env = { env: ctx.childEnv, execArgv: ctx.workerExecArgv }
  const recipients = roles.map((role) => {
    const cfg = writeConfig(dir, role, pki, { certname: certname(family, role), family, relay, inboxPath: join(dir, `${role}.inbox.db`) })
    return new WorkerProcess(`${family}-${role}`, 'recipient', ['--config', cfg, '--prefix', role === 'r1' ? APP_PREFIX : `${APP_PREFIX}all`], env)
  })
  const pubCfg = writeConfig(dir, 'pub', pki, { certname: certname(family, 'pub'), family, relay, outboxPath: join(dir, 'pub.outbox.db') })
  const pub = new WorkerProcess(`${family}-pub`, 'publisher', ['--config', pubCfg], env)
  const stop = async (): Promise<void> => {
    await Promise.all([pub.stop(), ...recipients.map((r) => r.stop())])
  }
  try {
    await Promise.all([pub.next('ready', 30_000), ...recipients.map((r) => r.next('ready', 30_000))])
  } catch (e) {
    await stop()
    throw e
  }
  return { pub, recipients, stop }
}

/** Runs the publisher's `run` command and checks that something was acknowledged. */
export async function publishRun(
  pub: WorkerProcess,
  spec: { recipients: readonly string[]; topic: string; window: number; durationMs: number; maxCount: number; rate?: number },
): Promise<RunResult> {
  const r = await pub.request<RunResult>({ cmd: 'run', ...spec, ackTimeoutMs: 30_000 }, 'result', spec.durationMs + 90_000)
  if (r.acked === 0) throw new Error(`${pub.label}: nothing acknowledged (${r.failed} failed: ${r.firstError ?? '?'})`)
  return r
}

function latencyNote(r: RunResult): string {
  const failed = r.failed > 0 ? `; ${r.failed} FAILED` : ''
  return `ack ${formatLatency(r.latency)}; ${r.acked} acked, ${fmt(r.rate)}/s; ${r.resends} resends${r.resendsPostponed > 0 ? ` (${r.resendsPostponed} postponed)` : ''}${failed}`
}

export const deliveryCase: BenchCase = {
  id: 'delivery',
  title: 'guaranteed delivery',
  async run(ctx: BenchContext): Promise<CaseResult[]> {
    const pki = await ctx.pki()
    const q = ctx.quick
    const pipelinedMs = q ? 600 : 4000
    const pipelinedMax = q ? 40 : Number.MAX_SAFE_INTEGER
    const windows = q ? [8, 64] : WINDOWS
    const serialCount = q ? 20 : 400
    const rttCount = q ? 200 : 3000
    const size = ecBodySize(pki)
    const cores = availableParallelism()
    ctx.progress(`delivery: raw zeromq.js PUB/SUB round trip, two processes, ${size} B frames, ${rttCount} times`)
    const rttDirect = summarize(await pingPong(ctx, undefined, rttCount, size))
    const relay = await startBenchRelay()
    const out: CaseResult[] = []
    try {
      const rttRelay = summarize(await pingPong(ctx, relay, rttCount, size))
      ctx.progress(`delivery: raw round trip p50 ${fmt(rttDirect.p50 * 1000)} us direct, ${fmt(rttRelay.p50 * 1000)} us through the relay`)
      for (const family of ['rsa', 'ec'] as const) {
        const familyName = family === 'rsa' ? 'RSA-2048 (x509)' : 'P-256 (x509_sha256)'
        // Measured before this family's processes start, so that they do not compete with it.
        const leaf = pki.leaf(certname(family, 'pub'))
        const digest = family === 'rsa' ? 'sha1' : 'sha256'
        const sign = rawSignRate(leaf.keyPem, digest, q ? 50 : 500, q ? 1 : 3)
        const verify = rawVerifyRate(leaf.keyPem, leaf.certPem, digest, q ? 50 : 500, q ? 1 : 3)
        const fsync = summarize(fdatasyncLatencies(ctx.dir, q ? 20 : 200))
        // The least one message can take, one at a time, signed and durable: the relay round trip, the
        // publisher's signature and the recipient's verification, the recipient's inbox made durable
        // before it acknowledges, its ACK's signature and the publisher's verification of it.
        const parts = { relayRttMs: rttRelay.p50, signMs: 1000 / sign.rate, verifyMs: 1000 / verify.rate, fdatasyncMs: fsync.p50 }
        const floor = { ...parts, totalMs: parts.relayRttMs + 2 * parts.signMs + 2 * parts.verifyMs + parts.fdatasyncMs }
        ctx.progress(
          `delivery: ${family}: raw ${family === 'rsa' ? 'RSA-2048' : 'P-256'} on one core: ${fmt(sign.rate)} signs/s, ${fmt(verify.rate)} verifies/s; ` +
            `fdatasync p50 ${fmt(fsync.p50 * 1000)} us`,
        )
        const parties = await startParties(ctx, pki, relay, family, join(ctx.dir, `delivery-${family}`), ['r1', 'r2', 'r3'])
        try {
          const { pub, recipients } = parties
          await pub.request({ cmd: 'open', store: 'full' }, 'opened', 30_000)
          const one = [certname(family, 'r1')]
          const all = (['r1', 'r2', 'r3'] as const).map((r) => certname(family, r))
          await pub.request({ cmd: 'warmup', recipients: one, topic: 'one' }, 'warm', 40_000)
          await pub.request({ cmd: 'warmup', recipients: all, topic: 'all' }, 'warm', 40_000)
          await publishRun(pub, { recipients: all, topic: 'all', window: 32, durationMs: q ? 200 : 1500, maxCount: q ? 20 : Number.MAX_SAFE_INTEGER })

          for (const [n, recips, topic] of [[1, one, 'one'], [3, all, 'all']] as const) {
            const byWindow: { window: number; result: RunResult; cpuUsPerMsg: Record<string, number>; ackEnvelopes: number }[] = []
            for (const window of windows) {
              ctx.progress(`delivery: ${family}: ${n} recipient(s), pipelined, ${window} in flight, ${pipelinedMs} ms`)
              const m = await measuredRun(pub, recipients, { recipients: recips, topic, window, durationMs: pipelinedMs, maxCount: pipelinedMax })
              ctx.progress(`delivery: ${family}: ${n} recipient(s), ${window} in flight: ${fmt(m.result.rate)} acked msgs/s (${latencyNote(m.result)}); ${cpuNote(m)}`)
              byWindow.push({ window, result: m.result, cpuUsPerMsg: m.cpuUsPerMsg, ackEnvelopes: m.ackEnvelopes })
            }
            const best = byWindow.reduce((a, b) => (b.result.rate > a.result.rate ? b : a))
            const p = best.result
            ctx.progress(`delivery: ${family}: ${n} recipient(s), one at a time, ${serialCount} messages`)
            const s = await publishRun(pub, { recipients: recips, topic, window: 1, durationMs: q ? 10_000 : 60_000, maxCount: serialCount })
            ctx.progress(`delivery: ${family}: ${n} recipient(s), one at a time: p50 ${fmt(s.latency.p50)} ms`)
            const bestCpu = cpuNote({ result: p, cpuMs: {}, cpuUsPerMsg: best.cpuUsPerMsg, ackEnvelopes: best.ackEnvelopes })
            out.push(
              line({
                id: `delivery.${family}.r${n}.pipelined`,
                name: `${familyName}, ${n} recipient(s), pipelined (best of ${windows.join('/')} in flight): acked msgs/s vs raw sign/s of one core`,
                figure: p.rate,
                unit: 'acked msgs/s',
                baseline: sign.rate,
                baselineUnit: 'raw signs/s',
                target: n === 3 && family === 'rsa' ? { text: '>= 0.5x raw RSA signs/s', met: (_f: number, _b: number, ratio: number) => ratio >= 0.5 } : undefined,
                notes: `best at ${best.window} in flight: ${latencyNote(p)}; ${byWindow.map((w) => `${w.window}: ${fmt(w.result.rate)}/s`).join(', ')}; ${bestCpu}`,
                details: { ...p, window: best.window, byWindow, rawSignRuns: sign.runs },
                series: [
                  {
                    plot: 'Acknowledged messages/s against publish() calls in flight (dashed: raw signs/s of one core)',
                    label: `${familyName}, ${n} recipient(s)`,
                    xTitle: 'publish() calls in flight',
                    yTitle: 'acknowledged messages/s',
                    xScale: 'log',
                    yScale: 'log',
                    points: byWindow.map((w) => ({ x: w.window, y: w.result.rate })),
                    floor: sign.rate,
                    floorLabel: `raw ${family === 'rsa' ? 'RSA-2048' : 'P-256'} signs/s, one core`,
                  },
                ],
              }),
              line({
                id: `delivery.${family}.r${n}.serial`,
                name: `${familyName}, ${n} recipient(s), one at a time: p50 time to full ACK vs raw PUB/SUB round trip p50`,
                figure: s.latency.p50,
                unit: 'ms p50',
                baseline: rttDirect.p50,
                baselineUnit: 'ms rtt p50',
                notes: latencyNote(s),
                details: { ...s, rawRttDirect: roundSummary(rttDirect), rawRttRelay: roundSummary(rttRelay) },
                latency: [
                  { label: `${familyName}, ${n} recipient(s), one at a time`, distribution: s.latency },
                  { label: 'raw PUB/SUB round trip, direct', distribution: roundSummary(rttDirect), floor: true },
                  { label: 'raw PUB/SUB round trip, through the relay', distribution: roundSummary(rttRelay), floor: true },
                ],
              }),
            )
            if (n === 1) {
              // The floor's fdatasync is measured back to back; here the recipient's inbox syncs once per message,
              // one message every p50: the same disk, as spaced, for comparison (the floor itself is unchanged).
              const paced = summarize(fdatasyncLatencies(ctx.dir, q ? 10 : 100, s.latency.p50))
              out.push(
                line({
                  id: `delivery.${family}.r1.floor`,
                  name: `${familyName}, 1 recipient, one at a time: p50 vs the floor of signed, durable delivery (each part measured raw in this run)`,
                  figure: s.latency.p50,
                  unit: 'ms p50',
                  baseline: floor.totalMs,
                  baselineUnit: 'ms floor',
                  target: family === 'ec' ? { text: '<= 1.5x the floor', met: (_f: number, _b: number, ratio: number) => ratio <= 1.5 } : undefined,
                  notes:
                    `floor = relay round trip ${fmt(floor.relayRttMs * 1000)} us + 2 signs x ${fmt(floor.signMs * 1000)} us` +
                    ` + 2 verifies x ${fmt(floor.verifyMs * 1000)} us + 1 fdatasync ${fmt(floor.fdatasyncMs * 1000)} us` +
                    ` (back to back; one every ${fmt(s.latency.p50)} ms, as spaced as this run's: p50 ${fmt(paced.p50 * 1000)} us)`,
                  details: { floor, rawSignRuns: sign.runs, rawVerifyRuns: verify.runs, fdatasync: roundSummary(fsync), fdatasyncPaced: { gapMs: s.latency.p50, ...roundSummary(paced) } },
                  latency: [{ label: `floor of signed, durable delivery, ${familyName}`, value: floor.totalMs }],
                }),
              )
            } else {
              const ackEnvelopesPerMsg = best.ackEnvelopes / p.acked
              const cf = cryptoFloor({ cores, signRate: sign.rate, verifyRate: verify.rate, recipients: n, ackEnvelopesPerMsg })
              out.push(
                line({
                  id: `delivery.${family}.r${n}.cpufloor`,
                  name: `${familyName}, ${n} recipients, pipelined: acked msgs/s vs the crypto CPU floor (${cores} cores / the signatures and verifications per message, raw in this run)`,
                  figure: p.rate,
                  unit: 'acked msgs/s',
                  baseline: cf.rate,
                  baselineUnit: 'msgs/s crypto floor',
                  target: family === 'ec' ? { text: '>= 0.4x the crypto floor', met: (_f: number, _b: number, ratio: number) => ratio >= 0.4 } : undefined,
                  notes:
                    `floor = ${cores} cores / (${cf.signsPerMsg.toFixed(2)} signs x ${fmt(1e6 / sign.rate)} us + ${cf.verifiesPerMsg.toFixed(2)} verifies x ${fmt(1e6 / verify.rate)} us` +
                    ` = ${fmt(cf.cpuUsPerMsg)} us); ACK batch ${fmt(n / ackEnvelopesPerMsg)} msgs per envelope at ${best.window} in flight; ${bestCpu}`,
                  details: { floor: { cores, ...cf, ackEnvelopesPerMsg, signRate: sign.rate, verifyRate: verify.rate }, window: best.window, cpuUsPerMsg: best.cpuUsPerMsg, byWindow: byWindow.map((w) => ({ window: w.window, rate: w.result.rate, cpuUsPerMsg: w.cpuUsPerMsg, ackEnvelopes: w.ackEnvelopes })) },
                }),
              )
            }
          }
          const stats = await Promise.all(recipients.map((r) => r.request({ cmd: 'stats' }, 'stats', 10_000)))
          const last = out[out.length - 1]
          if (last !== undefined) Object.assign(last.details, { recipients: stats })
        } finally {
          await parties.stop()
        }
      }
    } finally {
      await relay.relay.close()
    }
    return out
  },
}
