import { createHash, X509Certificate } from 'node:crypto'
import { beforeAll, describe, expect, it } from 'vitest'
import { extractPemBlock, pemFromCertificateField } from '../../../src/crypto/pem.js'
import { createSigner } from '../../../src/crypto/signer.js'
import { CryptoMode } from '../../../src/crypto/types.js'
import { verifySignatureWithCert } from '../../../src/crypto/verifier.js'
import { loadVectors } from './helpers.js'
import type { VectorCase } from './helpers.js'

let cases: readonly VectorCase[] = []

beforeAll(async () => {
  cases = await loadVectors()
})

describe('fedmsg vectors (made by Python fedmsg 1.1.7)', () => {
  it('has the two expected cases', () => {
    expect(cases.length).toBe(2)
  })

  it.each([0, 1])('case %i: the signature field is reproduced byte for byte (mode x509)', (i) => {
    const c = cases[i] as VectorCase
    const canonical = Buffer.from(c.canonical_signed_string, 'utf8')
    expect(createHash('sha1').update(canonical).digest('hex')).toBe(c.canonical_sha1_hex)
    const signer = createSigner({ mode: CryptoMode.X509, keyPem: c.key_pem, certPem: c.cert_pem_file })
    expect(signer.sign(canonical)).toBe(c.signature_field)
  })

  it.each([0, 1])('case %i: signAsync gives the same bytes', async (i) => {
    const c = cases[i] as VectorCase
    const signer = createSigner({ mode: CryptoMode.X509, keyPem: c.key_pem, certPem: c.cert_pem_file })
    expect(await signer.signAsync(Buffer.from(c.canonical_signed_string, 'utf8'))).toBe(c.signature_field)
  })

  it.each([0, 1])('case %i: the certificate field is reproduced and decodes to the certificate PEM', (i) => {
    const c = cases[i] as VectorCase
    const pem = extractPemBlock(c.cert_pem_file, 'CERTIFICATE')
    const decoded = pemFromCertificateField(c.certificate_field)
    expect(decoded).toContain(pem)
    expect(new X509Certificate(decoded).fingerprint256).toBe(new X509Certificate(pem).fingerprint256)
    const signer = createSigner({ mode: CryptoMode.X509, keyPem: c.key_pem, certPem: c.cert_pem_file })
    expect(signer.certificateField).toBe(c.certificate_field)
  })

  it('reads the signer identity from the subject CN (first CN attribute)', () => {
    const cns = cases.map((c) => createSigner({ mode: CryptoMode.X509, keyPem: c.key_pem, certPem: c.cert_pem_file }).cn)
    expect(cns).toEqual(['pub-host.interop.test', 'shell-app01.phx2.fedoraproject.org'])
  })

  it.each([0, 1])('case %i: the wire frames carry the same fields', (i) => {
    const c = cases[i] as VectorCase
    const wire = JSON.parse(c.wire_frame1_json) as Record<string, unknown>
    expect(wire['signature']).toBe(c.signature_field)
    expect(wire['certificate']).toBe(c.certificate_field)
    expect(wire['topic']).toBe(c.wire_frame0_topic)
  })

  it.each([0, 1])('case %i: verifySignatureWithCert accepts the signature and rejects a 1-byte change', (i) => {
    const c = cases[i] as VectorCase
    const canonical = Buffer.from(c.canonical_signed_string, 'utf8')
    expect(verifySignatureWithCert(CryptoMode.X509, c.cert_pem_file, canonical, c.signature_field)).toBe(true)
    for (const at of [0, Math.floor(canonical.length / 2), canonical.length - 1]) {
      const tampered = Buffer.from(canonical)
      tampered[at] = (tampered[at] as number) ^ 0x01
      expect(verifySignatureWithCert(CryptoMode.X509, c.cert_pem_file, tampered, c.signature_field)).toBe(false)
    }
    expect(verifySignatureWithCert(CryptoMode.X509Sha256, c.cert_pem_file, canonical, c.signature_field)).toBe(false)
  })

  it('verifySignatureWithCert rejects a signature made with the other key', () => {
    const [a, b] = cases as [VectorCase, VectorCase]
    const canonical = Buffer.from(a.canonical_signed_string, 'utf8')
    expect(verifySignatureWithCert(CryptoMode.X509, b.cert_pem_file, canonical, a.signature_field)).toBe(false)
  })

  it('verifySignatureWithCert returns false for a signature that is not base64', () => {
    const c = cases[0] as VectorCase
    expect(verifySignatureWithCert(CryptoMode.X509, c.cert_pem_file, Buffer.from('x'), 'not*base64')).toBe(false)
  })
})
