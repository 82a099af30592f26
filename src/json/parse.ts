/**
 * Lossless parser for the JSON dialect of Python's `json.loads`.
 *
 * Hand-written because lossless-json cannot parse `NaN`/`Infinity` nor keep duplicate keys.
 */
import { JsonError } from '../errors.js'
import { DEFAULT_MAX_JSON_DEPTH } from '../util/defaults.js'
import type { JsonNumber, JsonObject, JsonValue } from './value.js'

/** Limits applied while parsing. */
export interface ParseLimits {
  /** Maximum nesting of arrays and objects (a top-level array is depth 1); `Infinity`: no limit. Default {@link DEFAULT_MAX_JSON_DEPTH} (64). */
  readonly maxDepth?: number | undefined
}

const QUOTE = 0x22
const BACKSLASH = 0x5c
const COMMA = 0x2c
const COLON = 0x3a
const MINUS = 0x2d
const DOT = 0x2e
const ZERO = 0x30
const NINE = 0x39
const OPEN_BRACKET = 0x5b
const CLOSE_BRACKET = 0x5d
const OPEN_BRACE = 0x7b
const CLOSE_BRACE = 0x7d

// Runs of plain string characters: past a few characters a sticky regexp scans faster than charCodeAt.
const PLAIN_RUN = /[^"\\\x00-\x1f]*/y

// Offset just after the token last read by readString / readNumber.
let tokenEnd = 0

function fail(text: string, pos: number, what: string): never {
  let line = 1
  let lineStart = 0
  for (let i = 0; i < pos && i < text.length; i++) {
    if (text.charCodeAt(i) === 0x0a) {
      line++
      lineStart = i + 1
    }
  }
  throw new JsonError(`${what}: line ${line} column ${pos - lineStart + 1} (char ${pos})`)
}

function skipWs(text: string, pos: number): number {
  for (;;) {
    const c = text.charCodeAt(pos)
    if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) pos++
    else return pos
  }
}

function hexDigit(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30
  if (c >= 0x61 && c <= 0x66) return c - 0x57
  if (c >= 0x41 && c <= 0x46) return c - 0x37
  return -1
}

// `start` is just after the opening quote.
function readString(text: string, start: number): string {
  let pos = start
  const loopEnd = start + 16
  for (;;) {
    const c = text.charCodeAt(pos)
    if (c === QUOTE) {
      tokenEnd = pos + 1
      return text.slice(start, pos)
    }
    if (c === BACKSLASH || !(c >= 0x20)) break
    if (++pos === loopEnd) {
      PLAIN_RUN.lastIndex = pos
      PLAIN_RUN.test(text)
      pos = PLAIN_RUN.lastIndex
      if (text.charCodeAt(pos) === QUOTE) {
        tokenEnd = pos + 1
        return text.slice(start, pos)
      }
      break
    }
  }
  let out = ''
  let runStart = start
  for (;;) {
    const c = text.charCodeAt(pos)
    if (c === QUOTE) {
      tokenEnd = pos + 1
      return out + text.slice(runStart, pos)
    }
    if (c === BACKSLASH) {
      out += text.slice(runStart, pos)
      const e = text.charCodeAt(pos + 1)
      switch (e) {
        case 0x22: out += '"'; break
        case 0x5c: out += '\\'; break
        case 0x2f: out += '/'; break
        case 0x62: out += '\b'; break
        case 0x66: out += '\f'; break
        case 0x6e: out += '\n'; break
        case 0x72: out += '\r'; break
        case 0x74: out += '\t'; break
        case 0x75: {
          const a = hexDigit(text.charCodeAt(pos + 2))
          const b = hexDigit(text.charCodeAt(pos + 3))
          const d = hexDigit(text.charCodeAt(pos + 4))
          const f = hexDigit(text.charCodeAt(pos + 5))
          if ((a | b | d | f) < 0) fail(text, pos, 'Invalid \\uXXXX escape')
          out += String.fromCharCode((a << 12) | (b << 8) | (d << 4) | f)
          pos += 4
          break
        }
        default:
          if (pos + 1 >= text.length) fail(text, start - 1, 'Unterminated string starting at')
          fail(text, pos, 'Invalid \\escape')
      }
      pos += 2
      runStart = pos
    } else if (c >= 0x20) {
      pos++
    } else if (pos >= text.length) {
      fail(text, start - 1, 'Unterminated string starting at')
    } else {
      fail(text, pos, 'Invalid control character at')
    }
  }
}

// Reads `-?(0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?` or `-Infinity`. A `.` or `e` without digits
// is left unread, so the caller reports it, as Python does.
function readNumber(text: string, start: number): JsonNumber {
  let pos = start
  let c = text.charCodeAt(pos)
  const negative = c === MINUS
  if (negative) c = text.charCodeAt(++pos)
  let acc = 0
  if (c === ZERO) {
    c = text.charCodeAt(++pos)
  } else if (c > ZERO && c <= NINE) {
    do {
      acc = acc * 10 + (c - ZERO)
      c = text.charCodeAt(++pos)
    } while (c >= ZERO && c <= NINE)
  } else if (negative && text.startsWith('Infinity', pos)) {
    tokenEnd = pos + 8
    return { kind: 'float', value: -Infinity }
  } else {
    fail(text, start, 'Expecting value')
  }
  let isFloat = false
  if (c === DOT) {
    const d = text.charCodeAt(pos + 1)
    if (d >= ZERO && d <= NINE) {
      isFloat = true
      pos += 2
      while ((c = text.charCodeAt(pos)) >= ZERO && c <= NINE) pos++
    }
  }
  if (c === 0x65 || c === 0x45) {
    let p = pos + 1
    let d = text.charCodeAt(p)
    if (d === 0x2b || d === MINUS) d = text.charCodeAt(++p)
    if (d >= ZERO && d <= NINE) {
      isFloat = true
      do p++
      while ((d = text.charCodeAt(p)) >= ZERO && d <= NINE)
      pos = p
    }
  }
  tokenEnd = pos
  if (isFloat) return { kind: 'float', value: Number(text.slice(start, pos)) }
  if (pos - start <= 15) return { kind: 'int', value: BigInt(negative ? -acc : acc) }
  if (pos - start - (negative ? 1 : 0) > MAX_INT_DIGITS) {
    fail(text, start, `Exceeds the limit (${MAX_INT_DIGITS} digits) for integer string conversion`)
  }
  return { kind: 'int', value: BigInt(text.slice(start, pos)) }
}

