/**
 * The lossless JSON value model used for signing and verification.
 *
 * JavaScript's `JSON.parse` loses what Python's `json` keeps (integer vs float,
 * integers of any size, `-0.0`, `NaN`/`Infinity`), and a fedmsg signature covers
 * Python's re-serialisation of the parsed value. So signed envelopes are parsed
 * into this model, never into plain JS values.
 */

/** A JSON number as Python would hold it: an `int` of any size or a `float`. */
export type JsonNumber =
  | { readonly kind: 'int'; readonly value: bigint }
  | { readonly kind: 'float'; readonly value: number }

/** An object: keys in insertion order, last duplicate wins (as Python's dict). */
export type JsonObject = Map<string, JsonValue>

export type JsonValue = null | boolean | string | JsonNumber | JsonValue[] | JsonObject

export function jsonInt(value: bigint): JsonNumber {
  return { kind: 'int', value }
}

export function jsonFloat(value: number): JsonNumber {
  return { kind: 'float', value }
}

export function isJsonNumber(v: JsonValue): v is JsonNumber {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Map)
}

/**
 * A payload already in the lossless model, published exactly as it is (a
 * `1.0` stays a float). Plain JS values cannot express that distinction.
 */
export class Lossless {
  constructor(readonly value: JsonValue) {}
}
