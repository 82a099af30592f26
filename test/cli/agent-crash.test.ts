/**
 * Issue 14's crash test for `gilmsg agent` and `gilmsg enqueue`, with real processes: 8
 * scripts (`gilmsg enqueue --lines`, stdin fed a few lines at a time) hand over 500 messages
 * each, concurrently, for two recipients (`gilmsg tail` as alice and bob), while the agent is
 * SIGKILLed once mid-way and restarted. Then: every enqueue exited 0 and printed its 500
 * msg_ids; no SQLITE_BUSY (nor "locked") reached any script's stderr; the outbox holds
 * exactly those 4,000 rows, all acked by both; each tail printed each message exactly once.
 * A smaller run does the same with one `gilmsg enqueue` process per message.
 *
 * Replay the kill point: GILMSG_CRASH_SEED=<seed printed on failure>.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Relay } from '../../src/transport/relay.js'
import { CLI, CliProcess, logLine, runCli } from '../support/cli.js'
import { createTestPki } from '../support/pki.js'
import { seededRandom } from '../support/random.js'
import { APP_MODNAME, APP_PREFIX, readOutboxFile, relayConfig, sleep, startLoopbackRelay, waitUntil, writeConfigFile } from '../support/reliable-net.js'

const SCRIPTS = 8
const PER_SCRIPT = 500
const RECIPIENTS = ['alice', 'bob'] as const
const seed = Number(process.env['GILMSG_CRASH_SEED'] ?? Date.now() % 1_000_000)
const random = seededRandom(seed)

let dir: string
let env: NodeJS.ProcessEnv
let net: { relay: Relay; inbound: string; outbound: string }
let pub: string
const tails: Record<string, CliProcess> = {}
const procs = new Set<CliProcess>()

function start(args: readonly string[]): CliProcess {
  const p = new CliProcess(args, env)
  procs.add(p)
  return p
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gilmsg-agent-crash-'))
  env = { XDG_STATE_HOME: join(dir, 'state'), GILMSG_CONFIG: '' }
  const pki = await createTestPki(join(dir, 'pki'), ['pub', ...RECIPIENTS].map((name) => ({ name, key: 'ec' as const })))
  net = await startLoopbackRelay()
  pub = writeConfigFile(dir, 'pub', relayConfig(pki, net, dir, 'pub'))
  for (const name of RECIPIENTS) {
    const config = writeConfigFile(dir, name, relayConfig(pki, net, dir, name))
    tails[name] = start(['tail', '--config', config, '--json', '--topic', APP_PREFIX])
  }
  await Promise.all(RECIPIENTS.map((name) => tails[name]?.waitFor(new RegExp(`acknowledging as ${name}`))))
}, 60_000)

afterAll(async () => {
  await Promise.allSettled([...procs].map((p) => p.stop('SIGKILL')))
  await net?.relay.close()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

interface Script {
  readonly stdout: string[]
  stderr: string
  readonly exited: Promise<number | null>
}

/** `gilmsg enqueue --lines` fed `lines` a few at a time (as a script producing them would), its msg_ids collected as printed. */
function enqueueScript(topic: string, lines: readonly string[]): Script {
  const child = spawn(process.execPath, [CLI, 'enqueue', '--config', pub, '--recipients', ...RECIPIENTS, '--lines', '--json-input', '--modname', APP_MODNAME, '--topic', topic], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  })
  const script: Script = { stdout: [], stderr: '', exited: once(child, 'close').then(([code]) => code as number | null) }
  let partial = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    const parts = (partial + d).split('\n')
    partial = parts.pop() ?? ''
    script.stdout.push(...parts)
  })
  child.stderr.setEncoding('utf8').on('data', (d: string) => (script.stderr += d))
  void (async () => {
    for (let i = 0; i < lines.length; i += 25) {
      if (!child.stdin.write(lines.slice(i, i + 25).join('\n') + '\n')) await once(child.stdin, 'drain')
      await sleep(5 + Math.floor(random() * 20))
    }
    child.stdin.end()
  })()
  return script
}

/** msg_id -> how often `tail` printed it, for `topic`. */
function printedBy(name: string, topic: string): Map<string, number> {
  const counts = new Map<string, number>()
  for (const line of tails[name]?.stdoutLines ?? []) {
    const m = JSON.parse(line) as { topic: string; msg_id: string }
    if (m.topic === topic) counts.set(m.msg_id, (counts.get(m.msg_id) ?? 0) + 1)
  }
  return counts
}

async function outboxRows(): Promise<{ msgId: string; topic: string; state: string; recipients: string[] }[]> {
  return readOutboxFile(join(dir, 'pub.outbox.db'), (store) =>
    store.list().map((m) => ({ msgId: m.msgId, topic: m.topic, state: m.state, recipients: store.recipients(m.msgId).filter((r) => r.state === 'acked').map((r) => r.cn) })),
  )
}

