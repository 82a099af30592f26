/**
 * Hostile and broken input at a real socket (issue #5, section 3; wire.md W1, W2, W6, W7).
 *
 * A raw ZeroMQ `Publisher` bound on tcp://127.0.0.1:* throws fast-check-generated junk at a
 * real gilmsg consumer, interleaved with valid signed messages:
 *   - frame counts 0..5, random bytes, invalid UTF-8 in either frame;
 *   - messages over `max_message_bytes` (256 KiB here) made of frames within it (`too_large`);
 *   - JSON that Python's `json.loads` refuses, JSON that is not an object, nesting from 60 to
 *     100,000 levels (the 64/65 boundary included), objects missing `topic` / `msg_id` or with
 *     the wrong types, a frame 0 that is not the signed topic;
 *   - signed envelopes with `crypto`, `signature`, `certificate` of the wrong type or value,
 *     re-written payloads (1e999999, -0, 123456789012345678901234567890, "\ud800", NaN, a
 *     200,000-digit integer, ...), certificates from another CA with the same CN, expired,
 *     not yet valid and revoked certificates, and a signer the routing policy refuses.
 * Valid messages carry the same hostile numbers and strings, signed for real: they must
 * arrive, once each. Every batch ends with a sentinel (a guaranteed message for the consumer);
 * once it is delivered, everything before it has been handled (ZeroMQ keeps per-connection
 * order), and the drop counters must have grown by exactly the junk sent, by reason: exactly
 * for every junk message whose fate is known by construction (all of them except random byte
 * pairs that happen to be UTF-8, which only count in the total).
 *
 * Two consumers: an in-process `Gilmsg` subscriber (`bus.drops`, fast-check with shrinking),
 * and a `gilmsg tail --verbose --stats` subprocess (drop lines on stderr, the final stats
 * line, its RSS from /proc, its exit code after SIGTERM), which proves "never crashes".
 *
 * A frame over `max_message_bytes` costs its connection (libzmq refuses it after its header,
 * `frame_too_large`), so the batches never carry one; the last suite sends one of 300 MiB to a
 * `gilmsg relay` and to a `gilmsg tail` subprocess: their peak RSS stays under 150 MB, the drop
 * is reported, and the next message goes through.
 *
 * Replay: GILMSG_FUZZ_SEED=<seed printed in the describe name>.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isUtf8 } from 'node:buffer'
import Database from 'better-sqlite3'
import fc from 'fast-check'
import { Publisher, Subscriber } from 'zeromq'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { leafSigner } from '../support/memory-bus.js'
import { parseConfig } from '../../src/config/config.js'
import { createTestPki, type TestPki } from '../support/pki.js'
import { revokeCert } from '../../src/crypto/certs.js'
import type { Signer } from '../../src/crypto/types.js'
import { createVerifier } from '../../src/crypto/verifier.js'
import { buildEnvelope, envelopeField, openEnvelope, sealEnvelope } from '../../src/envelope/envelope.js'
import { parseJson } from '../../src/json/parse.js'
import { Lossless } from '../../src/json/value.js'
import { openGilmsg } from '../../src/reliable/from-config.js'
import type { Gilmsg } from '../../src/reliable/gilmsg.js'
import type { Delivery } from '../../src/reliable/consumer.js'
import { CliProcess, logLine, logRecord, statsOf } from '../support/cli.js'
import { sleep, waitUntil, withTimeout, writeConfigFile } from '../support/reliable-net.js'

const SEED = Number(process.env['GILMSG_FUZZ_SEED'] ?? Date.now() % 1_000_000_000)
const MAX_BYTES = 256 * 1024
const PREFIX = 'org.test.it.'
const topicOf = (t: string): string => `${PREFIX}gilmsg.${t}`
const POLICED = topicOf('policed')
const CONSUMER = 'sink'

const TRANSPORT_REASONS = ['frame_count', 'not_utf8', 'too_large', 'frame_too_large'] as const
/** What must happen to a message: a drop reason, `envelope` (dropped after the transport, reason unknown), delivered, or nothing at all. */
type Fate = string

interface Item {
  readonly label: string
  readonly frames: Buffer[]
  readonly fate: Fate
  /** For `valid` items. */
  readonly msgId?: string
}

interface Signers {
  readonly pub: Signer
  readonly otherCaPub: Signer
  readonly expired: Signer
  readonly future: Signer
  readonly revoked: Signer
  readonly mallory: Signer
}

let dir: string
let pki: TestPki
let signers: Signers
let seq = 0

/** The transport's verdict, computed independently (W1): frame count, then size, then UTF-8. */
function transportFate(frames: readonly Buffer[]): Fate | undefined {
  if (frames.some((f) => f.length > MAX_BYTES)) throw new Error('a frame over MAX_BYTES costs the connection: not for a batch')
  if (frames.length === 0) return 'nothing' // ZeroMQ sends nothing for a message without frames
  if (frames.length !== 2) return 'frame_count'
  if ((frames[0] as Buffer).length + (frames[1] as Buffer).length > MAX_BYTES) return 'too_large'
  if (!isUtf8(frames[0] as Buffer) || !isUtf8(frames[1] as Buffer)) return 'not_utf8'
  return undefined
}

function item(label: string, frames: Buffer[], envelopeFate: Fate, msgId?: string): Item {
  const fate = transportFate(frames) ?? envelopeFate
  return { label, frames, fate, ...(fate === 'valid' && msgId !== undefined ? { msgId } : {}) }
}

function textItem(label: string, topic: string, body: string, envelopeFate: Fate, msgId?: string): Item {
  return item(label, [Buffer.from(topic), Buffer.from(body)], envelopeFate, msgId)
}

interface Sealed {
  readonly topic: string
  readonly body: string
  readonly msgId: string
  readonly digest: string
}

function seal(signer: Signer, topic: string, msg: unknown, extra?: Record<string, unknown>, msgId?: string): Sealed {
  const env = buildEnvelope({ topic, msg, i: ++seq, nowMs: Date.now(), username: 'fuzz', ...(extra ? { extra } : {}), ...(msgId ? { msgId } : {}) })
  return sealEnvelope(env, signer)
}

const losslessOf = (text: string): Lossless => new Lossless(parseJson(text, { maxDepth: 64 }))

