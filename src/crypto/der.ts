/**
 * A minimal DER reader: just enough of X.509 to read the fields `node:crypto`'s
 * X509Certificate does not expose exactly (the subject CN as fedmsg reads it, validity
 * dates, raw serial and names) and to split a signed object into its to-be-signed bytes
 * and signature.
 */
import { CertificateError } from '../errors.js'

const TAG_INTEGER = 0x02
const TAG_BIT_STRING = 0x03
const TAG_OID = 0x06
const TAG_UTF8 = 0x0c
const TAG_PRINTABLE = 0x13
const TAG_T61 = 0x14
const TAG_IA5 = 0x16
const TAG_UTC_TIME = 0x17
const TAG_GENERALIZED_TIME = 0x18
const TAG_UNIVERSAL_STRING = 0x1c
const TAG_BMP = 0x1e
const TAG_SEQUENCE = 0x30
const TAG_SET = 0x31
const TAG_VERSION = 0xa0

const OID_COMMON_NAME = Buffer.from([0x55, 0x04, 0x03])
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true })

/** One tag-length-value element: offsets into the buffer it was read from. */
export interface Tlv {
  readonly tag: number
  /** Offset of the tag byte. */
  readonly start: number
  /** Offset of the first content byte. */
  readonly contentStart: number
  /** Offset just past the content. */
  readonly end: number
}

function malformed(what: string): CertificateError {
  return new CertificateError(`malformed DER: ${what}`)
}

/** Reads the element at `offset`; throws {@link CertificateError} unless it is well formed and ends by `limit`. */
export function readTlv(buf: Buffer, offset: number, limit: number = buf.length): Tlv {
  if (offset + 2 > limit) throw malformed('truncated element')
  const tag = buf[offset] as number
  if ((tag & 0x1f) === 0x1f) throw malformed('high tag numbers are not supported')
  let lengthByte = buf[offset + 1] as number
  let pos = offset + 2
  let length: number
  if (lengthByte < 0x80) {
    length = lengthByte
  } else {
    lengthByte &= 0x7f
    if (lengthByte === 0) throw malformed('indefinite length')
    if (lengthByte > 4) throw malformed('length too large')
    if (pos + lengthByte > limit) throw malformed('truncated length')
    length = 0
    for (let i = 0; i < lengthByte; i++) length = length * 256 + (buf[pos + i] as number)
    pos += lengthByte
  }
  const end = pos + length
  if (end > limit) throw malformed('element runs past its container')
  return { tag, start: offset, contentStart: pos, end }
}

/** The elements directly inside a constructed element. */
export function children(buf: Buffer, parent: Tlv): Tlv[] {
  const out: Tlv[] = []
  let pos = parent.contentStart
  while (pos < parent.end) {
    const tlv = readTlv(buf, pos, parent.end)
    out.push(tlv)
    pos = tlv.end
  }
  return out
}

function expectTag(tlv: Tlv | undefined, tag: number, what: string): Tlv {
  if (tlv === undefined || tlv.tag !== tag) throw malformed(`expected ${what}`)
  return tlv
}

function content(buf: Buffer, tlv: Tlv): Buffer {
  return buf.subarray(tlv.contentStart, tlv.end)
}

function whole(buf: Buffer, tlv: Tlv): Buffer {
  return buf.subarray(tlv.start, tlv.end)
}

/**
 * A serial number as lowercase hex of its magnitude, without leading zero bytes (how
 * `@peculiar/x509` and `node:crypto` report serials), so that serials compare equal
 * however their producer padded them.
 */
export function canonicalIntegerHex(hex: string): string {
  let h = hex.toLowerCase()
  if (h.length % 2 === 1) h = '0' + h
  while (h.length > 2 && h.startsWith('00')) h = h.slice(2)
  return h
}

function parseTime(buf: Buffer, tlv: Tlv): Date {
  const text = content(buf, tlv).toString('latin1')
  let m: RegExpExecArray | null
  let year: number
  let rest: string
  if (tlv.tag === TAG_UTC_TIME) {
    m = /^(\d{2})(\d{10})Z$/.exec(text)
    if (m === null) throw malformed(`UTCTime ${JSON.stringify(text)}`)
    const yy = Number(m[1])
    year = yy >= 50 ? 1900 + yy : 2000 + yy
    rest = m[2] as string
  } else if (tlv.tag === TAG_GENERALIZED_TIME) {
    m = /^(\d{4})(\d{10})(?:\.\d+)?Z$/.exec(text)
    if (m === null) throw malformed(`GeneralizedTime ${JSON.stringify(text)}`)
    year = Number(m[1])
    rest = m[2] as string
  } else {
    throw malformed('expected a time')
  }
  const num = (i: number): number => Number(rest.slice(i, i + 2))
  const ms = Date.UTC(year, num(0) - 1, num(2), num(4), num(6), num(8))
  const date = new Date(ms)
  if (Number.isNaN(ms) || date.getUTCMonth() !== num(0) - 1 || date.getUTCDate() !== num(2)) {
    throw malformed(`time ${JSON.stringify(text)}`)
  }
  return date
}

