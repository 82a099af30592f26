import fc from 'fast-check'
import { beforeAll, describe, expect, it } from 'vitest'
import {
  canonicalIntegerHex,
  encodeUnsignedInteger,
  readTlv,
  readUnsignedInteger,
  splitSigned,
  summarizeCertificate,
} from '../../../src/crypto/der.js'
import { pemToDer } from '../../../src/crypto/pem.js'
import { CertificateError } from '../../../src/errors.js'
import { loadVectors } from './helpers.js'
import type { VectorCase } from './helpers.js'

let cases: readonly VectorCase[] = []

beforeAll(async () => {
  cases = await loadVectors()
})

describe('summarizeCertificate', () => {
  it('reads serial, validity and CN of the fedmsg vector certificates', () => {
    const [a, b] = cases.map((c) => summarizeCertificate(pemToDer(c.cert_pem_file, 'CERTIFICATE')))
    expect(a).toMatchObject({ serial: '1000', cn: 'pub-host.interop.test' })
    expect(a?.notBefore.toISOString()).toBe('2026-11-27T13:12:01.000Z')
    expect(b).toMatchObject({ serial: '03', cn: 'shell-app01.phx2.fedoraproject.org' })
    expect(b?.notBefore.toISOString()).toBe('2023-02-20T11:43:12.000Z')
    expect(b?.notAfter.toISOString()).toBe('2033-02-17T11:43:12.000Z')
  })

  it('throws CertificateError on truncated or trailing bytes, never anything else', () => {
    const der = pemToDer((cases[0] as VectorCase).cert_pem_file, 'CERTIFICATE')
    expect(() => summarizeCertificate(der.subarray(0, der.length - 1))).toThrow(CertificateError)
    expect(() => summarizeCertificate(Buffer.concat([der, Buffer.from([0])]))).toThrow(CertificateError)
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        try {
          summarizeCertificate(Buffer.from(bytes))
        } catch (err) {
          expect(err).toBeInstanceOf(CertificateError)
        }
      }),
    )
  })
})

describe('DER helpers', () => {
  it('reads long-form lengths and rejects indefinite ones', () => {
    const long = Buffer.concat([Buffer.from([0x04, 0x81, 0x80]), Buffer.alloc(0x80)])
    expect(readTlv(long, 0)).toEqual({ tag: 0x04, start: 0, contentStart: 3, end: 0x83 })
    expect(() => readTlv(Buffer.from([0x30, 0x80, 0, 0]), 0)).toThrow(CertificateError)
  })

  it('splits a signed object', () => {
    const der = pemToDer((cases[0] as VectorCase).cert_pem_file, 'CERTIFICATE')
    const { tbs, signature } = splitSigned(der)
    expect(tbs[0]).toBe(0x30)
    expect(signature.length).toBe(256)
  })

  it('normalises serials to their magnitude', () => {
    expect(canonicalIntegerHex('00FF')).toBe('ff')
    expect(canonicalIntegerHex('0000')).toBe('00')
    expect(canonicalIntegerHex('abc')).toBe('0abc')
  })

  it('round-trips unsigned INTEGERs', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 256n) - 1n }), (n) => {
        expect(readUnsignedInteger(encodeUnsignedInteger(n))).toBe(n)
      }),
    )
    expect(encodeUnsignedInteger(128n).toString('hex')).toBe('02020080')
  })
})
