import { InvalidArgumentError } from '../errors.js'

/**
 * Checkers for programmatic options, usable from every layer. Each returns the
 * value it accepts and throws {@link InvalidArgumentError} with the one
 * "expected X, got Y" message ({@link InvalidArgumentError.format}) otherwise.
 */

/**
 * Returns `value` if it is an integer in `[min, max]` (and `Infinity` too, when
 * `orInfinity`: the API's "no limit"), else throws {@link InvalidArgumentError}.
 */
export function checkInteger(name: string, value: number, min: number, max = Number.MAX_SAFE_INTEGER, orInfinity = false): number {
  if (orInfinity && value === Infinity) return value
  if (!Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in [${min}, ${max}]`
    throw InvalidArgumentError.format(name, `an integer ${range}${orInfinity ? ' or Infinity' : ''}`, value)
  }
  return value
}

/** Returns `value` if it is a boolean, else throws {@link InvalidArgumentError}. */
export function checkBoolean(name: string, value: boolean): boolean {
  if (typeof value !== 'boolean') throw InvalidArgumentError.format(name, 'a boolean', value)
  return value
}

/**
 * Returns a copy of `value` if it is an array of non-empty strings (and not
 * empty, when `nonEmpty`), else throws {@link InvalidArgumentError}.
 */
export function checkAddresses(name: string, value: readonly string[], nonEmpty = false): readonly string[] {
  if (
    !Array.isArray(value) ||
    (nonEmpty && value.length === 0) ||
    !value.every((a) => typeof a === 'string' && a.length > 0)
  ) {
    throw InvalidArgumentError.format(name, `${nonEmpty ? 'a non-empty array' : 'an array'} of endpoint strings`, value)
  }
  return [...value]
}

/** Throws {@link InvalidArgumentError} unless `value` is a finite number (a time in ms since the epoch). */
export function checkTime(name: string, value: unknown): void {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw InvalidArgumentError.format(name, 'a finite number of ms since the epoch', value)
}
