/**
 * I2 and I3 with real processes, real sockets and real files: a publisher
 * process (test/fixtures/enqueue-worker.mjs) enqueueing 2 x 500 messages is SIGKILLed mid-enqueue, then
 * four times after its messages were committed (five kills), and restarted with
 * `--resume` each time; one recipient (`gilmsg tail`) is SIGKILLed and
 * restarted too. In the end every committed outbox row is acked by both
 * recipients; the recipient that never crashed printed every committed
 * msg_id exactly once, the one that crashed at most once (auto-ack hands a
 * message over after committing its ACK, so a crash in between loses it for
 * the app, not for the publisher).
 *
 * Topology: an in-process relay on loopback tcp; every process is `active`.
 * Keys: EC P-256 leaves, `x509_sha256` signatures, for speed.
 * Replay a run's kill points: GILMSG_CRASH_SEED=<seed printed on failure>.
 */
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestPki, type TestPki } from '../../../src/crypto/certs.js'
import { SqliteOutboxStore } from '../../../src/outbox/sqlite.js'
import type { OutboxMessage, RecipientStatus } from '../../../src/outbox/store.js'
import type { Relay } from '../../../src/transport/relay.js'
import { CliProcess } from '../../support/cli.js'
import { APP_PREFIX, relayConfig, sleep, startLoopbackRelay, waitUntil, withTimeout, writeConfigFile } from '../../support/reliable-net.js'
import { ScriptProcess } from '../../support/script-process.js'
import { seededRandom } from '../../support/random.js'

const WORKER = fileURLToPath(new URL('../../fixtures/enqueue-worker.mjs', import.meta.url))
const RECIPIENTS = ['alice', 'bob'] as const
const TOPIC = `${APP_PREFIX}crash`
const PER_RUN = 500

const seed = Number(process.env['GILMSG_CRASH_SEED'] ?? Date.now() % 1_000_000)
const random = seededRandom(seed)
/** Uniform integer in [lo, hi]. */
const between = (lo: number, hi: number): number => lo + Math.floor(random() * (hi - lo + 1))

let dir: string
let env: NodeJS.ProcessEnv
let pki: TestPki
let net: { relay: Relay; inbound: string; outbound: string }
const configs: Record<string, string> = {}
const workers: ScriptProcess[] = []
const tails: Tail[] = []

interface Tail {
  readonly name: string
  readonly proc: CliProcess
  /** Resolves once the process is gone and all its stdout was read. */
  readonly closed: Promise<unknown>
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gilmsg-crash-'))
  env = { XDG_STATE_HOME: join(dir, 'state'), GILMSG_CONFIG: '' }
  process.env['XDG_STATE_HOME'] = env['XDG_STATE_HOME']
  pki = await createTestPki(
    join(dir, 'pki'),
    ['pub', ...RECIPIENTS].map((name) => ({ name, key: 'ec' as const })),
  )
  net = await startLoopbackRelay()
  for (const name of ['pub', ...RECIPIENTS]) configs[name] = writeConfigFile(dir, name, relayConfig(pki, net, dir, name))
}, 30_000)

