/**
 * The CRL watch (src/crypto/crl-watch.ts) on real files with a fake clock driving the
 * polls, and the memory of the newest CRL (src/crypto/crl-memory.ts).
 */
import { copyFileSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createTestPki, type TestPki } from '../../support/pki.js'
import { renewCrl, revokeCert } from '../../../src/crypto/certs.js'
import { fileCrlMemory } from '../../../src/crypto/crl-memory.js'
import { crlFileIdentity, describeCrlEvent, watchCrl, type CrlEvent, type CrlWatcher } from '../../../src/crypto/crl-watch.js'
import { InvalidReason } from '../../../src/crypto/types.js'
import { createVerifier, type X509Verifier } from '../../../src/crypto/verifier.js'
import { CertificateError, CrlRollbackError } from '../../../src/errors.js'
import { FakeClock } from '../../support/fake-clock.js'
import { leafSigner } from '../../support/memory-bus.js'
import { waitUntil } from '../../support/reliable-net.js'
import { DAY, daysFromNow, signedFields, tempDir } from './helpers.js'

const POLL_MS = 1000
const canonical = Buffer.from('{"msg":1}')
let pki: TestPki
/** The CRLs in order: n1 (empty, from initCa), n2 (mallory revoked). */
let crl1: string
let crl2: string
const dirs: string[] = []
const watchers: CrlWatcher[] = []

beforeAll(async () => {
  const dir = await tempDir('crl-watch')
  dirs.push(dir)
  pki = await createTestPki(join(dir, 'pki'), [{ name: 'alice', key: 'ec' }, { name: 'mallory', key: 'ec' }])
  crl1 = pki.crlPem
  await revokeCert(pki.dir, 'mallory')
  crl2 = readFileSync(pki.crlPath, 'utf8')
})

afterEach(() => {
  for (const w of watchers.splice(0)) w.close()
})

afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })))
})

function fields(name: string) {
  return signedFields(leafSigner(pki.leaf(name)), canonical)
}

/** Installs `pem` at `path` as an atomic rename (a new inode), as CA tooling does. */
function install(path: string, pem: string): void {
  writeFileSync(`${path}.tmp`, pem)
  renameSync(`${path}.tmp`, path)
}

interface Rig {
  readonly path: string
  readonly clock: FakeClock
  readonly verifier: X509Verifier
  readonly events: CrlEvent[]
  readonly watcher: CrlWatcher
  /** Fires the next poll and waits until it has finished (the one after it is scheduled). */
  tick(ms?: number): Promise<void>
}

async function rig(initial: string | undefined, opts: { intervalMs?: number; memoryDir?: string; reloadSignal?: NodeJS.Signals } = {}): Promise<Rig> {
  const dir = await tempDir('crl-watch-live')
  dirs.push(dir)
  const path = join(dir, 'crl.pem')
  if (initial !== undefined) install(path, initial)
  const clock = new FakeClock(Date.now())
  const identity = crlFileIdentity(path)
  const verifier = await createVerifier({ caPem: pki.caPem, crlPem: initial, clock: () => clock.now() })
  const events: CrlEvent[] = []
  const intervalMs = opts.intervalMs ?? POLL_MS
  const watcher = watchCrl({
    path,
    verifier,
    onEvent: (e) => events.push(e),
    loadedIdentity: identity,
    clock,
    intervalMs,
    ...(opts.memoryDir !== undefined ? { memory: fileCrlMemory(opts.memoryDir) } : {}),
    ...(opts.reloadSignal !== undefined ? { reloadSignal: opts.reloadSignal } : {}),
  })
  watchers.push(watcher)
  return {
    path,
    clock,
    verifier,
    events,
    watcher,
    async tick(ms = intervalMs) {
      await clock.advance(ms)
      await waitUntil(() => clock.pendingTimers > 0, 5000, 'the next poll to be scheduled')
    },
  }
}

const ofType = <T extends CrlEvent['type']>(events: readonly CrlEvent[], type: T) => events.filter((e): e is Extract<CrlEvent, { type: T }> => e.type === type)