/** Numbers and strings that break naive parsers, as JSON text (all valid for Python's json.loads). */
const HOSTILE_VALUES = [
  '1e999999',
  '-1e999999',
  '1E-999999',
  '-0',
  '-0.0',
  '123456789012345678901234567890',
  '-123456789012345678901234567890.5e-3',
  '"\\ud800"',
  '"\\udfff\\ud800"',
  '"\\u0000\\u001f\\u007f\\u2028"',
  'NaN',
  '-Infinity',
  '1.7976931348623157e308',
  '5e-324',
  // Python 3.11+ refuses integers of more than 4300 digits, and so does gilmsg: 4300 is the largest.
  '9'.repeat(4300),
  `-${'9'.repeat(4300)}`,
  `${'1'.repeat(5000)}.5`,
  `"${'\\ud83d'.repeat(2000)}"`,
  `"${'é'.repeat(20000)}"`,
  // 63 levels: inside an envelope object that is 64, the limit.
  '['.repeat(63) + ']'.repeat(63),
  '{"__proto__": 1, "": [], "a": 1, "a": 2}',
]

/** Text Python's json.loads refuses (checked against CPython 3). */
const NOT_JSON = [
  '',
  ' ',
  '\ufeff{}',
  '{"a": 01}',
  '{"a": 1.}',
  '{"a": .5}',
  '{"a": +1}',
  '{"a": 0x10}',
  '{"a": Infinityx}',
  '{"a": nan}',
  '{"a": -NaN}',
  "{'a': 1}",
  '{"a": 1,}',
  '[1,]',
  '{"a": 1} // c',
  '{"a": "\u0001"}',
  '{"a": "\\x"}',
  '{"a": "\\u12"}',
  '{"a" 1}',
  '{"a": tru}',
  '{"a": 1e+}',
  '{"a": --1}',
  '{"a": [}',
  '{"a": 1}}',
  '{"a": 1}\u0000',
  'undefined',
  '{"topic": "x", "msg_id": "y"',
  // Over Python's 4300-digit limit for integers (a float of any length is fine).
  '9'.repeat(4301),
  `{"topic": "x", "msg_id": "y", "msg": -${'9'.repeat(4301)}}`,
]

const smallFrame = fc.oneof(
  fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)),
  fc.string({ maxLength: 40 }).map((s) => Buffer.from(s)),
  fc.constant(Buffer.alloc(0)),
)
const hugeFrame = fc.integer({ min: MAX_BYTES - 16, max: MAX_BYTES }).map((n) => Buffer.alloc(n, 0x61))
const nonString = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.string({ maxLength: 5 }), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.integer(), { maxKeys: 3 }),
)
const INVALID_UTF8 = [
  Buffer.from([0xff]),
  Buffer.from([0xc3, 0x28]),
  Buffer.from([0xed, 0xa0, 0x80]), // UTF-8 of the lone surrogate U+D800
  Buffer.from([0xc0, 0x80]), // overlong NUL
  Buffer.from([0xf4, 0x90, 0x80, 0x80]), // above U+10FFFF
  Buffer.from([0xf0, 0x9f, 0x98]), // truncated
]

function insertAt(buf: Buffer, at: number, what: Buffer): Buffer {
  const i = Math.min(at, buf.length)
  return Buffer.concat([buf.subarray(0, i), what, buf.subarray(i)])
}

function mutate(sealed: Sealed, change: (env: Record<string, unknown>) => void): string {
  const env = JSON.parse(sealed.body) as Record<string, unknown>
  change(env)
  return JSON.stringify(env)
}