afterAll(async () => {
  await Promise.allSettled([...workers.map((w) => w.kill('SIGKILL')), ...tails.map((t) => t.proc.stop('SIGKILL'))])
  await net?.relay.close()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

async function startTail(name: string): Promise<Tail> {
  const proc = new CliProcess(['tail', '--config', configs[name] as string, '--json', '--topic', APP_PREFIX], env)
  const tail = { name, proc, closed: once(proc.child, 'close') }
  tails.push(tail)
  await proc.waitFor(new RegExp(`acknowledging as ${name}`), 'stderr', 15_000)
  return tail
}

async function killTail(tail: Tail): Promise<void> {
  await tail.proc.stop('SIGKILL')
  await withTimeout(tail.closed, 5000, `${tail.name}'s output to be read`)
}

function startWorker(label: string, args: readonly string[]): ScriptProcess {
  const w = new ScriptProcess(label, WORKER, [configs['pub'] as string, ...args], env)
  workers.push(w)
  return w
}

/** Every message in the publisher's outbox, with its recipients; read while no worker runs. */
async function readOutbox(): Promise<{ message: OutboxMessage; recipients: RecipientStatus[]; n: number }[]> {
  const store = SqliteOutboxStore.open(join(dir, 'pub.outbox.db'))
  try {
    return store.list().map((message) => ({
      message,
      recipients: store.recipients(message.msgId),
      n: (JSON.parse(message.body) as { msg: { n: number } }).msg.n,
    }))
  } finally {
    await store.close()
  }
}

/** The app's view of a tail: msg_id -> how many times it printed it (this test's topic only). */
function printed(procs: readonly Tail[]): Map<string, number> {
  const counts = new Map<string, number>()
  for (const t of procs) {
    for (const line of t.proc.stdoutLines) {
      const m = JSON.parse(line) as { topic: string; msg_id: string }
      if (m.topic === TOPIC) counts.set(m.msg_id, (counts.get(m.msg_id) ?? 0) + 1)
    }
  }
  return counts
}

const enqueued = (w: ScriptProcess): Map<string, number> =>
  new Map(
    w.stdoutLines
      .filter((l) => l.startsWith('enqueued '))
      .map((l) => {
        const [, n, id] = l.split(' ')
        return [id as string, Number(n)]
      }),
  )

const lastPending = (w: ScriptProcess): string => [...w.stdoutLines].reverse().find((l) => /^(pending|done|committed)/.test(l)) ?? '(none)'

describe(`publisher and recipient processes killed with SIGKILL (seed ${seed})`, () => {
  it('delivers every committed message to each recipient: exactly once to the app that never crashed, at most once to the one that did, all acked', async () => {
    const log: string[] = [`seed ${seed}`]
    const alice = await startTail('alice')
    const bob1 = await startTail('bob')

    // Run 1: killed in the middle of enqueueing, from the line handler as the k-th
    // "enqueued" line is read: the worker has gone on with the next batch of enqueue()
    // calls by then, so some may be committed and not reported (at least 8 batches of
    // 10 remain, each several ms: it cannot have reached "committed").
    const k1 = between(10, 120)
    const run1 = startWorker('run 1', ['--recipients', RECIPIENTS.join(','), '--from', '0', '--count', String(PER_RUN)])
    let seen1 = 0
    run1.onLine((l) => {
      if (l.startsWith('enqueued ') && ++seen1 === k1) run1.child.kill('SIGKILL')
    })
    await withTimeout(run1.closed, 15_000, `run 1 to reach ${k1} enqueued and be killed`).catch((e: unknown) => {
      throw new Error(`${String(e)}\n${run1.describe()}`)
    })
    expect(run1.child.signalCode, run1.describe()).toBe('SIGKILL')
    expect(run1.stdoutLines.some((l) => l.startsWith('committed')), 'run 1 was to be killed before "committed"').toBe(false)
    const rows1 = await readOutbox()
    const printed1 = enqueued(run1)
    log.push(`run 1 killed at enqueued line ${k1}: ${printed1.size} reported, ${rows1.length} rows committed`)
    // Every enqueue() that resolved is committed; rows may be committed that were never reported.
    const ids1 = new Set(rows1.map((r) => r.message.msgId))
    for (const [id, n] of printed1) {
      expect(ids1.has(id), `enqueued ${n} ${id} is not in the outbox`).toBe(true)
    }
    expect(rows1.length).toBeGreaterThanOrEqual(printed1.size)
    expect(rows1.every((r) => r.n >= 0 && r.n < PER_RUN)).toBe(true)

    // Run 2: a new batch (the pending rows of run 1 resume alongside). Bob is killed while
    // it is being enqueued, so rows stay pending for him; the worker is killed after "committed".
    const run2 = startWorker('run 2', ['--recipients', RECIPIENTS.join(','), '--from', '1000', '--count', String(PER_RUN)])
    const kBob = between(20, 150)
    await run2.waitFor((lines) => lines.filter((l) => l.startsWith('enqueued ')).length >= kBob, `${kBob} enqueued`)
    await killTail(bob1)
    await run2.waitForLine(/^committed /)
    await sleep(between(0, 300))
    await run2.kill('SIGKILL')
    const rows2 = await readOutbox()
    const pending2 = rows2.filter((r) => r.message.state === 'pending').length
    log.push(`bob killed after ${kBob} enqueued of run 2; run 2 killed with ${pending2} of ${rows2.length} rows pending (${lastPending(run2)})`)
    expect(rows2.length).toBe(rows1.length + PER_RUN)
    expect(pending2, 'bob is down: rows must be pending for him').toBeGreaterThan(0)

    // Run 3: resume; bob comes back and catches up; the worker is killed while that goes on.
    const run3 = startWorker('run 3', ['--resume'])
    await run3.waitForLine(/^open /)
    const bob2 = await startTail('bob')
    await sleep(between(50, 600))
    await run3.kill('SIGKILL')
    log.push(`run 3 killed: ${lastPending(run3)}`)

    // Run 4: resume, killed at a random point.
    const run4 = startWorker('run 4', ['--resume'])
    await run4.waitForLine(/^open /)
    await sleep(between(0, 400))
    await run4.kill('SIGKILL')
    log.push(`run 4 killed: ${lastPending(run4)}`)

    // Run 5: resume, killed once more at a random point (the fifth SIGKILL of a publisher).
    const run4b = startWorker('run 4b', ['--resume'])
    await run4b.waitForLine(/^open /)
    await sleep(between(0, 400))
    await run4b.kill('SIGKILL')
    log.push(`run 4b killed: ${lastPending(run4b)}`)

    // Run 6: resume until the outbox has nothing pending; it then exits 0 by itself.
    const run5 = startWorker('run 5', ['--resume'])
    const exit5 = await withTimeout(run5.closed, 60_000, 'run 5 to finish every pending row').catch((e: unknown) => {
      throw new Error(`${String(e)}\n${run5.describe()}\n${log.join('\n')}`)
    })
    log.push(`run 5: ${run5.stdoutLines[0] ?? ''} -> ${lastPending(run5)}`)
    expect(exit5.code, `${run5.describe()}\n${log.join('\n')}`).toBe(0)

    // Every committed row is acked, by both recipients, each ACK stored as a receipt.
    const rows = await readOutbox()
    const ids = new Set(rows.map((r) => r.message.msgId))
    expect(rows.length, log.join('\n')).toBe(rows1.length + PER_RUN)
    expect(new Set(rows.map((r) => r.n)).size, 'no payload was enqueued twice').toBe(rows.length)
    for (const r of rows) {
      expect(r.message.state, `${r.message.msgId} (n=${r.n})\n${log.join('\n')}`).toBe('acked')
      expect(r.recipients.map((s) => [s.cn, s.state, s.disposition])).toEqual(RECIPIENTS.map((cn) => [cn, 'acked', 'received']))
      expect(r.recipients.every((s) => s.ackBody?.includes(r.message.msgId) === true && s.ackFingerprint !== undefined)).toBe(true)
    }

    // Alice never crashed: she printed every committed msg_id, exactly once.
    await waitUntil(
      () => printed([alice]).size >= ids.size,
      10_000,
      'alice to print every committed message',
      () => `${printed([alice]).size} of ${ids.size}\n${log.join('\n')}`,
    )
    const byAlice = printed([alice])
    expect([...byAlice.keys()].sort()).toEqual([...ids].sort())
    expect([...byAlice.entries()].filter(([, c]) => c !== 1), 'printed more than once by alice').toEqual([])

    // Bob was SIGKILLed once: across his two processes, at most once each, nothing foreign.
    await sleep(200)
    await killTail(bob2)
    const byBob = printed([bob1, bob2])
    expect([...byBob.entries()].filter(([, c]) => c > 1), 'printed more than once by bob').toEqual([])
    expect([...byBob.keys()].filter((id) => !ids.has(id))).toEqual([])
    log.push(`bob printed ${byBob.size} of ${ids.size} (${printed([bob1]).size} before his crash)`)
    console.log(log.join('\n'))
  }, 150_000)
})