describe('watchCrl', () => {
  it('reports the CRL in use, then reloads a replaced file on the next poll: a signer revoked meanwhile fails', async () => {
    const r = await rig(crl1)
    expect(r.events).toEqual([expect.objectContaining({ type: 'crl:loaded', initial: true, status: expect.objectContaining({ crlNumber: 1n, revokedCount: 0 }) })])
    expect(r.verifier.verify(fields('mallory')).ok).toBe(true)

    await r.tick()
    expect(r.events).toHaveLength(1)
    install(r.path, crl2)
    expect(r.verifier.verify(fields('mallory')).ok).toBe(true)
    await r.tick()
    expect(ofType(r.events, 'crl:loaded').at(-1)).toMatchObject({ initial: false, status: { crlNumber: 2n, revokedCount: 1 } })
    expect(r.verifier.verify(fields('mallory'))).toMatchObject({ ok: false, reason: InvalidReason.Revoked })
    expect(r.verifier.verify(fields('alice')).ok).toBe(true)
  })

  it('refuses a rolled-back file once per state of the file, keeping the newer CRL', async () => {
    const r = await rig(crl2)
    install(r.path, crl1)
    await r.tick()
    const errors = ofType(r.events, 'crl:error')
    expect(errors).toHaveLength(1)
    expect(errors[0]?.error).toBeInstanceOf(CrlRollbackError)
    expect(describeCrlEvent(errors[0] as CrlEvent)).toMatch(/cRLNumber 1 is lower than 2.*the CRL in use \(if any\) is kept/)
    expect(r.verifier.verify(fields('mallory'))).toMatchObject({ ok: false, reason: InvalidReason.Revoked })
    await r.tick()
    await r.tick()
    expect(ofType(r.events, 'crl:error')).toHaveLength(1)
    // The same rolled-back file, touched again: refused again (a new state of the file).
    install(r.path, crl1)
    await r.tick()
    expect(ofType(r.events, 'crl:error')).toHaveLength(2)
    install(r.path, crl2)
    await r.tick()
    expect(ofType(r.events, 'crl:loaded').at(-1)).toMatchObject({ initial: false, status: { crlNumber: 2n } })
  })

  it('keeps the CRL when the file is deleted (reported once) and loads it when it comes back', async () => {
    const r = await rig(crl2)
    rmSync(r.path)
    await r.tick()
    await r.tick()
    const errors = ofType(r.events, 'crl:error')
    expect(errors).toHaveLength(1)
    expect(errors[0]?.error.message).toMatch(/is gone/)
    expect(r.verifier.verify(fields('mallory'))).toMatchObject({ ok: false, reason: InvalidReason.Revoked })
    install(r.path, crl2)
    await r.tick()
    expect(ofType(r.events, 'crl:loaded')).toHaveLength(2)
  })

  it('loads a file that appears after start, and reports a file that is not a CRL without dropping the one in use', async () => {
    const r = await rig(undefined)
    expect(r.events).toEqual([])
    install(r.path, crl2)
    await r.tick()
    expect(r.verifier.verify(fields('mallory'))).toMatchObject({ ok: false, reason: InvalidReason.Revoked })
    install(r.path, 'not a CRL')
    await r.tick()
    expect(ofType(r.events, 'crl:error')[0]?.error).toBeInstanceOf(CertificateError)
    expect(r.verifier.verify(fields('mallory'))).toMatchObject({ ok: false, reason: InvalidReason.Revoked })
  })

  it('reports a stale CRL at start, once when it becomes stale, and on each reload; it stays enforced', async () => {
    const dir = await tempDir('crl-watch-stale')
    dirs.push(dir)
    const soon = await createTestPki(dir, [{ name: 'x', key: 'ec' }, { name: 'y', key: 'ec' }])
    await revokeCert(soon.dir, 'x', { crlDays: 1 })
    const dayPem = readFileSync(soon.crlPath, 'utf8')
    await renewCrl(soon.dir, { thisUpdate: daysFromNow(-3), nextUpdate: daysFromNow(-1) })
    const stalePem = readFileSync(soon.crlPath, 'utf8')

    const clock = new FakeClock(Date.now())
    const events: CrlEvent[] = []
    const verifier = await createVerifier({ caPem: soon.caPem, crlPem: dayPem, clock: () => clock.now() })
    const path = join(dir, 'live.pem')
    install(path, dayPem)
    watchers.push(watchCrl({ path, verifier, onEvent: (e) => events.push(e), loadedIdentity: crlFileIdentity(path), clock, intervalMs: 2 * DAY }))
    expect(ofType(events, 'crl:stale')).toHaveLength(0)
    await clock.advance(2 * DAY)
    await waitUntil(() => ofType(events, 'crl:stale').length === 1, 5000, 'a stale report')
    expect(ofType(events, 'crl:stale')[0]?.status.daysUntilNextUpdate).toBeCloseTo(-1, 1)
    expect(describeCrlEvent(ofType(events, 'crl:stale')[0] as CrlEvent)).toMatch(/is stale: .* passed 1 days ago.*still refused.*gilmsg certs crl/)
    await clock.advance(2 * DAY)
    await waitUntil(() => clock.pendingTimers > 0, 5000, 'the next poll')
    expect(ofType(events, 'crl:stale')).toHaveLength(1)
    const x = signedFields(leafSigner(soon.leaf('x')), canonical)
    const y = signedFields(leafSigner(soon.leaf('y')), canonical)
    expect(verifier.verify(x)).toMatchObject({ ok: false, reason: InvalidReason.Revoked })
    expect(verifier.verify(y).ok).toBe(true)
    await watchers.at(-1)?.reload()
    expect(ofType(events, 'crl:stale')).toHaveLength(2)

    // A process starting with a stale CRL says so at once.
    const startEvents: CrlEvent[] = []
    const staleVerifier = await createVerifier({ caPem: soon.caPem, crlPem: stalePem })
    watchers.push(watchCrl({ path: soon.crlPath, verifier: staleVerifier, onEvent: (e) => startEvents.push(e), loadedIdentity: crlFileIdentity(soon.crlPath) }))
    expect(startEvents.map((e) => e.type)).toEqual(['crl:loaded', 'crl:stale'])
  })

  it('reload() and the reload signal load the file at once, changed or not; close() stops both', async () => {
    const r = await rig(crl1, { reloadSignal: 'SIGHUP' })
    const before = process.listenerCount('SIGHUP')
    expect(before).toBeGreaterThan(0)
    writeFileSync(r.path, crl2) // same inode; a poll would see it too, but none runs here
    await r.watcher.reload()
    expect(r.verifier.verify(fields('mallory'))).toMatchObject({ ok: false, reason: InvalidReason.Revoked })
    const loaded = ofType(r.events, 'crl:loaded').length
    process.emit('SIGHUP', 'SIGHUP')
    await waitUntil(() => ofType(r.events, 'crl:loaded').length === loaded + 1, 5000, 'a reload on SIGHUP')
    r.watcher.close()
    r.watcher.close()
    expect(process.listenerCount('SIGHUP')).toBe(before - 1)
    expect(r.clock.pendingTimers).toBe(0)
    install(r.path, crl1)
    await r.clock.advance(10 * POLL_MS)
    await r.watcher.reload()
    expect(ofType(r.events, 'crl:loaded')).toHaveLength(loaded + 1)
    expect(r.events.some((e) => e.type === 'crl:error')).toBe(false)
  })

  it('remembers the newest accepted CRL per CA', async () => {
    const memoryDir = join(await tempDir('crl-memory'), 'seen')
    const r = await rig(crl1, { memoryDir })
    const memory = fileCrlMemory(memoryDir)
    expect(memory.read(r.verifier.caFingerprint)?.crlNumber).toBe(1n)
    install(r.path, crl2)
    await r.tick()
    expect(memory.read(r.verifier.caFingerprint)?.crlNumber).toBe(2n)
  })
})

describe('fileCrlMemory', () => {
  const fp = 'ab'.repeat(32)

  it('keeps the newest of what it is told, and says how to recover from a corrupt file', async () => {
    const dir = join(await tempDir('crl-memory'), 'seen')
    const memory = fileCrlMemory(dir)
    expect(memory.read(fp)).toBeUndefined()
    memory.write(fp, { crlNumber: 5n, thisUpdate: Date.UTC(2026, 0, 5) })
    memory.write(fp, { crlNumber: 3n, thisUpdate: Date.UTC(2026, 0, 9) })
    expect(memory.read(fp)).toEqual({ crlNumber: 5n, thisUpdate: Date.UTC(2026, 0, 9) })
    expect(fileCrlMemory(dir).read(fp)?.crlNumber).toBe(5n)
    writeFileSync(join(dir, `${fp}.json`), '{"crl_number": 7')
    expect(() => memory.read(fp)).toThrow(/corrupt.*delete it/)
    copyFileSync(join(dir, `${fp}.json`), join(dir, 'x.json'))
    expect(() => memory.read('../x')).toThrow(/64 hex digits/)
  })
})
