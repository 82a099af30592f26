/**
 * Revocation while everything runs, with real processes: `gilmsg tail` (a consumer behind a
 * relay), `gilmsg publish` waiting for ACKs and a library publisher pick up a new
 * `<ssldir>/crl.pem` (no `crl_location` set) within seconds; rolling the file back to an
 * older CRL is refused and reported, in running processes and at the next start.
 */
import { X509Certificate } from 'node:crypto'
import { copyFileSync, mkdtempSync, readFileSync, renameSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config/config.js'
import { renewCrl } from '../../src/crypto/certs.js'
import { readCaCrl } from '../../src/crypto/crl.js'
import type { CrlEvent } from '../../src/crypto/crl-watch.js'
import { AckTimeoutError, CrlRollbackError } from '../../src/errors.js'
import { openGilmsg } from '../../src/reliable/from-config.js'
import type { Gilmsg } from '../../src/reliable/gilmsg.js'
import { CliProcess, runCli } from '../support/cli.js'
import { waitUntil, writeConfigFile } from '../support/reliable-net.js'

const procs = new Set<CliProcess>()
function start(args: string[]): CliProcess {
  const p = new CliProcess(args, env)
  procs.add(p)
  return p
}

let dir: string
let pki: string
let env: NodeJS.ProcessEnv
const savedState = process.env['XDG_STATE_HOME']

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gilmsg-cli-crl-'))
  pki = join(dir, 'pki')
  env = { XDG_STATE_HOME: join(dir, 'state'), GILMSG_CONFIG: '' }
  process.env['XDG_STATE_HOME'] = env['XDG_STATE_HOME']
  expect((await runCli(['certs', 'init', '--dir', pki], { env })).code).toBe(0)
  const issued = await Promise.all(['pub', 'alice', 'bob', 'mallory'].map((name) => runCli(['certs', 'issue', name, '--key', 'ec', '--dir', pki], { env })))
  for (const r of issued) expect(r.code, r.stderr).toBe(0)
}, 60_000)

afterAll(async () => {
  await Promise.all([...procs].map((p) => p.stop('SIGKILL')))
  if (savedState === undefined) delete process.env['XDG_STATE_HOME']
  else process.env['XDG_STATE_HOME'] = savedState
  await rm(dir, { recursive: true, force: true })
})

/** Copies `from` over `<pki>/crl.pem` with an atomic rename, as CA tooling does. */
function install(from: string): void {
  copyFileSync(from, join(pki, 'crl.pem.new'))
  renameSync(join(pki, 'crl.pem.new'), join(pki, 'crl.pem'))
}

const count = (lines: readonly string[], re: RegExp): number => lines.filter((l) => re.test(l)).length

