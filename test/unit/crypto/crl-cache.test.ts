import { mkdtempSync, readdirSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import { leafSigner } from '../../support/memory-bus.js'
import { createTestPki, revokeCert, type TestPki } from '../../../src/crypto/certs.js'
import { fileCrlCache } from '../../../src/crypto/crl-cache.js'
import { createVerifier, type CrlCache, type CrlSummary } from '../../../src/crypto/verifier.js'

let pki: TestPki

beforeAll(async () => {
  pki = await createTestPki(mkdtempSync(join(tmpdir(), 'gilmsg-crlcache-')), [{ name: 'a', key: 'ec' }])
}, 30_000)

function fieldsFor(name: string) {
  const leaf = pki.leaf(name)
  const signer = leafSigner(leaf)
  const canonical = Buffer.from('{"topic":"t"}')
  return { crypto: 'x509_sha256', topic: 't', canonical, signature: signer.sign(canonical), certificate: signer.certificateField }
}

describe('CRL cache', () => {
  it('stores the summary of a checked CRL and reuses it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gilmsg-crlcache-dir-'))
    const cache = fileCrlCache(dir)
    await createVerifier({ caPem: pki.caPem, crlPem: pki.crlPem, crlCache: cache })
    const files = readdirSync(dir)
    expect(files).toHaveLength(1)
    const summary = JSON.parse(readFileSync(join(dir, files[0] as string), 'utf8')) as CrlSummary
    expect(summary.revoked).toEqual([])
    expect(summary.nextUpdate).toBeGreaterThan(Date.now())
  })

  it('takes what the cache says for the same CA and CRL bytes', async () => {
    const serial = (await import('node:crypto')).X509Certificate
    const cert = new serial(pki.leaf('a').certPem)
    const forged: CrlCache = {
      get: () => ({ thisUpdate: 0, nextUpdate: Date.now() + 60_000, revoked: [cert.serialNumber.toLowerCase().replace(/^0+/, '')] }),
      set: () => {},
    }
    const v = await createVerifier({ caPem: pki.caPem, crlPem: pki.crlPem, crlCache: forged })
    expect(v.verify(fieldsFor('a'))).toMatchObject({ ok: false, reason: 'revoked' })
  })

  it('checks a changed CRL again (new bytes, new key)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gilmsg-crlcache-dir-'))
    const cache = fileCrlCache(dir)
    const v1 = await createVerifier({ caPem: pki.caPem, crlPem: pki.crlPem, crlCache: cache })
    expect(v1.verify(fieldsFor('a')).ok).toBe(true)
    await revokeCert(pki.dir, 'a')
    const crl2 = readFileSync(pki.crlPath, 'utf8')
    const v2 = await createVerifier({ caPem: pki.caPem, crlPem: crl2, crlCache: cache })
    expect(v2.verify(fieldsFor('a'))).toMatchObject({ ok: false, reason: 'revoked' })
    expect(readdirSync(dir)).toHaveLength(2)
  })

  it('treats an unreadable or corrupt cache as a miss', async () => {
    const throwing: CrlCache = {
      get: () => {
        throw new Error('disk on fire')
      },
      set: () => {
        throw new Error('disk on fire')
      },
    }
    const v = await createVerifier({ caPem: pki.caPem, crlPem: pki.crlPem, crlCache: throwing })
    expect(v.verify(fieldsFor('a')).ok).toBe(true)
  })
})
