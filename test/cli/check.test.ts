/**
 * `gilmsg check` as a subprocess: a healthy setup behind a running relay (with --roundtrip),
 * an expired certificate, a CRL past its nextUpdate, a world-readable key, an unreachable
 * relay (within the timeout, with and without --roundtrip), stores opened without being
 * created, a damaged outbox, --json and --help.
 */
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { initCa, issueCert } from '../../src/crypto/certs.js'
import { INBOX_SCHEMA_VERSION, SqliteInboxStore } from '../../src/inbox/sqlite.js'
import { OUTBOX_SCHEMA_VERSION, SqliteOutboxStore } from '../../src/outbox/sqlite.js'
import { CliProcess, runCli, type RunResult } from '../support/cli.js'
import { writeConfigFile } from '../support/reliable-net.js'

const DAY_MS = 24 * 60 * 60 * 1000

let dir: string
let pki: string
let env: NodeJS.ProcessEnv
let relay: CliProcess
let inbound: string
let outbound: string

/** A loopback TCP port nobody listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

/** The lines of a text report, as [status, name, detail]. */
function lines(r: RunResult): { status: string; name: string; detail: string }[] {
  return r.stdout
    .trimEnd()
    .split('\n')
    .map((l) => {
      const m = /^(ok|warn|fail)\s+(\S+(?: \S+)?)\s{2,}(.*)$/.exec(l)
      if (m === null) throw new Error(`not a check line: ${JSON.stringify(l)}`)
      return { status: m[1] as string, name: m[2] as string, detail: m[3] as string }
    })
}

function line(r: RunResult, name: string): { status: string; detail: string } {
  const found = lines(r).find((l) => l.name === name)
  if (found === undefined) throw new Error(`no "${name}" line in:\n${r.stdout}\n${r.stderr}`)
  return { status: found.status, detail: found.detail }
}

function config(file: string, extra: Record<string, unknown> = {}): string {
  return writeConfigFile(dir, file, {
    ssldir: pki,
    crypto_backend: 'x509_sha256',
    active: true,
    relay_inbound: [inbound],
    endpoints: { relay_outbound: [outbound] },
    ...extra,
  })
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gilmsg-cli-check-'))
  pki = join(dir, 'pki')
  env = { XDG_STATE_HOME: join(dir, 'state'), GILMSG_CONFIG: '' }
  await initCa(pki)
  const now = Date.now()
  await Promise.all([
    issueCert(pki, 'alice', { key: 'ec' }),
    issueCert(pki, 'old', { key: 'ec', notBefore: new Date(now - 40 * DAY_MS), notAfter: new Date(now - DAY_MS) }),
    issueCert(pki, 'loose', { key: 'ec' }),
  ])
  chmodSync(join(pki, 'loose.key'), 0o644)
  relay = new CliProcess(['relay', '--inbound', 'tcp://127.0.0.1:*', '--outbound', 'tcp://127.0.0.1:*'], env)
  inbound = (await relay.waitFor(/^inbound /, 'stdout')).split(' ')[1] as string
  outbound = (await relay.waitFor(/^outbound /, 'stdout')).split(' ')[1] as string
}, 30_000)

afterAll(async () => {
  await relay?.stop('SIGKILL')
  await rm(dir, { recursive: true, force: true })
})

