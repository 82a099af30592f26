/**
 * I2 and I3 with real processes, real sockets and real files (issue #5, section 1): a
 * publisher process (test/fixtures/enqueue-worker.mjs) enqueueing 1,000 messages for three
 * recipients (in two runs) is SIGKILLed mid-enqueue, then four times after its messages were
 * committed (five kills), and restarted with `--resume` each time. The recipients crash too:
 * - alice and bob are applications in manual-ACK mode with durable, idempotent effects
 *   (test/fixtures/manual-consumer.mjs --effects: the msg_id recorded in the application's
 *   own SQLite transaction, then `ack()`), kept running by a supervisor that restarts them
 *   when they die, as systemd would. alice SIGKILLs herself right after committing the
 *   effect of a random message, before acknowledging it; the test SIGKILLs alice once more
 *   and bob twice at random points.
 * - carol is `gilmsg tail` (auto ACK), SIGKILLed once and restarted.
 * In the end every committed outbox row is acked by all three, each ACK stored; alice's and
 * bob's applications applied every message exactly once (at-least-once delivery: the
 * redeliveries after their crashes are counted and absorbed by the msg_id record); carol's
 * printed each at most once (auto-ack hands a message over after committing its ACK, so a
 * crash in between loses it for the app, not for the publisher).
 *
 * Topology: an in-process relay on loopback tcp; every process is `active`.
 * Keys: EC P-256 leaves, `x509_sha256` signatures, for speed.
 * Replay a run's kill points: GILMSG_CRASH_SEED=<seed printed on failure>.
 */
import { once } from 'node:events'
import { createRequire } from 'node:module'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestPki, type TestPki } from '../../support/pki.js'
import { SqliteOutboxStore } from '../../../src/outbox/sqlite.js'
import type { OutboxMessage, RecipientStatus } from '../../../src/outbox/store.js'
import type { Relay } from '../../../src/transport/relay.js'
import { CliProcess } from '../../support/cli.js'
import { APP_PREFIX, relayConfig, sleep, startLoopbackRelay, waitUntil, withTimeout, writeConfigFile } from '../../support/reliable-net.js'
import { ScriptProcess } from '../../support/script-process.js'
import { seededRandom } from '../../support/random.js'

const WORKER = fileURLToPath(new URL('../../fixtures/enqueue-worker.mjs', import.meta.url))
const CONSUMER = fileURLToPath(new URL('../../fixtures/manual-consumer.mjs', import.meta.url))
const Database = createRequire(import.meta.url)('better-sqlite3') as typeof import('better-sqlite3')
const RECIPIENTS = ['alice', 'bob', 'carol'] as const
/** Applications in manual-ACK mode with idempotent effects; carol is `gilmsg tail` (auto ACK). */
const APPS = ['alice', 'bob'] as const
const TOPIC = `${APP_PREFIX}crash`
/** Messages committed in all: run 1 (killed mid-enqueue) commits some of its 500, run 2 the rest. */
const TOTAL = 1000
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
const supervisors: Supervisor[] = []

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
  await Promise.allSettled([...supervisors.map((s) => s.stop('SIGKILL')), ...workers.map((w) => w.kill('SIGKILL')), ...tails.map((t) => t.proc.stop('SIGKILL'))])
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

/**
 * Keeps one consumer application running: when its process dies (killed by the test or by
 * itself), starts it again after a random pause of up to 300 ms, on the same inbox and
 * effects file, as systemd's Restart=always would. Every life's output is kept.
 */
class Supervisor {
  readonly lives: ScriptProcess[] = []
  /** Lives that could not be started again (the test fails on any). */
  readonly errors: unknown[] = []
  #stopping = false
  #restarting: Promise<void> = Promise.resolve()

  constructor(
    readonly name: string,
    readonly effects: string,
    /** Extra fixture arguments for the n-th life (from 1). */
    readonly argsFor: (life: number) => readonly string[] = () => [],
  ) {}

  get current(): ScriptProcess {
    return this.lives.at(-1) as ScriptProcess
  }

