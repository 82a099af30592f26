/**
 * Long-running commands and signals, as a user runs them: tail hides the bus's ACK
 * traffic unless --acks; tail and relay stop cleanly on SIGTERM/SIGINT; publish
 * interrupted exits 130 and leaves its message pending in the outbox.
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CliProcess, logLine, runCli, statsOf } from '../support/cli.js'

const procs = new Set<CliProcess>()
function start(args: string[], extraEnv: NodeJS.ProcessEnv = {}): CliProcess {
  const p = new CliProcess(args, { ...env, ...extraEnv })
  procs.add(p)
  return p
}

let dir: string
let env: NodeJS.ProcessEnv
let config: string

function writeConfig(name: string, extra: Record<string, unknown>): string {
  const path = join(dir, `${name}.json`)
  writeFileSync(
    path,
    JSON.stringify({ ssldir: join(dir, 'pki'), ca_cert_location: join(dir, 'pki', 'ca.crt'), crl_location: join(dir, 'pki', 'crl.pem'), ...extra }),
    { mode: 0o600 },
  )
  return path
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gilmsg-shutdown-'))
  env = { XDG_STATE_HOME: join(dir, 'state'), GILMSG_CONFIG: '' }
  expect((await runCli(['certs', 'init', '--dir', join(dir, 'pki')], { env })).code).toBe(0)
  for (const name of ['pub', 'alice']) expect((await runCli(['certs', 'issue', name, '--dir', join(dir, 'pki')], { env })).code).toBe(0)
  const relay = start(['relay', '--inbound', 'tcp://127.0.0.1:*', '--outbound', 'tcp://127.0.0.1:*'])
  const inbound = (await relay.waitFor(/^inbound /, 'stdout')).split(' ')[1]
  const outbound = (await relay.waitFor(/^outbound /, 'stdout')).split(' ')[1]
  config = writeConfig('relay', { endpoints: { relay_outbound: [outbound] }, relay_inbound: [inbound], active: true })
}, 60_000)

afterAll(async () => {
  await Promise.all([...procs].map((p) => p.stop('SIGKILL')))
})

const ACK_LINE = /^org\.fedoraproject\.dev\.gilmsg\.ack alice /

describe('gilmsg tail and ACK traffic', () => {
  it('hides ACKs by default and prints them with --acks', async () => {
    const alice = start(['tail', '--config', config, '--certname', 'alice', '--name', 'alice'])
    const quiet = start(['tail', '--config', config, '--no-ack', '--stats'])
    const loud = start(['tail', '--config', config, '--no-ack', '--acks'])
    await Promise.all([alice.waitFor(/acknowledging as alice/), quiet.waitFor(/listening/), loud.waitFor(/listening/)])

    const published = await runCli(['publish', '--config', config, '--certname', 'pub', '--name', 'pub', '--recipients', 'alice', '--message', 'ack me'], { env })
    expect(published.code, published.stderr).toBe(0)
    expect(await loud.waitFor(ACK_LINE, 'stdout')).toMatch(/"ack_msg_id":/)
    // The relay forwards in order: once the next message is in, the ACK before it was seen (and hidden).
    const after = await runCli(['logger', '--config', config, '--certname', 'pub', '--message', 'after the ack'], { env })
    expect(after.code, after.stderr).toBe(0)
    await quiet.waitFor(/after the ack/, 'stdout')
    expect(quiet.stdoutLines.filter((l) => ACK_LINE.test(l))).toEqual([])
    expect(loud.stdoutLines.filter((l) => ACK_LINE.test(l)).length).toBeGreaterThanOrEqual(1)
    for (const p of [alice, quiet, loud]) expect(await p.stop('SIGTERM')).toBe(0)
    await quiet.waitFor(logLine('stats'))
    const stats = statsOf(quiet.stderrLines) ?? {}
    expect(stats['acks_hidden']).toBe(loud.stdoutLines.filter((l) => ACK_LINE.test(l)).length)
  }, 30_000)
})

describe('gilmsg publish interrupted', () => {
  it('exits 130 on SIGINT, says the message stays in the outbox, and it is pending there', async () => {
    const watcher = start(['tail', '--config', config, '--no-ack'])
    await watcher.waitFor(/listening/)
    const publish = start(['publish', '--config', config, '--certname', 'pub', '--name', 'interrupted', '--recipients', 'nobody', '--ack-timeout', '60', '--message', 'never acked'])
    // The publisher commits to its outbox before sending: once the message is on the bus, it is stored.
    await watcher.waitFor(/never acked/, 'stdout')
    expect(await publish.stop('SIGINT')).toBe(130)
    expect(publish.stderrLines.join('\n')).toMatch(/interrupted \(SIGINT\).*stays pending in the outbox/)
    const list = await runCli(['outbox', 'list', '--config', config, '--name', 'interrupted', '--state', 'pending', '--json'], { env })
    expect(list.code, list.stderr).toBe(0)
    const pending = list.stdout.trim().split('\n').map((l) => JSON.parse(l) as { missing: string[] })
    expect(pending.map((m) => m.missing)).toEqual([['nobody']])
    expect(await watcher.stop('SIGTERM')).toBe(0)
  }, 30_000)
})

describe('SIGTERM while traffic flows', () => {
  it('tail exits 0 within the linger, and every message it printed was acknowledged to the publisher', async () => {
    const alice = start(['tail', '--config', config, '--certname', 'alice', '--name', 'flow-alice', '--json'])
    await alice.waitFor(/acknowledging as alice/)
    const lines = Array.from({ length: 300 }, (_, i) => `message ${i}`).join('\n') + '\n'
    const publishing = runCli(['publish', '--config', config, '--certname', 'pub', '--name', 'flow', '--recipients', 'alice', '--ack-timeout', '3'], { env, input: lines, timeoutMs: 30_000 })
    // Each chunk of stdout is split into lines before this listener runs (readline listened first).
    while (alice.stdoutLines.length < 20) await new Promise<void>((resolve) => alice.child.stdout?.once('data', () => resolve()))
    const stopped = performance.now()
    expect(await alice.stop('SIGTERM')).toBe(0)
    expect(performance.now() - stopped).toBeLessThan(3000)
    const printed = alice.stdoutLines.map((l) => (JSON.parse(l) as { msg_id: string }).msg_id)
    expect(printed.length).toBeGreaterThanOrEqual(20)

    const published = await publishing
    expect([0, 3], published.stderr).toContain(published.code)
    const list = await runCli(['outbox', 'list', '--config', config, '--name', 'flow', '--state', 'acked', '--limit', '1000', '--json'], { env })
    expect(list.code, list.stderr).toBe(0)
    const acked = new Set(list.stdout.trim().split('\n').filter((l) => l !== '').map((l) => (JSON.parse(l) as { msg_id: string }).msg_id))
    expect(printed.filter((id) => !acked.has(id))).toEqual([])
  }, 40_000)

  it.each(['native', 'js'] as const)('relay --mode %s exits 0 and says what it counted', async (mode) => {
    const relay = start(['relay', '--inbound', 'tcp://127.0.0.1:*', '--outbound', 'tcp://127.0.0.1:*', '--mode', mode, '--stats'])
    const inbound = (await relay.waitFor(/^inbound /, 'stdout')).split(' ')[1]
    const outbound = (await relay.waitFor(/^outbound /, 'stdout')).split(' ')[1]
    const own = writeConfig('own-relay', { endpoints: { relay_outbound: [outbound] }, relay_inbound: [inbound], active: true })
    const watcher = start(['tail', '--config', own, '--no-ack'])
    await watcher.waitFor(/listening/)
    const lines = Array.from({ length: 2000 }, (_, i) => `line ${i}`).join('\n') + '\n'
    const logging = runCli(['logger', '--config', own, '--certname', 'pub'], { env, input: lines, timeoutMs: 30_000 })
    await watcher.waitFor(/"log":"line \d+"/, 'stdout')
    expect(await relay.stop('SIGTERM')).toBe(0)
    if (mode === 'js') {
      expect(relay.stderrLines.join('\n')).toMatch(/"forwarded":\d+,"msg":"forwarded \d+ messages"/)
    } else {
      expect(relay.stderrLines.join('\n')).toMatch(/"mode":"native","inbound_connects":[1-9]\d*,"inbound_disconnects":\d+,"msg":"stopped \(native mode: messages are not counted\)"/)
    }
    const stats = statsOf(relay.stderrLines) ?? {}
    expect(stats['inbound_connects']).toBeGreaterThanOrEqual(1)
    expect('forwarded' in stats).toBe(mode === 'js')
    await logging
    expect(await watcher.stop('SIGTERM')).toBe(0)
  }, 40_000)
})

describe('a second signal during a slow shutdown', () => {
  // The preload keeps the process up for a minute after the first signal, with listeners of its own.
  const slowExit = { NODE_OPTIONS: `${process.env['NODE_OPTIONS'] ?? ''} --import=${pathToFileURL(join(import.meta.dirname, '..', 'fixtures', 'slow-exit.mjs')).href}` }

  it.each([
    ['tail', 'SIGINT', 130],
    ['relay', 'SIGTERM', 143],
  ] as const)('%s: the first SIGTERM shuts down, a second %s exits at once with %i', async (command, second, code) => {
    const p =
      command === 'tail'
        ? start(['tail', '--config', config, '--no-ack', '--stats'], slowExit)
        : start(['relay', '--inbound', 'tcp://127.0.0.1:*', '--outbound', 'tcp://127.0.0.1:*'], slowExit)
    await p.waitFor(command === 'tail' ? /listening/ : /^outbound /, command === 'tail' ? 'stderr' : 'stdout')
    p.child.kill('SIGTERM')
    await p.waitFor(command === 'tail' ? logLine('stats') : logLine('stopped '))
    expect(p.child.exitCode).toBeNull()
    const sent = performance.now()
    expect(await p.stop(second)).toBe(code)
    expect(performance.now() - sent).toBeLessThan(2000)
  }, 20_000)
})