describe('gilmsg check', () => {
  it('--help describes the checks and the exit status', async () => {
    const r = await runCli(['check', '--help'], { env })
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('Usage: gilmsg check')
    expect(r.stdout).toContain('--roundtrip')
    expect(r.stdout).toContain('Exit status: 0 when no check fails')
  })

  it('a healthy setup behind a running relay: every line ok, --roundtrip gets its own ACK, exit 0', async () => {
    const outbox = join(dir, 'healthy.outbox.db')
    const inbox = join(dir, 'healthy.inbox.db')
    await SqliteOutboxStore.open(outbox).close()
    await SqliteInboxStore.open(inbox).close()
    const path = config('healthy', { certname: 'alice', name: 'healthy', outbox_path: outbox, inbox_path: inbox })
    const r = await runCli(['check', '--config', path, '--roundtrip'], { env })
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(lines(r).filter((l) => l.status !== 'ok'), r.stdout).toEqual([])
    expect(lines(r).map((l) => l.name)).toEqual([
      'config', 'ca', 'ca expiry', 'crl', 'crl update', 'cert chain', 'cert expiry', 'key',
      'endpoint', 'relay inbound', 'relay outbound', 'outbox', 'inbox', 'roundtrip',
    ])
    expect(line(r, 'roundtrip').detail).toMatch(/acknowledged by alice/)
    expect(line(r, 'outbox').detail).toContain(`integrity ok, schema ${OUTBOX_SCHEMA_VERSION}, 0 pending`)
    expect(line(r, 'inbox').detail).toContain(`integrity ok, schema ${INBOX_SCHEMA_VERSION}, 0 messages remembered`)
    expect(r.stderr).toContain(`gilmsg: config ${path} (given with --config)`)
  }, 30_000)

  it('--json: an array of {name, status, detail}', async () => {
    const path = config('json', { certname: 'alice', name: 'json' })
    const r = await runCli(['check', '--config', path, '--json'], { env })
    expect(r.code, r.stderr).toBe(0)
    const results = JSON.parse(r.stdout) as unknown[]
    expect(Array.isArray(results)).toBe(true)
    for (const c of results) {
      expect(Object.keys(c as object).sort()).toEqual(['detail', 'name', 'status'])
      expect(['ok', 'warn', 'fail']).toContain((c as { status: string }).status)
    }
    expect(results).toContainEqual({ name: 'outbox', status: 'warn', detail: expect.stringContaining('none yet') })
  })

  it('a CA and CRL from URLs are checked from their cached copies (not "file not found"), and warned about before any is cached', async () => {
    const cache = join(dir, 'remote-cache')
    const remote = { certname: 'alice', name: 'remote', ca_cert_location: 'https://ca.invalid/ca.crt', crl_location: 'https://ca.invalid/crl.pem' }
    const none = await runCli(['check', '--config', config('remote-none', { ...remote, ca_cert_cache: join(cache, 'none.crt'), crl_cache: join(cache, 'none.pem') }), '--json'], { env })
    const before = JSON.parse(none.stdout) as { name: string; status: string; detail: string }[]
    expect(before.find((c) => c.name === 'ca')).toMatchObject({ status: 'warn', detail: expect.stringContaining('not cached yet') })
    expect(before.find((c) => c.name === 'crl')).toMatchObject({ status: 'warn', detail: expect.stringContaining('not cached yet') })
    mkdirSync(cache, { recursive: true, mode: 0o700 })
    copyFileSync(join(pki, 'ca.crt'), join(cache, 'ca.crt'))
    copyFileSync(join(pki, 'crl.pem'), join(cache, 'crl.pem'))
    const cached = await runCli(['check', '--config', config('remote-cached', { ...remote, ca_cert_cache: join(cache, 'ca.crt'), crl_cache: join(cache, 'crl.pem') }), '--json'], { env })
    const after = JSON.parse(cached.stdout) as { name: string; status: string }[]
    for (const name of ['ca', 'crl', 'cert chain']) expect(after.find((c) => c.name === name)?.status, name).toBe('ok')
  })

  it('an expired signing certificate fails, exit 1', async () => {
    const r = await runCli(['check', '--config', config('expired', { certname: 'old', name: 'expired' })], { env })
    expect(r.code).toBe(1)
    expect(line(r, 'cert expiry')).toEqual({ status: 'fail', detail: expect.stringMatching(/the signing certificate expired at .*, 1 day ago/) })
    expect(line(r, 'cert chain').status).toBe('ok')
  })

  it('a world-readable key fails and names the chmod', async () => {
    const r = await runCli(['check', '--config', config('loose', { certname: 'loose', name: 'loose' })], { env })
    expect(r.code).toBe(1)
    expect(line(r, 'key')).toEqual({ status: 'fail', detail: expect.stringContaining(`permissions 0644`) })
    expect(line(r, 'key').detail).toContain(`fix: chmod 600 ${join(pki, 'loose.key')}`)
  })

  it('a CRL past its nextUpdate fails', async () => {
    const stalePki = join(dir, 'stale-pki')
    const now = Date.now()
    await initCa(stalePki, { thisUpdate: new Date(now - 10 * DAY_MS), nextUpdate: new Date(now - 2 * DAY_MS) })
    await issueCert(stalePki, 'alice', { key: 'ec' })
    const r = await runCli(['check', '--config', config('stale', { ssldir: stalePki, certname: 'alice', name: 'stale' })], { env })
    expect(r.code).toBe(1)
    expect(line(r, 'crl').status).toBe('ok')
    expect(line(r, 'crl update')).toEqual({ status: 'fail', detail: expect.stringMatching(/is stale: its nextUpdate .* passed 2 days ago .*gilmsg certs crl/) })
  })

  it('an unreachable relay fails within the timeout; stores are not created', async () => {
    const relayIn = `tcp://127.0.0.1:${await closedPort()}`
    const outbox = join(dir, 'down.outbox.db')
    const path = config('down', { certname: 'alice', name: 'down', relay_inbound: [relayIn], endpoints: {}, outbox_path: outbox })
    const r = await runCli(['check', '--config', path, '--timeout', '0.5'], { env })
    expect(r.code).toBe(1)
    expect(line(r, 'relay inbound')).toEqual({ status: 'fail', detail: `${relayIn}: unreachable, no connection within 500 ms (is the relay running?)` })
    expect(r.ms).toBeLessThan(5000)
    expect(line(r, 'outbox')).toEqual({ status: 'warn', detail: `${outbox}: none yet (created when first needed)` })
    expect(existsSync(outbox)).toBe(false)
  })

  it('--roundtrip with the relay down fails with a clear line within its timeout', async () => {
    const relayIn = `tcp://127.0.0.1:${await closedPort()}`
    const path = config('down-rt', { certname: 'alice', name: 'down-rt', relay_inbound: [relayIn], endpoints: { relay_outbound: [relayIn] } })
    const r = await runCli(['check', '--config', path, '--roundtrip', '--timeout', '0.5'], { env })
    expect(r.code).toBe(1)
    expect(line(r, 'roundtrip')).toEqual({ status: 'fail', detail: expect.stringContaining('no ACK from alice (this process) within 500 ms') })
    expect(r.ms).toBeLessThan(8000)
  })

  it('a damaged outbox fails, so does an inbox of a newer schema', async () => {
    const outbox = join(dir, 'bad.outbox.db')
    writeFileSync(outbox, Buffer.alloc(8192, 'x'))
    const inbox = join(dir, 'newer.inbox.db')
    await SqliteInboxStore.open(inbox).close()
    const db = new Database(inbox)
    db.pragma('user_version = 99')
    db.close()
    const r = await runCli(['check', '--config', config('bad', { certname: 'alice', name: 'bad', outbox_path: outbox, inbox_path: inbox })], { env })
    expect(r.code).toBe(1)
    expect(line(r, 'outbox')).toEqual({ status: 'fail', detail: expect.stringContaining('not a SQLite database') })
    expect(line(r, 'inbox')).toEqual({ status: 'fail', detail: `${inbox}: schema version 99 is newer than this gilmsg supports (${INBOX_SCHEMA_VERSION}): upgrade gilmsg` })
  })

  it('an endpoint in use is a warning naming it', async () => {
    const server = createServer()
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const address = `tcp://127.0.0.1:${(server.address() as { port: number }).port}`
    try {
      const path = config('bound', { certname: 'alice', name: 'bound', active: false, relay_inbound: [], endpoints: { bound: [address] } })
      const r = await runCli(['check', '--config', path], { env })
      expect(line(r, 'endpoint')).toEqual({ status: 'warn', detail: `${address} is in use: another process holds it (this service, already running?)` })
      expect(r.code).toBe(0)
    } finally {
      server.close()
    }
  })
})
