import 'reflect-metadata'
import * as x509 from '@peculiar/x509'
import { createPublicKey, generateKeyPairSync, verify, webcrypto } from 'node:crypto'
import { copyFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestPki, type TestPki } from '../../support/pki.js'
import { pemFromCertificateField, unwrapBase64 } from '../../../src/crypto/pem.js'
import { createSigner, loadSigner } from '../../../src/crypto/signer.js'
import { CryptoMode } from '../../../src/crypto/types.js'
import type { CryptoMode as Mode } from '../../../src/crypto/types.js'
import { verifySignatureWithCert } from '../../../src/crypto/verifier.js'
import { CertificateError, SigningError } from '../../../src/errors.js'
import { tempDir } from './helpers.js'

let pki: TestPki
let dir: string
const canonical = Buffer.from('{"crypto":"x509_sha256","msg":{"text":"h\\u00e9llo"},"topic":"t"}')

beforeAll(async () => {
  dir = await tempDir('signer')
  pki = await createTestPki(dir, [
    { name: 'rsa', cn: 'rsa-host' },
    { name: 'ec', key: 'ec', cn: 'ec-host' },
    { name: 'ed', key: 'ed25519', cn: 'ed-host' },
  ])
})

afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

function signerFor(name: string, mode: Mode = CryptoMode.X509Sha256) {
  const leaf = pki.leaf(name)
  return createSigner({ mode, keyPem: leaf.keyPem, certPem: leaf.certPem })
}

describe('createSigner', () => {
  it.each(['rsa', 'ec', 'ed'])('x509_sha256 round trip with a %s key (sync and async)', async (name) => {
    const signer = signerFor(name)
    expect(signer.mode).toBe('x509_sha256')
    expect(signer.cn).toBe(`${name}-host`)
    expect(pemFromCertificateField(signer.certificateField)).toBe(pki.leaf(name).certPem)
    const sig = signer.sign(canonical)
    const asyncSig = await signer.signAsync(canonical)
    for (const s of [sig, asyncSig]) {
      expect(s.endsWith('\n')).toBe(true)
      expect(verifySignatureWithCert(CryptoMode.X509Sha256, pki.leaf(name).certPem, canonical, s)).toBe(true)
      expect(verifySignatureWithCert(CryptoMode.X509Sha256, pki.leaf(name).certPem, Buffer.concat([canonical, Buffer.from(' ')]), s)).toBe(false)
    }
  })

  it('uses the documented algorithms per key type', () => {
    const pub = (name: string) => createPublicKey(pki.leaf(name).certPem)
    const rsa = unwrapBase64(signerFor('rsa').sign(canonical))
    expect(verify('sha256', canonical, pub('rsa'), rsa)).toBe(true)
    const ec = unwrapBase64(signerFor('ec').sign(canonical))
    expect(ec[0]).toBe(0x30)
    expect(verify('sha256', canonical, { key: pub('ec'), dsaEncoding: 'der' }, ec)).toBe(true)
    const ed = unwrapBase64(signerFor('ed').sign(canonical))
    expect(ed.length).toBe(64)
    expect(verify(null, canonical, pub('ed'), ed)).toBe(true)
    const sha1 = unwrapBase64(signerFor('rsa', CryptoMode.X509).sign(canonical))
    expect(verify('sha1', canonical, pub('rsa'), sha1)).toBe(true)
    expect(signerFor('rsa', CryptoMode.X509).sign(canonical)).toBe(signerFor('rsa', CryptoMode.X509).sign(canonical))
  })

  it.each(['ec', 'ed'])('mode x509 with a %s key is a SigningError that says what to do', (name) => {
    expect(() => signerFor(name, CryptoMode.X509)).toThrow(SigningError)
    expect(() => signerFor(name, CryptoMode.X509)).toThrow(/crypto_backend x509 \(fedmsg\) needs an RSA key; use x509_sha256 for EC\/Ed25519/)
  })

  it('rejects an unknown mode', () => {
    const leaf = pki.leaf('rsa')
    expect(() => createSigner({ mode: 'gpg' as Mode, keyPem: leaf.keyPem, certPem: leaf.certPem })).toThrow(SigningError)
  })

  it('rejects a key that is not the certificate key', () => {
    expect(() => createSigner({ mode: CryptoMode.X509Sha256, keyPem: pki.leaf('ec').keyPem, certPem: pki.leaf('rsa').certPem })).toThrow(CertificateError)
    const other = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
    expect(() => createSigner({ mode: CryptoMode.X509, keyPem: other, certPem: pki.leaf('rsa').certPem })).toThrow(/does not match/)
  })

  it('rejects unsupported key types for x509_sha256', () => {
    const p384 = generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
    expect(() => createSigner({ mode: CryptoMode.X509Sha256, keyPem: p384, certPem: pki.leaf('ec').certPem })).toThrow(SigningError)
  })

  it('rejects unparseable keys and certificates with CertificateError', () => {
    const leaf = pki.leaf('rsa')
    expect(() => createSigner({ mode: CryptoMode.X509, keyPem: 'nope', certPem: leaf.certPem })).toThrow(CertificateError)
    expect(() => createSigner({ mode: CryptoMode.X509, keyPem: leaf.keyPem, certPem: 'nope' })).toThrow(CertificateError)
    const broken = leaf.certPem.replace(/\n[A-Za-z0-9+/]{10}/, '\nAAAAAAAAAA')
    expect(() => createSigner({ mode: CryptoMode.X509, keyPem: leaf.keyPem, certPem: broken })).toThrow(CertificateError)
  })

  it('rejects a certificate without a subject CN', async () => {
    const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair
    const cert = await x509.X509CertificateGenerator.createSelfSigned(
      { serialNumber: '01', name: 'O=No Common Name', keys, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } },
      webcrypto,
    )
    const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey))
    const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64')}\n-----END PRIVATE KEY-----\n`
    expect(() => createSigner({ mode: CryptoMode.X509Sha256, keyPem, certPem: cert.toString('pem') })).toThrow(/no CN/)
  })
})

describe('loadSigner', () => {
  it('reads <ssldir>/<certname>.crt and .key', () => {
    const signer = loadSigner({ mode: CryptoMode.X509, ssldir: dir, certname: 'rsa' })
    expect(signer.cn).toBe('rsa-host')
  })

  it('names the missing file', async () => {
    expect(() => loadSigner({ mode: CryptoMode.X509, ssldir: dir, certname: 'missing' })).toThrow(join(dir, 'missing.crt'))
    const lonely = await tempDir('signer-lonely')
    await copyFile(join(dir, 'rsa.crt'), join(lonely, 'solo.crt'))
    try {
      expect(() => loadSigner({ mode: CryptoMode.X509, ssldir: lonely, certname: 'solo' })).toThrow(CertificateError)
      expect(() => loadSigner({ mode: CryptoMode.X509, ssldir: lonely, certname: 'solo' })).toThrow(join(lonely, 'solo.key'))
    } finally {
      await rm(lonely, { recursive: true, force: true })
    }
  })

  it('keeps the error class and adds the paths', () => {
    expect(() => loadSigner({ mode: CryptoMode.X509, ssldir: dir, certname: 'ec' })).toThrow(SigningError)
    expect(() => loadSigner({ mode: CryptoMode.X509, ssldir: dir, certname: 'ec' })).toThrow(join(dir, 'ec.key'))
  })
})
