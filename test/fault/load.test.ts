/**
 * Load (issue #5, section 5): N guaranteed messages through a relay to 3 recipients while one
 * recipient restarts; all delivered, none twice to an application.
 *
 * Processes: a publisher (test/fixtures/enqueue-worker.mjs on the built library, enqueueing
 * with bounded concurrency and waiting until its outbox has nothing pending), three
 * `gilmsg tail --json` recipients (alice, bob, carol), a relay on loopback tcp (in the test
 * process). Halfway through the enqueueing, carol is stopped with SIGTERM (a clean stop) and
 * started again on the same inbox. In the end every outbox row is acked by all three, each
 * with its signed ACK; alice and bob printed every msg_id exactly once; carol, across her two
 * processes, exactly once too (a clean stop hands over everything it acknowledged).
 *
 * Size: GILMSG_LOAD_MESSAGES, default 100,000 (the figure): 136 s, 803 acked msg/s, on
 * a 2-core VM (5,000: 9.4 s, 661 msg/s). Stores use the default store_synchronous FULL (an
 * fdatasync per group commit); GILMSG_LOAD_SYNCHRONOUS=NORMAL to compare.
 * Relay crash: a second case runs `gilmsg relay` as a process, SIGKILLs it while messages are
 * being enqueued (GILMSG_RELAY_CRASH_MESSAGES, default 1,500, to 2 recipients) and starts it
 * again on the same ports 1.5 s later: the resends deliver everything, once to each app.
 * Keys: EC P-256 leaves, `x509_sha256`.
 */
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestPki, type TestPki } from '../support/pki.js'
import { SqliteOutboxStore } from '../../src/outbox/sqlite.js'
import type { Relay } from '../../src/transport/relay.js'
import { CliProcess, statsOf as statsRecord } from '../support/cli.js'
import { APP_PREFIX, relayConfig, sleep, startLoopbackRelay, waitUntil, withTimeout, writeConfigFile } from '../support/reliable-net.js'
import { ScriptProcess } from '../support/script-process.js'

const N = Number(process.env['GILMSG_LOAD_MESSAGES'] ?? 100_000)
const SYNCHRONOUS = process.env['GILMSG_LOAD_SYNCHRONOUS'] ?? 'FULL'
const CONCURRENCY = 200
const RECIPIENTS = ['alice', 'bob', 'carol'] as const
const RESTARTED = 'carol'
const TOPIC = `${APP_PREFIX}load`
/** Start-up plus a per-message budget 6x what a busy 2-core VM needs (1.25 ms): a hang fails within 15 min at 100,000. */
const BUDGET_MS = 60_000 + N * 8

const WORKER = fileURLToPath(new URL('../fixtures/enqueue-worker.mjs', import.meta.url))

let dir: string
let env: NodeJS.ProcessEnv
let pki: TestPki
let net: { relay: Relay; inbound: string; outbound: string }
const configs: Record<string, string> = {}
const procs: CliProcess[] = []
let worker: ScriptProcess | undefined
const workers: ScriptProcess[] = []

interface Tail {
  readonly name: string
  readonly proc: CliProcess
  /** The process is gone and all its output was read. */
  readonly closed: Promise<unknown>
}

async function startTail(name: string, config = configs[name] as string): Promise<Tail> {
  const proc = new CliProcess(['tail', '--config', config, '--json', '--stats', '--topic', APP_PREFIX], env)
  procs.push(proc)
  const tail = { name, proc, closed: once(proc.child, 'close') }
  await proc.waitFor(new RegExp(`acknowledging as ${name}`), 'stderr', 15_000)
  return tail
}