function decodeDirectoryString(buf: Buffer, tlv: Tlv): string {
  const bytes = content(buf, tlv)
  switch (tlv.tag) {
    case TAG_UTF8:
      return STRICT_UTF8.decode(bytes)
    case TAG_PRINTABLE:
    case TAG_IA5:
    case TAG_T61:
      return bytes.toString('latin1')
    case TAG_BMP: {
      if (bytes.length % 2 !== 0) throw malformed('BMPString of odd length')
      return Buffer.from(bytes).swap16().toString('utf16le')
    }
    case TAG_UNIVERSAL_STRING: {
      if (bytes.length % 4 !== 0) throw malformed('UniversalString length')
      let s = ''
      for (let i = 0; i < bytes.length; i += 4) s += String.fromCodePoint(bytes.readUInt32BE(i))
      return s
    }
    default:
      throw malformed(`unsupported string type 0x${tlv.tag.toString(16)}`)
  }
}

/** The value of the first commonName attribute of a DER Name, in RDN order (as `cryptography` reads it). */
export function firstCommonName(buf: Buffer, name: Tlv): string | undefined {
  for (const rdn of children(buf, name)) {
    expectTag(rdn, TAG_SET, 'RelativeDistinguishedName')
    for (const atv of children(buf, rdn)) {
      const [type, value] = children(buf, expectTag(atv, TAG_SEQUENCE, 'AttributeTypeAndValue'))
      if (content(buf, expectTag(type, TAG_OID, 'attribute type')).equals(OID_COMMON_NAME)) {
        if (value === undefined) throw malformed('attribute without value')
        return decodeDirectoryString(buf, value)
      }
    }
  }
  return undefined
}

/** What gilmsg reads from a certificate's DER itself. */
export interface CertificateSummary {
  /** Serial number as {@link canonicalIntegerHex}. */
  readonly serial: string
  readonly notBefore: Date
  readonly notAfter: Date
  /** First subject commonName, or undefined when the subject has none. */
  readonly cn: string | undefined
  /** DER of the issuer Name. */
  readonly issuerDer: Buffer
  /** DER of the subject Name. */
  readonly subjectDer: Buffer
}

/** Reads serial, validity, names and the first subject CN from a DER certificate. */
export function summarizeCertificate(der: Buffer): CertificateSummary {
  const top = readTlv(der, 0)
  if (top.end !== der.length) throw malformed('trailing bytes after the certificate')
  const [tbsTlv] = children(der, expectTag(top, TAG_SEQUENCE, 'Certificate'))
  const tbs = children(der, expectTag(tbsTlv, TAG_SEQUENCE, 'TBSCertificate'))
  let i = tbs[0]?.tag === TAG_VERSION ? 1 : 0
  const serial = expectTag(tbs[i++], TAG_INTEGER, 'serialNumber')
  expectTag(tbs[i++], TAG_SEQUENCE, 'signature algorithm')
  const issuer = expectTag(tbs[i++], TAG_SEQUENCE, 'issuer')
  const validity = expectTag(tbs[i++], TAG_SEQUENCE, 'validity')
  const subject = expectTag(tbs[i++], TAG_SEQUENCE, 'subject')
  const [nb, na] = children(der, validity)
  if (nb === undefined || na === undefined) throw malformed('validity')
  return {
    serial: canonicalIntegerHex(content(der, serial).toString('hex')),
    notBefore: parseTime(der, nb),
    notAfter: parseTime(der, na),
    cn: firstCommonName(der, subject),
    issuerDer: Buffer.from(whole(der, issuer)),
    subjectDer: Buffer.from(whole(der, subject)),
  }
}

/** A signed object (certificate, CRL) split into the to-be-signed bytes and its signature. */
export interface SignedParts {
  readonly tbs: Buffer
  readonly signature: Buffer
}

/** Splits `SEQUENCE { tbs, algorithm, BIT STRING signature }`. */
export function splitSigned(der: Buffer): SignedParts {
  const top = readTlv(der, 0)
  if (top.end !== der.length) throw malformed('trailing bytes after the signed object')
  const [tbs, alg, sig] = children(der, expectTag(top, TAG_SEQUENCE, 'signed object'))
  expectTag(tbs, TAG_SEQUENCE, 'to-be-signed SEQUENCE')
  expectTag(alg, TAG_SEQUENCE, 'signature algorithm')
  const bits = content(der, expectTag(sig, TAG_BIT_STRING, 'signature BIT STRING'))
  if (bits.length < 1 || bits[0] !== 0) throw malformed('signature BIT STRING with unused bits')
  return { tbs: Buffer.from(whole(der, tbs as Tlv)), signature: Buffer.from(bits.subarray(1)) }
}

/** Decodes a DER INTEGER element (e.g. a cRLNumber extension value) as a non-negative bigint. */
export function readUnsignedInteger(der: Buffer): bigint {
  const tlv = expectTag(readTlv(der, 0), TAG_INTEGER, 'INTEGER')
  const bytes = content(der, tlv)
  if (bytes.length === 0 || ((bytes[0] as number) & 0x80) !== 0) throw malformed('negative or empty INTEGER')
  return BigInt('0x' + bytes.toString('hex'))
}

/** DER INTEGER element for a non-negative bigint. */
export function encodeUnsignedInteger(value: bigint): Buffer {
  if (value < 0n) throw new RangeError('negative INTEGER')
  let hex = value.toString(16)
  if (hex.length % 2 === 1) hex = '0' + hex
  if (parseInt(hex.slice(0, 2), 16) >= 0x80) hex = '00' + hex
  const body = Buffer.from(hex, 'hex')
  if (body.length >= 0x80) throw new RangeError('INTEGER too long')
  return Buffer.concat([Buffer.from([TAG_INTEGER, body.length]), body])
}
