/**
 * `gilmsg agent`, `gilmsg enqueue` and `gilmsg outbox wait`, as a script runs them: enqueue
 * without an agent warns and keeps the message, an agent started later delivers it; with an
 * agent running, enqueue's message is sent at once (the agent is woken on its socket); a
 * commit whose wake-up was lost is still found; outbox wait exits 0 / 3 / 4; a second agent
 * on the same outbox is refused; SIGTERM stops the agent with exit 0.
 *
 * alice and bob run test/fixtures/manual-consumer.mjs (bob refuses a payload with a `refuse`
 * field); carol never runs. An in-process relay on loopback tcp.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { busFromConfig } from '../../src/bus/from-config.js'
import { loadConfig } from '../../src/config/config.js'
import { SqliteOutboxStore } from '../../src/outbox/sqlite.js'
import { reliableFields } from '../../src/reliable/protocol.js'
import type { Relay } from '../../src/transport/relay.js'
import { AGENT_CHECK_MS } from '../../src/cli/agent.js'
import { CliProcess, runCli } from '../support/cli.js'
import { createTestPki, type TestPki } from '../support/pki.js'
import { APP_MODNAME, APP_PREFIX, relayConfig, startLoopbackRelay, waitUntil, writeConfigFile } from '../support/reliable-net.js'
import { ScriptProcess } from '../support/script-process.js'

const CONSUMER = fileURLToPath(new URL('../fixtures/manual-consumer.mjs', import.meta.url))

let dir: string
let env: NodeJS.ProcessEnv
let pki: TestPki
let net: { relay: Relay; inbound: string; outbound: string }
let pub: string
const consumers: Record<string, ScriptProcess> = {}
/** When each consumer first printed each msg_id ("processed"), by Date.now(). */
const seenAt: Record<string, Map<string, number>> = { alice: new Map(), bob: new Map() }
const procs = new Set<CliProcess>()

function start(args: readonly string[]): CliProcess {
  const p = new CliProcess(args, env)
  procs.add(p)
  return p
}

const enqueue = (args: readonly string[], input?: string) =>
  runCli(['enqueue', '--config', pub, '--modname', APP_MODNAME, '--topic', 'job', ...args], { env, timeoutMs: 30_000, ...(input !== undefined ? { input } : {}) })
const wait = (msgId: string, extra: readonly string[] = []) => runCli(['outbox', 'wait', msgId, '--config', pub, ...extra], { env, timeoutMs: 30_000 })

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gilmsg-cli-agent-'))
  env = { XDG_STATE_HOME: join(dir, 'state'), GILMSG_CONFIG: '' }
  pki = await createTestPki(join(dir, 'pki'), ['pub', 'alice', 'bob', 'carol'].map((name) => ({ name, key: 'ec' as const })))
  net = await startLoopbackRelay()
  pub = writeConfigFile(dir, 'pub', relayConfig(pki, net, dir, 'pub'))
  for (const [name, extra] of [
    ['alice', []],
    ['bob', ['--reject-field', 'refuse']],
  ] as const) {
    const config = writeConfigFile(dir, name, relayConfig(pki, net, dir, name))
    const c = new ScriptProcess(name, CONSUMER, [config, '--prefix', APP_PREFIX, ...extra], env)
    c.onLine((l) => {
      const [word, , id] = l.split(' ')
      if (word === 'processed' && id !== undefined && !seenAt[name]?.has(id)) seenAt[name]?.set(id, Date.now())
    })
    consumers[name] = c
    await c.waitForLine(new RegExp(`^ready ${name}$`), 15_000)
  }
}, 60_000)

