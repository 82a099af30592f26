import { JsonError } from '../errors.js'
import type { JsonObject, JsonValue } from './value.js'

const NEEDS_ESCAPE = /[^\x20\x21\x23-\x5b\x5d-\x7e]/

const ASCII_ESCAPES: readonly string[] = Array.from({ length: 0x80 }, (_, c) => {
  switch (c) {
    case 0x22: return '\\"'
    case 0x5c: return '\\\\'
    case 0x08: return '\\b'
    case 0x0c: return '\\f'
    case 0x0a: return '\\n'
    case 0x0d: return '\\r'
    case 0x09: return '\\t'
    default: return c < 0x20 || c === 0x7f ? '\\u' + c.toString(16).padStart(4, '0') : String.fromCharCode(c)
  }
})

function quote(s: string): string {
  const n = s.length
  const loopEnd = n < 16 ? n : 16
  for (let i = 0; i < loopEnd; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return quoteEscaping(s, i)
  }
  if (n > 16 && NEEDS_ESCAPE.test(s)) return quoteEscaping(s, 16)
  return '"' + s + '"'
}

function quoteEscaping(s: string, from: number): string {
  let out = '"'
  let runStart = 0
  for (let i = from; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c >= 0x20 && c <= 0x7e && c !== 0x22 && c !== 0x5c) continue
    out += s.slice(runStart, i) + (c < 0x80 ? ASCII_ESCAPES[c] : '\\u' + c.toString(16).padStart(4, '0'))
    runStart = i + 1
  }
  return out + s.slice(runStart) + '"'
}

/**
 * Formats a double as Python's `repr(float)`: shortest round-trip digits, fixed notation
 * when the decimal exponent is in [-4, 16), otherwise `d[.ddd]e±XX`.
 */
export function pythonFloatRepr(x: number): string {
  if (x !== x) return 'NaN'
  if (x === Infinity) return 'Infinity'
  if (x === -Infinity) return '-Infinity'
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0'
  const abs = x < 0 ? -x : x
  if (abs >= 1e-4 && abs < 1e16) {
    const s = String(x)
    return s.includes('.') ? s : s + '.0'
  }
  const s = x.toExponential()
  const e = s.indexOf('e') + 2
  const exp = s.slice(e)
  return s.slice(0, e) + (exp.length < 2 ? '0' + exp : exp)
}

/**
 * Orders strings by Unicode code point, as Python compares `str`s. A surrogate pair counts
 * as its astral code point, a lone surrogate as itself.
 */
export function compareCodePoints(a: string, b: string): number {
  const n = a.length < b.length ? a.length : b.length
  let i = 0
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++
  if (i === n) return a.length - b.length
  const ca = a.charCodeAt(i)
  const cb = b.charCodeAt(i)
  if (ca < 0xd800 && cb < 0xd800) return ca - cb
  if (i > 0) {
    const prev = a.charCodeAt(i - 1)
    if (prev >= 0xd800 && prev <= 0xdbff) {
      const pa = a.codePointAt(i - 1) as number
      const pb = b.codePointAt(i - 1) as number
      if (pa !== pb) return pa - pb
    }
  }
  return (a.codePointAt(i) as number) - (b.codePointAt(i) as number)
}

function sortedKeys(map: JsonObject): string[] {
  const keys = Array.from(map.keys())
  for (const k of keys) if (typeof k !== 'string') throw new JsonError(`object key ${String(k)} is not a string`)
  return keys.sort(compareCodePoints)
}

function writeObject(map: JsonObject, omit?: ReadonlySet<string>): string {
  if (map.size === 0) return '{}'
  const keys = sortedKeys(map)
  let out = '{'
  let first = true
  for (const k of keys) {
    if (omit?.has(k) === true) continue
    out += (first ? '' : ',') + quote(k) + ':' + write(map.get(k) as JsonValue)
    first = false
  }
  return out + '}'
}

function write(v: JsonValue): string {
  if (typeof v === 'string') return quote(v)
  if (v === null) return 'null'
  if (v === true) return 'true'
  if (v === false) return 'false'
  if (Array.isArray(v)) {
    const n = v.length
    if (n === 0) return '[]'
    let out = '[' + write(v[0] as JsonValue)
    for (let i = 1; i < n; i++) out += ',' + write(v[i] as JsonValue)
    return out + ']'
  }
  if (v instanceof Map) return writeObject(v)
  if (typeof v === 'object') {
    if (v.kind === 'int' && typeof v.value === 'bigint') return v.value.toString()
    if (v.kind === 'float' && typeof v.value === 'number') return pythonFloatRepr(v.value)
  }
  throw new JsonError(`not a JSON model value: ${String(v)}`)
}

/**
 * Serialises a value exactly as Python's
 * `json.dumps(obj, sort_keys=True, separators=(',', ':'), ensure_ascii=True)`.
 * The result is pure ASCII.
 *
 * @throws JsonError if `value` holds something that is not part of the {@link JsonValue} model.
 */
export function canonicalize(value: JsonValue): string {
  return write(value)
}

/** {@link canonicalize} of an object without the members `omit` names (no copy of the object). */
export function canonicalizeWithout(map: JsonObject, omit: ReadonlySet<string>): string {
  return writeObject(map, omit)
}

/** One member of a canonical object: its key and its `"key":value` text. */
export interface CanonicalMember {
  readonly key: string
  readonly text: string
}

/**
 * The members of an object as {@link canonicalize} writes them, leaving out
 * `omit`: {@link joinMembers} then writes the object, or the object with a
 * few members more, without serialising the values again.
 */
export function canonicalMembers(map: JsonObject, omit?: ReadonlySet<string>): CanonicalMember[] {
  const out: CanonicalMember[] = []
  for (const key of sortedKeys(map)) if (omit?.has(key) !== true) out.push(canonicalMember(key, map.get(key) as JsonValue))
  return out
}

export function canonicalMember(key: string, value: JsonValue): CanonicalMember {
  return { key, text: quote(key) + ':' + write(value) }
}

/** The canonical object of `members` (in any order; keys must be distinct), as {@link canonicalize} would write it. */
export function joinMembers(members: readonly CanonicalMember[]): string {
  const sorted = [...members].sort((a, b) => compareCodePoints(a.key, b.key))
  return '{' + sorted.map((m) => m.text).join(',') + '}'
}

/** {@link canonicalize}d text as bytes (ASCII, hence also UTF-8). */
export function canonicalBytes(value: JsonValue): Buffer {
  return Buffer.from(write(value), 'latin1')
}
