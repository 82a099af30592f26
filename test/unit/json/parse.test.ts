import { describe, expect, it } from 'vitest'
import { JsonError } from '../../../src/errors.js'
import { parseJson } from '../../../src/json/parse.js'
import { jsonFloat, jsonInt } from '../../../src/json/value.js'

function parseError(text: string, limits?: { maxDepth?: number }): JsonError {
  try {
    parseJson(text, limits)
  } catch (e) {
    expect(e).toBeInstanceOf(JsonError)
    return e as JsonError
  }
  throw new Error(`parsed without error: ${JSON.stringify(text)}`)
}

describe('parseJson values', () => {
  it('parses literals and any top-level value', () => {
    expect(parseJson('null')).toBe(null)
    expect(parseJson(' true ')).toBe(true)
    expect(parseJson('\t\r\nfalse\n')).toBe(false)
    expect(parseJson('"x"')).toBe('x')
    expect(parseJson('NaN')).toEqual(jsonFloat(NaN))
    expect(parseJson('Infinity')).toEqual(jsonFloat(Infinity))
    expect(parseJson('-Infinity')).toEqual(jsonFloat(-Infinity))
    expect(parseJson('[NaN,-Infinity]')).toEqual([jsonFloat(NaN), jsonFloat(-Infinity)])
  })

  it('keeps number kinds and precision', () => {
    expect(parseJson('0')).toEqual(jsonInt(0n))
    expect(parseJson('-0')).toEqual(jsonInt(0n))
    expect(parseJson('123456789012345')).toEqual(jsonInt(123456789012345n))
    expect(parseJson('-9007199254740993')).toEqual(jsonInt(-9007199254740993n))
    expect(parseJson('12345678901234567890123')).toEqual(jsonInt(12345678901234567890123n))
    expect(parseJson('1.0')).toEqual(jsonFloat(1))
    expect(parseJson('1E5')).toEqual(jsonFloat(100000))
    expect(parseJson('2e-3')).toEqual(jsonFloat(0.002))
    expect(parseJson('1e+2')).toEqual(jsonFloat(100))
    expect(parseJson('1e400')).toEqual(jsonFloat(Infinity))
    expect(parseJson('-1e400')).toEqual(jsonFloat(-Infinity))
    expect(Object.is((parseJson('-0.0') as { value: number }).value, -0)).toBe(true)
    expect(Object.is((parseJson('-0e0') as { value: number }).value, -0)).toBe(true)
  })

  it('decodes string escapes', () => {
    expect(parseJson('"a\\"b\\\\c\\/d\\b\\f\\n\\r\\t"')).toBe('a"b\\c/d\b\f\n\r\t')
    expect(parseJson('"\\u00e9\\u00C9\\ud83d\\ude00"')).toBe('éÉ😀')
    expect(parseJson('"é😀\u007f\u2028"')).toBe('é😀\u007f\u2028')
  })

  it('decodes long strings, with and without escapes', () => {
    const long = 'abcdefghijklmnopqrstuvwxyz0123456789'
    expect(parseJson(`["${long}"]`)).toEqual([long])
    expect(parseJson(`"${long}\\n${long}\\u0041"`)).toBe(`${long}\n${long}A`)
    expect(parseJson(`"${long}é\u2028"`)).toBe(`${long}é\u2028`)
  })

  it('keeps lone surrogates', () => {
    expect(parseJson('"\\ud800"')).toBe('\ud800')
    expect(parseJson('"a\\udc00b"')).toBe('a\udc00b')
    expect(parseJson('"\\ude00\\ud83d"')).toBe('\ude00\ud83d')
    expect(parseJson('"\ud800"')).toBe('\ud800')
  })

  it('lets the last duplicate key win', () => {
    const v = parseJson('{"a":1,"b":2,"a":3}')
    expect(v).toEqual(new Map([['a', jsonInt(3n)], ['b', jsonInt(2n)]]))
  })

  it('parses nested containers with whitespace', () => {
    expect(parseJson(' { "a" : [ 1 , { } , [ ] ] , "b" : { "c" : null } } ')).toEqual(
      new Map<string, unknown>([
        ['a', [jsonInt(1n), new Map(), []]],
        ['b', new Map([['c', null]])],
      ]),
    )
  })
})

