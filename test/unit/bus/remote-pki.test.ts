/**
 * The CA and the CRL from http(s) URLs (src/crypto/remote.ts, wired in src/bus/from-config.ts),
 * against a real HTTP server on 127.0.0.1 that serves, fails (503), serves garbage, hangs,
 * or is down.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, utimesSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { rm } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { defaultCrlCachePath, verifierFromConfig, type ConfiguredVerifier } from '../../../src/bus/from-config.js'
import { parseConfig } from '../../../src/config/config.js'
import { revokeCert } from '../../../src/crypto/certs.js'
import { createTestPki, type TestPki } from '../../support/pki.js'
import type { CrlEvent } from '../../../src/crypto/crl-watch.js'
import { InvalidReason } from '../../../src/crypto/types.js'
import { CertificateError } from '../../../src/errors.js'
import { FakeClock } from '../../support/fake-clock.js'
import { leafSigner } from '../../support/memory-bus.js'
import { waitUntil } from '../../support/reliable-net.js'
import { signedFields, tempDir } from '../crypto/helpers.js'

/** What the server answers on a path: a body (200), a status, or nothing at all (it hangs). */
type Answer = { readonly body: () => string } | { readonly status: number } | 'hang'

let dir: string
let server: Server
let base: string
/** A URL on a port nothing listens on. */
let downUrl: string
const routes = new Map<string, Answer>()
const hits = new Map<string, number>()
/** Hanging requests whose connection the client closed. */
let abandoned = 0
const savedState = process.env['XDG_STATE_HOME']

