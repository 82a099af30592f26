import { describe, JsonError } from '../errors.js'
import { DEFAULT_MAX_JSON_DEPTH } from '../util/defaults.js'
import { canonicalize } from './canonical.js'
import type { JsonObject, JsonValue } from './value.js'

/** Options of {@link fromPlain}. */
export interface FromPlainOptions {
  /** Maximum nesting of arrays and objects (the outermost one is depth 1). Default {@link DEFAULT_MAX_JSON_DEPTH} (64), as the parser's. */
  readonly maxDepth?: number | undefined
}

type Segment = string | number

const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER)
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER)

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/

function formatPath(root: string, segments: readonly Segment[]): string {
  let out = root
  for (const s of segments) {
    if (typeof s === 'number') out += `[${s}]`
    else if (IDENTIFIER.test(s)) out += `.${s}`
    else out += `[${JSON.stringify(s)}]`
  }
  return out
}

class Converter {
  private readonly segments: Segment[] = []
  private readonly ancestors = new Set<object>()

  constructor(
    private readonly root: string,
    private readonly maxDepth: number,
  ) {}

  private fail(message: string): never {
    throw new JsonError(`${formatPath(this.root, this.segments)} ${message}`)
  }

  // `undefined` means "no JSON value": skipped in objects, null in arrays.
  convert(input: unknown, key: string): JsonValue | undefined {
    let v = input
    if ((typeof v === 'object' && v !== null) || typeof v === 'bigint') {
      const toJSON = (v as { toJSON?: unknown }).toJSON
      if (typeof toJSON === 'function') v = toJSON.call(v, key) as unknown
    }
    switch (typeof v) {
      case 'string':
      case 'boolean':
        return v
      case 'number':
        return Number.isInteger(v) ? { kind: 'int', value: BigInt(v) } : { kind: 'float', value: v }
      case 'bigint':
        return { kind: 'int', value: v }
      case 'undefined':
        return undefined
      case 'object':
        if (v === null) return null
        return this.container(v)
      default:
        return this.fail(`is ${describe(v)}, which has no JSON form`)
    }
  }

  private container(v: object): JsonValue {
    if (this.ancestors.has(v)) this.fail('is a circular reference')
    if (this.ancestors.size >= this.maxDepth) this.fail(`is too deeply nested (more than ${this.maxDepth} levels)`)
    let out: JsonValue
    this.ancestors.add(v)
    if (Array.isArray(v)) {
      out = this.array(v)
    } else if (v instanceof Map) {
      out = this.map(v)
    } else {
      const proto: unknown = Object.getPrototypeOf(v)
      if (proto !== Object.prototype && proto !== null) this.fail(`is ${describe(v)}, which has no JSON form`)
      out = this.object(v as Record<string, unknown>)
    }
    this.ancestors.delete(v)
    return out
  }

  private array(v: readonly unknown[]): JsonValue[] {
    const out = new Array<JsonValue>(v.length)
    const segments = this.segments
    for (let i = 0; i < v.length; i++) {
      segments.push(i)
      out[i] = this.convert(v[i], String(i)) ?? null
      segments.pop()
    }
    return out
  }

  private map(v: ReadonlyMap<unknown, unknown>): JsonObject {
    const out: JsonObject = new Map()
    const segments = this.segments
    for (const [k, x] of v) {
      if (typeof k !== 'string') this.fail(`is a Map with a key that is not a string (${describe(k)})`)
      segments.push(k)
      const value = this.convert(x, k)
      if (value !== undefined) out.set(k, value)
      segments.pop()
    }
    return out
  }

  private object(v: Record<string, unknown>): JsonObject {
    const out: JsonObject = new Map()
    const segments = this.segments
    for (const k of Object.keys(v)) {
      segments.push(k)
      const value = this.convert(v[k], k)
      if (value !== undefined) out.set(k, value)
      segments.pop()
    }
    return out
  }
}

/**
 * Converts a plain JS value (what users publish) to the lossless model, following
 * `JSON.stringify`'s rules where they apply: `toJSON` methods are called (so a `Date`
 * becomes its ISO string), object properties whose value is `undefined` are skipped and
 * `undefined` array elements become `null`.
 *
 * JavaScript cannot tell `1` from `1.0`, so every integral number (including `-0` and
 * integral values beyond 2^53) becomes a Python int, every other number (fractions, `NaN`,
 * `±Infinity`) a float. `bigint`s become ints. Arrays, plain objects (own enumerable string
 * keys) and `Map`s with string keys become arrays and objects.
 *
 * @param path - Name of `v` in error messages, e.g. `msg` gives `msg.items[3]`.
 * @throws JsonError naming the offending path for functions, symbols, class instances
 *   without `toJSON`, non-string `Map` keys, circular references, nesting deeper than
 *   `options.maxDepth`, or a top-level `undefined`.
 */
export function fromPlain(v: unknown, path = 'value', options?: FromPlainOptions): JsonValue {
  const converter = new Converter(path, options?.maxDepth ?? DEFAULT_MAX_JSON_DEPTH)
  const out = converter.convert(v, '')
  if (out === undefined) throw new JsonError(`${path} is undefined, which has no JSON form`)
  return out
}

/**
 * Converts a model value to plain JS: ints within the safe integer range become numbers,
 * larger ones `bigint`s; floats become numbers; objects become ordinary objects whose keys
 * (including `__proto__`) are all own properties.
 */
export function toPlain(v: JsonValue): unknown {
  if (v === null || typeof v !== 'object') return v
  if (Array.isArray(v)) return v.map(toPlain)
  if (v instanceof Map) {
    const out: Record<string, unknown> = {}
    for (const [k, x] of v) {
      if (k === '__proto__') {
        Object.defineProperty(out, k, { value: toPlain(x), enumerable: true, writable: true, configurable: true })
      } else {
        out[k] = toPlain(x)
      }
    }
    return out
  }
  if (v.kind === 'int') {
    const n = v.value
    return n >= MIN_SAFE && n <= MAX_SAFE ? Number(n) : n
  }
  return v.value
}

/** `canonicalize(fromPlain(v))`: the canonical text of a plain JS value. */
export function stringifyPlain(v: unknown): string {
  return canonicalize(fromPlain(v))
}