/**
 * Python (3.11+) refuses to convert integers of more digits than this
 * (`sys.get_int_max_str_digits()`), so a fedmsg peer could not read them
 * either; refusing them also bounds the quadratic cost of huge BigInts.
 */
export const MAX_INT_DIGITS = 4300

/**
 * Parses `text` as Python's `json.loads` would, without losing number kinds or precision.
 *
 * Accepts `NaN`, `Infinity` and `-Infinity`; rejects raw control characters in strings and
 * anything but whitespace (space, tab, LF, CR) after the value. Duplicate keys: the last
 * value wins. Integers (no fraction, no exponent) become `bigint`s, other numbers doubles.
 *
 * @throws JsonError on malformed input (the message gives line, column and offset) or when
 *   arrays/objects nest deeper than `limits.maxDepth` ("too deeply nested").
 */
export function parseJson(text: string, limits?: ParseLimits): JsonValue {
  const maxDepth = limits?.maxDepth ?? DEFAULT_MAX_JSON_DEPTH
  const parents: (JsonValue[] | JsonObject)[] = []
  const parentKeys: string[] = []
  let array: JsonValue[] | null = null
  let object: JsonObject | null = null
  let key = ''
  let depth = 0
  let pos = skipWs(text, 0)
  let value: JsonValue

  for (;;) {
    const c = text.charCodeAt(pos)
    switch (c) {
      case QUOTE:
        value = readString(text, pos + 1)
        pos = tokenEnd
        break
      case OPEN_BRACE:
      case OPEN_BRACKET: {
        if (depth >= maxDepth) fail(text, pos, `Value too deeply nested (more than ${maxDepth} levels)`)
        pos = skipWs(text, pos + 1)
        const n = text.charCodeAt(pos)
        if (c === OPEN_BRACKET) {
          if (n === CLOSE_BRACKET) {
            value = []
            pos++
            break
          }
        } else if (n === CLOSE_BRACE) {
          value = new Map()
          pos++
          break
        }
        const current = array ?? object
        if (current !== null) {
          parents.push(current)
          parentKeys.push(key)
        }
        depth++
        if (c === OPEN_BRACKET) {
          array = []
          object = null
          continue
        }
        if (n !== QUOTE) fail(text, pos, 'Expecting property name enclosed in double quotes')
        key = readString(text, pos + 1)
        pos = skipWs(text, tokenEnd)
        if (text.charCodeAt(pos) !== COLON) fail(text, pos, "Expecting ':' delimiter")
        pos = skipWs(text, pos + 1)
        object = new Map()
        array = null
        continue
      }
      case 0x6e:
        if (!text.startsWith('null', pos)) fail(text, pos, 'Expecting value')
        value = null
        pos += 4
        break
      case 0x74:
        if (!text.startsWith('true', pos)) fail(text, pos, 'Expecting value')
        value = true
        pos += 4
        break
      case 0x66:
        if (!text.startsWith('false', pos)) fail(text, pos, 'Expecting value')
        value = false
        pos += 5
        break
      case 0x4e:
        if (!text.startsWith('NaN', pos)) fail(text, pos, 'Expecting value')
        value = { kind: 'float', value: NaN }
        pos += 3
        break
      case 0x49:
        if (!text.startsWith('Infinity', pos)) fail(text, pos, 'Expecting value')
        value = { kind: 'float', value: Infinity }
        pos += 8
        break
      default:
        if (c === MINUS || (c >= ZERO && c <= NINE)) {
          value = readNumber(text, pos)
          pos = tokenEnd
          break
        }
        fail(text, pos, 'Expecting value')
    }

    for (;;) {
      pos = skipWs(text, pos)
      const d = text.charCodeAt(pos)
      if (array !== null) {
        array.push(value)
        if (d === COMMA) {
          pos = skipWs(text, pos + 1)
          break
        }
        if (d !== CLOSE_BRACKET) fail(text, pos, "Expecting ',' delimiter")
        value = array
      } else if (object !== null) {
        object.set(key, value)
        if (d === COMMA) {
          pos = skipWs(text, pos + 1)
          if (text.charCodeAt(pos) !== QUOTE) fail(text, pos, 'Expecting property name enclosed in double quotes')
          key = readString(text, pos + 1)
          pos = skipWs(text, tokenEnd)
          if (text.charCodeAt(pos) !== COLON) fail(text, pos, "Expecting ':' delimiter")
          pos = skipWs(text, pos + 1)
          break
        }
        if (d !== CLOSE_BRACE) fail(text, pos, "Expecting ',' delimiter")
        value = object
      } else {
        if (pos !== text.length) fail(text, pos, 'Extra data')
        return value
      }
      pos++
      depth--
      const parent = parents.pop()
      if (parent === undefined) {
        array = null
        object = null
      } else if (Array.isArray(parent)) {
        array = parent
        object = null
        parentKeys.pop()
      } else {
        object = parent
        array = null
        key = parentKeys.pop() as string
      }
    }
  }
}