/** msg_id -> how many times the processes printed it (this test's topic only); read incrementally. */
const counted = new Map<CliProcess, { upTo: number; counts: Map<string, number> }>()
function printed(tails: readonly Tail[]): Map<string, number> {
  const total = new Map<string, number>()
  for (const t of tails) {
    let c = counted.get(t.proc)
    if (c === undefined) counted.set(t.proc, (c = { upTo: 0, counts: new Map() }))
    const lines = t.proc.stdoutLines
    for (; c.upTo < lines.length; c.upTo++) {
      const m = JSON.parse(lines[c.upTo] as string) as { topic: string; msg_id: string }
      if (m.topic === TOPIC) c.counts.set(m.msg_id, (c.counts.get(m.msg_id) ?? 0) + 1)
    }
    for (const [id, n] of c.counts) total.set(id, (total.get(id) ?? 0) + n)
  }
  return total
}

function statsOf(t: Tail): string {
  const stats = statsRecord(t.proc.stderrLines)
  return stats === undefined ? '(none)' : JSON.stringify(stats)
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gilmsg-load-'))
  env = { XDG_STATE_HOME: join(dir, 'state'), GILMSG_CONFIG: '' }
  process.env['XDG_STATE_HOME'] = env['XDG_STATE_HOME']
  pki = await createTestPki(join(dir, 'pki'), ['pub', ...RECIPIENTS].map((name) => ({ name, key: 'ec' as const })))
  net = await startLoopbackRelay()
  for (const name of ['pub', ...RECIPIENTS]) {
    configs[name] = writeConfigFile(dir, name, relayConfig(pki, net, dir, name, { store_synchronous: SYNCHRONOUS }))
  }
}, 30_000)

