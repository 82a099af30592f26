import { createHash, X509Certificate } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createTestPki, type TestPki } from '../../support/pki.js'
import { pemFromCertificateField, pemToDer } from '../../../src/crypto/pem.js'
import { createSigner } from '../../../src/crypto/signer.js'
import { CryptoMode, InvalidReason } from '../../../src/crypto/types.js'
import type { Signer, Verifier } from '../../../src/crypto/types.js'
import { createVerifier } from '../../../src/crypto/verifier.js'
import {
  buildEnvelope,
  contentDigest,
  EnvelopeDropReason,
  envelopeField,
  envelopeInt,
  newMsgId,
  openEnvelope,
  sealEnvelope,
} from '../../../src/envelope/envelope.js'
import type { OpenResult } from '../../../src/envelope/envelope.js'
import { environmentPrefix, fullTopic } from '../../../src/envelope/topic.js'
import { canonicalize } from '../../../src/json/canonical.js'
import { parseJson } from '../../../src/json/parse.js'
import { Lossless, jsonFloat, jsonInt } from '../../../src/json/value.js'
import type { JsonObject, JsonValue } from '../../../src/json/value.js'

interface VectorCase {
  readonly label: string
  readonly key_pem: string
  readonly cert_pem_file: string
  readonly canonical_signed_string: string
  readonly signature_field: string
  readonly certificate_field: string
  readonly wire_frame0_topic: string
  readonly wire_frame1_json: string
}

const vectors = JSON.parse(await readFile(new URL('../../../spec/vectors/vectors.json', import.meta.url), 'utf8')) as {
  cases: VectorCase[]
}
const cases = vectors.cases

const TOPIC = 'org.example.test.gilmsg.thing'
const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex')

let pki: TestPki
let other: TestPki
let verifier: Verifier
const dirs: string[] = []

beforeAll(async () => {
  const [d1, d2] = await Promise.all([mkdtemp(join(tmpdir(), 'gilmsg-env-main-')), mkdtemp(join(tmpdir(), 'gilmsg-env-other-'))])
  dirs.push(d1, d2)
  ;[pki, other] = await Promise.all([
    createTestPki(d1, [{ name: 'alice', key: 'ec' }, { name: 'rob', key: 'rsa' }]),
    createTestPki(d2, [{ name: 'alice', key: 'ec' }]),
  ])
  verifier = await createVerifier({ caPem: pki.caPem })
})

afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })))
})

function signerOf(p: TestPki, name: string, mode: CryptoMode = CryptoMode.X509Sha256): Signer {
  const leaf = p.leaf(name)
  return createSigner({ mode, keyPem: leaf.keyPem, certPem: leaf.certPem })
}

function sample(extra?: Record<string, unknown>): JsonObject {
  return buildEnvelope({
    topic: TOPIC,
    msg: { n: 1, s: 'héllo ✓', list: [3, 2, 1], nested: { a: null } },
    i: 7,
    nowMs: 1_700_000_000_500,
    username: 'tester',
    ...(extra ? { extra } : {}),
  })
}

/** Parses a wire body losslessly, lets `edit` change it, and re-serialises it. */
function edit(body: string, change: (env: JsonObject) => void): string {
  const env = parseJson(body) as JsonObject
  change(env)
  return canonicalize(env)
}

function expectFail(res: OpenResult, reason: string): void {
  expect(res.ok).toBe(false)
  if (!res.ok) {
    expect(res.reason).toBe(reason)
    expect(res.detail.length).toBeGreaterThan(0)
  }
}

const open = (topic: string, body: string, v: Verifier | undefined = undefined): OpenResult =>
  openEnvelope(topic, body, { maxDepth: 64, verifier: v })