/** One hostile or valid message, with its fate known by construction. */
function itemArb(s: Signers): fc.Arbitrary<Item> {
  const validTopic = fc.constantFrom('valid', 'a.b.c', 'ümlaut', 'x'.repeat(200)).map(topicOf)
  const plain = fc.jsonValue({ maxDepth: 4 })
  const base = (): Sealed => seal(s.pub, topicOf('victim'), 'PLACEHOLDER')

  const frameCount = fc
    .oneof(fc.array(smallFrame, { maxLength: 5 }), fc.array(fc.oneof(smallFrame, hugeFrame), { minLength: 3, maxLength: 4 }))
    .filter((f) => f.length !== 2)
    .map((frames) => item(`${frames.length} frames`, frames, 'frame_count'))

  const randomPair = fc.tuple(smallFrame, smallFrame).map(([a, b]) => item('random bytes', [a, b], 'envelope'))

  const notUtf8 = fc
    .tuple(fc.constantFrom(...INVALID_UTF8), fc.nat(), fc.boolean())
    .map(([bad, at, inTopic]) => {
      const b = base()
      const topic = Buffer.from(b.topic)
      const body = Buffer.from(b.body)
      return item(
        `invalid UTF-8 ${bad.toString('hex')} in frame ${inTopic ? 0 : 1}`,
        inTopic ? [insertAt(topic, at % (topic.length + 1), bad), body] : [topic, insertAt(body, at % (body.length + 1), bad)],
        'not_utf8',
      )
    })

  // Over the limit together, each frame within it (the body up to MAX_BYTES, a topic up to MAX_BYTES).
  const tooLarge = fc
    .tuple(fc.integer({ min: 1, max: MAX_BYTES }), fc.constantFrom('filler', 'padded envelope', 'invalid utf8', 'huge topic'))
    .map(([excess, kind]) => {
      const b = base()
      const topic = Buffer.from(b.topic)
      const bodyBytes = Math.min(MAX_BYTES, MAX_BYTES - topic.length + excess)
      let frames: Buffer[]
      if (kind === 'padded envelope') frames = [topic, Buffer.concat([Buffer.from(b.body), Buffer.alloc(bodyBytes - b.body.length, 0x20)])]
      else if (kind === 'invalid utf8') frames = [topic, Buffer.alloc(bodyBytes, 0xff)]
      else if (kind === 'huge topic') frames = [Buffer.alloc(Math.min(MAX_BYTES, MAX_BYTES - b.body.length + excess), 0x74), Buffer.from(b.body)]
      else frames = [topic, Buffer.alloc(bodyBytes, 0x78)]
      return item(`too large (${kind}, ${frames[0]!.length + frames[1]!.length} B)`, frames, 'too_large')
    })

  const notJson = fc.oneof(
    fc.constantFrom(...NOT_JSON).map((t) => textItem(`not JSON ${JSON.stringify(t).slice(0, 30)}`, topicOf('x'), t, 'not_json')),
    fc.string({ maxLength: 60 }).map((t) => textItem('"@" + random text', topicOf('x'), `@${t}`, 'not_json')),
    fc.nat().map((n) => {
      const b = base()
      const cut = 1 + (n % (b.body.length - 1))
      return textItem(`envelope truncated at ${cut}`, b.topic, b.body.slice(0, cut), 'not_json')
    }),
  )

  const notObject = fc.oneof(
    plain
      .filter((v) => typeof v !== 'object' || v === null || Array.isArray(v))
      .map((v) => textItem('JSON non-object', topicOf('x'), JSON.stringify(v), 'not_object')),
    fc.constantFrom(...HOSTILE_VALUES.filter((t) => !t.startsWith('{'))).map((t) => textItem(`top-level ${t.slice(0, 20)}`, topicOf('x'), t, 'not_object')),
  )

  const deep = fc
    .tuple(fc.oneof(fc.integer({ min: 60, max: 70 }), fc.integer({ min: 65, max: 100_000 })), fc.constantFrom('array', 'object', 'mixed', 'unclosed', 'in envelope'))
    .map(([levels, shape]) => {
      // As deep as asked, within MAX_BYTES (a larger frame costs the connection; not for a batch).
      const bytesPerLevel = { array: 2, object: 6, mixed: 8, unclosed: 1, 'in envelope': 2 }[shape]
      const d = Math.min(levels, Math.floor((MAX_BYTES - 200) / bytesPerLevel))
      let text: string
      let depth = d
      if (shape === 'array') text = '['.repeat(d) + ']'.repeat(d)
      else if (shape === 'object') text = '{"a":'.repeat(d) + '0' + '}'.repeat(d)
      else if (shape === 'mixed') text = '[{"a":'.repeat(d) + '0' + '}]'.repeat(d)
      else if (shape === 'unclosed') text = '['.repeat(d)
      else {
        text = `{"topic":${JSON.stringify(topicOf('deep'))},"msg_id":"x","msg":${'['.repeat(d)}${']'.repeat(d)}}`
        depth = d + 1
      }
      if (shape === 'mixed') depth = 2 * d
      const shallowFate = { array: 'not_object', object: 'missing_field', mixed: 'not_object', unclosed: 'not_json', 'in envelope': 'malformed' }[shape]
      const fate = depth > 64 ? 'too_deep' : shallowFate
      return textItem(`${shape} nested ${depth} deep`, shape === 'in envelope' ? topicOf('deep') : topicOf('x'), text, fate)
    })

  const missingField = fc.oneof(
    fc
      .dictionary(fc.string({ maxLength: 8 }), plain, { maxKeys: 6 })
      .filter((o) => !Object.prototype.hasOwnProperty.call(o, 'topic'))
      .map((o) => textItem('object without topic', topicOf('x'), JSON.stringify(o), 'missing_field')),
    nonString.map((t) => textItem(`topic ${JSON.stringify(t)}`, topicOf('x'), JSON.stringify({ topic: t, msg_id: 'x', msg: 1 }), 'missing_field')),
    fc.option(nonString, { nil: undefined }).map((id) =>
      textItem(`msg_id ${JSON.stringify(id)}`, topicOf('x'), JSON.stringify({ topic: topicOf('x'), ...(id === undefined ? {} : { msg_id: id }) }), 'missing_field'),
    ),
    fc.constant(textItem('duplicate topic key, last one a number', topicOf('x'), `{"topic":${JSON.stringify(topicOf('x'))},"topic":5,"msg_id":"y"}`, 'missing_field')),
    fc.constant(textItem('signed envelope without msg_id', topicOf('victim'), mutate(base(), (e) => delete e['msg_id']), 'missing_field')),
  )

  const topicMismatch = fc.oneof(
    fc.string({ maxLength: 30 }).map((t) => {
      const b = base()
      const frame = t === b.topic ? `${t}.` : t
      return textItem('frame 0 is not the signed topic', frame, b.body, 'topic_mismatch')
    }),
    fc.constant(textItem('NFC vs NFD topic', topicOf('caf\u00e9'), JSON.stringify({ topic: topicOf('cafe\u0301'), msg_id: 'x' }), 'topic_mismatch')),
    fc.constant(textItem('duplicate topic key, last one differs', topicOf('x'), `{"topic":${JSON.stringify(topicOf('x'))},"topic":"other","msg_id":"y"}`, 'topic_mismatch')),
  )

  const tampered = fc.oneof(
    fc.constant(0).map(() => textItem('crypto removed', topicOf('victim'), mutate(base(), (e) => delete e['crypto']), 'malformed')),
    nonString.map((c) => textItem(`crypto ${JSON.stringify(c)}`, topicOf('victim'), mutate(base(), (e) => (e['crypto'] = c)), 'malformed')),
    fc
      .string({ maxLength: 20 })
      .filter((c) => c !== 'x509' && c !== 'x509_sha256')
      .map((c) => textItem(`crypto ${JSON.stringify(c)}`, topicOf('victim'), mutate(base(), (e) => (e['crypto'] = c)), 'unsupported_crypto')),
    fc.constant(0).map(() => textItem('crypto x509 with an EC key', topicOf('victim'), mutate(base(), (e) => (e['crypto'] = 'x509')), 'unsupported_crypto')),
    fc.oneof(nonString, fc.constantFrom('', '!!!!', 'abc', 'QQ=')).map((sig) =>
      textItem(`signature ${JSON.stringify(sig)}`, topicOf('victim'), mutate(base(), (e) => (e['signature'] = sig)), 'malformed'),
    ),
    fc.uint8Array({ minLength: 1, maxLength: 80 }).map((a) =>
      textItem('signature random base64', topicOf('victim'), mutate(base(), (e) => (e['signature'] = Buffer.from(a).toString('base64'))), 'bad_signature'),
    ),
    fc.oneof(nonString, fc.constantFrom('', '!!!!'), fc.uint8Array({ minLength: 1, maxLength: 300 }).map((a) => Buffer.from(a).toString('base64'))).map((cert) =>
      textItem(`certificate ${JSON.stringify(cert).slice(0, 20)}`, topicOf('victim'), mutate(base(), (e) => (e['certificate'] = cert)), 'malformed'),
    ),
    fc.constantFrom(...HOSTILE_VALUES).map((v) =>
      textItem(`payload replaced by ${v.slice(0, 20)}`, topicOf('victim'), base().body.replace('"msg":"PLACEHOLDER"', `"msg":${v}`), 'bad_signature'),
    ),
    // (not "__proto__": assigning it to a parsed object would set the prototype, not a field)
    fc.tuple(fc.string({ maxLength: 8 }).filter((k) => !['topic', 'msg_id', 'crypto', 'signature', 'certificate', '__proto__'].includes(k)), plain).map(([k, v]) =>
      textItem(`field ${JSON.stringify(k)} added or changed`, topicOf('victim'), mutate(base(), (e) => (e[k] = e[k] === v ? [v] : v)), 'bad_signature'),
    ),
  )

  const badSigner = fc.oneof(
    fc.constant(0).map(() => { const m = seal(s.otherCaPub, topicOf('other-ca'), { n: 1 }); return textItem('same CN, another CA', m.topic, m.body, 'unknown_ca') }),
    fc.constant(0).map(() => { const m = seal(s.expired, topicOf('expired'), { n: 1 }); return textItem('expired certificate', m.topic, m.body, 'expired') }),
    fc.constant(0).map(() => { const m = seal(s.future, topicOf('future'), { n: 1 }); return textItem('certificate not yet valid', m.topic, m.body, 'not_yet_valid') }),
    fc.constant(0).map(() => { const m = seal(s.revoked, topicOf('revoked'), { n: 1 }); return textItem('revoked certificate', m.topic, m.body, 'revoked') }),
    fc.constant(0).map(() => { const m = seal(s.mallory, POLICED, { n: 1 }); return textItem('routing policy refuses the signer', m.topic, m.body, 'policy_denied') }),
  )

  const valid = fc.oneof(
    fc.tuple(validTopic, plain).map(([t, v]) => { const m = seal(s.pub, t, v); return textItem('valid, plain payload', m.topic, m.body, 'valid', m.msgId) }),
    fc.constantFrom(...HOSTILE_VALUES).map((v) => { const m = seal(s.pub, topicOf('valid'), losslessOf(v)); return textItem(`valid, payload ${v.slice(0, 20)}`, m.topic, m.body, 'valid', m.msgId) }),
    fc.constant(0).map(() => { const m = seal(s.pub, POLICED, { ok: true }); return textItem('valid, policed topic', m.topic, m.body, 'valid', m.msgId) }),
    fc.constantFrom([CONSUMER], ['someone-else'], [CONSUMER, 'someone-else']).map((r) => {
      const m = seal(s.pub, topicOf('guaranteed'), { r }, { gilmsg_version: '1.0', gilmsg_recipients: r })
      return textItem(`valid, guaranteed for ${r.join('+')}`, m.topic, m.body, 'valid', m.msgId)
    }),
  )

  return fc.oneof(
    { arbitrary: frameCount, weight: 2 },
    { arbitrary: randomPair, weight: 1 },
    { arbitrary: notUtf8, weight: 2 },
    { arbitrary: tooLarge, weight: 1 },
    { arbitrary: notJson, weight: 2 },
    { arbitrary: notObject, weight: 2 },
    { arbitrary: deep, weight: 2 },
    { arbitrary: missingField, weight: 2 },
    { arbitrary: topicMismatch, weight: 1 },
    { arbitrary: tampered, weight: 4 },
    { arbitrary: badSigner, weight: 2 },
    { arbitrary: valid, weight: 4 },
  )
}

