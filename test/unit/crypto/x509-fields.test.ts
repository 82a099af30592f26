import 'reflect-metadata'
import * as x509 from '@peculiar/x509'
import { webcrypto, X509Certificate } from 'node:crypto'
import fc from 'fast-check'
import { beforeAll, describe, expect, it } from 'vitest'
import { pemToDer } from '../../../src/crypto/pem.js'
import {
  canonicalSerial,
  certificateValidity,
  distinguishedNameAttribute,
  parseOpensslTime,
  subjectCommonName,
} from '../../../src/crypto/x509-fields.js'
import { CertificateError } from '../../../src/errors.js'
import { loadVectors } from './helpers.js'
import type { VectorCase } from './helpers.js'

let cases: readonly VectorCase[] = []
let keys: webcrypto.CryptoKeyPair

beforeAll(async () => {
  cases = await loadVectors()
  keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair
})

interface CertParams {
  readonly name: x509.JsonNameParams | string
  readonly serialNumber?: string
  readonly notBefore?: Date
  readonly notAfter?: Date
}

async function makeCert(p: CertParams): Promise<{ node: X509Certificate; peculiar: x509.X509Certificate }> {
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: p.serialNumber ?? '01',
      name: typeof p.name === 'string' ? p.name : new x509.Name(p.name),
      keys,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      ...(p.notBefore ? { notBefore: p.notBefore } : {}),
      ...(p.notAfter ? { notAfter: p.notAfter } : {}),
    },
    webcrypto,
  )
  return { node: new X509Certificate(Buffer.from(cert.rawData)), peculiar: cert }
}

describe('the fedmsg vector certificates', () => {
  it('give the CN, validity and serial Python fedmsg sees', () => {
    const [a, b] = cases.map((c) => new X509Certificate(pemToDer(c.cert_pem_file, 'CERTIFICATE'))) as [X509Certificate, X509Certificate]
    expect(subjectCommonName(a)).toBe('pub-host.interop.test')
    expect(subjectCommonName(b)).toBe('shell-app01.phx2.fedoraproject.org')
    expect(certificateValidity(a).notBefore.toISOString()).toBe('2026-11-27T13:12:01.000Z')
    expect(certificateValidity(b)).toEqual({ notBefore: new Date('2023-02-20T11:43:12Z'), notAfter: new Date('2033-02-17T11:43:12Z') })
    expect(canonicalSerial(a.serialNumber)).toBe('1000')
    expect(canonicalSerial(b.serialNumber)).toBe('3')
  })
})

describe('subjectCommonName', () => {
  it('reads the first CN in RDN order, inside multi-valued RDNs too', async () => {
    const { node } = await makeCert({ name: [{ O: [{ utf8String: 'org' }], CN: [{ utf8String: 'first' }] }, { CN: [{ utf8String: 'second' }] }] })
    expect(subjectCommonName(node)).toBe('first')
  })

  it('is undefined without a CN, and is not fooled by CN= inside another value', async () => {
    expect(subjectCommonName((await makeCert({ name: 'O=No Common Name' })).node)).toBeUndefined()
    const tricky = await makeCert({ name: [{ O: [{ utf8String: 'a\nCN=evil + CN=evil2' }] }, { CN: [{ utf8String: 'real' }] }] })
    expect(subjectCommonName(tricky.node)).toBe('real')
  })

  it.each([
    ['BMPString', { bmpString: 'bmp é' }, 'bmp é'],
    ['PrintableString', { printableString: 'host-1.example' }, 'host-1.example'],
    ['empty UTF8String', { utf8String: '' }, ''],
  ] as const)('decodes a %s CN', async (_label, value, expected) => {
    expect(subjectCommonName((await makeCert({ name: [{ CN: [value] }] })).node)).toBe(expected)
  })

  it('undoes the escaping of any UTF-8 CN (agrees with @peculiar/x509)', async () => {
    const special = fc.constantFrom(',', '+', ' + ', '"', '\\', '\\41', '<', '>', ';', '=', '#', ' ', '\n', '\t', '\0', '\x7f', 'CN=x', 'é', '😀')
    const cn = fc.array(fc.oneof(special, fc.string({ unit: 'grapheme', maxLength: 5 })), { minLength: 1, maxLength: 8 }).map((parts) => parts.join(''))
    await fc.assert(
      fc.asyncProperty(cn, async (value) => {
        const { node, peculiar } = await makeCert({ name: [{ O: [{ utf8String: value }], CN: [{ utf8String: value }] }, { CN: [{ utf8String: 'later' }] }] })
        expect(subjectCommonName(node)).toBe(value)
        expect(peculiar.subjectName.getField('CN')[0]).toBe(value)
      }),
      { numRuns: 60 },
    )
  })
})

