import { isUtf8 } from 'node:buffer'
import { ConfigError, InvalidArgumentError } from '../errors.js'
import type { RawMessage } from './transport.js'
import { TransportDropReason } from './transport.js'

/**
 * Default largest message (topic + body bytes) a subscriber accepts: 1 MiB.
 * fedmsg envelopes are a few KiB (the base64 certificate is most of it); the
 * limit bounds what one peer can make a subscriber hold per message. A frame
 * over it is refused by libzmq before it is received (ZMQ_MAXMSGSIZE; the
 * connection is closed, `frame_too_large`); two frames within it but over it
 * together are received, then dropped with reason `too_large`.
 */
export const DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024

/**
 * Checks one received message. Returns the message (topic decoded, body bytes
 * unchanged) or the reason to drop it. Checks run in this order and the first
 * failure wins: exactly 2 frames (`frame_count`), topic + body bytes at most
 * `maxMessageBytes` (`too_large`), both frames valid UTF-8 (`not_utf8`).
 * Never throws.
 */
export function validateFrames(frames: readonly Buffer[], maxMessageBytes: number): RawMessage | TransportDropReason {
  if (frames.length !== 2) return TransportDropReason.FrameCount
  const topic = frames[0] as Buffer
  const body = frames[1] as Buffer
  if (topic.length + body.length > maxMessageBytes) return TransportDropReason.TooLarge
  if (!isUtf8(topic) || !isUtf8(body)) return TransportDropReason.NotUtf8
  return { topic: topic.toString('utf8'), body }
}

/**
 * Returns `value` if it is an integer in `[min, max]`, else throws
 * {@link ConfigError} saying what was expected and what was given.
 */
export function checkInteger(name: string, value: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in [${min}, ${max}]`
    throw new ConfigError(`${name}: expected an integer ${range}, got ${String(value)}`)
  }
  return value
}

/**
 * Returns a copy of `value` if it is an array of non-empty strings (and not
 * empty, when `nonEmpty`), else throws {@link ConfigError}.
 */
export function checkAddresses(name: string, value: readonly string[], nonEmpty = false): readonly string[] {
  if (
    !Array.isArray(value) ||
    (nonEmpty && value.length === 0) ||
    !value.every((a) => typeof a === 'string' && a.length > 0)
  ) {
    const what = nonEmpty ? 'a non-empty array' : 'an array'
    throw new ConfigError(`${name}: expected ${what} of endpoint strings, got ${JSON.stringify(value)}`)
  }
  return [...value]
}

/**
 * Checks the arguments of `PubSocket.send` and returns the body as bytes the
 * caller can no longer change (a copy of a Buffer; a string is encoded later).
 * Throws {@link InvalidArgumentError} when `topic` is not a string or `body`
 * is neither a Buffer (any Uint8Array) nor a string.
 */
export function checkSendArguments(topic: unknown, body: unknown): Buffer | string {
  if (typeof topic !== 'string') throw new InvalidArgumentError(`send: topic: expected a string, got ${kindOf(topic)}`)
  if (typeof body === 'string') return body
  if (body instanceof Uint8Array) return Buffer.from(body)
  throw new InvalidArgumentError(`send: body: expected a Buffer or a string, got ${kindOf(body)}`)
}

/** Returns `prefix` if it is a string, else throws {@link InvalidArgumentError}. */
export function checkPrefix(prefix: unknown): string {
  if (typeof prefix !== 'string') throw new InvalidArgumentError(`subscribe: prefix: expected a string, got ${kindOf(prefix)}`)
  return prefix
}

/**
 * Returns `prefixes` (default `['']`) if it is an array of strings, else
 * throws {@link InvalidArgumentError}.
 */
export function checkPrefixes(prefixes: unknown): readonly string[] {
  if (prefixes === undefined) return ['']
  if (!Array.isArray(prefixes) || !prefixes.every((p) => typeof p === 'string')) {
    throw new InvalidArgumentError(`openSubscriber: prefixes: expected an array of strings, got ${kindOf(prefixes)}`)
  }
  return [...(prefixes as string[])]
}

/** The error of a second `[Symbol.asyncIterator]()` on a subscriber while its first iterator is active. */
export function secondIteratorError(what: string): InvalidArgumentError {
  return new InvalidArgumentError(`${what}: expected at most one active iterator, got a second one (end the first with return() or break)`)
}

function kindOf(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return `[${value.map(kindOf).join(', ')}]`
  return typeof value === 'object' ? `an instance of ${value.constructor?.name ?? 'Object'}` : typeof value
}
