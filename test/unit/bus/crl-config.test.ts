/**
 * The CRL a config gives (src/bus/from-config.ts): `crl_location`, else `<ssldir>/crl.pem`;
 * the newest CRL remembered across restarts in the state directory; the watch stopped by
 * `bus.close()`.
 */
import { existsSync, writeFileSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { busFromConfig, crlMemoryDir, verifierFromConfig } from '../../../src/bus/from-config.js'
import { parseConfig } from '../../../src/config/config.js'
import { createTestPki, type TestPki } from '../../support/pki.js'
import { revokeCert } from '../../../src/crypto/certs.js'
import type { CrlEvent } from '../../../src/crypto/crl-watch.js'
import { InvalidReason } from '../../../src/crypto/types.js'
import { CrlRollbackError } from '../../../src/errors.js'
import { MemoryHub, MemoryTransport } from '../../../src/transport/memory.js'
import { FakeClock } from '../../support/fake-clock.js'
import { leafSigner } from '../../support/memory-bus.js'
import { waitUntil } from '../../support/reliable-net.js'
import { signedFields, tempDir } from '../crypto/helpers.js'

let dir: string
let pki: TestPki
let crl1: string
const savedState = process.env['XDG_STATE_HOME']

beforeAll(async () => {
  dir = await tempDir('crl-config')
  process.env['XDG_STATE_HOME'] = join(dir, 'state')
  pki = await createTestPki(join(dir, 'pki'), [{ name: 'mallory', key: 'ec' }])
  crl1 = pki.crlPem
  await revokeCert(pki.dir, 'mallory')
})

afterAll(async () => {
  if (savedState === undefined) delete process.env['XDG_STATE_HOME']
  else process.env['XDG_STATE_HOME'] = savedState
  await rm(dir, { recursive: true, force: true })
})

const mallory = () => signedFields(leafSigner(pki.leaf('mallory')), Buffer.from('{}'))

describe('verifierFromConfig: the CRL', () => {
  it('uses <ssldir>/crl.pem when crl_location is unset, and remembers it in the state dir', async () => {
    const events: CrlEvent[] = []
    const made = await verifierFromConfig(parseConfig({ ssldir: pki.dir }), { onCrlEvent: (e) => events.push(e) })
    expect(made).toBeDefined()
    made?.crlWatcher.close()
    expect(made?.verifier.verify(mallory())).toMatchObject({ ok: false, reason: InvalidReason.Revoked })
    expect(events).toEqual([expect.objectContaining({ type: 'crl:loaded', initial: true, path: pki.crlPath })])
    expect(existsSync(join(crlMemoryDir(), `${made?.verifier.caFingerprint}.json`))).toBe(true)
  })

  it('refuses to start with a CRL older than one an earlier process accepted (rollback across restarts)', async () => {
    const rolledBack = join(dir, 'rolled-back.pem')
    writeFileSync(rolledBack, crl1)
    await expect(verifierFromConfig(parseConfig({ ssldir: pki.dir, crl_location: rolledBack }))).rejects.toThrow(CrlRollbackError)
    await expect(verifierFromConfig(parseConfig({ ssldir: pki.dir, crl_location: rolledBack }))).rejects.toThrow(/cRLNumber 1 is lower than 2/)
  })

  it('without a crl.pem in ssldir, starts without a CRL and loads one that appears; bus.close() stops the watch', async () => {
    const ssldir = join(dir, 'empty-ssldir')
    const other = await createTestPki(ssldir, [{ name: 'eve', key: 'ec' }])
    await rm(other.crlPath)
    const clock = new FakeClock(Date.now())
    const events: CrlEvent[] = []
    const bus = await busFromConfig(parseConfig({ ssldir, sign_messages: false }), {
      transport: new MemoryTransport(new MemoryHub(), 'x'),
      clock,
      onCrlEvent: (e) => events.push(e),
    })
    const eve = signedFields(leafSigner(other.leaf('eve')), Buffer.from('{}'))
    expect(bus.verifier?.verify(eve).ok).toBe(true)
    await revokeCert(ssldir, 'eve')
    await clock.advance(1000)
    await waitUntil(() => events.some((e) => e.type === 'crl:loaded'), 5000, 'the new crl.pem to be loaded')
    expect(bus.verifier?.verify(eve)).toMatchObject({ ok: false, reason: InvalidReason.Revoked })
    expect(clock.pendingTimers).toBeGreaterThan(0)
    await bus.close()
    expect(clock.pendingTimers).toBe(0)
  })
})