describe('distinguishedNameAttribute', () => {
  it('parses node-style subject strings', () => {
    expect(distinguishedNameAttribute('C=US\nO=a\\, b \\+ c + CN=x\\0Ay\nCN=z', 'CN')).toBe('x\ny')
    expect(distinguishedNameAttribute('CN=\\ lead\\\\41 trail\\ ', 'CN')).toBe(' lead\\41 trail ')
    expect(distinguishedNameAttribute('O=x', 'CN')).toBeUndefined()
    expect(distinguishedNameAttribute('', 'CN')).toBeUndefined()
  })
})

describe('validity', () => {
  it('reads UTCTime and GeneralizedTime (after 2049)', async () => {
    const late = await makeCert({ name: 'CN=late', notBefore: new Date('2040-01-01T00:00:00Z'), notAfter: new Date('2061-06-30T12:34:56Z') })
    expect(certificateValidity(late.node)).toEqual({ notBefore: new Date('2040-01-01T00:00:00Z'), notAfter: new Date('2061-06-30T12:34:56Z') })
    const edges = await makeCert({ name: 'CN=edges', notBefore: new Date('1950-01-01T00:00:00Z'), notAfter: new Date('2049-12-31T23:59:59Z') })
    expect(certificateValidity(edges.node)).toEqual({ notBefore: new Date('1950-01-01T00:00:00Z'), notAfter: new Date('2049-12-31T23:59:59Z') })
  })

  it('parses OpenSSL time text strictly', () => {
    expect(parseOpensslTime('Jan  1 00:00:00 2040 GMT').toISOString()).toBe('2040-01-01T00:00:00.000Z')
    expect(parseOpensslTime('Dec 31 23:59:59.5 49 GMT').toISOString()).toBe('0049-12-31T23:59:59.000Z')
    for (const bad of ['', 'Jan 1 2040', 'Foo  1 00:00:00 2040 GMT', 'Feb 30 00:00:00 2040 GMT', '2040-01-01T00:00:00Z']) {
      expect(() => parseOpensslTime(bad)).toThrow(CertificateError)
    }
  })
})

describe('canonicalSerial', () => {
  it('is lowercase hex without leading zeros', () => {
    expect(canonicalSerial('00FF')).toBe('ff')
    expect(canonicalSerial('0ABC')).toBe('abc')
    expect(canonicalSerial('abc')).toBe('abc')
    expect(canonicalSerial('0000')).toBe('0')
    for (const bad of ['', '-01', '0x10', 'zz']) expect(() => canonicalSerial(bad)).toThrow(CertificateError)
  })

  it('gives the same value for node certificates, @peculiar/x509 certificates and CRL entries', async () => {
    const serials = ['01', '0abc', '7f', '80', '00ff', 'ffee', '0102030405060708090a0b0c0d0e0f10']
    const certs = await Promise.all(serials.map((serialNumber) => makeCert({ name: 'CN=s', serialNumber })))
    const crl = await x509.X509CrlGenerator.create(
      {
        issuer: 'CN=s',
        thisUpdate: new Date(),
        nextUpdate: new Date(Date.now() + 86_400_000),
        entries: serials.map((serialNumber) => ({ serialNumber, revocationDate: new Date() })),
        signingKey: keys.privateKey,
        signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      },
      webcrypto,
    )
    const fromCrl = new x509.X509Crl(crl.rawData).entries.map((e) => canonicalSerial(e.serialNumber))
    certs.forEach(({ node, peculiar }, i) => {
      const expected = BigInt(`0x${serials[i] as string}`).toString(16)
      expect(canonicalSerial(node.serialNumber)).toBe(expected)
      expect(canonicalSerial(peculiar.serialNumber)).toBe(expected)
      expect(fromCrl[i]).toBe(expected)
    })
  })
})
