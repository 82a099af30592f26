/**
 * One error system: a subclass per code (so `instanceof` and `code` agree), and one
 * formatter for "expected X, got Y" messages.
 */
import { describe as suite, expect, it } from 'vitest'
import {
  AbortedError,
  AckTimeoutError,
  CertificateError,
  ClosedError,
  ConfigError,
  DeliveryRejectedError,
  describe,
  ErrorCode,
  GilmsgError,
  InvalidArgumentError,
  JsonError,
  SigningError,
  StoreError,
  TransportError,
  UsageError,
} from '../../src/errors.js'
import { checkAddresses, checkBoolean, checkInteger } from '../../src/util/options.js'

suite('error classes', () => {
  it('every code has its subclass, and each subclass carries its code', () => {
    const made: GilmsgError[] = [
      new ConfigError('x'),
      new UsageError('x'),
      new InvalidArgumentError('x'),
      new JsonError('x'),
      new CertificateError('x'),
      new SigningError('x'),
      new TransportError('x'),
      new ClosedError('x'),
      new AckTimeoutError('m', [], ['a'], 1),
      new DeliveryRejectedError('m', 'a', 'no'),
      new StoreError('outbox', 'x'),
      new AbortedError('x'),
    ]
    // ErrorCode.Outbox is a deprecated alias of ErrorCode.Store (the same value).
    expect(made.map((e) => e.code).sort()).toEqual([...new Set(Object.values(ErrorCode))].sort())
    for (const e of made) expect(e).toBeInstanceOf(GilmsgError)
  })

  it('ClosedError says "<what> is closed" unless given a message', () => {
    expect(new ClosedError('publisher').message).toBe('publisher is closed')
    expect(new ClosedError('publisher', 'publisher closed while waiting').message).toBe('publisher closed while waiting')
  })
})

suite('describe: the one way a value is shown after "got"', () => {
  it.each([
    [-1, '-1'],
    [1.5, '1.5'],
    [NaN, 'NaN'],
    [Infinity, 'Infinity'],
    ['10', '"10"'],
    [true, 'true'],
    [null, 'null'],
    [undefined, 'undefined'],
    [10n, '10n'],
    [['a', 1], 'an array ["a",1]'],
    [{ a: 1 }, 'an object {"a":1}'],
    [new Map(), 'an instance of Map'],
    [Object.create(null), 'an object without a prototype'],
    [() => 1, 'a function'],
    [Symbol('s'), 'a symbol'],
  ] as const)('%s -> %s', (value, shown) => {
    expect(describe(value)).toBe(shown)
  })

  it('is short and never throws (long strings, cycles, bigints inside)', () => {
    expect(describe('x'.repeat(1000)).length).toBeLessThan(80)
    const cyclic: Record<string, unknown> = {}
    cyclic['self'] = cyclic
    expect(describe(cyclic)).toBe('an object')
    expect(describe([1n])).toBe('an array of length 1')
  })

  it('the formatters of InvalidArgumentError, ConfigError and UsageError use it', () => {
    const e = InvalidArgumentError.format('lingerMs', 'an integer >= -1', '5')
    expect(e).toBeInstanceOf(InvalidArgumentError)
    expect(e.message).toBe('lingerMs: expected an integer >= -1, got "5"')
    expect(ConfigError.format('f.json: key "a"', 'true or false', 'yes').message).toBe('f.json: key "a": expected true or false, got "yes"')
    expect(UsageError.format('--count', 'a whole number >= 1', 'x')).toMatchObject({ code: ErrorCode.Usage, message: '--count: expected a whole number >= 1, got "x"' })
  })
})

suite('option checkers (util/options.ts)', () => {
  it('throw InvalidArgumentError with the one message form', () => {
    expect(checkInteger('n', 3, 1, 5)).toBe(3)
    expect(() => checkInteger('n', 0, 1, 5)).toThrow(new InvalidArgumentError('n: expected an integer in [1, 5], got 0'))
    expect(() => checkInteger('n', '2' as unknown as number, 1)).toThrow(new InvalidArgumentError('n: expected an integer >= 1, got "2"'))
    expect(checkInteger('n', Infinity, 1, 5, true)).toBe(Infinity)
    expect(() => checkInteger('n', Infinity, 1, 5)).toThrow(InvalidArgumentError)
    expect(() => checkInteger('n', 0, 1, 5, true)).toThrow('n: expected an integer in [1, 5] or Infinity, got 0')
    expect(() => checkBoolean('b', 1 as unknown as boolean)).toThrow('b: expected a boolean, got 1')
    expect(() => checkAddresses('a', ['x', ''], true)).toThrow('a: expected a non-empty array of endpoint strings, got an array ["x",""]')
  })
})