/** Deterministic extremes, sent once to each consumer. */
function extremes(s: Signers): Item[] {
  const b = seal(s.pub, topicOf('victim'), 'PLACEHOLDER')
  const v = (label: string, m: Sealed): Item => textItem(label, m.topic, m.body, 'valid', m.msgId)
  return [
    item('no frames at all', [], 'nothing'),
    item('one empty frame', [Buffer.alloc(0)], 'frame_count'),
    item('two empty frames', [Buffer.alloc(0), Buffer.alloc(0)], 'not_json'),
    item('5 frames of max_message_bytes', Array.from({ length: 5 }, () => Buffer.alloc(MAX_BYTES, 0x41)), 'frame_count'),
    item('topic and body of max_message_bytes each', [Buffer.alloc(MAX_BYTES, 0x74), Buffer.alloc(MAX_BYTES, 0x7b)], 'too_large'),
    textItem('100,000 nested arrays (200 kB)', topicOf('x'), '['.repeat(100_000) + ']'.repeat(100_000), 'too_deep'),
    textItem('40,000 nested objects', topicOf('x'), '{"a":'.repeat(40_000) + '1' + '}'.repeat(40_000), 'too_deep'),
    textItem('100,000 unclosed arrays', topicOf('x'), '['.repeat(100_000), 'too_deep'),
    textItem('64 nested arrays (the limit)', topicOf('x'), '['.repeat(64) + ']'.repeat(64), 'not_object'),
    textItem('65 nested arrays (one too many)', topicOf('x'), '['.repeat(65) + ']'.repeat(65), 'too_deep'),
    textItem('250,000-character string', topicOf('x'), `"${'a'.repeat(250_000)}"`, 'not_object'),
    textItem('250,000-digit integer (over the 4300-digit limit)', topicOf('x'), '9'.repeat(250_000), 'not_json'),
    textItem('200,000-digit integer payload, unsigned', topicOf('big'), `{"topic":${JSON.stringify(topicOf('big'))},"msg_id":"x","msg":${'7'.repeat(200_000)}}`, 'not_json'),
    textItem('250,000-digit float', topicOf('x'), `${'9'.repeat(250_000)}.0`, 'not_object'),
    textItem('signed, payload replaced by a 4301-digit integer', b.topic, b.body.replace('"msg":"PLACEHOLDER"', `"msg":${'9'.repeat(4301)}`), 'not_json'),
    textItem('signed, payload replaced by 1e999999', b.topic, b.body.replace('"msg":"PLACEHOLDER"', '"msg":1e999999'), 'bad_signature'),
    textItem('signed, payload replaced by "\\ud800"', b.topic, b.body.replace('"msg":"PLACEHOLDER"', '"msg":"\\ud800"'), 'bad_signature'),
    v('valid, 4300-digit integer (the limit)', seal(s.pub, topicOf('valid'), losslessOf('9'.repeat(4300)))),
    v('valid, 200,000-digit float', seal(s.pub, topicOf('valid'), losslessOf(`${'9'.repeat(200_000)}.0`))),
    v('valid, 30,000 lone surrogates', seal(s.pub, topicOf('valid'), losslessOf(`"${'\\ud800'.repeat(30_000)}"`))),
    v('valid, every hostile number', seal(s.pub, topicOf('valid'), losslessOf('[1e999999, -0, -0.0, 123456789012345678901234567890, "\\ud800", NaN, -Infinity, 1E-400]'))),
    v('valid, 63 levels of payload nesting', seal(s.pub, topicOf('valid'), losslessOf('['.repeat(63) + ']'.repeat(63)))),
    ...INVALID_UTF8.map((bad) => item(`invalid UTF-8 ${bad.toString('hex')} alone`, [Buffer.from(topicOf('x')), bad], 'not_utf8')),
  ]
}

interface Expected {
  readonly exact: Map<string, number>
  readonly ambiguous: number
  readonly validIds: string[]
  readonly sent: number
}

