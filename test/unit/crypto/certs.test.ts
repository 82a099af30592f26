import 'reflect-metadata'
import * as x509 from '@peculiar/x509'
import forge from 'node-forge'
import { execFileSync } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { readFile, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestPki, type TestPki } from '../../support/pki.js'
import { initCa, issueCert, renewCrl, revokeCert } from '../../../src/crypto/certs.js'
import { pemToDer } from '../../../src/crypto/pem.js'
import { certificateValidity, subjectCommonName } from '../../../src/crypto/x509-fields.js'
import { CertificateError, InvalidArgumentError } from '../../../src/errors.js'
import { daysFromNow, tempDir } from './helpers.js'
import { hasOpenssl } from '../../support/openssl.js'

let pki: TestPki
let stranger: TestPki
const dirs: string[] = []

function opensslVerify(dir: string, name: string): { ok: boolean; output: string } {
  try {
    const out = execFileSync('openssl', ['verify', '-CAfile', join(dir, 'ca.crt'), '-crl_check', '-CRLfile', join(dir, 'crl.pem'), join(dir, `${name}.crt`)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    return { ok: true, output: out.toString() }
  } catch (err) {
    const e = err as { stdout?: Buffer; stderr?: Buffer }
    return { ok: false, output: `${e.stdout?.toString() ?? ''}${e.stderr?.toString() ?? ''}` }
  }
}

async function readCrl(dir: string): Promise<x509.X509Crl> {
  return new x509.X509Crl(pemToDer(await readFile(join(dir, 'crl.pem'), 'utf8'), 'X509 CRL'))
}

async function crlNumber(dir: string): Promise<bigint> {
  const ext = (await readCrl(dir)).getExtension('2.5.29.20')
  if (ext === null) throw new Error('no cRLNumber')
  const integer = forge.asn1.fromDer(Buffer.from(ext.value).toString('binary'))
  expect(integer.type).toBe(forge.asn1.Type.INTEGER)
  return BigInt(`0x${Buffer.from(integer.value as string, 'binary').toString('hex')}`)
}

beforeAll(async () => {
  const [a, b] = await Promise.all([tempDir('certs'), tempDir('certs-stranger')])
  dirs.push(a, b)
  ;[pki, stranger] = await Promise.all([
    createTestPki(a, [
      { name: 'rsa', cn: 'rsa.example.org' },
      { name: 'ec', key: 'ec' },
      { name: 'ed', key: 'ed25519' },
      { name: 'utf8', key: 'ec', cn: 'café ✓ 😀' },
      { name: 'late', key: 'ec', notBefore: new Date('2040-01-01T00:00:00Z'), notAfter: new Date('2061-06-30T12:34:56Z') },
    ]),
    createTestPki(b, [{ name: 'rsa', cn: 'rsa.example.org' }]),
  ])
})

afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })))
})

describe('initCa', () => {
  it('writes ca.crt, ca.key (0600) and an empty CRL valid for a year', async () => {
    expect((await stat(pki.caKeyPath)).mode & 0o777).toBe(0o600)
    const ca = new X509Certificate(pki.caPem)
    expect(ca.subject).toBe('CN=gilmsg CA')
    expect(ca.ca).toBe(true)
    expect(ca.publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048)
    expect(ca.verify(ca.publicKey)).toBe(true)
    const peculiar = new x509.X509Certificate(pki.caPem)
    expect(peculiar.signatureAlgorithm).toMatchObject({ name: 'RSASSA-PKCS1-v1_5', hash: { name: 'SHA-256' } })
    const usage = peculiar.getExtension(x509.KeyUsagesExtension)
    expect(usage?.critical).toBe(true)
    expect(usage?.usages).toBe(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign)
    const crl = await readCrl(pki.dir)
    expect(crl.entries.length).toBe(0)
    expect(await crl.verify({ publicKey: peculiar })).toBe(true)
    const days = ((crl.nextUpdate?.getTime() ?? 0) - crl.thisUpdate.getTime()) / 86_400_000
    expect(days).toBe(365)
  })

  it('refuses to overwrite an existing CA unless forced', async () => {
    await expect(initCa(pki.dir)).rejects.toThrow(CertificateError)
    await expect(initCa(pki.dir)).rejects.toThrow(/already exists/)
    const dir = await tempDir('certs-force')
    dirs.push(dir)
    const first = await initCa(dir, { cn: 'First' })
    const second = await initCa(dir, { cn: 'Second', force: true })
    expect(second.serial).not.toBe(first.serial)
    expect(new X509Certificate(await readFile(second.caCertPath)).subject).toBe('CN=Second')
  })
})