describe('fedmsg vectors', () => {
  it('has the two cases', () => {
    expect(cases).toHaveLength(2)
  })

  it.each([0, 1])('case %i: openEnvelope gives the canonical signed bytes and their sha256 digest', (i) => {
    const c = cases[i] as VectorCase
    const res = open(c.wire_frame0_topic, c.wire_frame1_json)
    expect(res.ok).toBe(true)
    if (!res.ok) return
    const m = res.message
    expect(m.canonical.equals(Buffer.from(c.canonical_signed_string, 'utf8'))).toBe(true)
    expect(m.canonical.toString('latin1')).toBe(c.canonical_signed_string)
    expect(m.digest).toBe(sha256(c.canonical_signed_string))
    expect(m.digest).toBe(contentDigest(Buffer.from(c.canonical_signed_string)))
    expect(m.topic).toBe(c.wire_frame0_topic)
    expect(m.msgId).toBe('2023-6f1d2b1e-0000-4000-8000-000000000001')
    expect(m.signer).toBeUndefined()
    expect(m.fingerprint).toBeUndefined()
    // The float 1.0 survives as a float (lossless parse).
    const msg = m.envelope.get('msg') as JsonObject
    expect(msg.get('f')).toEqual(jsonFloat(1))
    expect(msg.get('n')).toEqual(jsonInt(1n))
  })

  it.each([0, 1])('case %i: sealEnvelope reproduces signature, certificate and the wire frame byte for byte', (i) => {
    const c = cases[i] as VectorCase
    const signer = createSigner({ mode: CryptoMode.X509, keyPem: c.key_pem, certPem: c.cert_pem_file })
    const env = parseJson(c.canonical_signed_string) as JsonObject
    const sealed = sealEnvelope(env, signer)
    expect(sealed.canonical.toString('latin1')).toBe(c.canonical_signed_string)
    expect(sealed.digest).toBe(sha256(c.canonical_signed_string))
    expect(sealed.topic).toBe(c.wire_frame0_topic)
    expect(sealed.msgId).toBe('2023-6f1d2b1e-0000-4000-8000-000000000001')
    const wire = parseJson(sealed.body) as JsonObject
    expect(wire.get('signature')).toBe(c.signature_field)
    expect(wire.get('certificate')).toBe(c.certificate_field)
    expect(sealed.body).toBe(c.wire_frame1_json)
  })

  it('case 1 really has a text dump before its PEM block (the signer skips it)', () => {
    const c = cases[1] as VectorCase
    expect(c.cert_pem_file.startsWith('Certificate:')).toBe(true)
    const der = pemToDer(c.cert_pem_file, 'CERTIFICATE')
    expect(new X509Certificate(pemFromCertificateField(c.certificate_field)).raw.equals(der)).toBe(true)
  })

  it('a tampered vector gives a different digest', () => {
    const c = cases[0] as VectorCase
    const body = c.wire_frame1_json.replace('"n":1', '"n":2')
    expect(body).not.toBe(c.wire_frame1_json)
    const res = open(c.wire_frame0_topic, body)
    expect(res.ok && res.message.digest).not.toBe(sha256(c.canonical_signed_string))
  })
})