function expectationOf(items: readonly Item[]): Expected {
  const exact = new Map<string, number>()
  let ambiguous = 0
  const validIds: string[] = []
  for (const it of items) {
    if (it.fate === 'valid') validIds.push(it.msgId as string)
    else if (it.fate === 'envelope') ambiguous++
    else if (it.fate !== 'nothing') exact.set(it.fate, (exact.get(it.fate) ?? 0) + 1)
  }
  return { exact, ambiguous, validIds, sent: items.length }
}

const sum = (m: Iterable<number>): number => [...m].reduce((a, b) => a + b, 0)

function diff(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [k, n] of Object.entries(after)) if (n - (before[k] ?? 0) !== 0) out[k] = n - (before[k] ?? 0)
  return out
}

/**
 * The drops of one batch must be exactly the junk of that batch: exact per reason for every
 * item whose fate is known, the ambiguous ones (random UTF-8 byte pairs) spread over the
 * envelope-level reasons, never the transport ones.
 */
function checkDrops(delta: Record<string, number>, e: Expected, describeItems: () => string): void {
  const context = (): string => `drops ${JSON.stringify(delta)} vs expected ${JSON.stringify(Object.fromEntries(e.exact))} + ${e.ambiguous} ambiguous\n${describeItems()}`
  for (const r of TRANSPORT_REASONS) expect(delta[r] ?? 0, `${r}: ${context()}`).toBe(e.exact.get(r) ?? 0)
  for (const [r, n] of e.exact) expect(delta[r] ?? 0, `${r}: ${context()}`).toBeGreaterThanOrEqual(n)
  expect(sum(Object.values(delta)), `total: ${context()}`).toBe(sum(e.exact.values()) + e.ambiguous)
  if (e.ambiguous === 0) expect(delta, context()).toEqual(Object.fromEntries(e.exact))
}

/** `VmRSS` (now) or `VmHWM` (peak) of a CLI subprocess in bytes, from /proc (its pid is node's own: no wrapper). */
function memoryOf(cli: CliProcess, field: 'VmRSS' | 'VmHWM'): number {
  const status = readFileSync(`/proc/${cli.child.pid}/status`, 'utf8')
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)
  return Number(m?.[1] ?? NaN) * 1024
}

/** A raw PUB socket for the junk and a SUB socket standing in for a relay, to catch the consumer's ACKs. */
interface Wire {
  readonly raw: Publisher
  readonly rawEndpoint: string
  readonly acks: Subscriber
  readonly ackEndpoint: string
  /** ACK bodies received so far. */
  readonly ackBodies: { topic: string; body: string }[]
  close(): Promise<void>
}

async function openWire(): Promise<Wire> {
  const raw = new Publisher({ linger: 0, sendHighWaterMark: 0 })
  await raw.bind('tcp://127.0.0.1:*')
  const acks = new Subscriber({ linger: 0, receiveHighWaterMark: 0 })
  await acks.bind('tcp://127.0.0.1:*')
  acks.subscribe('')
  const ackBodies: { topic: string; body: string }[] = []
  const loop = (async () => {
    try {
      for await (const [t, b] of acks) ackBodies.push({ topic: String(t), body: String(b) })
    } catch {
      // closed
    }
  })()
  return {
    raw,
    rawEndpoint: raw.lastEndpoint as string,
    acks,
    ackEndpoint: acks.lastEndpoint as string,
    ackBodies,
    async close() {
      raw.close()
      acks.close()
      await withTimeout(loop, 2000, 'the ACK catcher to stop')
    },
  }
}

function consumerConfig(wire: Wire, name: string): Record<string, unknown> {
  return {
    topic_prefix: 'org.test',
    environment: 'it',
    endpoints: { junk: [wire.rawEndpoint] },
    active: true,
    relay_inbound: [wire.ackEndpoint],
    name,
    certname: CONSUMER,
    ssldir: pki.dir,
    ca_cert_location: pki.caCertPath,
    crl_location: pki.crlPath,
    crypto_backend: 'x509_sha256',
    inbox_path: join(dir, `${name}.inbox.db`),
    outbox_path: join(dir, `${name}.outbox.db`),
    max_message_bytes: MAX_BYTES,
    routing_policy: { [POLICED]: ['pub'] },
  }
}

async function send(wire: Wire, items: readonly Item[]): Promise<void> {
  for (const it of items) await wire.raw.send(it.frames)
}

function sentinel(n: number): Sealed {
  return seal(signers.pub, topicOf('sentinel'), { sentinel: n }, { gilmsg_version: '1.0', gilmsg_recipients: [CONSUMER] })
}

/** Sends the sentinel until `delivered(msgId)` (the slow joiner); once joined, a single send suffices. */
async function sendSentinel(wire: Wire, s: Sealed, delivered: (msgId: string) => boolean, repeat: boolean, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs
  await wire.raw.send([s.topic, s.body])
  while (!delivered(s.msgId)) {
    if (Date.now() > until) throw new Error(`sentinel ${s.msgId} not delivered within ${timeoutMs} ms`)
    await sleep(repeat ? 50 : 5)
    if (repeat) await wire.raw.send([s.topic, s.body])
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gilmsg-hostile-input-'))
  process.env['XDG_STATE_HOME'] = join(dir, 'state')
  const now = Date.now()
  const day = 24 * 60 * 60 * 1000
  pki = await createTestPki(
    join(dir, 'pki'),
    [
      { name: 'pub', key: 'ec' },
      { name: CONSUMER, key: 'ec' },
      { name: 'mallory', key: 'ec' },
      { name: 'old', cn: 'pub', key: 'ec', notBefore: new Date(now - 3 * day), notAfter: new Date(now - day) },
      { name: 'early', cn: 'pub', key: 'ec', notBefore: new Date(now + day), notAfter: new Date(now + 3 * day) },
      { name: 'gone', cn: 'pub', key: 'ec' },
    ],
  )
  await revokeCert(pki.dir, 'gone')
  const other = join(dir, 'other-ca')
  const otherPki = await createTestPki(other, [{ name: 'pub', key: 'ec' }], { cn: 'gilmsg CA' })
  signers = {
    pub: leafSigner(pki.leaf('pub')),
    otherCaPub: leafSigner(otherPki.leaf('pub')),
    expired: leafSigner(pki.leaf('old')),
    future: leafSigner(pki.leaf('early')),
    revoked: leafSigner(pki.leaf('gone')),
    mallory: leafSigner(pki.leaf('mallory')),
  }
}, 60_000)

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true })
})