describe('issueCert', () => {
  it('makes leaves of each key type, CA:false, digitalSignature, chained to the CA', () => {
    const ca = new X509Certificate(pki.caPem)
    const types: Record<string, string> = { rsa: 'rsa', ec: 'ec', ed: 'ed25519', utf8: 'ec' }
    for (const [name, type] of Object.entries(types)) {
      const leaf = pki.leaf(name)
      const cert = new X509Certificate(leaf.certPem)
      expect(cert.publicKey.asymmetricKeyType).toBe(type)
      expect(cert.ca).toBe(false)
      expect(cert.checkIssued(ca)).toBe(true)
      expect(cert.verify(ca.publicKey)).toBe(true)
      const peculiar = new x509.X509Certificate(leaf.certPem)
      expect(peculiar.getExtension(x509.KeyUsagesExtension)?.usages).toBe(x509.KeyUsageFlags.digitalSignature)
      expect(peculiar.getExtension(x509.BasicConstraintsExtension)?.ca).toBe(false)
      expect(peculiar.signatureAlgorithm).toMatchObject({ name: 'RSASSA-PKCS1-v1_5', hash: { name: 'SHA-256' } })
      expect(peculiar.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId).toBe(
        new x509.X509Certificate(pki.caPem).getExtension(x509.SubjectKeyIdentifierExtension)?.keyId,
      )
    }
    expect(pki.leaf('ec').cn).toBe('ec')
    expect(pki.leaf('rsa').cn).toBe('rsa.example.org')
  })

  it('writes PKCS#8 keys with mode 0600', async () => {
    for (const name of ['rsa', 'ec', 'ed']) {
      const leaf = pki.leaf(name)
      expect(leaf.keyPem.startsWith('-----BEGIN PRIVATE KEY-----\n')).toBe(true)
      expect((await stat(leaf.keyPath)).mode & 0o777).toBe(0o600)
    }
  })

  it('encodes the CN as UTF-8 and keeps non-ASCII text', () => {
    expect(subjectCommonName(new X509Certificate(pki.leaf('utf8').certPem))).toBe('café ✓ 😀')
    const utf8 = Buffer.from('café ✓ 😀', 'utf8')
    const utf8String = Buffer.concat([Buffer.from([0x0c, utf8.length]), utf8])
    expect(pemToDer(pki.leaf('utf8').certPem, 'CERTIFICATE').includes(utf8String)).toBe(true)
  })

  it('uses random positive 16-byte serials', () => {
    const serials = [...pki.leaves.values(), stranger.leaf('rsa')].map((l) => l.serial)
    expect(new Set(serials).size).toBe(serials.length)
    for (const s of serials) {
      expect(s).toMatch(/^[0-9a-f]+$/)
      expect(s.length).toBeGreaterThanOrEqual(30)
      expect(s.length).toBeLessThanOrEqual(32)
    }
    const leaf = pki.leaf('rsa')
    expect(new X509Certificate(leaf.certPem).serialNumber.toLowerCase().replace(/^0+/, '')).toBe(leaf.serial.replace(/^0+/, ''))
  })

  it('honours notBefore/notAfter, including dates after 2049', () => {
    const summary = certificateValidity(new X509Certificate(pki.leaf('late').certPem))
    expect(summary.notBefore.toISOString()).toBe('2040-01-01T00:00:00.000Z')
    expect(summary.notAfter.toISOString()).toBe('2061-06-30T12:34:56.000Z')
  })

  it('defaults to 365 days from 5 minutes ago', () => {
    const leaf = pki.leaf('ec')
    const span = leaf.notAfter.getTime() - leaf.notBefore.getTime()
    expect(span).toBe(365 * 86_400_000)
    expect(Date.now() - leaf.notBefore.getTime()).toBeGreaterThanOrEqual(4 * 60_000)
    expect(Date.now() - leaf.notBefore.getTime()).toBeLessThan(10 * 60_000)
  })

  it('refuses existing files unless forced, bad names and bad validity', async () => {
    await expect(issueCert(pki.dir, 'ec', { key: 'ec' })).rejects.toThrow(/already exists/)
    const again = await issueCert(pki.dir, 'ec', { key: 'ec', force: true, cn: 'ec-2' })
    expect(again.serial).not.toBe(pki.leaf('ec').serial)
    for (const name of ['../escape', 'a/b', 'ca', '', '.hidden']) {
      await expect(issueCert(pki.dir, name)).rejects.toThrow(InvalidArgumentError)
    }
    await expect(issueCert(pki.dir, 'x1', { key: 'ec', days: 0 })).rejects.toThrow(/positive number of days/)
    await expect(issueCert(pki.dir, 'x2', { key: 'ec', notBefore: daysFromNow(1), notAfter: daysFromNow(-1) })).rejects.toThrow(InvalidArgumentError)
  })

  it('names the missing CA file', async () => {
    const empty = await tempDir('certs-empty')
    dirs.push(empty)
    await expect(issueCert(empty, 'alice')).rejects.toThrow(join(empty, 'ca.crt'))
  })
})