describe('revocation while tail, gilmsg publish and a library publisher run', () => {
  let relay: CliProcess
  let config: Record<string, unknown>
  let configPath: string
  let lib: Gilmsg
  const libEvents: CrlEvent[] = []

  beforeAll(async () => {
    relay = start(['relay', '--inbound', 'tcp://127.0.0.1:*', '--outbound', 'tcp://127.0.0.1:*'])
    const inbound = (await relay.waitFor(/^inbound /, 'stdout')).split(' ')[1] as string
    const outbound = (await relay.waitFor(/^outbound /, 'stdout')).split(' ')[1] as string
    // No crl_location: <ssldir>/crl.pem is used.
    config = { ssldir: pki, crypto_backend: 'x509_sha256', active: true, relay_inbound: [inbound], endpoints: { relay_outbound: [outbound] } }
    configPath = writeConfigFile(dir, 'bus', config)
    lib = await openGilmsg(parseConfig({ ...config, certname: 'pub', name: 'lib', outbox_path: join(dir, 'lib.outbox.db') }), {
      inbox: false,
      onCrlEvent: (e) => libEvents.push(e),
    })
  }, 30_000)

  afterAll(async () => {
    await lib?.close()
  })

  it('refuses a revoked signer and a revoked recipient within seconds, then refuses the rolled-back CRL', async () => {
    const tail = (name: string, ...extra: string[]) => start(['tail', '--config', configPath, '--certname', name, '--name', name, '--json', ...extra])
    const alice = tail('alice', '--verbose')
    let bob = tail('bob')
    await Promise.all([alice.waitFor(/acknowledging as alice/), bob.waitFor(/acknowledging as bob/)])
    expect(await alice.waitFor(/CRL .*crl\.pem in use: cRLNumber 1, 0 revoked/)).toContain(join(pki, 'crl.pem'))
    const logger = (message: string) => runCli(['logger', '--config', configPath, '--certname', 'mallory', '--message', message, '--wait-ms', '3000'], { env })

    // Before: mallory's messages are printed, alice and bob acknowledge the library publisher.
    expect((await logger('before')).code).toBe(0)
    expect(await alice.waitFor(/"before"/, 'stdout')).toContain('"signer":"mallory"')
    const first = await lib.publish('t', { n: 1 }, { recipients: ['alice', 'bob'], ackTimeout: 10_000 })
    expect(first.recipients.map((r) => r.cn).sort()).toEqual(['alice', 'bob'])

    // gilmsg publish waiting for bob (down), started before the revocation.
    await bob.stop()
    const waiting = start(['publish', '--config', configPath, '--certname', 'pub', '--name', 'pubcli', '--recipients', 'bob', '--ack-timeout', '12', '--message', 'cli-wait'])
    await waitUntil(() => waiting.child.pid !== undefined, 5000, 'gilmsg publish to start')

    const n1 = join(dir, 'crl-n1.pem')
    const n3 = join(dir, 'crl-n3.pem')
    copyFileSync(join(pki, 'crl.pem'), n1)
    for (const name of ['mallory', 'bob']) expect((await runCli(['certs', 'revoke', name, '--dir', pki], { env })).code).toBe(0)
    copyFileSync(join(pki, 'crl.pem'), n3)

    // Every running process reloads crl.pem (cRLNumber 3) within a few seconds.
    await alice.waitFor(/CRL .* reloaded: cRLNumber 3, 2 revoked/, 'stderr', 8000)
    await waiting.waitFor(/CRL .* reloaded: cRLNumber 3, 2 revoked/, 'stderr', 8000)
    await waitUntil(() => libEvents.some((e) => e.type === 'crl:loaded' && e.status.crlNumber === 3n), 8000, 'the library publisher to reload')

    // bob comes back and acknowledges the waiting message: its ACK no longer counts.
    bob = tail('bob')
    await bob.waitFor(/"cli-wait"/, 'stdout')
    expect(await waiting.exited).toBe(3)
    expect(waiting.stderrLines.join('\n')).toMatch(/ACK timeout .*: missing bob/)
    const refused = await lib.publish('t', { n: 2 }, { recipients: ['alice', 'bob'], ackTimeout: 2000 }).catch((e: unknown) => e)
    expect(refused).toBeInstanceOf(AckTimeoutError)
    expect(refused).toMatchObject({ missing: ['bob'], acked: [expect.objectContaining({ cn: 'alice' })] })
    await bob.waitFor(/"n":2/, 'stdout')

    // mallory's next message is dropped as revoked, not printed.
    expect((await logger('after')).code).toBe(0)
    await alice.waitFor(/dropped \(revoked\): certificate of mallory/)
    expect(count(alice.stdoutLines, /"after"/)).toBe(0)

    // Roll crl.pem back to the older CRL: refused and reported; the revocations stay.
    install(n1)
    await alice.waitFor(/CRL .*: the CRL is older than one already accepted for this CA: its cRLNumber 1 is lower than 3.*kept/, 'stderr', 8000)
    await waitUntil(() => libEvents.some((e) => e.type === 'crl:error' && e.error instanceof CrlRollbackError), 8000, 'the library publisher to refuse the rollback')
    expect((await logger('after rollback')).code).toBe(0)
    await waitUntil(() => count(alice.stderrLines, /dropped \(revoked\): certificate of mallory/) === 2, 8000, 'the second revoked drop')
    expect(count(alice.stdoutLines, /"after rollback"/)).toBe(0)
    const stillRefused = await lib.publish('t', { n: 3 }, { recipients: ['alice', 'bob'], ackTimeout: 2000 }).catch((e: unknown) => e)
    expect(stillRefused).toMatchObject({ missing: ['bob'] })

    // A process started now, with the rolled-back file in place, refuses to start.
    const fresh = await runCli(['tail', '--config', configPath, '--no-ack', '--count', '1'], { env, timeoutMs: 10_000 })
    expect(fresh.code).not.toBe(0)
    expect(fresh.stderr).toMatch(/older than one already accepted for this CA: its cRLNumber 1 is lower than 3/)

    // The newest CRL put back is taken again (same cRLNumber); SIGHUP reloads the unchanged file at once.
    install(n3)
    const reloaded = /CRL .* reloaded: cRLNumber 3, 2 revoked/
    await waitUntil(() => count(alice.stderrLines, reloaded) === 2, 8000, 'the newest CRL to be taken again')
    alice.child.kill('SIGHUP')
    await waitUntil(() => count(alice.stderrLines, reloaded) === 3, 8000, 'a reload on SIGHUP')
    expect(alice.child.exitCode).toBeNull()
  }, 90_000)
})