describe(`hostile input at a real socket, in-process Gilmsg subscriber (seed ${SEED})`, () => {
  let wire: Wire
  let g: Gilmsg
  const delivered: Delivery[] = []
  const deliveredIds = new Map<string, number>()
  let loop: Promise<void>

  beforeAll(async () => {
    wire = await openWire()
    g = await openGilmsg(parseConfig(consumerConfig(wire, 'inproc'), 'in-process consumer'), { outbox: false })
    const sub = await g.subscribe('')
    loop = (async () => {
      for await (const d of sub) {
        delivered.push(d)
        deliveredIds.set(d.msgId, (deliveredIds.get(d.msgId) ?? 0) + 1)
      }
    })()
    await sendSentinel(wire, sentinel(-1), (id) => deliveredIds.has(id), true)
  })

  afterAll(async () => {
    await g?.close()
    await withTimeout(loop ?? Promise.resolve(), 5000, 'the app loop to end').catch(() => undefined)
    await wire?.close()
  })

  async function runBatch(items: Item[], n: number): Promise<void> {
    const e = expectationOf(items)
    const before = g.bus.drops.snapshot()
    await send(wire, items)
    await sendSentinel(wire, sentinel(n), (id) => deliveredIds.has(id), false)
    const describeItems = (): string => items.map((i) => `  ${i.fate.padEnd(16)} ${i.label}`).join('\n')
    checkDrops(diff(g.bus.drops.snapshot(), before), e, describeItems)
    for (const id of e.validIds) expect(deliveredIds.get(id), `valid message ${id} delivered once\n${describeItems()}`).toBe(1)
  }

  it('the extremes: 2 and 5 frames of max_message_bytes, 100,000 levels, 250,000 digits, lone surrogates; each dropped by reason or delivered', async () => {
    const rss0 = process.memoryUsage().rss
    await runBatch(extremes(signers), 1)
    const byLabel = new Map(delivered.map((d) => [d.msgId, d]))
    const hostile = [...byLabel.values()].find((d) => Array.isArray(d.msg) && (d.msg as unknown[]).length === 8)
    expect(hostile?.msg).toEqual([Infinity, 0, -0, 123456789012345678901234567890n, '\ud800', NaN, -Infinity, 0])
    expect(process.memoryUsage().rss - rss0).toBeLessThan(100 * 1024 * 1024)
  })

  it('a validly signed message reusing a known msg_id with other content is not handed over (digest_conflicts)', async () => {
    const extra = { gilmsg_version: '1.0', gilmsg_recipients: [CONSUMER] }
    const first = seal(signers.pub, topicOf('guaranteed'), { v: 1 }, extra)
    const second = seal(signers.pub, topicOf('guaranteed'), { v: 2 }, extra, first.msgId)
    expect(second.digest).not.toBe(first.digest)
    const conflicts0 = g.consumer?.stats.get('digest_conflicts') ?? 0
    await runBatch([textItem('first', first.topic, first.body, 'valid', first.msgId)], 2)
    await send(wire, [textItem('same msg_id, other content', second.topic, second.body, 'valid', second.msgId)])
    await sendSentinel(wire, sentinel(3), (id) => deliveredIds.has(id), false)
    expect(deliveredIds.get(first.msgId)).toBe(1)
    expect(delivered.find((d) => d.msgId === first.msgId)?.msg).toEqual({ v: 1 })
    expect((g.consumer?.stats.get('digest_conflicts') ?? 0) - conflicts0).toBe(1)
  })

  /** The ACK items (single or batched form) in the ACK bodies the wire caught so far. */
  function ackItems(): { ack_msg_id: string; ack_digest: string }[] {
    type Item = { ack_msg_id: string; ack_digest: string }
    return wire.ackBodies.flatMap((a) => {
      const msg = (JSON.parse(a.body) as { msg: Item | { acks: Item[] } }).msg
      return 'acks' in msg ? msg.acks : [msg]
    })
  }

  it("msg_id squatting: mallory's message with the genuine msg_id comes first; the genuine one is still handed over and acknowledged with its own digest", async () => {
    const extra = { gilmsg_version: '1.0', gilmsg_recipients: [CONSUMER] }
    const genuine = seal(signers.pub, topicOf('guaranteed'), { genuine: true }, extra)
    const squat = seal(signers.mallory, topicOf('guaranteed'), { genuine: false }, extra, genuine.msgId)
    const conflicts0 = g.consumer?.stats.get('digest_conflicts') ?? 0
    const handedOver = (): [string | undefined, unknown][] => delivered.filter((d) => d.msgId === genuine.msgId).map((d) => [d.signer, d.msg])
    await send(wire, [textItem('squatter', squat.topic, squat.body, 'valid', squat.msgId)])
    await sendSentinel(wire, sentinel(4), (id) => deliveredIds.has(id), false)
    expect(handedOver()).toEqual([['mallory', { genuine: false }]])
    await send(wire, [textItem('genuine', genuine.topic, genuine.body, 'valid', genuine.msgId)])
    await sendSentinel(wire, sentinel(5), (id) => deliveredIds.has(id), false)
    expect(handedOver()).toEqual([
      ['mallory', { genuine: false }],
      ['pub', { genuine: true }],
    ])
    expect((g.consumer?.stats.get('digest_conflicts') ?? 0) - conflicts0).toBe(0)
    await waitUntil(() => ackItems().some((a) => a.ack_msg_id === genuine.msgId && a.ack_digest === genuine.digest), 5000, 'the ACK of the genuine message')
    // Each ACK names the digest of the message it acknowledges: the squatter's cannot count for the genuine publisher.
    expect(ackItems().filter((a) => a.ack_msg_id === genuine.msgId).map((a) => a.ack_digest).sort()).toEqual([genuine.digest, squat.digest].sort())
  })

  it('1,000 guaranteed messages for someone else leave the inbox file as it was; a msg_id over 128 characters is refused and counted', async () => {
    const inboxRows = (): number => {
      const db = new Database(join(dir, 'inproc.inbox.db'), { readonly: true })
      try {
        return db.prepare('SELECT count(*) FROM inbox').pluck().get() as number
      } finally {
        db.close()
      }
    }
    const rows0 = inboxRows()
    const others = Array.from({ length: 1000 }, (_, n) =>
      seal(signers.mallory, topicOf('guaranteed'), { n }, { gilmsg_version: '1.0', gilmsg_recipients: ['someone-else'] }),
    )
    await runBatch(
      others.map((m) => textItem('guaranteed for someone else', m.topic, m.body, 'valid', m.msgId)),
      6,
    )
    expect(inboxRows()).toBe(rows0 + 1) // the sentinel

    const tooLong0 = g.consumer?.stats.get('msg_id_too_long') ?? 0
    const long = seal(signers.pub, topicOf('guaranteed'), { long: true }, { gilmsg_version: '1.0', gilmsg_recipients: [CONSUMER] }, `2026-${'x'.repeat(124)}`)
    await send(wire, [textItem('msg_id of 129 characters', long.topic, long.body, 'valid', long.msgId)])
    await sendSentinel(wire, sentinel(7), (id) => deliveredIds.has(id), false)
    expect((g.consumer?.stats.get('msg_id_too_long') ?? 0) - tooLong0).toBe(1)
    expect(deliveredIds.has(long.msgId)).toBe(false)
    expect(ackItems().some((a) => a.ack_msg_id === long.msgId)).toBe(false)
    expect(inboxRows()).toBe(rows0 + 2)
  })

  it('fast-check: batches of junk interleaved with valid messages; drops match the junk exactly, valid ones arrive once', async () => {
    const rss0 = process.memoryUsage().rss
    let n = 100
    await fc.assert(
      fc.asyncProperty(fc.array(itemArb(signers), { minLength: 1, maxLength: 30 }), async (items) => {
        await runBatch(items, n++)
      }),
      { numRuns: 200, seed: SEED, interruptAfterTimeLimit: 30_000, markInterruptAsFailure: false },
    )
    expect(n - 100).toBeGreaterThan(10)
    const grown = process.memoryUsage().rss - rss0
    console.log(`in-process: ${n - 100} batches, drops ${JSON.stringify(g.bus.drops.snapshot())}, RSS +${(grown / 1048576).toFixed(1)} MiB`)
    expect(grown).toBeLessThan(100 * 1024 * 1024)
  }, 50_000)
})