afterAll(async () => {
  await Promise.allSettled([worker?.kill('SIGKILL'), ...workers.map((w) => w.kill('SIGKILL')), ...procs.map((p) => p.stop('SIGKILL'))])
  await net?.relay.close()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

describe(`load: ${N} messages through a relay to 3 recipients, one restarted (store_synchronous ${SYNCHRONOUS})`, () => {
  it(
    'every message is acked by all three; each app printed each msg_id exactly once, the restarted one too',
    async () => {
      const started = performance.now()
      const tails = new Map<string, Tail>()
      for (const name of RECIPIENTS) tails.set(name, await startTail(name))
      const log: string[] = []

      worker = new ScriptProcess('publisher', WORKER, [
        configs['pub'] as string,
        '--recipients',
        RECIPIENTS.join(','),
        '--from',
        '0',
        '--count',
        String(N),
        '--topic',
        'load',
        '--concurrency',
        String(CONCURRENCY),
        '--max-ms',
        String(BUDGET_MS - 10_000),
      ], env)
      const w = worker
      // Follow the publisher's output as it comes (scanning 100,000 lines in a poll would starve the relay).
      let enqueued = 0
      let committedAt: number | undefined
      let doneAt: number | undefined
      let t0 = performance.now()
      w.onLine((l) => {
        if (l.startsWith('enqueued ')) enqueued++
        else if (l.startsWith('open ')) t0 = performance.now()
        else if (l.startsWith('committed ')) committedAt = performance.now()
        else if (l.startsWith('done ')) doneAt = performance.now()
      })
      const until = (cond: () => boolean, what: string, ms: number): Promise<void> =>
        waitUntil(() => cond() || !w.running, ms, what, () => w.describe(), 50).then(() => {
          if (!cond()) throw new Error(`the publisher exited before ${what}: ${w.describe()}`)
        })

      // Halfway through the enqueueing, stop carol cleanly and start her again.
      await until(() => enqueued >= N / 2, `${N / 2} enqueued`, BUDGET_MS / 2)
      const first = tails.get(RESTARTED) as Tail
      const printedBefore = printed([first]).size
      const stopCode = await first.proc.stop('SIGTERM')
      await withTimeout(first.closed, 10_000, `${RESTARTED}'s output to be read`)
      log.push(`${RESTARTED} stopped (SIGTERM, exit ${stopCode}) at ${enqueued} enqueued, having printed ${printedBefore}; stats ${statsOf(first)}`)
      expect(stopCode, first.proc.stderrLines.join('\n')).toBe(0)
      const second = await startTail(RESTARTED)
      log.push(`${RESTARTED} restarted after ${Math.round(performance.now() - t0)} ms, at ${enqueued} enqueued`)

      await until(() => doneAt !== undefined, 'every message acked ("done")', BUDGET_MS)
      const committedMs = (committedAt as number) - t0
      const doneMs = (doneAt as number) - t0
      const exit = await withTimeout(w.closed, 15_000, 'the publisher to exit')
      expect(exit.code, w.describe()).toBe(0)
      log.push(`publisher: ${N} committed in ${Math.round(committedMs)} ms, all acked after ${Math.round(doneMs)} ms (${Math.round((N * 1000) / doneMs)} msg/s); ${w.stdoutLines.at(-1)}`)

      // The outbox: every row acked by all three, each with its signed ACK.
      const store = SqliteOutboxStore.open(join(dir, 'pub.outbox.db'))
      let ids: string[]
      try {
        expect(store.counts()).toEqual({ pending: 0, acked: N, expired: 0, rejected: 0 })
        const rows = store.list()
        ids = rows.map((m) => m.msgId)
        expect(ids.length).toBe(N)
        const resent = rows.filter((m) => m.attempts > 1).length
        let unacked = 0
        for (const m of rows) {
          const rs = store.recipients(m.msgId)
          if (!(rs.length === 3 && rs.every((r) => r.state === 'acked' && r.ackBody !== undefined && r.ackFingerprint !== undefined))) unacked++
        }
        expect(unacked, 'rows without three stored ACKs').toBe(0)
        log.push(`outbox: ${N} acked, ${resent} resent at least once`)
      } finally {
        await store.close()
      }
      const all = new Set(ids)

      // The applications: alice and bob exactly once each; carol, across both processes, exactly once.
      const views: [string, Tail[]][] = [
        ['alice', [tails.get('alice') as Tail]],
        ['bob', [tails.get('bob') as Tail]],
        [RESTARTED, [first, second]],
      ]
      for (const [name, ts] of views) {
        await waitUntil(() => printed(ts).size >= N, 30_000, `${name} to print every message`, () => `${printed(ts).size} of ${N}`, 200)
      }
      for (const t of [tails.get('alice') as Tail, tails.get('bob') as Tail, second]) {
        expect(await t.proc.stop('SIGTERM')).toBe(0)
        await withTimeout(t.closed, 10_000, `${t.name}'s output to be read`)
      }
      for (const [name, ts] of views) {
        const seen = printed(ts)
        expect([...seen.keys()].filter((id) => !all.has(id)), `${name} printed ids not in the outbox`).toEqual([])
        expect(seen.size, `${name} printed every message`).toBe(N)
        expect([...seen.entries()].filter(([, c]) => c !== 1).slice(0, 5), `${name} printed some more than once`).toEqual([])
        log.push(`${name}: ${seen.size} printed once each; stats ${ts.map(statsOf).join(' + ')}`)
      }
      log.push(`total ${Math.round(performance.now() - started)} ms`)
      console.log(log.join('\n'))
    },
    BUDGET_MS + 60_000,
  )
})

const CRASH_N = Number(process.env['GILMSG_RELAY_CRASH_MESSAGES'] ?? 1500)

describe(`relay crash: ${CRASH_N} messages to 2 recipients, the relay SIGKILLed and restarted on the same ports`, () => {
  it('every message is acked by both once the relay is back; each app printed each msg_id exactly once', async () => {
    const sub = join(dir, 'relay-crash')
    const relayArgs = (inbound: string, outbound: string): string[] => ['relay', '--config', writeConfigFile(dir, 'relay-crash-relay', {}), '--inbound', inbound, '--outbound', outbound]
    const startRelayProcess = async (inbound: string, outbound: string): Promise<{ proc: CliProcess; inbound: string; outbound: string }> => {
      const proc = new CliProcess(relayArgs(inbound, outbound), env)
      procs.push(proc)
      const i = (await proc.waitFor(/^inbound /, 'stdout', 10_000)).split(' ')[1] as string
      const o = (await proc.waitFor(/^outbound /, 'stdout', 10_000)).split(' ')[1] as string
      return { proc, inbound: i, outbound: o }
    }
    const relay1 = await startRelayProcess('tcp://127.0.0.1:*', 'tcp://127.0.0.1:*')
    const net2 = { inbound: relay1.inbound, outbound: relay1.outbound }
    const cfg = (name: string): string => writeConfigFile(dir, `relay-crash-${name}`, relayConfig(pki, net2, sub, name, { store_synchronous: SYNCHRONOUS }))
    const names = ['alice', 'bob'] as const
    const tails = await Promise.all(names.map((n) => startTail(n, cfg(n))))
    const log: string[] = []

    const w = new ScriptProcess('publisher (relay crash)', WORKER, [
      cfg('pub'), '--recipients', names.join(','), '--from', '0', '--count', String(CRASH_N), '--topic', 'load', '--concurrency', '100', '--max-ms', String(BUDGET_MS - 10_000),
    ], env)
    workers.push(w)
    let enqueued = 0
    let doneAt: number | undefined
    w.onLine((l) => {
      if (l.startsWith('enqueued ')) enqueued++
      else if (l.startsWith('done ')) doneAt = performance.now()
    })
    const t0 = performance.now()
    await waitUntil(() => enqueued >= CRASH_N / 3 || !w.running, 60_000, `${CRASH_N / 3} enqueued`, () => w.describe(), 20)
    relay1.proc.child.kill('SIGKILL')
    await withTimeout(relay1.proc.exited, 5000, 'the relay to die')
    log.push(`relay SIGKILLed at ${enqueued} enqueued (${Math.round(performance.now() - t0)} ms)`)
    await sleep(1500)
    const relay2 = await startRelayProcess(relay1.inbound, relay1.outbound)
    expect([relay2.inbound, relay2.outbound]).toEqual([relay1.inbound, relay1.outbound])
    log.push(`relay restarted on the same ports at ${enqueued} enqueued (${Math.round(performance.now() - t0)} ms)`)

    await waitUntil(() => doneAt !== undefined || !w.running, BUDGET_MS, 'every message acked ("done")', () => w.describe(), 50)
    expect(doneAt, w.describe()).toBeDefined()
    const exit = await withTimeout(w.closed, 15_000, 'the publisher to exit')
    expect(exit.code, w.describe()).toBe(0)
    log.push(`all ${CRASH_N} acked after ${Math.round((doneAt as number) - t0)} ms`)

    const store = SqliteOutboxStore.open(join(sub, 'pub.outbox.db'))
    let ids: Set<string>
    try {
      expect(store.counts()).toEqual({ pending: 0, acked: CRASH_N, expired: 0, rejected: 0 })
      ids = new Set(store.list().map((m) => m.msgId))
    } finally {
      await store.close()
    }
    for (const t of tails) {
      await waitUntil(() => printed([t]).size >= CRASH_N, 20_000, `${t.name} to print every message`, () => `${printed([t]).size} of ${CRASH_N}`, 100)
      expect(await t.proc.stop('SIGTERM')).toBe(0)
      await withTimeout(t.closed, 10_000, `${t.name}'s output to be read`)
      const seen = printed([t])
      expect([...seen.keys()].filter((id) => !ids.has(id))).toEqual([])
      expect(seen.size).toBe(CRASH_N)
      expect([...seen.entries()].filter(([, c]) => c !== 1).slice(0, 5), `${t.name} printed some more than once`).toEqual([])
      log.push(`${t.name}: ${seen.size} printed once each; stats ${statsOf(t)}`)
    }
    await relay2.proc.stop('SIGTERM')
    console.log(log.join('\n'))
  }, BUDGET_MS + 60_000)
})