describe('revokeCert', () => {
  it('adds serials, keeps earlier entries, bumps the CRL number and is idempotent', async () => {
    const n0 = await crlNumber(pki.dir)
    const first = await revokeCert(pki.dir, 'ed')
    expect(first).toMatchObject({ name: 'ed', serial: pki.leaf('ed').serial, alreadyRevoked: false })
    const second = await revokeCert(pki.dir, 'rsa')
    const again = await revokeCert(pki.dir, 'ed')
    expect(again.alreadyRevoked).toBe(true)
    const crl = await readCrl(pki.dir)
    expect(crl.entries.map((e) => e.serialNumber).sort()).toEqual([first.serial, second.serial].sort())
    expect(await crlNumber(pki.dir)).toBe(n0 + 3n)
    expect(await crl.verify({ publicKey: new x509.X509Certificate(pki.caPem) })).toBe(true)
    const renewed = await renewCrl(pki.dir)
    expect(renewed.revokedCount).toBe(2)
    expect((await readCrl(pki.dir)).entries.length).toBe(2)
  })

  it('refuses a certificate from another CA and a CRL signed by another CA', async () => {
    const dir = await tempDir('certs-mixed')
    dirs.push(dir)
    await initCa(dir)
    await writeFile(join(dir, 'foreign.crt'), stranger.leaf('rsa').certPem)
    await expect(revokeCert(dir, 'foreign')).rejects.toThrow(/not issued by the CA/)
    await writeFile(join(dir, 'crl.pem'), stranger.crlPem)
    await expect(renewCrl(dir)).rejects.toThrow(/not signed by the CA/)
  })

  it('names the missing certificate', async () => {
    await expect(revokeCert(pki.dir, 'nobody')).rejects.toThrow(join(pki.dir, 'nobody.crt'))
  })
})

describe.skipIf(!hasOpenssl())('OpenSSL (what pyOpenSSL in Python fedmsg uses) accepts the files', () => {
  it('verifies leaves against ca.crt and crl.pem, and sees revocations', async () => {
    const dir = await tempDir('certs-openssl')
    dirs.push(dir)
    await createTestPki(dir, [{ name: 'alice' }, { name: 'bob', key: 'ec' }, { name: 'carol', key: 'ed25519' }])
    for (const name of ['alice', 'bob', 'carol']) expect(opensslVerify(dir, name)).toMatchObject({ ok: true })
    await revokeCert(dir, 'alice')
    const revoked = opensslVerify(dir, 'alice')
    expect(revoked.ok).toBe(false)
    expect(revoked.output).toMatch(/revoked/)
    expect(opensslVerify(dir, 'bob').ok).toBe(true)
  })
})