describe(`hostile input at a real socket, gilmsg tail subprocess (seed ${SEED})`, () => {
  let wire: Wire
  let tail: CliProcess
  const printed = new Map<string, number>()

  const msgIdOf = (line: string): string | undefined => {
    const cut = line.indexOf(',"msg":')
    if (cut < 0) return undefined
    try {
      return (JSON.parse(line.slice(0, cut) + '}') as { msg_id: string }).msg_id
    } catch {
      return undefined
    }
  }
  const drops = (): Record<string, number> => {
    const out: Record<string, number> = {}
    // --verbose: one debug line per drop, with its reason and detail.
    for (const l of tail.stderrLines) {
      const r = logRecord(l)
      if (typeof r?.['reason'] === 'string' && r['detail'] !== undefined) out[r['reason']] = (out[r['reason']] ?? 0) + 1
    }
    return out
  }
  const rss = (field: 'VmRSS' | 'VmHWM'): number => memoryOf(tail, field)
  let seenLines = 0
  const delivered = (id: string): boolean => {
    for (; seenLines < tail.stdoutLines.length; seenLines++) {
      const mid = msgIdOf(tail.stdoutLines[seenLines] as string)
      if (mid !== undefined) printed.set(mid, (printed.get(mid) ?? 0) + 1)
    }
    return printed.has(id)
  }

  beforeAll(async () => {
    wire = await openWire()
    const config = writeConfigFile(dir, 'tail', consumerConfig(wire, 'tail'))
    tail = new CliProcess(['tail', '--config', config, '--json', '--verbose', '--stats', '--topic', ''], { XDG_STATE_HOME: join(dir, 'state'), GILMSG_CONFIG: '' })
    await tail.waitFor(new RegExp(`listening on \\(all topics\\) \\(acknowledging as ${CONSUMER}\\)`), 'stderr', 15_000)
    await sendSentinel(wire, sentinel(-1), delivered, true)
  })

  afterAll(async () => {
    await tail?.stop('SIGKILL')
    await wire?.close()
  })

  it('survives every batch: exact drops by reason, valid messages printed once, RSS bounded, then exits 0 on SIGTERM with matching --stats', async () => {
    const expectedTotals = new Map<string, number>()
    let ambiguousTotal = 0
    const validIds: string[] = []
    const started = Date.now()
    const rss0 = rss('VmRSS')
    const batches = [extremes(signers), ...fc.sample(fc.array(itemArb(signers), { minLength: 1, maxLength: 40 }), { seed: SEED + 1, numRuns: 200 })]
    let n = 0
    for (const items of batches) {
      if (Date.now() - started > 30_000) break
      const e = expectationOf(items)
      const before = drops()
      await send(wire, items)
      await sendSentinel(wire, sentinel(++n), delivered, false)
      const expectedTotal = sum(e.exact.values()) + e.ambiguous
      const describeItems = (): string => `batch ${n}: drops so far ${JSON.stringify(diff(drops(), before))}\n` + items.map((i) => `  ${i.fate.padEnd(16)} ${i.label}`).join('\n')
      // stderr and stdout are separate pipes: the drop lines may be read a moment after the sentinel.
      await waitUntil(() => sum(Object.values(diff(drops(), before))) >= expectedTotal, 5000, 'the drop lines of the batch', describeItems)
      checkDrops(diff(drops(), before), e, describeItems)
      for (const id of e.validIds) expect(printed.get(id), `valid ${id} printed once\n${describeItems()}`).toBe(1)
      for (const [r, k] of e.exact) expectedTotals.set(r, (expectedTotals.get(r) ?? 0) + k)
      ambiguousTotal += e.ambiguous
      validIds.push(...e.validIds)
      expect(tail.child.exitCode, 'tail is alive').toBeNull()
    }
    expect(n).toBeGreaterThan(10)
    const rssEnd = rss('VmRSS')
    const hwm = rss('VmHWM')

    // Still responsive: the last sentinel was acknowledged with a valid ACK bound to it.
    const last = sentinel(++n)
    await sendSentinel(wire, last, delivered, false)
    const verifier = await createVerifier({ caPem: pki.caPem, crlPem: readFileSync(pki.crlPath, 'utf8') })
    await waitUntil(() => wire.ackBodies.some((a) => a.body.includes(last.msgId)), 5000, 'the ACK of the last sentinel')
    const ack = wire.ackBodies.find((a) => a.body.includes(last.msgId)) as { topic: string; body: string }
    const opened = openEnvelope(ack.topic, ack.body, { maxDepth: 64, verifier })
    if (!opened.ok) throw new Error(`the last ACK does not validate: ${opened.reason} ${opened.detail}`)
    expect(opened.message.signer).toBe(CONSUMER)
    expect(envelopeField(opened.message.envelope, 'msg')).toEqual({ ack_msg_id: last.msgId, ack_digest: last.digest, disposition: 'received' })

    // A clean stop: exit code 0 and a stats line whose drop counters are exactly what was sent.
    const code = await tail.stop('SIGTERM')
    await tail.waitFor(logLine('stats'), 'stderr', 5000)
    const stats = statsOf(tail.stderrLines) ?? {}
    expect(code).toBe(0)
    const droppedStats = Object.fromEntries(Object.entries(stats).filter(([k]) => k.startsWith('dropped_')).map(([k, v]) => [k.slice('dropped_'.length), v]))
    expect(droppedStats).toEqual(drops())
    checkDrops(droppedStats, { exact: expectedTotals, ambiguous: ambiguousTotal, validIds, sent: 0 }, () => '(whole run)')
    for (const id of validIds) expect(printed.get(id)).toBe(1)
    const grown = rssEnd - rss0
    console.log(
      `tail: ${n} batches in ${Date.now() - started} ms, ${sum(Object.values(droppedStats))} drops ${JSON.stringify(droppedStats)}, ` +
        `${validIds.length} valid printed, RSS ${(rss0 / 1048576).toFixed(0)} -> ${(rssEnd / 1048576).toFixed(0)} MiB (peak ${(hwm / 1048576).toFixed(0)} MiB)`,
    )
    expect(grown).toBeLessThan(100 * 1024 * 1024)
  }, 55_000)
})

