import { describe, expect, it } from 'vitest'
import { JsonError } from '../../../src/errors.js'
import { canonicalize } from '../../../src/json/canonical.js'
import { parseJson } from '../../../src/json/parse.js'
import { fromPlain, stringifyPlain, toPlain } from '../../../src/json/plain.js'
import { jsonFloat, jsonInt } from '../../../src/json/value.js'

function plainError(v: unknown, path?: string): string {
  try {
    fromPlain(v, path)
  } catch (e) {
    expect(e).toBeInstanceOf(JsonError)
    return (e as JsonError).message
  }
  throw new Error('converted without error')
}

describe('fromPlain', () => {
  it('converts numbers by integrality', () => {
    expect(fromPlain(1)).toEqual(jsonInt(1n))
    expect(fromPlain(-0)).toEqual(jsonInt(0n))
    expect(fromPlain(1.5)).toEqual(jsonFloat(1.5))
    expect(fromPlain(NaN)).toEqual(jsonFloat(NaN))
    expect(fromPlain(-Infinity)).toEqual(jsonFloat(-Infinity))
    expect(fromPlain(2 ** 60)).toEqual(jsonInt(2n ** 60n))
    expect(fromPlain(12345678901234567890123n)).toEqual(jsonInt(12345678901234567890123n))
  })

  it('converts containers like JSON.stringify', () => {
    const date = new Date(Date.UTC(2024, 0, 2, 3, 4, 5))
    const v = { b: [1, undefined, 'x'], a: { skip: undefined, d: date }, m: new Map([['k', true]]), n: null }
    expect(stringifyPlain(v)).toBe('{"a":{"d":"2024-01-02T03:04:05.000Z"},"b":[1,null,"x"],"m":{"k":true},"n":null}')
    expect(stringifyPlain(Object.assign(Object.create(null) as object, { z: 1 }))).toBe('{"z":1}')
    expect(stringifyPlain({ toJSON: (key: string) => ({ key }) })).toBe('{"key":""}')
    expect(stringifyPlain({ p: { toJSON: (key: string) => key } })).toBe('{"p":"p"}')
    expect(stringifyPlain({ [Symbol('s')]: 1, s: 'é' })).toBe('{"s":"\\u00e9"}')
  })

  it('allows shared (non-circular) references', () => {
    const shared = { x: 1 }
    expect(stringifyPlain([shared, { shared }])).toBe('[{"x":1},{"shared":{"x":1}}]')
  })

  it('rejects cycles', () => {
    const a: Record<string, unknown> = { items: [] }
    ;(a['items'] as unknown[]).push({ back: a })
    expect(plainError(a, 'msg')).toBe('msg.items[0].back is a circular reference')
  })

  it('names the path of unsupported values', () => {
    expect(plainError({ items: [1, 2, 3, () => 1] }, 'msg')).toMatch(/^msg\.items\[3\] is a function/)
    expect(plainError({ 'a b': Symbol('x') }, 'msg')).toMatch(/^msg\["a b"\] is a symbol/)
    expect(plainError({ x: new (class Thing {})() })).toMatch(/^value\.x is an instance of Thing/)
    expect(plainError(new Map([[1, 2]]), 'm')).toMatch(/^m is a Map with a key that is not a string/)
    expect(plainError(undefined, 'msg')).toMatch(/^msg is undefined/)
  })

  it('limits nesting', () => {
    const nest = (n: number): unknown => (n === 0 ? 1 : [nest(n - 1)])
    expect(() => fromPlain(nest(64))).not.toThrow()
    expect(plainError(nest(65))).toContain('too deeply nested')
    expect(() => fromPlain(nest(65), 'v', { maxDepth: 65 })).not.toThrow()
  })
})

describe('toPlain', () => {
  it('returns numbers or bigints', () => {
    expect(toPlain(jsonInt(9007199254740991n))).toBe(9007199254740991)
    expect(toPlain(jsonInt(-9007199254740991n))).toBe(-9007199254740991)
    expect(toPlain(jsonInt(9007199254740992n))).toBe(9007199254740992n)
    expect(toPlain(jsonInt(-9007199254740992n))).toBe(-9007199254740992n)
    expect(toPlain(jsonFloat(1))).toBe(1)
  })

  it('round-trips big integers through text', () => {
    const text = '{"big":123456789012345678901234567890,"small":-5}'
    const plain = toPlain(parseJson(text)) as Record<string, unknown>
    expect(plain).toEqual({ big: 123456789012345678901234567890n, small: -5 })
    expect(stringifyPlain(plain)).toBe(text)
  })

  it('makes __proto__ an own property', () => {
    const plain = toPlain(parseJson('{"__proto__":{"polluted":true},"a":[1,"x",null]}')) as Record<string, unknown>
    expect(Object.getPrototypeOf(plain)).toBe(Object.prototype)
    expect(Object.keys(plain)).toEqual(['__proto__', 'a'])
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined()
    expect(plain['a']).toEqual([1, 'x', null])
    expect(canonicalize(fromPlain(plain))).toBe('{"__proto__":{"polluted":true},"a":[1,"x",null]}')
  })
})