beforeAll(async () => {
  dir = await tempDir('remote-pki')
  process.env['XDG_STATE_HOME'] = join(dir, 'state')
  server = createServer((req, res) => {
    const path = req.url ?? ''
    hits.set(path, (hits.get(path) ?? 0) + 1)
    const answer = routes.get(path) ?? { status: 404 }
    if (answer === 'hang') {
      res.on('close', () => abandoned++)
      return
    }
    if ('status' in answer) {
      res.writeHead(answer.status).end()
      return
    }
    res.writeHead(200, { 'content-type': 'application/x-pem-file' }).end(answer.body())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const down = createServer()
  await new Promise<void>((resolve) => down.listen(0, '127.0.0.1', resolve))
  downUrl = `http://127.0.0.1:${(down.address() as AddressInfo).port}/crl.pem`
  await new Promise<void>((resolve) => down.close(() => resolve()))
})

afterAll(async () => {
  server.closeAllConnections()
  await new Promise<void>((resolve) => server.close(() => resolve()))
  if (savedState === undefined) delete process.env['XDG_STATE_HOME']
  else process.env['XDG_STATE_HOME'] = savedState
  await rm(dir, { recursive: true, force: true })
})

let seq = 0

/** A fresh PKI with leaf `eve` (revoked when `revoked`), its CRL and CA served under a path of its own. */
async function servedPki(revoked = true): Promise<{ pki: TestPki; crlUrl: string; caUrl: string; route: string }> {
  const route = `/pki${++seq}`
  const pki = await createTestPki(join(dir, route), [{ name: 'eve', key: 'ec' }, { name: 'bob', key: 'ec' }])
  if (revoked) await revokeCert(pki.dir, 'eve')
  routes.set(`${route}/crl.pem`, { body: () => readFileSync(pki.crlPath, 'utf8') })
  routes.set(`${route}/ca.crt`, { body: () => pki.caPem })
  return { pki, crlUrl: `${base}${route}/crl.pem`, caUrl: `${base}${route}/ca.crt`, route }
}

const signedBy = (pki: TestPki, name: string) => signedFields(leafSigner(pki.leaf(name)), Buffer.from('{}'))

const open: ConfiguredVerifier[] = []
async function start(raw: Record<string, unknown>, opts: { clock?: FakeClock; events?: CrlEvent[]; fetchTimeoutMs?: number } = {}): Promise<ConfiguredVerifier> {
  const made = await verifierFromConfig(parseConfig({ sign_messages: false, ...raw }), {
    onCrlEvent: (e) => opts.events?.push(e),
    ...(opts.clock ? { clock: opts.clock } : {}),
    ...(opts.fetchTimeoutMs !== undefined ? { fetchTimeoutMs: opts.fetchTimeoutMs } : {}),
  })
  if (made === undefined) throw new Error('no verifier')
  open.push(made)
  return made
}

afterAll(() => {
  for (const made of open) made.crlWatcher.close()
})

describe('crl_location as a URL', () => {
  it('is fetched to crl_cache at start (0600, in a 0700 directory) and enforced', async () => {
    const { pki, crlUrl } = await servedPki()
    const cache = join(dir, 'caches-a', 'crl.pem')
    const made = await start({ ssldir: pki.dir, crl_location: crlUrl, crl_cache: cache })
    expect(made.verifier.verify(signedBy(pki, 'eve'))).toMatchObject({ ok: false, reason: InvalidReason.Revoked })
    expect(made.verifier.verify(signedBy(pki, 'bob')).ok).toBe(true)
    expect(readFileSync(cache, 'utf8')).toBe(readFileSync(pki.crlPath, 'utf8'))
    expect(statSync(cache).mode & 0o777).toBe(0o600)
    expect(statSync(join(dir, 'caches-a')).mode & 0o777).toBe(0o700)
  })

  it('is cached under the state directory when crl_cache is unset', async () => {
    const { pki, crlUrl } = await servedPki()
    await start({ ssldir: pki.dir, crl_location: crlUrl })
    expect(defaultCrlCachePath(crlUrl).startsWith(join(dir, 'state', 'gilmsg', 'crl-cache'))).toBe(true)
    expect(readFileSync(defaultCrlCachePath(crlUrl), 'utf8')).toBe(readFileSync(pki.crlPath, 'utf8'))
  })

  it('without a cached copy, a URL that is down, fails, serves garbage or another CA\'s CRL is an error naming the URL', async () => {
    const { pki, crlUrl, route } = await servedPki()
    const other = await servedPki()
    const cases: [Answer | undefined, RegExp][] = [
      [undefined, /cannot fetch http:\/\/127\.0\.0\.1:\d+\/crl\.pem: fetch failed \(.*ECONNREFUSED/],
      [{ status: 503 }, /cannot fetch http:.*\/crl\.pem: HTTP 503/],
      [{ body: () => 'this is not a CRL' }, /cannot parse the CRL from http:.*\/crl\.pem/],
      [{ body: () => readFileSync(other.pki.crlPath, 'utf8') }, /the CRL from http:.*\/crl\.pem is not signed by the CA/],
    ]
    for (const [answer, message] of cases) {
      const url = answer === undefined ? downUrl : crlUrl
      if (answer !== undefined) routes.set(`${route}/crl.pem`, answer)
      const cache = join(dir, `caches-c${seq}`, 'crl.pem')
      const made = verifierFromConfig(parseConfig({ ssldir: pki.dir, crl_location: url, crl_cache: cache }))
      await expect(made).rejects.toThrow(CertificateError)
      await expect(verifierFromConfig(parseConfig({ ssldir: pki.dir, crl_location: url, crl_cache: cache }))).rejects.toThrow(message)
      await expect(verifierFromConfig(parseConfig({ ssldir: pki.dir, crl_location: url, crl_cache: cache }))).rejects.toThrow(/no CRL is cached in/)
      expect(existsSync(cache)).toBe(false)
    }
  })

  it('without a cached copy, a server that never answers fails the start after the fetch timeout', async () => {
    const { pki, crlUrl, route } = await servedPki()
    routes.set(`${route}/crl.pem`, 'hang')
    const t0 = Date.now()
    await expect(
      verifierFromConfig(parseConfig({ ssldir: pki.dir, crl_location: crlUrl, crl_cache: join(dir, 'caches-slow', 'crl.pem') }), { fetchTimeoutMs: 300 }),
    ).rejects.toThrow(/no complete answer within 300 ms/)
    expect(Date.now() - t0).toBeLessThan(3000)
  })

  it('with a cached copy, starts at once from it while the server hangs, and reports the failed refresh', async () => {
    const { pki, crlUrl, route } = await servedPki()
    const cache = join(dir, 'caches-d', 'crl.pem')
    ;(await start({ ssldir: pki.dir, crl_location: crlUrl, crl_cache: cache })).crlWatcher.close()
    routes.set(`${route}/crl.pem`, 'hang')
    const clock = new FakeClock(Date.now())
    const events: CrlEvent[] = []
    const t0 = Date.now()
    const made = await start({ ssldir: pki.dir, crl_location: crlUrl, crl_cache: cache, crl_cache_expiry: 0 }, { clock, events, fetchTimeoutMs: 300 })
    expect(Date.now() - t0).toBeLessThan(300)
    expect(made.verifier.verify(signedBy(pki, 'eve'))).toMatchObject({ ok: false, reason: InvalidReason.Revoked })
    const before = hits.get(`${route}/crl.pem`) ?? 0
    await clock.advance(0)
    await waitUntil(() => events.some((e) => e.type === 'crl:error'), 5000, 'the failed refresh to be reported')
    expect(hits.get(`${route}/crl.pem`)).toBe(before + 1)
    expect(events.find((e) => e.type === 'crl:error')).toMatchObject({ path: crlUrl, error: { message: expect.stringMatching(/no complete answer within 300 ms/) } })
    expect(made.verifier.verify(signedBy(pki, 'eve'))).toMatchObject({ ok: false, reason: InvalidReason.Revoked })
  })

  it('while running, is fetched every crl_cache_expiry: a newly revoked certificate is refused; garbage, another CA\'s or an older CRL never replaces it', async () => {
    const { pki, crlUrl, route } = await servedPki(false)
    const old = readFileSync(pki.crlPath, 'utf8')
    const other = await servedPki()
    const cache = join(dir, 'caches-e', 'crl.pem')
    const clock = new FakeClock(Date.now())
    const events: CrlEvent[] = []
    const made = await start({ ssldir: pki.dir, crl_location: crlUrl, crl_cache: cache, crl_cache_expiry: 5 }, { clock, events })
    expect(made.verifier.verify(signedBy(pki, 'eve')).ok).toBe(true)

    await revokeCert(pki.dir, 'eve')
    await clock.advance(5000)
    await waitUntil(() => events.some((e) => e.type === 'crl:loaded' && !e.initial), 5000, 'the fetched CRL to be loaded')
    expect(made.verifier.verify(signedBy(pki, 'eve'))).toMatchObject({ ok: false, reason: InvalidReason.Revoked })
    const good = readFileSync(cache, 'utf8')
    expect(good).toBe(readFileSync(pki.crlPath, 'utf8'))

    const refused: [Answer, RegExp][] = [
      [{ body: () => '-----BEGIN X509 CRL-----\nZ2FyYmFnZQ==\n-----END X509 CRL-----\n' }, /cannot parse the CRL from/],
      [{ body: () => readFileSync(other.pki.crlPath, 'utf8') }, /is not signed by the CA/],
      [{ body: () => old }, /is refused: its cRLNumber 1 is lower than 2/],
      [{ status: 500 }, /HTTP 500/],
    ]
    for (const [answer, message] of refused) {
      routes.set(`${route}/crl.pem`, answer)
      events.length = 0
      await clock.advance(5000)
      await waitUntil(() => events.some((e) => e.type === 'crl:error'), 5000, `the refused CRL to be reported (${String(message)})`)
      expect(events.find((e) => e.type === 'crl:error')).toMatchObject({ path: crlUrl, error: { message: expect.stringMatching(message) } })
      expect(readFileSync(cache, 'utf8')).toBe(good)
      expect(made.verifier.verify(signedBy(pki, 'eve'))).toMatchObject({ ok: false, reason: InvalidReason.Revoked })
    }
    made.crlWatcher.close()
    expect(clock.pendingTimers).toBe(0)
  })

  it('closing abandons a fetch in progress at once (nothing keeps the process alive for the timeout)', async () => {
    const { pki, crlUrl, route } = await servedPki()
    const cache = join(dir, 'caches-close', 'crl.pem')
    ;(await start({ ssldir: pki.dir, crl_location: crlUrl, crl_cache: cache })).crlWatcher.close()
    routes.set(`${route}/crl.pem`, 'hang')
    const clock = new FakeClock(Date.now())
    const made = await start({ ssldir: pki.dir, crl_location: crlUrl, crl_cache: cache, crl_cache_expiry: 0 }, { clock, fetchTimeoutMs: 30_000 })
    const before = hits.get(`${route}/crl.pem`) ?? 0
    const abandonedBefore = abandoned
    await clock.advance(0)
    await waitUntil(() => hits.get(`${route}/crl.pem`) === before + 1, 5000, 'the refresh to reach the server')
    made.crlWatcher.close()
    await waitUntil(() => abandoned === abandonedBefore + 1, 2000, 'the fetch to be abandoned')
  })

  it('refuses a cache directory that others may write', async () => {
    const { pki, crlUrl } = await servedPki()
    const shared = join(dir, 'caches-shared')
    mkdirSync(shared, { mode: 0o700 })
    chmodSync(shared, 0o777)
    await expect(verifierFromConfig(parseConfig({ ssldir: pki.dir, crl_location: crlUrl, crl_cache: join(shared, 'crl.pem') }))).rejects.toThrow(
      /the cache directory .*caches-shared \(mode 0777.* may be written by others/,
    )
    expect(existsSync(join(shared, 'crl.pem'))).toBe(false)
  })
})

describe('ca_cert_location as a URL', () => {
  it('refuses plain http from another host than loopback, fetching nothing', async () => {
    await expect(verifierFromConfig(parseConfig({ ca_cert_location: 'http://ca.example.invalid/ca.crt' }))).rejects.toThrow(
      /ca_cert_location http:\/\/ca\.example\.invalid\/ca\.crt: the CA is fetched only over https/,
    )
  })

  it('is fetched to ca_cert_cache once, then used from the cache (expiry 0) even when the server fails', async () => {
    const { pki, caUrl, crlUrl, route } = await servedPki()
    const cache = join(dir, 'caches-ca', 'ca.crt')
    const raw = { ssldir: pki.dir, ca_cert_location: caUrl, ca_cert_cache: cache, crl_location: crlUrl, crl_cache: join(dir, 'caches-ca', 'crl.pem') }
    const made = await start(raw)
    expect(made.verifier.verify(signedBy(pki, 'bob')).ok).toBe(true)
    expect(readFileSync(cache, 'utf8')).toBe(pki.caPem)
    expect(statSync(cache).mode & 0o777).toBe(0o600)
    routes.set(`${route}/ca.crt`, { status: 503 })
    const hitsBefore = hits.get(`${route}/ca.crt`)
    const again = await start(raw)
    expect(again.verifier.verify(signedBy(pki, 'bob')).ok).toBe(true)
    expect(hits.get(`${route}/ca.crt`)).toBe(hitsBefore)
  })

  it('once older than ca_cert_cache_expiry, is fetched again; when that fails the cached copy is used and reported', async () => {
    const { pki, caUrl, crlUrl, route } = await servedPki()
    const cache = join(dir, 'caches-ca2', 'ca.crt')
    const raw = { ssldir: pki.dir, ca_cert_location: caUrl, ca_cert_cache: cache, ca_cert_cache_expiry: 60, crl_location: crlUrl, crl_cache: join(dir, 'caches-ca2', 'crl.pem') }
    await start(raw)
    const hitsBefore = hits.get(`${route}/ca.crt`) ?? 0
    const past = new Date(Date.now() - 120_000)
    utimesSync(cache, past, past)
    routes.set(`${route}/ca.crt`, { body: () => 'garbage' })
    const events: CrlEvent[] = []
    const made = await start(raw, { events })
    expect(hits.get(`${route}/ca.crt`)).toBe(hitsBefore + 1)
    expect(made.verifier.verify(signedBy(pki, 'bob')).ok).toBe(true)
    expect(events.find((e) => e.type === 'ca:error')).toMatchObject({ path: caUrl, error: { message: expect.stringMatching(/did not give a CA certificate.*using the cached copy/) } })
    expect(readFileSync(cache, 'utf8')).toBe(pki.caPem)
  })

  it('without a cached copy, a URL that gives no CA certificate is an error naming it', async () => {
    const { pki, route } = await servedPki()
    routes.set(`${route}/leaf.crt`, { body: () => pki.leaf('bob').certPem })
    await expect(
      verifierFromConfig(parseConfig({ ssldir: pki.dir, ca_cert_location: `${base}${route}/leaf.crt`, ca_cert_cache: join(dir, 'caches-ca3', 'ca.crt') })),
    ).rejects.toThrow(/\/leaf\.crt did not give a CA certificate: it is not a CA certificate/)
  })
})