describe('a 300 MiB frame at real processes: gilmsg relay and gilmsg tail stay small and go on', () => {
  const HUGE = 300 * 1024 * 1024
  const PEAK_LIMIT = 150 * 1000 * 1000
  // Zero-filled lazily: pages the kernel never reads stay unallocated in this process too.
  let huge: Buffer
  const procs: CliProcess[] = []

  beforeAll(() => {
    huge = Buffer.alloc(HUGE)
  })

  afterAll(async () => {
    await Promise.all(procs.map((p) => p.stop('SIGKILL')))
  })

  it.each(['native', 'js'] as const)('gilmsg relay --mode %s: the publisher is disconnected before the frame is read, the next message is forwarded', async (mode) => {
    const config = join(dir, 'relay.json')
    writeFileSync(config, JSON.stringify({ max_message_bytes: MAX_BYTES }))
    const relay = new CliProcess(['relay', '--config', config, '--inbound', 'tcp://127.0.0.1:*', '--outbound', 'tcp://127.0.0.1:*', '--mode', mode, '--verbose'], {
      XDG_STATE_HOME: join(dir, 'state'),
      GILMSG_CONFIG: '',
    })
    procs.push(relay)
    const inbound = (await relay.waitFor(/^inbound /, 'stdout')).split(' ')[1] as string
    const outbound = (await relay.waitFor(/^outbound /, 'stdout')).split(' ')[1] as string
    const raw = new Publisher({ linger: 0, sendHighWaterMark: 0 })
    const out = new Subscriber({ linger: 0, receiveHighWaterMark: 0 })
    try {
      raw.connect(inbound)
      out.connect(outbound)
      out.subscribe('')
      const forwarded: string[] = []
      const reading = (async () => {
        for await (const [t] of out) forwarded.push(String(t))
      })().catch(() => undefined)
      // Both legs are PUB/SUB (slow joiners): send until one arrives.
      const untilForwarded = async (topic: string): Promise<void> => {
        const until = Date.now() + 10_000
        while (!forwarded.includes(topic)) {
          if (Date.now() > until) throw new Error(`${topic} not forwarded within 10 s`)
          await raw.send([topic, '{}'])
          await sleep(20)
        }
      }
      await untilForwarded('before')
      const peak0 = memoryOf(relay, 'VmHWM')

      const started = Date.now()
      await raw.send(['huge', huge])
      // libzmq's publisher reconnects by itself (for it, the relay closed the connection).
      await untilForwarded('after')
      const peak = memoryOf(relay, 'VmHWM')
      console.log(`relay: peak RSS ${(peak0 / 1e6).toFixed(0)} -> ${(peak / 1e6).toFixed(0)} MB, forwarding again after ${Date.now() - started} ms`)
      expect(peak).toBeLessThan(PEAK_LIMIT)
      expect(forwarded).not.toContain('huge')
      expect(logRecord(await relay.waitFor(logLine('inbound connection closed on '), 'stderr', 5000))?.['msg']).toBe(
        `inbound connection closed on ${inbound} (the publisher left, or sent a frame over ${MAX_BYTES} bytes)`,
      )

      expect(await relay.stop('SIGTERM')).toBe(0)
      await relay.waitFor(logLine('stats'), 'stderr', 5000)
      const stats = statsOf(relay.stderrLines) ?? {}
      expect(stats['inbound_disconnects']).toBeGreaterThanOrEqual(1)
      if (mode === 'js') expect(stats['forwarded']).toBeGreaterThanOrEqual(2)
      else expect(stats['forwarded']).toBeUndefined()
      out.close()
      await reading
    } finally {
      raw.close()
      out.close()
    }
  }, 30_000)

  it('gilmsg tail: the connection is dropped before the frame is read (frame_too_large), tail connects again and prints the next message', async () => {
    const wire = await openWire()
    try {
      const config = writeConfigFile(dir, 'huge-tail', consumerConfig(wire, 'huge-tail'))
      const tail = new CliProcess(['tail', '--config', config, '--json', '--verbose', '--stats', '--topic', ''], { XDG_STATE_HOME: join(dir, 'state'), GILMSG_CONFIG: '' })
      procs.push(tail)
      await tail.waitFor(/listening on \(all topics\)/, 'stderr', 15_000)
      const printed = (id: string): boolean => tail.stdoutLines.some((l) => l.includes(id))
      await sendSentinel(wire, sentinel(1000), printed, true)
      const peak0 = memoryOf(tail, 'VmHWM')

      const started = Date.now()
      await wire.raw.send([topicOf('huge'), huge])
      await sendSentinel(wire, sentinel(1001), printed, true)
      const peak = memoryOf(tail, 'VmHWM')
      console.log(`tail: peak RSS ${(peak0 / 1e6).toFixed(0)} -> ${(peak / 1e6).toFixed(0)} MB, printing again after ${Date.now() - started} ms`)
      expect(peak).toBeLessThan(PEAK_LIMIT)
      expect(logRecord(await tail.waitFor(logLine('dropped (frame_too_large)'), 'stderr', 5000))?.['msg']).toBe(
        `dropped (frame_too_large): libzmq closed the connection to ${wire.rawEndpoint}: a frame over ${MAX_BYTES} bytes (reconnecting)`,
      )

      expect(await tail.stop('SIGTERM')).toBe(0)
      await tail.waitFor(logLine('stats'), 'stderr', 5000)
      const stats = statsOf(tail.stderrLines) ?? {}
      expect(stats['dropped_frame_too_large']).toBe(1)
      expect(stats['messages']).toBe(2)
    } finally {
      await wire.close()
    }
  }, 40_000)
})
