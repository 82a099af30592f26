import { isUtf8 } from 'node:buffer'
import { InvalidArgumentError } from '../errors.js'
import type { RawMessage } from './transport.js'
import { TransportDropReason } from './transport.js'

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
 * Checks the arguments of `PubSocket.send` and returns the body as bytes the
 * caller can no longer change (a copy of a Buffer; a string is encoded later).
 * Throws {@link InvalidArgumentError} when `topic` is not a string or `body`
 * is neither a Buffer (any Uint8Array) nor a string.
 */
export function checkSendArguments(topic: unknown, body: unknown): Buffer | string {
  if (typeof topic !== 'string') throw InvalidArgumentError.format('send: topic', 'a string', topic)
  if (typeof body === 'string') return body
  if (body instanceof Uint8Array) return Buffer.from(body)
  throw InvalidArgumentError.format('send: body', 'a Buffer or a string', body)
}

/** Returns `prefix` if it is a string, else throws {@link InvalidArgumentError}. */
export function checkPrefix(prefix: unknown): string {
  if (typeof prefix !== 'string') throw InvalidArgumentError.format('subscribe: prefix', 'a string', prefix)
  return prefix
}

/**
 * Returns `prefixes` (default `['']`) if it is an array of strings, else
 * throws {@link InvalidArgumentError}.
 */
export function checkPrefixes(prefixes: unknown): readonly string[] {
  if (prefixes === undefined) return ['']
  if (!Array.isArray(prefixes) || !prefixes.every((p) => typeof p === 'string')) {
    throw InvalidArgumentError.format('openSubscriber: prefixes', 'an array of strings', prefixes)
  }
  return [...(prefixes as string[])]
}

/** The error of a second `[Symbol.asyncIterator]()` on a subscriber while its first iterator is active. */
export function secondIteratorError(what: string): InvalidArgumentError {
  return new InvalidArgumentError(`${what}: expected at most one active iterator, got a second one (end the first with return() or break)`)
}
