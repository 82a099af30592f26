/**
 * Long-running commands and signals, as a user runs them: tail hides the bus's ACK
 * traffic unless --acks; tail and relay stop cleanly on SIGTERM/SIGINT; publish
 * interrupted exits 130 and leaves its message pending in the outbox.
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CliProcess, runCli } from '../support/cli.js'

const procs = new Set<CliProcess>()
function start(args: string[]): CliProcess {
  const p = new CliProcess(args, env)
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
    const quiet = start(['tail', '--config', config, '--no-ack'])
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