describe('gilmsg certs crl, and a stale CRL at start', () => {
  it('re-issues the CRL with the same entries and cRLNumber + 1; tail reports a stale CRL and still runs', async () => {
    const ssldir = join(dir, 'renew')
    expect((await runCli(['certs', 'init', '--dir', ssldir], { env })).code).toBe(0)
    expect((await runCli(['certs', 'issue', 'x', '--key', 'ec', '--dir', ssldir], { env })).code).toBe(0)
    expect((await runCli(['certs', 'revoke', 'x', '--dir', ssldir], { env })).code).toBe(0)
    const ca = new X509Certificate(readFileSync(join(ssldir, 'ca.crt')))
    const before = readCaCrl(readFileSync(join(ssldir, 'crl.pem'), 'utf8'), ca)

    const r = await runCli(['certs', 'crl', '--dir', ssldir, '--days', '7'], { env })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/re-signed .*crl\.pem: cRLNumber 3, 1 revoked, next update 20\d\d-/)
    const after = readCaCrl(readFileSync(join(ssldir, 'crl.pem'), 'utf8'), ca)
    expect(after.crlNumber).toBe((before.crlNumber ?? 0n) + 1n)
    expect([...after.revoked]).toEqual([...before.revoked])
    expect(after.nextUpdate - Date.now()).toBeGreaterThan(6.9 * 86_400_000)
    expect(after.nextUpdate - Date.now()).toBeLessThan(7 * 86_400_000)

    const help = await runCli(['certs', '--help'])
    expect(help.stdout).toMatch(/gilmsg certs crl --dir DIR \[--days N\]/)
    expect((await runCli(['certs', 'crl', 'x', '--dir', ssldir], { env })).code).toBe(2)
    expect((await runCli(['certs', 'crl', '--dir', ssldir, '--days', '0'], { env })).code).toBe(2)

    await renewCrl(ssldir, { thisUpdate: new Date(Date.now() - 3 * 86_400_000), nextUpdate: new Date(Date.now() - 2 * 86_400_000) })
    const configPath = writeConfigFile(dir, 'stale', { ssldir, crypto_backend: 'x509_sha256', endpoints: { x: [`ipc://${join(dir, 'stale.sock')}`] } })
    const stale = start(['tail', '--config', configPath, '--no-ack'])
    await stale.waitFor(/CRL .* is stale: its nextUpdate .* passed 2 days ago. The 1 certificates it revokes are still refused/)
    await stale.waitFor(/listening/)
  }, 60_000)
})