  async start(): Promise<ScriptProcess> {
    const life = new ScriptProcess(`${this.name} (life ${this.lives.length + 1})`, CONSUMER, [
      configs[this.name] as string,
      '--prefix',
      APP_PREFIX,
      '--effects',
      this.effects,
      ...this.argsFor(this.lives.length + 1),
    ], env)
    this.lives.push(life)
    void life.closed.then(() => {
      if (this.#stopping) return
      this.#restarting = sleep(between(0, 300))
        .then(async () => {
          if (!this.#stopping) await this.start()
        })
        .catch((e: unknown) => void this.errors.push(e))
    })
    await life.waitForLine(new RegExp(`^ready ${this.name}$`), 15_000)
    return life
  }

  /** The running life has subscribed (it printed "ready"). */
  get up(): boolean {
    return this.current.running && this.current.stdoutLines.includes(`ready ${this.name}`)
  }

  /** SIGKILLs the running life once it is up (the supervisor starts the next). */
  async kill(): Promise<void> {
    await waitUntil(() => this.up || this.errors.length > 0, 20_000, `${this.name} to be up`, () => this.current.describe())
    await this.current.kill('SIGKILL')
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    this.#stopping = true
    await this.#restarting
    await this.current?.kill(signal)
  }

  /** How many lives ended by SIGKILL. */
  get kills(): number {
    return this.lives.filter((l) => l.child.signalCode === 'SIGKILL').length
  }

  /** msg_ids handed over again after a crash whose effect was already applied (absorbed). */
  get absorbed(): string[] {
    return this.lives.flatMap((l) => l.stdoutLines.filter((x) => x.startsWith('already ')).map((x) => x.slice('already '.length)))
  }
}

/** An application's effects file: msg_id -> payload, as it committed them. */
function readEffects(path: string): Map<string, { n: number }> {
  const db = new Database(path, { readonly: true })
  try {
    const rows = db.prepare('SELECT msg_id, msg FROM effects').all() as { msg_id: string; msg: string }[]
    return new Map(rows.map((r) => [r.msg_id, JSON.parse(r.msg) as { n: number }]))
  } finally {
    db.close()
  }
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
  it('every committed message is acked by all three; the manual-ACK apps applied each exactly once across their crashes, the auto-ACK tail printed each at most once', async () => {
    const log: string[] = [`seed ${seed}`]
    const dieAt = between(20, 300)
    const alice = new Supervisor('alice', join(dir, 'alice.effects.db'), (life) => (life === 1 ? ['--die-after-effect', String(dieAt)] : []))
    const bob = new Supervisor('bob', join(dir, 'bob.effects.db'))
    supervisors.push(alice, bob)
    await Promise.all([alice.start(), bob.start()])
    const carol1 = await startTail('carol')

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

    // Run 2: a new batch up to TOTAL (the pending rows of run 1 resume alongside). carol is killed while
    // it is being enqueued, so rows stay pending for her; bob is killed at a random point; the
    // worker is killed after "committed".
    const count2 = TOTAL - rows1.length
    const run2 = startWorker('run 2', ['--recipients', RECIPIENTS.join(','), '--from', '1000', '--count', String(count2)])
    const kCarol = between(20, 150)
    const kBob = between(20, 400)
    await run2.waitFor((lines) => lines.filter((l) => l.startsWith('enqueued ')).length >= Math.min(kCarol, kBob), `${Math.min(kCarol, kBob)} enqueued`)
    const enqueuedNow = (): number => run2.stdoutLines.filter((l) => l.startsWith('enqueued ')).length
    const kills2 = [
      (async () => {
        await run2.waitFor(() => enqueuedNow() >= kCarol, `${kCarol} enqueued`)
        await killTail(carol1)
      })(),
      (async () => {
        await run2.waitFor(() => enqueuedNow() >= kBob || run2.stdoutLines.some((l) => l.startsWith('committed ')), `${kBob} enqueued`)
        await bob.kill()
      })(),
    ]
    await Promise.all(kills2)
    await run2.waitForLine(/^committed /)
    await sleep(between(0, 300))
    await run2.kill('SIGKILL')
    const rows2 = await readOutbox()
    const pending2 = rows2.filter((r) => r.message.state === 'pending').length
    log.push(`carol killed after ${kCarol} enqueued of run 2, bob after ${kBob}; run 2 killed with ${pending2} of ${rows2.length} rows pending (${lastPending(run2)})`)
    expect(rows2.length).toBe(TOTAL)
    expect(pending2, 'carol is down: rows must be pending for her').toBeGreaterThan(0)

    // Run 3: resume; carol comes back and catches up; alice (who killed herself after her
    // ${dieAt}th effect) is killed again, then the worker, while that goes on.
    const run3 = startWorker('run 3', ['--resume'])
    await run3.waitForLine(/^open /)
    const carol2 = await startTail('carol')
    await waitUntil(() => alice.lives.length >= 2, 30_000, `alice to kill herself after her effect ${dieAt} and be restarted`, () => alice.current.describe())
    await sleep(between(0, 300))
    await alice.kill()
    await sleep(between(50, 300))
    await run3.kill('SIGKILL')
    log.push(`run 3 killed: ${lastPending(run3)}`)

    // Run 4: resume, killed at a random point; bob is killed again before it.
    const run4 = startWorker('run 4', ['--resume'])
    await run4.waitForLine(/^open /)
    await sleep(between(0, 200))
    await bob.kill()
    await sleep(between(0, 200))
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

    // Every committed row is acked by all three, each ACK stored as a receipt.
    const rows = await readOutbox()
    const ids = new Set(rows.map((r) => r.message.msgId))
    expect(rows.length, log.join('\n')).toBe(TOTAL)
    expect(new Set(rows.map((r) => r.n)).size, 'no payload was enqueued twice').toBe(rows.length)
    for (const r of rows) {
      expect(r.message.state, `${r.message.msgId} (n=${r.n})\n${log.join('\n')}`).toBe('acked')
      expect(r.recipients.map((s) => [s.cn, s.state, s.disposition])).toEqual(RECIPIENTS.map((cn) => [cn, 'acked', cn === 'carol' ? 'received' : 'processed']))
      expect(r.recipients.every((s) => s.ackBody?.includes(r.message.msgId) === true && s.ackFingerprint !== undefined)).toBe(true)
    }

    // alice and bob: every committed message applied exactly once, with its own payload,
    // across all their lives; what was handed over again after a crash was absorbed.
    for (const app of [alice, bob]) await app.stop('SIGTERM')
    const byN = new Map(rows.map((r) => [r.message.msgId, r.n]))
    for (const app of [alice, bob]) {
      expect(app.errors, `${app.name} could not be restarted`).toEqual([])
      const effects = readEffects(app.effects)
      expect([...effects.keys()].sort(), `${app.name} applied exactly the committed messages`).toEqual([...ids].sort())
      expect([...effects].filter(([id, m]) => m.n !== byN.get(id)), `${app.name} applied a wrong payload`).toEqual([])
      expect(app.kills, `${app.name} was SIGKILLed`).toBeGreaterThanOrEqual(2)
      log.push(`${app.name}: ${app.lives.length} lives (${app.kills} SIGKILLed), ${effects.size} applied once each, ${app.absorbed.length} redeliveries absorbed`)
    }
    // alice's first life died between committing the effect of its dieAt-th message and acknowledging it:
    // that message came again (at least once) and was not applied twice.
    const lastApplied = (alice.lives[0] as ScriptProcess).stdoutLines.filter((l) => l.startsWith('applied ')).at(-1)?.slice('applied '.length)
    expect((alice.lives[0] as ScriptProcess).stdoutLines.filter((l) => l.startsWith('applied ')), 'alice life 1 applied').toHaveLength(dieAt)
    expect(alice.absorbed, `alice's ${dieAt}th message, applied but not acked before her crash, is redelivered`).toContain(lastApplied)

    // carol was SIGKILLed once: across her two processes, at most once each, nothing foreign.
    await sleep(200)
    await killTail(carol2)
    const byCarol = printed([carol1, carol2])
    expect([...byCarol.entries()].filter(([, c]) => c > 1), 'printed more than once by carol').toEqual([])
    expect([...byCarol.keys()].filter((id) => !ids.has(id))).toEqual([])
    log.push(`carol printed ${byCarol.size} of ${ids.size} (${printed([carol1]).size} before her crash)`)
    console.log(log.join('\n'))
  }, 150_000)
})
