import { describe, expect, it } from 'vitest'
import { JsonError } from '../../../src/errors.js'
import { canonicalBytes, canonicalize, compareCodePoints, pythonFloatRepr } from '../../../src/json/canonical.js'
import { jsonFloat, jsonInt, type JsonValue } from '../../../src/json/value.js'

describe('pythonFloatRepr', () => {
  it.each([
    [0, '0.0'],
    [-0, '-0.0'],
    [1, '1.0'],
    [-1.5, '-1.5'],
    [100000, '100000.0'],
    [0.1, '0.1'],
    [0.0001, '0.0001'],
    [0.00001, '1e-05'],
    [0.000123, '0.000123'],
    [0.0000123, '1.23e-05'],
    [1e15, '1000000000000000.0'],
    [9999999999999998, '9999999999999998.0'],
    [1e16, '1e+16'],
    [-1e16, '-1e+16'],
    [1.5e16, '1.5e+16'],
    [1e21, '1e+21'],
    [1e22, '1e+22'],
    [123456789012345678, '1.2345678901234568e+17'],
    [5e-324, '5e-324'],
    [1.7976931348623157e308, '1.7976931348623157e+308'],
    [2.2250738585072014e-308, '2.2250738585072014e-308'],
    [0.30000000000000004, '0.30000000000000004'],
    [1e-7, '1e-07'],
    [1.2e-7, '1.2e-07'],
    [1e100, '1e+100'],
    [NaN, 'NaN'],
    [Infinity, 'Infinity'],
    [-Infinity, '-Infinity'],
  ])('%s -> %s', (x, expected) => {
    expect(pythonFloatRepr(x)).toBe(expected)
  })
})

describe('compareCodePoints', () => {
  it('orders astral characters after the BMP private use area', () => {
    expect(['\u{1f600}', '\ue000', 'b', 'B', ''].sort(compareCodePoints)).toEqual(['', 'B', 'b', '\ue000', '\u{1f600}'])
  })

  it('treats lone surrogates as their own code points', () => {
    expect(compareCodePoints('\ud800', '\ue000')).toBeLessThan(0)
    expect(compareCodePoints('\udfff', '\ue000')).toBeLessThan(0)
    expect(compareCodePoints('\ud83d\ude00', '\ud83d\ue000')).toBeGreaterThan(0)
    expect(compareCodePoints('\ud83d', '\ud83d\ude00')).toBeLessThan(0)
    expect(compareCodePoints('\ud83da', '\ud83db')).toBeLessThan(0)
    expect(compareCodePoints('\ud83d\ud800', '\ud83d\ude00')).toBeLessThan(0)
    expect(compareCodePoints('x\ud83d\ude00', 'x\ud83d\ude01')).toBeLessThan(0)
    expect(compareCodePoints('abc', 'abc')).toBe(0)
  })
})

describe('canonicalize', () => {
  it('sorts keys and uses compact separators', () => {
    const v: JsonValue = new Map<string, JsonValue>([
      ['b', jsonInt(1n)],
      ['a', [true, false, null, new Map([['z', 'y']])]],
      ['\u{1f600}', jsonFloat(2)],
      ['\ue000', new Map()],
    ])
    expect(canonicalize(v)).toBe('{"a":[true,false,null,{"z":"y"}],"b":1,"\\ue000":{},"\\ud83d\\ude00":2.0}')
  })

  it('escapes strings as ensure_ascii does', () => {
    expect(canonicalize('"\\/\b\f\n\r\t\u0000\u001f \u007f\u0080é\u2028\u{1f600}\ud800~')).toBe(
      '"\\"\\\\/\\b\\f\\n\\r\\t\\u0000\\u001f \\u007f\\u0080\\u00e9\\u2028\\ud83d\\ude00\\ud800~"',
    )
    expect(canonicalize('</script>')).toBe('"</script>"')
    const long = 'abcdefghijklmnopqrstuvwxyz'
    expect(canonicalize(long)).toBe(`"${long}"`)
    expect(canonicalize(`${long}\n${long}é`)).toBe(`"${long}\\n${long}\\u00e9"`)
  })

  it('writes ints of any size', () => {
    expect(canonicalize(jsonInt(-(10n ** 40n)))).toBe('-1' + '0'.repeat(40))
    expect(canonicalize([jsonInt(0n), jsonInt(-0n)])).toBe('[0,0]')
  })

  it('returns ASCII bytes', () => {
    expect(canonicalBytes(new Map([['k', 'é']]))).toEqual(Buffer.from('{"k":"\\u00e9"}'))
  })

  it('rejects values outside the model', () => {
    expect(() => canonicalize({ kind: 'int', value: 1 } as unknown as JsonValue)).toThrow(JsonError)
    expect(() => canonicalize(undefined as unknown as JsonValue)).toThrow(JsonError)
    expect(() => canonicalize(new Map([[1, null]]) as unknown as JsonValue)).toThrow(JsonError)
  })
})

describe('canonicalize cost', () => {
  it('stays linear on deeply nested objects whose keys need sorting', () => {
    let v: JsonValue = null
    for (let i = 0; i < 60; i++) v = new Map<string, JsonValue>([['b', v], ['a', jsonInt(BigInt(i))]])
    const start = performance.now()
    const text = canonicalize(v)
    expect(performance.now() - start).toBeLessThan(1000)
    expect(text.startsWith('{"a":59,"b":{"a":58,')).toBe(true)
  })
})