describe('buildEnvelope', () => {
  const savedTz = process.env['TZ']
  afterEach(() => {
    if (savedTz === undefined) delete process.env['TZ']
    else process.env['TZ'] = savedTz
  })

  it('sets topic, msg, msg_id, timestamp, i and username', () => {
    const nowMs = Date.UTC(2031, 4, 6, 7, 8, 9, 999)
    const env = buildEnvelope({ topic: TOPIC, msg: { a: [1, 'x'], b: true }, i: 42, nowMs, username: 'bob' })
    expect([...env.keys()].sort()).toEqual(['i', 'msg', 'msg_id', 'timestamp', 'topic', 'username'])
    expect(env.get('topic')).toBe(TOPIC)
    expect(envelopeField(env, 'msg')).toEqual({ a: [1, 'x'], b: true })
    const msgId = env.get('msg_id') as string
    expect(msgId).toMatch(/^\d{4}-[0-9a-f-]{36}$/)
    expect(msgId.slice(0, 5)).toBe('2031-')
    expect(msgId.slice(5)).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    expect(env.get('timestamp')).toEqual(jsonInt(BigInt(Math.floor(nowMs / 1000))))
    expect(envelopeInt(env, 'timestamp')).toBe(Math.floor(nowMs / 1000))
    expect(env.get('i')).toEqual(jsonInt(42n))
    expect(envelopeInt(env, 'i')).toBe(42)
    expect(env.get('username')).toBe('bob')
    expect(canonicalize(env)).toContain(`"timestamp":${Math.floor(nowMs / 1000)},`)
  })

  it('msg_ids are unique and increase within a process (time-ordered: indexes keyed by them append)', () => {
    const ids = Array.from({ length: 5000 }, () => newMsgId(Date.now()))
    expect(new Set(ids).size).toBe(ids.length)
    expect(ids.every((id, k) => k === 0 || (ids[k - 1] as string) < id)).toBe(true)
  })

  it('uses the UTC year, not the local one', () => {
    // 2029-12-31T12:00Z is already 2030 in UTC+14.
    process.env['TZ'] = 'Pacific/Kiritimati'
    const nowMs = Date.UTC(2029, 11, 31, 12, 0, 0)
    expect(new Date(nowMs).getFullYear()).toBe(2030) // the time zone switch took effect
    expect(newMsgId(nowMs).slice(0, 5)).toBe('2029-')
    const env = buildEnvelope({ topic: TOPIC, msg: 1, i: 1, nowMs, username: 'u' })
    expect((env.get('msg_id') as string).slice(0, 5)).toBe('2029-')
    process.env['TZ'] = 'America/Adak' // UTC-10: 2030-01-01T05:00Z is still 2029 locally
    const later = Date.UTC(2030, 0, 1, 5, 0, 0)
    expect(new Date(later).getFullYear()).toBe(2029)
    expect(newMsgId(later).slice(0, 5)).toBe('2030-')
  })

  it('timestamps are whole seconds, rounded down', () => {
    const env = buildEnvelope({ topic: TOPIC, msg: null, i: 1, nowMs: 1_699_999_999_999, username: 'u' })
    expect(env.get('timestamp')).toEqual(jsonInt(1_699_999_999n))
  })

  it('keeps a given msgId and a Lossless payload as is', () => {
    const payload = new Map<string, JsonValue>([['f', jsonFloat(1)]])
    const env = buildEnvelope({ topic: TOPIC, msg: new Lossless(payload), i: 1, nowMs: 0, username: 'u', msgId: 'given' })
    expect(env.get('msg_id')).toBe('given')
    expect(canonicalize(env)).toContain('"msg":{"f":1.0}')
  })

  it('adds extra fields before signing: they are in the canonical bytes and covered by the signature', () => {
    const env = sample({ gilmsg_version: '1.0', gilmsg_recipients: ['bob', 'carol'] })
    expect(env.get('gilmsg_version')).toBe('1.0')
    expect(env.get('gilmsg_recipients')).toEqual(['bob', 'carol'])
    const sealed = sealEnvelope(env, signerOf(pki, 'alice'))
    const text = sealed.canonical.toString('latin1')
    expect(text).toContain('"gilmsg_recipients":["bob","carol"],"gilmsg_version":"1.0"')
    expect(text).not.toContain('signature')
    expect(text).not.toContain('certificate')
    expect(open(TOPIC, sealed.body, verifier).ok).toBe(true)

    const tampered = edit(sealed.body, (e) => e.set('gilmsg_recipients', ['bob']))
    expectFail(open(TOPIC, tampered, verifier), InvalidReason.BadSignature)
    const dropped = edit(sealed.body, (e) => e.delete('gilmsg_version'))
    expectFail(open(TOPIC, dropped, verifier), InvalidReason.BadSignature)
  })
})

describe('sealEnvelope', () => {
  it('signs with crypto set first and sends the canonical form of the whole envelope', () => {
    const signer = signerOf(pki, 'alice')
    const sealed = sealEnvelope(sample(), signer)
    const wire = parseJson(sealed.body) as JsonObject
    expect(wire.get('crypto')).toBe('x509_sha256')
    expect(wire.get('signature')).toEqual(expect.stringMatching(/^[A-Za-z0-9+/=\n]+\n$/))
    expect(wire.get('certificate')).toBe(signer.certificateField)
    expect(canonicalize(wire)).toBe(sealed.body)
    expect(sealed.canonical.toString('latin1')).toContain('"crypto":"x509_sha256"')
    expect(sealed.digest).toBe(sha256(sealed.canonical))
    expect(sealed.topic).toBe(TOPIC)
    expect(sealed.msgId).toBe(wire.get('msg_id'))
  })

  it('without a signer the body is the canonical bytes, with no crypto fields', () => {
    const sealed = sealEnvelope(sample(), undefined)
    expect(sealed.body).toBe(sealed.canonical.toString('latin1'))
    const wire = parseJson(sealed.body) as JsonObject
    expect(wire.has('crypto')).toBe(false)
    expect(wire.has('signature')).toBe(false)
    expect(wire.has('certificate')).toBe(false)
  })

  it('the receiver re-canonicalises: a re-serialised body (other order, whitespace) still verifies with the same digest', () => {
    const sealed = sealEnvelope(sample(), signerOf(pki, 'alice'))
    const plain = JSON.parse(sealed.body) as Record<string, unknown>
    const reordered = Object.fromEntries(Object.entries(plain).reverse())
    const body = JSON.stringify(reordered, null, 2)
    expect(body).not.toBe(sealed.body)
    const res = open(TOPIC, body, verifier)
    expect(res.ok).toBe(true)
    if (res.ok) {
      expect(res.message.digest).toBe(sealed.digest)
      expect(res.message.canonical.equals(sealed.canonical)).toBe(true)
    }
  })
})

