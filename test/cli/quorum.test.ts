/**
 * `gilmsg publish --quorum K`, as a subprocess: exit 0 once K recipients acked (the receipt
 * lists exactly those, `gilmsg outbox show` the others still pending); exit 3 on a timeout,
 * saying who is missing, who rejected and how many of K acked; a rejection fails (exit 4)
 * only once K can no longer be reached; exit 2 for a K that is not from 1 to the number of
 * recipients.
 *
 * alice and bob run test/fixtures/manual-consumer.mjs (bob refuses a payload with a
 * `refuse` field); carol runs only in the last test, refusing the same way. An in-process
 * relay on loopback tcp.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestPki, type TestPki } from '../support/pki.js'
import type { Relay } from '../../src/transport/relay.js'
import { runCli } from '../support/cli.js'
import { APP_MODNAME, APP_PREFIX, relayConfig, startLoopbackRelay, writeConfigFile } from '../support/reliable-net.js'
import { ScriptProcess } from '../support/script-process.js'

const CONSUMER = fileURLToPath(new URL('../fixtures/manual-consumer.mjs', import.meta.url))

let dir: string
let env: NodeJS.ProcessEnv
let pki: TestPki
let net: { relay: Relay; inbound: string; outbound: string }
const configs: Record<string, string> = {}
const consumers: ScriptProcess[] = []

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gilmsg-cli-quorum-'))
  env = { XDG_STATE_HOME: join(dir, 'state'), GILMSG_CONFIG: '' }
  pki = await createTestPki(join(dir, 'pki'), ['pub', 'alice', 'bob', 'carol'].map((name) => ({ name, key: 'ec' as const })))
  net = await startLoopbackRelay()
  for (const name of ['pub', 'alice', 'bob', 'carol']) configs[name] = writeConfigFile(dir, name, relayConfig(pki, net, dir, name))
  for (const [name, extra] of [
    ['alice', []],
    ['bob', ['--reject-field', 'refuse']],
  ] as const) {
    const c = new ScriptProcess(name, CONSUMER, [configs[name] as string, '--prefix', APP_PREFIX, ...extra], env)
    consumers.push(c)
    await c.waitForLine(new RegExp(`^ready ${name}$`), 15_000)
  }
}, 60_000)

afterAll(async () => {
  await Promise.allSettled(consumers.map((c) => c.kill('SIGKILL')))
  await net?.relay.close()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

const publish = (quorum: string, ackTimeout: string, extra: readonly string[] = []) =>
  runCli(
    ['publish', '--config', configs['pub'] as string, '--recipients', 'alice', 'bob', 'carol', '--quorum', quorum, '--ack-timeout', ackTimeout, '--modname', APP_MODNAME, '--topic', 'job', ...extra],
    { env, timeoutMs: 30_000 },
  )

describe('gilmsg publish --quorum', () => {
  it('exits 0 once 2 of 3 acked, the receipt listing exactly those; outbox show has carol still pending', async () => {
    const r = await publish('2', '20', ['--json', '--message', 'two of three'])
    expect(r.code, r.stderr).toBe(0)
    const receipt = JSON.parse(r.stdout.trim()) as { msgId: string; recipients: { cn: string }[] }
    expect(receipt.recipients.map((a) => a.cn).sort()).toEqual(['alice', 'bob'])
    const show = await runCli(['outbox', 'show', receipt.msgId, '--config', configs['pub'] as string, '--json'], { env })
    expect(show.code, show.stderr).toBe(0)
    const shown = JSON.parse(show.stdout) as { state: string; recipients: { cn: string; state: string }[] }
    expect(shown.state).toBe('pending')
    expect(shown.recipients.map((x) => [x.cn, x.state])).toEqual([
      ['alice', 'acked'],
      ['bob', 'acked'],
      ['carol', 'pending'],
    ])
    // Without --json the operator is told who is still pending.
    const plain = await publish('2', '20', ['--message', 'again'])
    expect(plain.code, plain.stderr).toBe(0)
    expect(plain.stderr).toMatch(/: acknowledged by .*; still pending in the outbox: carol\n/)
    const text = await runCli(['outbox', 'show', receipt.msgId, '--config', configs['pub'] as string], { env })
    expect(text.stdout).toMatch(/^quorum {4}2 of 3: reached; acked by alice, bob; still pending: carol$/m)
    expect(JSON.parse(show.stdout)).toMatchObject({ quorum: 2, acked: ['alice', 'bob'], pending: ['carol'], rejected: [] })
  }, 60_000)

  it('exits 3 when the quorum is not reached, naming who is missing and how many of K acked', async () => {
    const r = await publish('3', '1.5', ['--message', 'all three'])
    expect(r.code, r.stderr).toBe(3)
    expect(r.stderr).toMatch(/ACK timeout for \S+: missing carol; acked by (alice, bob|bob, alice); 2 of the 3 needed\n/)
  }, 60_000)

  it('a rejection while K can still be reached fails nothing: 1 of alice and bob exits 0 with alice; the outbox names bob\'s rejection', async () => {
    const r = await runCli(
      ['publish', '--config', configs['pub'] as string, '--recipients', 'alice', 'bob', '--quorum', '1', '--ack-timeout', '20', '--modname', APP_MODNAME, '--topic', 'job', '--json-input', '--message', JSON.stringify({ refuse: 'not mine' })],
      { env, timeoutMs: 30_000 },
    )
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toMatch(/: acknowledged by alice \(processed\)(; rejected by bob \(not mine\)|; still pending in the outbox: bob)\n$/)
  }, 60_000)

  it('exits 3 on a timeout after a rejection that left K within reach, naming it apart from the missing', async () => {
    const r = await publish('2', '2', ['--json-input', '--message', JSON.stringify({ refuse: 'not today' })])
    expect(r.code, r.stderr).toBe(3)
    expect(r.stderr).toMatch(/ACK timeout for \S+: missing carol; acked by alice; rejected by bob \(not today\); 1 of the 2 needed\n/)
  }, 60_000)

  it('exits 4 once K can no longer be reached (bob and carol reject 2 of 3), naming every rejection', async () => {
    const carol = new ScriptProcess('carol', CONSUMER, [configs['carol'] as string, '--prefix', APP_PREFIX, '--reject-field', 'refuse'], env)
    consumers.push(carol)
    await carol.waitForLine(/^ready carol$/, 15_000)
    const r = await publish('2', '20', ['--json-input', '--message', JSON.stringify({ refuse: 'no way' })])
    expect(r.code, r.stderr).toBe(4)
    expect(r.stderr).toMatch(/(bob|carol) rejected \S+: no way; the quorum of 2 of 3 can no longer be reached \(rejected by bob \(no way\), carol \(no way\); acked by alice\)\n/)
    // Without a quorum the first rejection is enough, as before.
    const all = await publish('3', '20', ['--json-input', '--message', JSON.stringify({ refuse: 'nope' })])
    expect(all.code, all.stderr).toBe(4)
    expect(all.stderr).toMatch(/(bob|carol) rejected \S+: nope\n/)
  }, 60_000)

  it('exits 2 for a K that is not a whole number from 1 to the number of recipients, or without recipients', async () => {
    for (const k of ['0', '4', '1.5', 'two']) {
      const r = await publish(k, '5', ['--message', 'x'])
      expect(r.code, `--quorum ${k}`).toBe(2)
      expect(r.stderr).toMatch(/--quorum/)
    }
    const r = await runCli(['publish', '--config', configs['pub'] as string, '--quorum', '1', '--message', 'x'], { env })
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/--quorum: only with --recipients/)
  }, 60_000)
})