describe('parseJson errors', () => {
  it.each([
    ['', 'Expecting value'],
    ['   ', 'Expecting value'],
    ['{"a":1} x', 'Extra data'],
    ['1 2', 'Extra data'],
    ['[1]]', 'Extra data'],
    ['\ufeff{}', 'Expecting value'],
    ['\u00a0{}', 'Expecting value'],
    ['{}\f', 'Extra data'],
    ['01', 'Extra data'],
    ['-01', 'Extra data'],
    ['[01]', "Expecting ',' delimiter"],
    ['1.', 'Extra data'],
    ['.5', 'Expecting value'],
    ['1e', 'Extra data'],
    ['1e+', 'Extra data'],
    ['+1', 'Expecting value'],
    ['-', 'Expecting value'],
    ['-NaN', 'Expecting value'],
    ['+Infinity', 'Expecting value'],
    ['nan', 'Expecting value'],
    ['tru', 'Expecting value'],
    ['"a\nb"', 'Invalid control character'],
    ['"a\u0000"', 'Invalid control character'],
    ['"\t"', 'Invalid control character'],
    ['"abcdefghijklmnopqrstuvwxyz\u0001"', 'Invalid control character'],
    ['"abcdefghijklmnopqrstuvwxyz', 'Unterminated string'],
    ['"abcdefghijklmnopqrstuvwxyz\\q"', 'Invalid \\escape'],
    ['"\\x41"', 'Invalid \\escape'],
    ["'a'", 'Expecting value'],
    ['"\\\'"', 'Invalid \\escape'],
    ['"\\u12"', 'Invalid \\uXXXX escape'],
    ['"\\u12G4"', 'Invalid \\uXXXX escape'],
    ['"abc', 'Unterminated string'],
    ['"abc\\', 'Unterminated string'],
    ['"ab\\n', 'Unterminated string'],
    ['[1,]', 'Expecting value'],
    ['[1 2]', "Expecting ',' delimiter"],
    ['[', 'Expecting value'],
    ['{"a":1,}', 'Expecting property name'],
    ['{a:1}', 'Expecting property name'],
    ['{"a" 1}', "Expecting ':' delimiter"],
    ['{"a":1 "b":2}', "Expecting ',' delimiter"],
    ['{"a":1', "Expecting ',' delimiter"],
  ])('rejects %j (%s)', (text, message) => {
    expect(parseError(text).message).toContain(message)
  })

  it('gives the position', () => {
    expect(parseError('{"a":\n  [1, x]}').message).toBe('Expecting value: line 2 column 7 (char 12)')
    expect(parseError('[1] x').message).toBe('Extra data: line 1 column 5 (char 4)')
  })

  it('throws JsonError, not a stack overflow, on 100000 levels of nesting', () => {
    const deep = '['.repeat(100_000) + ']'.repeat(100_000)
    expect(parseError(deep).message).toContain('too deeply nested')
    expect(parseError('{"a":'.repeat(100_000)).message).toContain('too deeply nested')
    expect(() => parseJson(deep, { maxDepth: 1_000_000 })).not.toThrow()
  })

  it('enforces maxDepth exactly', () => {
    const nest = (n: number): string => '['.repeat(n) + ']'.repeat(n)
    expect(() => parseJson(nest(64))).not.toThrow()
    expect(parseError(nest(65)).message).toContain('too deeply nested')
    expect(parseError('{"a":'.repeat(64) + '{}' + '}'.repeat(64)).message).toContain('too deeply nested')
    expect(() => parseJson('{"a":'.repeat(63) + '{}' + '}'.repeat(63))).not.toThrow()
    expect(() => parseJson(nest(3), { maxDepth: 3 })).not.toThrow()
    expect(parseError(nest(4), { maxDepth: 3 }).message).toContain('too deeply nested')
    expect(parseJson('1', { maxDepth: 0 })).toEqual(jsonInt(1n))
    expect(parseError('[]', { maxDepth: 0 }).message).toContain('too deeply nested')
  })
})

describe('integer size limit (as Python 3.11+)', () => {
  it('accepts 4300 digits and refuses 4301', async () => {
    const { MAX_INT_DIGITS } = await import('../../../src/json/parse.js')
    expect(MAX_INT_DIGITS).toBe(4300)
    expect(parseJson('9'.repeat(4300))).toEqual({ kind: 'int', value: BigInt('9'.repeat(4300)) })
    expect(parseJson('-' + '9'.repeat(4300))).toEqual({ kind: 'int', value: -BigInt('9'.repeat(4300)) })
    expect(() => parseJson('9'.repeat(4301))).toThrow(/Exceeds the limit \(4300 digits\)/)
    expect(parseJson('9'.repeat(5000) + '.0')).toEqual({ kind: 'float', value: Infinity })
  })
})
