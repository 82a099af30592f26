import { randomBytes } from 'node:crypto'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { CertificateError } from '../../../src/errors.js'
import {
  certificateField,
  derToPem,
  extractPemBlock,
  pemFromCertificateField,
  pemToDer,
  unwrapBase64,
  wrapBase64,
} from '../../../src/crypto/pem.js'

describe('wrapBase64', () => {
  it('wraps every 76 characters with a trailing newline, like base64.encodebytes', () => {
    expect(wrapBase64(Buffer.alloc(0))).toBe('')
    expect(wrapBase64(Buffer.from('abc'))).toBe('YWJj\n')
    const line = wrapBase64(Buffer.alloc(57, 0xff))
    expect(line).toBe('/'.repeat(76) + '\n')
    const two = wrapBase64(Buffer.alloc(58, 0xff))
    expect(two.split('\n').map((l) => l.length)).toEqual([76, 4, 0])
  })

  it('round-trips through unwrapBase64', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        const buf = Buffer.from(bytes)
        const wrapped = wrapBase64(buf)
        expect(wrapped.split('\n').every((l) => l.length <= 76)).toBe(true)
        expect(unwrapBase64(wrapped).equals(buf)).toBe(true)
      }),
    )
  })
})

describe('unwrapBase64', () => {
  it('ignores whitespace anywhere', () => {
    expect(unwrapBase64(' YW\r\nJj\t\n').toString()).toBe('abc')
    expect(unwrapBase64('YQ==\n').toString()).toBe('a')
  })

  it.each(['YWJ', 'YW*j', 'YQ=a', 'Y===', '=YWJ', 'YWJj-_==', 'éééé'])('rejects %j', (s) => {
    expect(() => unwrapBase64(s)).toThrow(CertificateError)
  })
})

describe('PEM helpers', () => {
  const der = randomBytes(300)
  const pem = derToPem(der, 'CERTIFICATE')

  it('derToPem writes 64-column lines between BEGIN/END lines', () => {
    const lines = pem.split('\n')
    expect(lines[0]).toBe('-----BEGIN CERTIFICATE-----')
    expect(lines.at(-2)).toBe('-----END CERTIFICATE-----')
    expect(lines.at(-1)).toBe('')
    expect(lines.slice(1, -2).every((l) => l.length <= 64)).toBe(true)
    expect(pemToDer(pem, 'CERTIFICATE').equals(der)).toBe(true)
  })

  it('extractPemBlock skips text around the block and takes the first block', () => {
    const text = `Certificate:\n    Data: ...\n${pem}trailing\n${derToPem(randomBytes(10), 'CERTIFICATE')}`
    expect(extractPemBlock(text, 'CERTIFICATE')).toBe(pem)
    expect(() => extractPemBlock('no pem here', 'CERTIFICATE')).toThrow(CertificateError)
    expect(() => extractPemBlock('-----BEGIN CERTIFICATE-----\nAAAA\n', 'CERTIFICATE')).toThrow(/END/)
    expect(() => extractPemBlock(pem, 'X509 CRL')).toThrow(CertificateError)
  })

  it('certificateField and pemFromCertificateField are inverse', () => {
    const field = certificateField(pem)
    expect(field.endsWith('\n')).toBe(true)
    expect(pemFromCertificateField(field)).toBe(pem)
  })

  it('pemFromCertificateField rejects bytes that are not UTF-8', () => {
    expect(() => pemFromCertificateField(wrapBase64(Buffer.from([0xff, 0xfe, 0xfd])))).toThrow(CertificateError)
  })
})
