/**
 * `gilmsg agent`, `gilmsg enqueue` and `gilmsg outbox wait`, as a script runs them: enqueue
 * without an agent warns and keeps the message, an agent started later delivers it; with an
 * agent running, enqueue's message is sent at once (the agent is woken on its socket); a
 * commit whose wake-up was lost is still found; outbox wait exits 0 / 3 / 4; a second agent
 * on the same outbox is refused; SIGTERM stops the agent with exit 0. As a service: its
 * /metrics (--metrics 127.0.0.1:0) moves while it delivers enqueued messages, expiries and
 * rejections are JSON log lines with msg_id / recipient / reason, and a second signal during
 * a slow shutdown exits at once.
 *
 * alice and bob run test/fixtures/manual-consumer.mjs (bob refuses a payload with a `refuse`
 * field); carol never runs. An in-process relay on loopback tcp.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { busFromConfig } from '../../src/bus/from-config.js'
import { loadConfig } from '../../src/config/config.js'
import { SqliteOutboxStore } from '../../src/outbox/sqlite.js'
import { reliableFields } from '../../src/reliable/protocol.js'
import type { Relay } from '../../src/transport/relay.js'
import { AGENT_CHECK_MS } from '../../src/cli/agent.js'
import { CliProcess, logLine, logRecord, runCli } from '../support/cli.js'
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
    const ready = logRecord(await agent.waitFor(logLine('ready: ')))
    expect(ready).toMatchObject({ level: 30, name: 'agent', pending: 1 })
    expect(String(ready?.['msg'])).toMatch(/^ready: delivering from .*\(1 pending\), woken on .*pub\.outbox\.db\.agent\.sock$/)
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
    expect(agent.stderrLines.map(logRecord).find((r) => r?.['signal'] === 'SIGTERM')?.['msg']).toMatch(/^stopped \(SIGTERM\); \d+ pending stay in the outbox$/)
    expect(() => statSync(join(dir, 'pub.outbox.db.agent.sock'))).toThrow(/ENOENT/)
    const next = start(['agent', '--config', pub])
    await next.waitFor(logLine('ready: '))
    expect(await next.stop('SIGKILL')).toBe(null)
    // A SIGKILLed agent leaves its socket file: the next one replaces it.
    const after = start(['agent', '--config', pub])
    await after.waitFor(logLine('ready: '))
    expect(await after.stop('SIGINT')).toBe(0)
  }, 40_000)
})

/** Scrapes until `ok` holds for a /metrics text (every 50 ms, at most `ms`); resolves with that text. */
async function scrapeUntil(scrape: () => Promise<string>, ok: (text: string) => boolean, ms: number, what: string): Promise<string> {
  const until = Date.now() + ms
  for (;;) {
    const text = await scrape()
    if (ok(text)) return text
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}; last /metrics:\n${text}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** The value of `series` (name and labels exactly) in a /metrics text, or undefined. */
function metric(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

describe('gilmsg agent as a service: --metrics, logs, SIGTERM', () => {
  it('/metrics moves while it delivers enqueued messages; expiries and rejections are logged with msg_id, recipient, reason; SIGTERM exits 0', async () => {
    // Its own outbox (same signer), so that the counters start at zero.
    const ops = writeConfigFile(dir, 'ops', relayConfig(pki, net, dir, 'pub', { outbox_path: join(dir, 'ops.outbox.db') }))
    const run = (args: readonly string[], input?: string) =>
      runCli(['enqueue', '--config', ops, '--modname', APP_MODNAME, '--topic', 'ops', ...args], { env, timeoutMs: 30_000, ...(input !== undefined ? { input } : {}) })
    const svc = start(['agent', '--config', ops, '--metrics', '127.0.0.1:0'])
    const url = String(logRecord(await svc.waitFor(/"metrics_url":/))?.['metrics_url'])
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    await svc.waitFor(logLine('ready: '))
    const scrape = async (): Promise<string> => {
      const res = await fetch(`${url}/metrics`)
      expect(res.status).toBe(200)
      return res.text()
    }
    const before = await scrape()
    expect(metric(before, 'gilmsg_messages_guaranteed_total')).toBe(0)
    expect(metric(before, 'gilmsg_outbox_messages{state="pending"}')).toBe(0)

    // 10 messages to alice and carol (who never runs): alice's ACKs count, carol's stay pending.
    const r = await run(['--recipients', 'alice', 'carol', '--lines'], Array.from({ length: 10 }, (_, n) => `m${n}`).join('\n') + '\n')
    expect(r.code, r.stderr).toBe(0)
    const during = await scrapeUntil(scrape, (t) => metric(t, 'gilmsg_acks_total{recipient="alice",disposition="processed"}') === 10, 15_000, "alice's 10 ACKs counted")
    expect(metric(during, 'gilmsg_messages_guaranteed_total')).toBe(10)
    expect(metric(during, 'gilmsg_messages_published_total')).toBe(10)
    expect(metric(during, 'gilmsg_ack_latency_seconds_count')).toBe(10)
    expect(metric(during, 'gilmsg_outbox_pending{recipient="carol"}')).toBe(10)
    expect(metric(during, 'gilmsg_outbox_pending{recipient="alice"}')).toBeUndefined()
    expect(metric(during, 'gilmsg_outbox_messages{state="pending"}')).toBe(10)
    expect(metric(during, 'gilmsg_certificate_expiry_seconds')).toBeGreaterThan(86_400)
    expect(metric(during, 'gilmsg_crl_next_update_seconds')).toBeGreaterThan(0)
    await scrapeUntil(scrape, (t) => (metric(t, 'gilmsg_resends_by_recipient_total{recipient="carol"}') ?? 0) > 0, 15_000, 'a resend to carol')

    const expiring = (await run(['--recipients', 'carol', '--deadline', '1s', '--message', 'too late'])).stdout.trim()
    const refused = (await run(['--recipients', 'bob', '--json-input', '--message', JSON.stringify({ refuse: 'not now' })])).stdout.trim()
    const expiredLine = logRecord(await svc.waitFor(new RegExp(`"msg_id":"${expiring}"`)))
    expect(expiredLine).toMatchObject({ level: 40, name: 'agent', msg_id: expiring, missing: ['carol'] })
    const rejectedLine = logRecord(await svc.waitFor(new RegExp(`"msg_id":"${refused}"`)))
    expect(rejectedLine).toMatchObject({ level: 40, msg_id: refused, recipient: 'bob', reason: 'not now' })
    const after = await scrapeUntil(scrape, (t) => metric(t, 'gilmsg_outbox_messages{state="rejected"}') === 1, 10_000, 'the rejection recorded')
    expect(metric(after, 'gilmsg_messages_expired_total')).toBe(1)
    expect(metric(after, 'gilmsg_expired_recipients_total{recipient="carol"}')).toBe(1)
    expect(metric(after, 'gilmsg_messages_rejected_total{recipient="bob"}')).toBe(1)
    expect(metric(after, 'gilmsg_acks_total{recipient="bob",disposition="rejected"}')).toBe(1)
    expect(metric(after, 'gilmsg_outbox_messages{state="expired"}')).toBe(1)
    expect(metric(after, 'gilmsg_outbox_messages{state="rejected"}')).toBe(1)

    const ready = await fetch(`${url}/readyz`)
    expect(ready.status).toBe(200)
    expect(((await ready.json()) as { checks: string[] }).checks.sort()).toEqual(['crl', 'outbox', 'running', 'sockets'])
    expect(await svc.stop('SIGTERM')).toBe(0)
    expect(svc.stderrLines.map(logRecord).find((l) => l?.['signal'] === 'SIGTERM')).toMatchObject({ pending: 10 })
    await expect(fetch(`${url}/healthz`)).rejects.toThrow()
  }, 60_000)

  it('a second signal during a slow shutdown exits at once (SIGINT: 130)', async () => {
    // The preload keeps the process up for a minute after the first signal, with listeners of its own.
    const preload = pathToFileURL(join(import.meta.dirname, '..', 'fixtures', 'slow-exit.mjs')).href
    const ops = join(dir, 'ops.json')
    const p = new CliProcess(['agent', '--config', ops], { ...env, NODE_OPTIONS: `${process.env['NODE_OPTIONS'] ?? ''} --import=${preload}` })
    procs.add(p)
    await p.waitFor(logLine('ready: '))
    p.child.kill('SIGTERM')
    await p.waitFor(logLine('stopped (SIGTERM)'))
    expect(p.child.exitCode).toBeNull()
    const sent = performance.now()
    expect(await p.stop('SIGINT')).toBe(130)
    expect(performance.now() - sent).toBeLessThan(2000)
  }, 30_000)
})