describe('fullTopic', () => {
  const parts = { topicPrefix: 'org.fedoraproject', environment: 'dev' }

  it('builds <prefix>.<env>.<modname>.<topic>', () => {
    expect(fullTopic(parts, 'gilmsg', 'thing.happened')).toBe('org.fedoraproject.dev.gilmsg.thing.happened')
    expect(fullTopic({ topicPrefix: 'org.example', environment: 'prod' }, 'app', 'x')).toBe('org.example.prod.app.x')
  })

  it('returns a topic that already starts with the prefix unchanged', () => {
    expect(fullTopic(parts, 'gilmsg', 'org.fedoraproject.prod.other.topic')).toBe('org.fedoraproject.prod.other.topic')
    expect(fullTopic(parts, 'gilmsg', 'org.fedoraproject.dev.gilmsg.x')).toBe('org.fedoraproject.dev.gilmsg.x')
    expect(fullTopic(parts, 'gilmsg', 'org.fedoraproject')).toBe('org.fedoraproject')
  })

  it('needs the whole prefix component: a longer first component is not the prefix', () => {
    expect(fullTopic(parts, 'gilmsg', 'org.fedoraprojectx.y')).toBe('org.fedoraproject.dev.gilmsg.org.fedoraprojectx.y')
  })

  it('leaves out an empty modname', () => {
    expect(fullTopic(parts, '', 'x')).toBe('org.fedoraproject.dev.x')
  })

  it('environmentPrefix selects the environment', () => {
    expect(environmentPrefix(parts)).toBe('org.fedoraproject.dev.')
    expect(fullTopic(parts, 'm', 't').startsWith(environmentPrefix(parts))).toBe(true)
  })
})

describe('openEnvelope failures', () => {
  const good = (): string => sealEnvelope(sample(), undefined).body

  it('accepts a good unsigned envelope without a verifier', () => {
    const body = good()
    const res = open(TOPIC, body)
    expect(res.ok).toBe(true)
    if (res.ok) {
      expect(res.message.topic).toBe(TOPIC)
      expect(res.message.canonical.toString('latin1')).toBe(body)
      expect(res.message.digest).toBe(sha256(body))
      expect(res.message.signer).toBeUndefined()
    }
  })

  it.each(['not json', '{', '', '{"topic":"a",}', "{'topic':'a'}", '{"a":1} x'])('not_json: %j', (body) => {
    expectFail(open(TOPIC, body), EnvelopeDropReason.NotJson)
  })

  it.each(['[]', '[{"topic":"x"}]', '"text"', '1', 'null', 'true'])('not_object: %j', (body) => {
    expectFail(open(TOPIC, body), EnvelopeDropReason.NotObject)
  })

  it('too_deep: nesting 65 with limit 64 (the envelope itself is level 1), 64 passes', () => {
    const env = (msgDepth: number): string =>
      `{"topic":${JSON.stringify(TOPIC)},"msg_id":"2024-x","msg":${'['.repeat(msgDepth)}${']'.repeat(msgDepth)}}`
    expect(open(TOPIC, env(63)).ok).toBe(true)
    expectFail(open(TOPIC, env(64)), EnvelopeDropReason.TooDeep)
    expectFail(open(TOPIC, env(500)), EnvelopeDropReason.TooDeep)
  })

  it('too_deep on an envelope built by buildEnvelope: msg sits one level below the envelope', () => {
    const nest = (d: number): JsonValue => (d === 0 ? jsonInt(1n) : [nest(d - 1)])
    const build = (d: number): string =>
      sealEnvelope(buildEnvelope({ topic: TOPIC, msg: new Lossless(nest(d)), i: 1, nowMs: 0, username: 'u' }), undefined).body
    expect(open(TOPIC, build(63)).ok).toBe(true)
    expectFail(open(TOPIC, build(64)), EnvelopeDropReason.TooDeep)
  })

  it('missing_field: no topic, non-string topic, no msg_id, non-string msg_id', () => {
    const body = good()
    expectFail(open(TOPIC, edit(body, (e) => e.delete('topic'))), EnvelopeDropReason.MissingField)
    expectFail(open(TOPIC, edit(body, (e) => e.set('topic', jsonInt(1n)))), EnvelopeDropReason.MissingField)
    expectFail(open(TOPIC, edit(body, (e) => e.delete('msg_id'))), EnvelopeDropReason.MissingField)
    expectFail(open(TOPIC, edit(body, (e) => e.set('msg_id', null))), EnvelopeDropReason.MissingField)
    expectFail(open(TOPIC, '{}'), EnvelopeDropReason.MissingField)
  })

  it('topic_mismatch: frame 0 is not the signed topic', () => {
    const body = good()
    expectFail(open(TOPIC + '.more', body), InvalidReason.TopicMismatch)
    expectFail(open('org.example.test.gilmsg', body), InvalidReason.TopicMismatch)
    expectFail(open('', body), InvalidReason.TopicMismatch)
  })

  it('never throws on odd input', () => {
    for (const body of ['\u0000', '{"topic":"\ud800"}', 'NaN', '[' + '{"a":'.repeat(100), '{"__proto__":{"topic":"x"}}']) {
      expect(() => open(TOPIC, body)).not.toThrow()
      expect(open(TOPIC, body).ok).toBe(false)
    }
  })
})