afterAll(async () => {
  await Promise.allSettled([...Object.values(consumers).map((c) => c.kill('SIGKILL')), ...[...procs].map((p) => p.stop('SIGKILL'))])
  await net?.relay.close()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

describe('gilmsg enqueue, agent and outbox wait', () => {
  let agent: CliProcess

  it('without an agent: enqueue exits 0 with the msg_id and warns; an agent started later delivers it, and outbox wait exits 0', async () => {
    const r = await enqueue(['--recipients', 'alice', 'bob', '--message', 'kept for later'])
    expect(r.code, r.stderr).toBe(0)
    const msgId = r.stdout.trim()
    expect(msgId).toMatch(/^\d{4}-[0-9a-f-]{36}$/)
    expect(r.stderr).toMatch(/no agent is running on .*pub\.outbox\.db: the message is kept there/)
    const shown = await runCli(['outbox', 'show', msgId, '--config', pub, '--json'], { env })
    expect(JSON.parse(shown.stdout)).toMatchObject({ state: 'pending', attempts: 0 })

    const waiting = wait(msgId, ['--timeout', '25'])
    agent = start(['agent', '--config', pub])
    await agent.waitFor(/^agent: ready: delivering from .*\(1 pending\), woken on .*pub\.outbox\.db\.agent\.sock$/)
    expect(statSync(join(dir, 'pub.outbox.db.agent.sock')).mode & 0o777).toBe(0o600)
    const waited = await waiting
    expect(waited.code, waited.stderr).toBe(0)
    expect(waited.stderr).toMatch(new RegExp(`^${msgId}: acknowledged by alice \\(processed\\), bob \\(processed\\)\\n$`))
  }, 40_000)

  it('with the agent running: each message is sent at once (the agent is woken), no warning', async () => {
    const latencies: number[] = []
    for (let i = 0; i < 5; i++) {
      const r = await enqueue(['--recipients', 'alice', '--message', `now ${i}`])
      expect(r.code, r.stderr).toBe(0)
      expect(r.stderr).toBe('')
      const msgId = r.stdout.trim()
      await waitUntil(() => seenAt['alice']?.has(msgId) === true, 10_000, `alice to get ${msgId}`)
      const shown = JSON.parse((await runCli(['outbox', 'show', msgId, '--config', pub, '--json'], { env })).stdout) as { created_at: number }
      latencies.push((seenAt['alice']?.get(msgId) as number) - shown.created_at)
    }
    console.log(`enqueue commit -> received by alice, ms: ${latencies.join(', ')}`)
    // Without the wake-up the agent would find each only at its next check, up to AGENT_CHECK_MS later.
    expect(Math.max(...latencies)).toBeLessThan(AGENT_CHECK_MS / 4)
  }, 60_000)

  it('--lines: one msg_id per stdin line, in order; all delivered', async () => {
    const r = await enqueue(['--recipients', 'alice', '--lines', '--json-input'], Array.from({ length: 50 }, (_, n) => JSON.stringify({ n })).join('\n') + '\n')
    expect(r.code, r.stderr).toBe(0)
    const ids = r.stdout.trim().split('\n')
    expect(ids).toHaveLength(50)
    await waitUntil(() => ids.every((id) => seenAt['alice']?.has(id) === true), 15_000, 'alice to get all 50')
    const bodies = await Promise.all(ids.slice(0, 3).map(async (id) => JSON.parse((await runCli(['outbox', 'show', id, '--config', pub, '--json'], { env })).stdout) as { body: string }))
    expect(bodies.map((b) => (JSON.parse(b.body) as { msg: { n: number } }).msg.n)).toEqual([0, 1, 2])
  }, 40_000)

  it('a commit whose wake-up was lost (enqueue killed between commit and notice) is found by the agent\'s check', async () => {
    // What enqueue does, minus the notice: sign, commit unsent.
    const config = loadConfig({ file: pub })
    const bus = await busFromConfig(config, { verifier: undefined, transport: { openPublisher: () => Promise.reject(new Error('no')), openSubscriber: () => Promise.reject(new Error('no')) } })
    const sealed = await bus.sealAsync('job', { lost: 'notice' }, { modname: APP_MODNAME, extra: reliableFields(['alice']) })
    await bus.close()
    const store = SqliteOutboxStore.open(join(dir, 'pub.outbox.db'))
    const now = Date.now()
    await store.add({ msgId: sealed.msgId, topic: sealed.topic, body: sealed.body, digest: sealed.digest, recipients: ['alice'], createdAt: now, deadline: now + 60_000, nextAttemptAt: now + 60_000, unsent: true }).durable
    await store.close()
    const waited = await wait(sealed.msgId, ['--timeout', String((AGENT_CHECK_MS * 3) / 1000)])
    expect(waited.code, waited.stderr).toBe(0)
  }, 30_000)

  it('outbox wait: 3 on --timeout naming who is missing, 3 once the deadline passed, 4 with the reason of a rejection, 1 for an unknown msg_id', async () => {
    const carol = (await enqueue(['--recipients', 'alice', 'carol', '--message', 'carol is away'])).stdout.trim()
    const timedOut = await wait(carol, ['--timeout', '1'])
    expect(timedOut.code, timedOut.stderr).toBe(3)
    expect(timedOut.stderr).toMatch(new RegExp(`ACK timeout for ${carol} \\(--timeout 1\\): missing carol; acked by alice; it stays pending`))

    const short = (await enqueue(['--recipients', 'carol', '--deadline', '1s', '--message', 'too late'])).stdout.trim()
    const expired = await wait(short)
    expect(expired.code, expired.stderr).toBe(3)
    expect(expired.stderr).toMatch(new RegExp(`${short} expired at .*: missing carol`))

    const refused = (await enqueue(['--recipients', 'alice', 'bob', '--json-input', '--message', JSON.stringify({ refuse: 'not today' })])).stdout.trim()
    const rejected = await wait(refused, ['--timeout', '20'])
    expect(rejected.code, rejected.stderr).toBe(4)
    expect(rejected.stderr).toMatch(/bob rejected \S+: not today/)

    const unknown = await wait('2024-00000000-0000-0000-0000-000000000000')
    expect(unknown.code).toBe(1)
    expect(unknown.stderr).toMatch(/no message 2024-0+-/)
  }, 60_000)

  it('a second agent on the same outbox is refused (exit 1); another --name is another outbox', async () => {
    const second = await runCli(['agent', '--config', pub], { env, timeoutMs: 15_000 })
    expect(second.code, second.stderr).toBe(1)
    expect(second.stderr).toMatch(/another gilmsg agent already owns this outbox \(it answers on .*pub\.outbox\.db\.agent\.sock\)/)
    // The first one still serves.
    const r = await enqueue(['--recipients', 'alice', '--message', 'still served'])
    expect(r.stderr).toBe('')
    expect((await wait(r.stdout.trim(), ['--timeout', '10'])).code).toBe(0)
  }, 40_000)

  it('usage: recipients required, --lines not with --message, a bad deadline; all exit 2', async () => {
    for (const args of [['--message', 'x'], ['--recipients', 'alice', '--lines', '--message', 'x'], ['--recipients', 'alice', '--deadline', '6d', '--message', 'x']]) {
      const r = await enqueue(args)
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2)
    }
  }, 30_000)

  it('SIGTERM: the agent stops, removes its socket and exits 0; an agent after it takes over', async () => {
    expect(await agent.stop('SIGTERM')).toBe(0)
    expect(agent.stderrLines.join('\n')).toMatch(/agent: stopped \(SIGTERM\); \d+ pending stay in the outbox/)
    expect(() => statSync(join(dir, 'pub.outbox.db.agent.sock'))).toThrow(/ENOENT/)
    const next = start(['agent', '--config', pub])
    await next.waitFor(/^agent: ready/)
    expect(await next.stop('SIGKILL')).toBe(null)
    // A SIGKILLed agent leaves its socket file: the next one replaces it.
    const after = start(['agent', '--config', pub])
    await after.waitFor(/^agent: ready/)
    expect(await after.stop('SIGINT')).toBe(0)
  }, 40_000)
})