/** Waits until every row of `topic` is acked by both, then checks what each tail printed: each of `ids` exactly once. */
async function expectDeliveredOnce(topic: string, ids: readonly string[], log: string[]): Promise<void> {
  const expected = new Set(ids)
  const printedAll = (name: string): boolean => {
    const printed = printedBy(name, topic)
    return ids.every((id) => printed.has(id))
  }
  await waitUntil(() => RECIPIENTS.every(printedAll), 60_000, `both tails to print all ${ids.length}`, () => log.join('\n'), 250)
  const rows = (await outboxRows()).filter((r) => r.topic === topic)
  expect(rows.length, log.join('\n')).toBe(ids.length)
  expect(new Set(rows.map((r) => r.msgId))).toEqual(expected)
  let pending = rows.filter((r) => r.state !== 'acked')
  for (let i = 0; pending.length > 0 && i < 120; i++) {
    await sleep(250)
    pending = (await outboxRows()).filter((r) => r.topic === topic && r.state !== 'acked')
  }
  expect(pending.slice(0, 5), `${pending.length} rows not acked\n${log.join('\n')}`).toEqual([])
  for (const name of RECIPIENTS) {
    const printed = printedBy(name, topic)
    expect([...printed].filter(([, n]) => n !== 1), `${name} printed more than once`).toEqual([])
    expect(new Set(printed.keys()), `${name} printed exactly the committed messages`).toEqual(expected)
  }
}

describe(`gilmsg enqueue scripts while the agent is SIGKILLed and restarted (seed ${seed})`, () => {
  it(`${SCRIPTS} scripts x ${PER_SCRIPT} messages: each acked by both recipients, handed to each exactly once; no SQLITE_BUSY; no row lost`, async () => {
    const log = [`seed ${seed}`]
    const started = performance.now()
    let agent = start(['agent', '--config', pub])
    await agent.waitFor(logLine('ready: '))
    const scripts = Array.from({ length: SCRIPTS }, (_, s) =>
      enqueueScript('crash', Array.from({ length: PER_SCRIPT }, (_, n) => JSON.stringify({ s, n }))),
    )
    const total = (): number => scripts.reduce((sum, x) => sum + x.stdout.length, 0)
    const killAt = 500 + Math.floor(random() * 2000)
    await waitUntil(() => total() >= killAt, 60_000, `${killAt} messages enqueued`, () => scripts.map((x) => x.stderr).join(''), 5)
    expect(await agent.stop('SIGKILL')).toBe(null)
    log.push(`agent SIGKILLed after ${total()} msg_ids printed (kill point ${killAt})`)
    await sleep(Math.floor(random() * 300))
    agent = start(['agent', '--config', pub])
    await agent.waitFor(logLine('ready: '))
    log.push(`agent restarted: ${agent.stderrLines.find((l) => l.includes('ready')) ?? ''} with ${total()} printed`)

    const codes = await Promise.all(scripts.map((x) => x.exited))
    log.push(`scripts done after ${Math.round(performance.now() - started)} ms`)
    for (const [i, x] of scripts.entries()) {
      expect(codes[i], x.stderr).toBe(0)
      expect(x.stderr).not.toMatch(/SQLITE_BUSY|locked/i)
      expect(x.stdout, `script ${i}`).toHaveLength(PER_SCRIPT)
    }
    const ids = scripts.flatMap((x) => x.stdout)
    expect(new Set(ids).size).toBe(SCRIPTS * PER_SCRIPT)
    await expectDeliveredOnce(`${APP_PREFIX}crash`, ids, log)
    log.push(`all delivered once after ${Math.round(performance.now() - started)} ms`)
    console.log(log.join('\n'))
    expect(await agent.stop('SIGTERM')).toBe(0)
  }, 120_000)

  it('the same with one gilmsg enqueue process per message (4 at a time, 20 messages), the agent killed and restarted', async () => {
    const log = [`seed ${seed}`]
    let agent = start(['agent', '--config', pub])
    await agent.waitFor(logLine('ready: '))
    const ids: string[] = []
    const killAt = 3 + Math.floor(random() * 12)
    let killed = false
    const one = async (w: number, n: number): Promise<void> => {
      const r = await runCli(['enqueue', '--config', pub, '--recipients', ...RECIPIENTS, '--modname', APP_MODNAME, '--topic', 'single', '--json-input', '--message', JSON.stringify({ w, n })], { env, timeoutMs: 30_000 })
      expect(r.code, r.stderr).toBe(0)
      expect(r.stderr).not.toMatch(/SQLITE_BUSY|locked/i)
      ids.push(r.stdout.trim())
      if (ids.length >= killAt && !killed) {
        killed = true
        await agent.stop('SIGKILL')
        log.push(`agent SIGKILLed after ${ids.length} enqueued`)
        agent = start(['agent', '--config', pub])
        await agent.waitFor(logLine('ready: '))
      }
    }
    await Promise.all(Array.from({ length: 4 }, async (_, w) => {
      for (let n = 0; n < 5; n++) await one(w, n)
    }))
    expect(killed).toBe(true)
    await expectDeliveredOnce(`${APP_PREFIX}single`, ids, log)
    expect(await agent.stop('SIGTERM')).toBe(0)
  }, 120_000)
})
