/**
 * The CLI as a user runs it: real processes, real sockets on loopback / ipc,
 * real SQLite files, asserting stdout, stderr and exit codes.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CliProcess, runCli } from '../support/cli.js'
import { FakeClock } from '../support/fake-clock.js'
import { waitUntil } from '../support/reliable-net.js'
import { ecPartiesPki, memoryBus } from '../support/memory-bus.js'
import { SqliteOutboxStore } from '../../src/outbox/sqlite.js'
import { Gilmsg } from '../../src/reliable/gilmsg.js'
import { MemoryHub } from '../../src/transport/memory.js'

const procs = new Set<CliProcess>()
function start(args: string[], env: NodeJS.ProcessEnv): CliProcess {
  const p = new CliProcess(args, env)
  procs.add(p)
  return p
}

let dir: string
let env: NodeJS.ProcessEnv

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gilmsg-cli-'))
  env = { XDG_STATE_HOME: join(dir, 'state'), GILMSG_CONFIG: '' }
  expect((await runCli(['certs', 'init', '--dir', join(dir, 'pki')], { env })).code).toBe(0)
  for (const name of ['pub', 'alice', 'bob']) {
    const r = await runCli(['certs', 'issue', name, '--dir', join(dir, 'pki')], { env })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toContain(`CN=${name}`)
  }
}, 60_000)

afterAll(async () => {
  await Promise.all([...procs].map((p) => p.stop('SIGKILL')))
})

function writeConfig(name: string, config: Record<string, unknown>): string {
  const path = join(dir, `${name}.json`)
  writeFileSync(
    path,
    JSON.stringify({ ssldir: join(dir, 'pki'), ca_cert_location: join(dir, 'pki', 'ca.crt'), crl_location: join(dir, 'pki', 'crl.pem'), ...config }),
    { mode: 0o600 },
  )
  return path
}

describe('gilmsg (usage)', () => {
  it('prints help and exits 0; an unknown command exits 2', async () => {
    const help = await runCli(['--help'])
    expect(help.code).toBe(0)
    expect(help.stdout).toMatch(/publish/)
    const bad = await runCli(['frobnicate'])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toMatch(/unknown command "frobnicate"/)
  })

  it('exits 2 on an unknown option or a bad config, saying what is wrong', async () => {
    const opt = await runCli(['tail', '--bogus'])
    expect(opt.code).toBe(2)
    expect(opt.stderr).toMatch(/bogus/)
    const cfg = writeConfig('typo', { endpionts: {} })
    const r = await runCli(['tail', '--config', cfg])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/unknown key "endpionts" \(did you mean "endpoints"\?\)/)
    const missing = await runCli(['publish', '--recipients', 'x', '--message', 'm', '--config', writeConfig('nocert', { certname: 'nobody', active: true, relay_inbound: 'tcp://127.0.0.1:1' })], { env })
    expect(missing.code).toBe(2)
    expect(missing.stderr).toMatch(/nobody\.(crt|key)/)
  })

  it('has --help on every command', async () => {
    for (const cmd of ['demo', 'tail', 'logger', 'publish', 'relay', 'certs', 'outbox', 'consume']) {
      const r = await runCli([cmd, '--help'])
      expect(r.code, cmd).toBe(0)
      expect(r.stdout, cmd).toMatch(/Usage/)
    }
  })
})

describe('gilmsg logger -> tail, direct (ipc)', () => {
  it('round-trips a signed message and keeps a float a float', async () => {
    const endpoint = `ipc://${join(dir, 'logger.sock')}`
    const config = writeConfig('direct', { endpoints: { logger: [endpoint] }, name: 'logger', certname: 'pub' })
    const tail = start(['tail', '--config', config, '--json', '--no-ack', '--count', '1'], env)
    await tail.waitFor(/listening/)
    const r = await runCli(['logger', '--config', config, '--json-input', '--message', '{"f": 1.0, "big": 12345678901234567890123}'], { env })
    expect(r.code, r.stderr).toBe(0)
    const line = await tail.waitFor(/msg_id/, 'stdout')
    expect(line).toContain('"signer":"pub"')
    expect(line).toContain('"msg":{"big":12345678901234567890123,"f":1.0}')
    expect(await tail.exited).toBe(0)
  })
})

describe('gilmsg with a relay: logger, publish --recipients, exit codes', () => {
  let relay: CliProcess
  let config: string

  beforeAll(async () => {
    relay = start(['relay', '--inbound', 'tcp://127.0.0.1:*', '--outbound', 'tcp://127.0.0.1:*'], env)
    const inbound = (await relay.waitFor(/^inbound /, 'stdout')).split(' ')[1]
    const outbound = (await relay.waitFor(/^outbound /, 'stdout')).split(' ')[1]
    config = writeConfig('relay', { endpoints: { relay_outbound: [outbound] }, relay_inbound: [inbound], active: true })
  }, 30_000)

  it('logger through the relay reaches tail', async () => {
    const tail = start(['tail', '--config', config, '--no-ack', '--count', '1'], env)
    await tail.waitFor(/listening/)
    const r = await runCli(['logger', '--config', config, '--certname', 'pub', '--message', 'via relay'], { env })
    expect(r.code, r.stderr).toBe(0)
    expect(await tail.waitFor(/via relay/, 'stdout')).toMatch(/^org\.fedoraproject\.dev\.logger\.log pub \{"log":"via relay"\}$/)
  })

  it('logger goes through the relay when relay_inbound is set without "active" (fedmsg-logger forces it)', async () => {
    const tail = start(['tail', '--config', config, '--no-ack', '--count', '1'], env)
    await tail.waitFor(/listening/)
    const relayConfig = JSON.parse(readFileSync(config, 'utf8')) as Record<string, unknown>
    const passive = writeConfig('relay-not-active', { endpoints: relayConfig['endpoints'], relay_inbound: relayConfig['relay_inbound'] })
    const r = await runCli(['logger', '--config', passive, '--certname', 'pub', '--message', 'forced active'], { env })
    expect(r.code, r.stderr).toBe(0)
    expect(await tail.waitFor(/forced active/, 'stdout')).toMatch(/^org\.fedoraproject\.dev\.logger\.log pub \{"log":"forced active"\}$/)
  })

  it('publish exits 0 when both recipients ack, 3 naming the one that is down, 0 again once it is back', async () => {
    const alice = start(['tail', '--config', config, '--certname', 'alice', '--name', 'alice', '--json'], env)
    let bob = start(['tail', '--config', config, '--certname', 'bob', '--name', 'bob', '--json'], env)
    await Promise.all([alice.waitFor(/acknowledging as alice/), bob.waitFor(/acknowledging as bob/)])
    const publish = (msg: string, timeout = '5') =>
      runCli(['publish', '--config', config, '--certname', 'pub', '--name', 'pub', '--recipients', 'alice', 'bob', '--ack-timeout', timeout, '--message', msg, '--json'], { env })

    const ok = await publish('one')
    expect(ok.code, ok.stderr).toBe(0)
    const receipt = JSON.parse(ok.stdout) as { msgId: string; recipients: { cn: string }[] }
    expect(receipt.recipients.map((r) => r.cn).sort()).toEqual(['alice', 'bob'])
    await alice.waitFor(new RegExp(receipt.msgId), 'stdout')

    await bob.stop()
    const timeout = await publish('two', '1')
    expect(timeout.code).toBe(3)
    expect(timeout.stderr).toMatch(/missing bob; acked by alice/)

    bob = start(['tail', '--config', config, '--certname', 'bob', '--name', 'bob', '--json'], env)
    await bob.waitFor(/acknowledging as bob/)
    const again = await publish('three')
    expect(again.code, again.stderr).toBe(0)

    const list = await runCli(['outbox', 'list', '--config', config, '--name', 'pub'], { env })
    expect(list.code, list.stderr).toBe(0)
    expect(list.stdout).toMatch(/2 acked, 1 expired/)
    const show = await runCli(['outbox', 'show', receipt.msgId, '--config', config, '--name', 'pub'], { env })
    expect(show.code, show.stderr).toBe(0)
    expect(show.stdout).toMatch(/alice: acked \(received\)/)
    expect(show.stdout).toMatch(/signed by certificate sha256:[0-9a-f]{64}/)

    const expiredId = (JSON.parse(
      (await runCli(['outbox', 'list', '--state', 'expired', '--json', '--config', config, '--name', 'pub'], { env })).stdout.trim(),
    ) as { msg_id: string; missing: string[] })
    expect(expiredId.missing).toEqual(['bob'])
    const retry = await runCli(['outbox', 'retry', expiredId.msg_id, '--deadline', '1h', '--config', config, '--name', 'pub'], { env })
    expect(retry.code, retry.stderr).toBe(0)
    // The next publisher processes on this outbox resume the retried message and resend it while
    // they run; bob is back, so it gets acknowledged (a process may exit before bob's ACK is in:
    // the next one resumes it again).
    let after = ''
    for (let n = 0; n < 5 && !/state\s+acked/.test(after); n++) {
      expect((await publish(`four.${n}`)).code).toBe(0)
      after = (await runCli(['outbox', 'show', expiredId.msg_id, '--config', config, '--name', 'pub'], { env })).stdout
    }
    expect(after).toMatch(/state\s+acked/)
    const purge = await runCli(['outbox', 'purge', '--older-than', '0s', '--config', config, '--name', 'pub'], { env })
    expect(Number(/purged (\d+) finished messages/.exec(purge.stdout)?.[1])).toBeGreaterThanOrEqual(4)

    // A revoked recipient's ACKs no longer count.
    expect((await runCli(['certs', 'revoke', 'bob', '--dir', join(dir, 'pki')], { env })).code).toBe(0)
    const revoked = await publish('five', '1')
    expect(revoked.code).toBe(3)
    expect(revoked.stderr).toMatch(/missing bob; acked by alice/)
  }, 60_000)

  it('tail --no-validate does not acknowledge unless --ack-unvalidated (documented in --help)', async () => {
    expect((await runCli(['tail', '--help'])).stdout).toMatch(/--ack-unvalidated .*\n.*\n.*forged/)
    const issued = await runCli(['certs', 'issue', 'carol', '--dir', join(dir, 'pki')], { env })
    expect(issued.code, issued.stderr).toBe(0)
    const publish = (msg: string, timeout: string) =>
      runCli(['publish', '--config', config, '--certname', 'pub', '--name', 'pub', '--recipients', 'carol', '--ack-timeout', timeout, '--message', msg], { env })
    const tailArgs = ['tail', '--config', config, '--certname', 'carol', '--name', 'carol', '--no-validate', '--json', '--topic', '']

    const silent = start(tailArgs, env)
    await silent.waitFor(/not acknowledging: messages are not validated .*pass --ack-unvalidated/)
    await silent.waitFor(/"msg":"listening on \(all topics\)"/)
    const refused = await publish('not validated', '1')
    expect(refused.code).toBe(3)
    expect(refused.stderr).toMatch(/missing carol/)
    await silent.waitFor(/not validated/, 'stdout')
    await silent.stop()

    const acking = start([...tailArgs, '--ack-unvalidated'], env)
    await acking.waitFor(/acknowledging as carol/)
    const acked = await publish('acknowledged anyway', '5')
    expect(acked.code, acked.stderr).toBe(0)
  }, 30_000)

  it('publish exits 2 on usage errors', async () => {
    const r = await runCli(['publish', '--config', config, '--recipients', '--message', 'x'], { env })
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/--recipients/)
    const t = await runCli(['publish', '--config', config, '--recipients', 'a', '--ack-timeout', 'soon', '--message', 'x'], { env })
    expect(t.code).toBe(2)
    expect(t.stderr).toMatch(/--ack-timeout: expected a number/)
  })
})

describe('gilmsg outbox retry and the replay window (protocol.md: the replay window)', () => {
  const DAY = 24 * 60 * 60 * 1000

  /** An outbox holding two expired messages, signed 6 and 4 days ago (a publisher on a fake clock, nobody listening). */
  async function oldOutbox(): Promise<{ path: string; sixDays: string; fourDays: string; fourDaysSignedAt: number }> {
    const { pki, verifier } = await ecPartiesPki('cli-retry', ['pub'])
    const path = join(dir, 'old.outbox.db')
    const clock = new FakeClock(Date.now() - 6 * DAY)
    const bus = memoryBus({ hub: new MemoryHub(), verifier, topic: { topicPrefix: 'org.test', environment: 'cli' }, clock }, pki, 'pub')
    const store = SqliteOutboxStore.open(path)
    const g = await Gilmsg.open({ bus, outbox: store, clock, awaitSubscriberMs: 0 })
    try {
      const sixDays = (await g.enqueue('job', { n: 6 }, { recipients: ['bob'], deadline: 1000 })).msgId
      await clock.advance(2 * DAY)
      const fourDaysSignedAt = Math.floor(clock.now() / 1000) * 1000
      const fourDays = (await g.enqueue('job', { n: 4 }, { recipients: ['bob'], deadline: 1000 })).msgId
      await clock.advance(2000)
      expect(g.publisher?.inFlight).toBe(0)
      // The expiry of the second runs after the clock's timer fired: wait until both are expired
      // (reads see the writes issued; close() commits them).
      await waitUntil(() => store.counts().expired === 2, 5000, 'both messages to expire', () => JSON.stringify(store.counts()))
      return { path, sixDays, fourDays, fourDaysSignedAt }
    } finally {
      await g.close()
    }
  }

  it('refuses to retry a message past its window (exit 1, saying why and what to do), bounds --deadline to what is left (exit 2), and by default ends resends at the window', async () => {
    const { path, sixDays, fourDays, fourDaysSignedAt } = await oldOutbox()
    const list = await runCli(['outbox', 'list', '--state', 'expired', '--outbox', path], { env })
    expect(list.stdout).toMatch(/\(0 pending, 0 acked, 2 expired, 0 rejected\)/)

    const tooOld = await runCli(['outbox', 'retry', sixDays, '--outbox', path], { env })
    expect(tooOld.code, tooOld.stderr).toBe(1)
    expect(tooOld.stderr).toMatch(new RegExp(`${sixDays} can no longer be resent: it was signed at \\S+, consumers refuse a guaranteed message signed more than 6 days ago`))
    expect(tooOld.stderr).toMatch(/Publish it again as a new message/)

    const tooLong = await runCli(['outbox', 'retry', fourDays, '--deadline', '2d', '--outbox', path], { env })
    expect(tooLong.code, tooLong.stderr).toBe(2)
    expect(tooLong.stderr).toMatch(/--deadline: expected at most 14[0-9]{2}m for \S+ \(its resends must end by \S+, 5 days after it was signed\), got "2d"/)

    const retried = await runCli(['outbox', 'retry', fourDays, '--outbox', path], { env })
    expect(retried.code, retried.stderr).toBe(0)
    const until = Date.parse(/pending again until (\S+)/.exec(retried.stdout)?.[1] ?? '')
    expect(until).toBe(fourDaysSignedAt + 5 * DAY)
    const again = await runCli(['outbox', 'list', '--state', 'expired', '--outbox', path], { env })
    expect(again.stdout).toMatch(/\(1 pending, 0 acked, 1 expired, 0 rejected\)/)
  }, 30_000)
})

describe('gilmsg demo', () => {
  it('runs end to end with a crash and restart and exits 0', async () => {
    const r = await runCli(['demo', '--messages', '60', '--key', 'ec'], { env, timeoutMs: 60_000 })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/60\/60 messages acknowledged by both/)
    expect(r.stdout).toMatch(/^alice\s+60\s/m)
    expect(r.stdout).toMatch(/^bob\s+60\s/m)
    expect(r.stderr).toMatch(/killing bob \(SIGKILL\)/)
  }, 90_000)
})
