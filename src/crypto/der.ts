/**
 * A minimal DER reader: enough to walk a CRL (tag, length, content), decode object
 * identifiers, integers and times. Definite lengths and low tag numbers only, as DER
 * requires; anything else throws {@link CertificateError}.
 */
import { CertificateError } from '../errors.js'

/** DER tags gilmsg reads. */
export const Tag = {
  Boolean: 0x01,
  Integer: 0x02,
  BitString: 0x03,
  OctetString: 0x04,
  Null: 0x05,
  Oid: 0x06,
  Enumerated: 0x0a,
  Utf8String: 0x0c,
  PrintableString: 0x13,
  T61String: 0x14,
  Ia5String: 0x16,
  UtcTime: 0x17,
  GeneralizedTime: 0x18,
  UniversalString: 0x1c,
  BmpString: 0x1e,
  Sequence: 0x30,
  Set: 0x31,
  /** `[0]` constructed, context-specific. */
  Context0: 0xa0,
} as const

/** One element of a DER buffer. */
export interface DerElement {
  readonly tag: number
  /** Offset of the tag byte. */
  readonly start: number
  /** Offset of the first content byte. */
  readonly contentStart: number
  /** Offset just past the content. */
  readonly end: number
}

const MAX_LENGTH_OCTETS = 4
const UTC_TIME = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/
const GENERALIZED_TIME = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.(\d+))?Z$/

function bad(what: string): CertificateError {
  return new CertificateError(`invalid DER: ${what}`)
}

/** The element at `offset`, which must end by `limit`. */
export function readElement(buf: Buffer, offset: number, limit = buf.length): DerElement {
  if (offset + 2 > limit) throw bad(`truncated element at offset ${offset}`)
  const tag = buf[offset] as number
  if ((tag & 0x1f) === 0x1f) throw bad(`high tag number at offset ${offset}`)
  const first = buf[offset + 1] as number
  let length: number
  let contentStart: number
  if (first < 0x80) {
    length = first
    contentStart = offset + 2
  } else {
    const octets = first & 0x7f
    if (octets === 0) throw bad(`indefinite length at offset ${offset}`)
    if (octets > MAX_LENGTH_OCTETS) throw bad(`length of ${octets} octets at offset ${offset}`)
    if (offset + 2 + octets > limit) throw bad(`truncated length at offset ${offset}`)
    length = 0
    for (let i = 0; i < octets; i++) length = length * 256 + (buf[offset + 2 + i] as number)
    contentStart = offset + 2 + octets
  }
  const end = contentStart + length
  if (end > limit) throw bad(`element at offset ${offset} runs past its container (${end} > ${limit})`)
  return { tag, start: offset, contentStart, end }
}

/** The single element that `buf` holds; trailing bytes throw. */
export function readRoot(buf: Buffer): DerElement {
  const root = readElement(buf, 0)
  if (root.end !== buf.length) throw bad(`${buf.length - root.end} bytes after the outer element`)
  return root
}

/** The elements inside a constructed element, in order. */
export function childrenOf(buf: Buffer, parent: DerElement): DerElement[] {
  const out: DerElement[] = []
  let at = parent.contentStart
  while (at < parent.end) {
    const el = readElement(buf, at, parent.end)
    out.push(el)
    at = el.end
  }
  return out
}

/** `el` checked to have tag `tag`; `what` names it in the error. */
export function expectTag(el: DerElement | undefined, tag: number, what: string): DerElement {
  if (el === undefined) throw bad(`${what} is missing`)
  if (el.tag !== tag) throw bad(`${what}: expected tag 0x${tag.toString(16)}, got 0x${el.tag.toString(16)}`)
  return el
}

/** The content bytes of `el` (a view, not a copy). */
export function contentOf(buf: Buffer, el: DerElement): Buffer {
  return buf.subarray(el.contentStart, el.end)
}

/** The whole encoding of `el`, tag and length included (a view). */
export function encodingOf(buf: Buffer, el: DerElement): Buffer {
  return buf.subarray(el.start, el.end)
}

/** An OBJECT IDENTIFIER's dotted form. */
export function decodeOid(content: Buffer): string {
  if (content.length === 0) throw bad('empty object identifier')
  const arcs: bigint[] = []
  let value = 0n
  for (let i = 0; i < content.length; i++) {
    const byte = content[i] as number
    if (value === 0n && byte === 0x80) throw bad('object identifier arc with a leading 0x80')
    value = (value << 7n) | BigInt(byte & 0x7f)
    if ((byte & 0x80) === 0) {
      arcs.push(value)
      value = 0n
    } else if (i === content.length - 1) {
      throw bad('truncated object identifier')
    }
  }
  const first = arcs[0] as bigint
  const head = first < 40n ? [0n, first] : first < 80n ? [1n, first - 40n] : [2n, first - 80n]
  return [...head, ...arcs.slice(1)].join('.')
}

/** A non-negative INTEGER's value; a negative one throws. */
export function decodeUnsigned(content: Buffer, what: string): bigint {
  if (content.length === 0) throw bad(`${what}: empty INTEGER`)
  if (((content[0] as number) & 0x80) !== 0) throw bad(`${what}: negative INTEGER`)
  return BigInt(`0x${content.toString('hex')}`)
}

/** A UTCTime or GeneralizedTime element as milliseconds since the epoch. */
export function decodeTime(buf: Buffer, el: DerElement, what: string): number {
  const text = contentOf(buf, el).toString('latin1')
  let parts: number[]
  let fraction = 0
  if (el.tag === Tag.UtcTime) {
    const m = UTC_TIME.exec(text)
    if (m === null) throw bad(`${what}: unexpected UTCTime ${JSON.stringify(text)}`)
    parts = m.slice(1, 7).map(Number)
    const yy = parts[0] as number
    parts[0] = yy < 50 ? 2000 + yy : 1900 + yy
  } else if (el.tag === Tag.GeneralizedTime) {
    const m = GENERALIZED_TIME.exec(text)
    if (m === null) throw bad(`${what}: unexpected GeneralizedTime ${JSON.stringify(text)}`)
    parts = m.slice(1, 7).map(Number)
    if (m[7] !== undefined) fraction = Math.floor(Number(`0.${m[7]}`) * 1000)
  } else {
    throw bad(`${what}: expected a UTCTime or GeneralizedTime, got tag 0x${el.tag.toString(16)}`)
  }
  const [year, month, day, hour, minute, second] = parts as [number, number, number, number, number, number]
  const ms = Date.UTC(year, month - 1, day, hour, minute, second, fraction)
  const check = new Date(ms)
  if (check.getUTCMonth() !== month - 1 || check.getUTCDate() !== day || hour > 23 || minute > 59 || second > 59) {
    throw bad(`${what}: invalid date ${JSON.stringify(text)}`)
  }
  return ms
}
