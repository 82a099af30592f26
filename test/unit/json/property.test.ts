import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { canonicalize, canonicalizeWithout, canonicalMember, canonicalMembers, joinMembers, pythonFloatRepr } from '../../../src/json/canonical.js'
import { parseJson } from '../../../src/json/parse.js'
import { fromPlain } from '../../../src/json/plain.js'
import { jsonFloat, type JsonValue } from '../../../src/json/value.js'

const floatValue = fc.double().map((d): JsonValue => jsonFloat(d))
const withFloats = fc.letrec<{ value: JsonValue }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    floatValue,
    fc.string({ unit: 'binary' }),
    fc.bigInt().map((n): JsonValue => ({ kind: 'int', value: n })),
    fc.array(tie('value'), { maxLength: 5 }),
    fc.array(fc.tuple(fc.string({ unit: 'binary' }), tie('value')), { maxLength: 5 }).map((e): JsonValue => new Map(e)),
  ),
})).value

describe('canonical form properties', () => {
  it('is a fixed point for fc.jsonValue()', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (x) => {
        const once = canonicalize(fromPlain(x))
        expect(canonicalize(parseJson(once))).toBe(once)
      }),
    )
  })

  it('is a fixed point for model values with doubles, bigints and any UTF-16', () => {
    fc.assert(
      fc.property(withFloats, (x) => {
        const once = canonicalize(x)
        expect(canonicalize(parseJson(once, { maxDepth: 1000 }))).toBe(once)
      }),
    )
  })

  it('members and omissions write exactly what canonicalize writes of the same object', () => {
    const object = fc.array(fc.tuple(fc.string({ unit: 'binary', maxLength: 4 }), withFloats), { maxLength: 8 }).map((e) => new Map(e))
    fc.assert(
      fc.property(object, fc.string({ unit: 'binary', maxLength: 4 }), withFloats, (map, key, value) => {
        expect(joinMembers(canonicalMembers(map))).toBe(canonicalize(map))
        const without = new Map(map)
        without.delete(key)
        expect(canonicalizeWithout(map, new Set([key]))).toBe(canonicalize(without))
        const added = new Map(without).set(key, value)
        expect(joinMembers([...canonicalMembers(map, new Set([key])), canonicalMember(key, value)])).toBe(canonicalize(added))
      }),
    )
  })

  it('writes doubles that parse back to the same double', () => {
    fc.assert(
      fc.property(fc.double(), (d) => {
        const repr = pythonFloatRepr(d)
        const back = parseJson(repr)
        expect(back).toEqual({ kind: 'float', value: d })
        if (Number.isFinite(d)) expect(Object.is(Number(repr), d)).toBe(true)
      }),
      { numRuns: 10_000 },
    )
  })
})