describe('openEnvelope with a verifier', () => {
  it('accepts a signed envelope and reports the signer CN and certificate fingerprint', () => {
    const sealed = sealEnvelope(sample(), signerOf(pki, 'alice'))
    const res = open(TOPIC, sealed.body, verifier)
    expect(res.ok).toBe(true)
    if (!res.ok) return
    expect(res.message.signer).toBe('alice')
    expect(res.message.fingerprint).toBe(sha256(pemToDer(pki.leaf('alice').certPem, 'CERTIFICATE')))
    expect(res.message.digest).toBe(sealed.digest)
    expect(res.message.msgId).toBe(sealed.msgId)
  })

  it('accepts RSA mode x509 (fedmsg) too', () => {
    const sealed = sealEnvelope(sample(), signerOf(pki, 'rob', CryptoMode.X509))
    const res = open(TOPIC, sealed.body, verifier)
    expect(res.ok && res.message.signer).toBe('rob')
    expect((parseJson(sealed.body) as JsonObject).get('crypto')).toBe('x509')
  })

  it('bad_signature: msg tampered', () => {
    const sealed = sealEnvelope(sample(), signerOf(pki, 'alice'))
    const body = edit(sealed.body, (e) => (e.get('msg') as JsonObject).set('n', jsonInt(2n)))
    expectFail(open(TOPIC, body, verifier), InvalidReason.BadSignature)
  })

  it('bad_signature: i tampered', () => {
    const sealed = sealEnvelope(sample(), signerOf(pki, 'alice'))
    const body = edit(sealed.body, (e) => e.set('i', jsonInt(8n)))
    expectFail(open(TOPIC, body, verifier), InvalidReason.BadSignature)
  })

  it('bad_signature: a field added after signing (the gilmsg 0.1.2 defect)', () => {
    const sealed = sealEnvelope(sample(), signerOf(pki, 'alice'))
    const body = edit(sealed.body, (e) => e.set('gilmsg_version', '1.0'))
    expectFail(open(TOPIC, body, verifier), InvalidReason.BadSignature)
  })

  it('bad_signature: the float/int distinction is signed (1 vs 1.0)', () => {
    const sealed = sealEnvelope(sample(), signerOf(pki, 'alice'))
    const body = edit(sealed.body, (e) => (e.get('msg') as JsonObject).set('n', jsonFloat(1)))
    expectFail(open(TOPIC, body, verifier), InvalidReason.BadSignature)
  })

  it('topic_mismatch is reported before the signature is checked', () => {
    const sealed = sealEnvelope(sample(), signerOf(pki, 'alice'))
    expectFail(open(TOPIC + 'x', sealed.body, verifier), InvalidReason.TopicMismatch)
  })

  it('unknown_ca: a certificate of another CA with the same CN', () => {
    const sealed = sealEnvelope(sample(), signerOf(other, 'alice'))
    expectFail(open(TOPIC, sealed.body, verifier), InvalidReason.UnknownCa)
  })

  it('an unsigned message is refused when a verifier is set (no crypto field: malformed)', () => {
    const sealed = sealEnvelope(sample(), undefined)
    const res = open(TOPIC, sealed.body, verifier)
    expect(res.ok).toBe(false)
    expectFail(res, InvalidReason.Malformed)
  })

  it('an unknown crypto mode is unsupported_crypto', () => {
    const sealed = sealEnvelope(sample(), signerOf(pki, 'alice'))
    const body = edit(sealed.body, (e) => e.set('crypto', 'gpg'))
    expectFail(open(TOPIC, body, verifier), InvalidReason.UnsupportedCrypto)
  })

  it('signedBy is passed to the verifier', () => {
    const sealed = sealEnvelope(sample(), signerOf(pki, 'alice'))
    expect(openEnvelope(TOPIC, sealed.body, { maxDepth: 64, verifier, signedBy: 'alice' }).ok).toBe(true)
    expectFail(openEnvelope(TOPIC, sealed.body, { maxDepth: 64, verifier, signedBy: 'bob' }), InvalidReason.PolicyDenied)
  })
})
