import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Ajv2020 } from 'ajv/dist/2020.js'
import type { ValidateFunction } from 'ajv/dist/2020.js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Bus } from '../../../src/bus/bus.js'
import { createTestPki, type TestPki } from '../../support/pki.js'
import { createSigner } from '../../../src/crypto/signer.js'
import { CryptoMode } from '../../../src/crypto/types.js'
import type { Signer } from '../../../src/crypto/types.js'
import { buildEnvelope, sealEnvelope } from '../../../src/envelope/envelope.js'
import type { SealedMessage } from '../../../src/envelope/envelope.js'
import { ACK_MODNAME, ACK_TOPIC, ackBody, batchAckBody, parseAck, parseAcks, reliableFields } from '../../../src/reliable/protocol.js'
import { parseJson } from '../../../src/json/parse.js'
import type { JsonObject } from '../../../src/json/value.js'
import { MemoryHub, MemoryTransport } from '../../../src/transport/memory.js'

const readJson = async (rel: string): Promise<unknown> => JSON.parse(await readFile(new URL(rel, import.meta.url), 'utf8')) as unknown

interface VectorCase {
  readonly wire_frame0_topic: string
  readonly wire_frame1_json: string
}

const envelopeSchema = (await readJson('../../../spec/schemas/envelope.schema.json')) as Record<string, unknown>
const ackSchema = (await readJson('../../../spec/schemas/ack.schema.json')) as Record<string, unknown>
const vectorCases = ((await readJson('../../../spec/vectors/vectors.json')) as { cases: VectorCase[] }).cases

const ajv = new Ajv2020({ allErrors: true })
const validateEnvelope: ValidateFunction = ajv.compile(envelopeSchema)
const validateAck: ValidateFunction = ajv.compile(ackSchema)

function expectValid(validate: ValidateFunction, doc: unknown): void {
  const ok = validate(doc)
  expect(validate.errors ?? [], JSON.stringify(doc).slice(0, 300)).toEqual([])
  expect(ok).toBe(true)
}

function expectInvalid(validate: ValidateFunction, doc: unknown, keyword?: string): void {
  expect(validate(doc)).toBe(false)
  if (keyword !== undefined) expect((validate.errors ?? []).map((e) => e.keyword)).toContain(keyword)
}

const DIGEST = '0123456789abcdef'.repeat(4)
const PARTS = { topicPrefix: 'org.example', environment: 'test' }

let pki: TestPki
let dir: string
let ec: Signer
let rsa: Signer
let rsaSha256: Signer

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gilmsg-schemas-'))
  pki = await createTestPki(dir, [{ name: 'alice', key: 'ec' }, { name: 'rob', key: 'rsa' }, { name: 'eddie', key: 'ed25519' }])
  const mk = (name: string, mode: CryptoMode): Signer => createSigner({ mode, keyPem: pki.leaf(name).keyPem, certPem: pki.leaf(name).certPem })
  ec = mk('alice', CryptoMode.X509Sha256)
  rsa = mk('rob', CryptoMode.X509)
  rsaSha256 = mk('rob', CryptoMode.X509Sha256)
})

afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

function busWith(signer: Signer | undefined): Bus {
  return new Bus({ transport: new MemoryTransport(new MemoryHub(), 'b'), signer, verifier: undefined, topic: PARTS, maxJsonDepth: 64 })
}

const wire = (sealed: SealedMessage): Record<string, unknown> => JSON.parse(sealed.body) as Record<string, unknown>

describe('the schemas themselves', () => {
  it('are draft 2020-12 and compile (ajv default strict mode)', () => {
    expect(envelopeSchema['$schema']).toBe('https://json-schema.org/draft/2020-12/schema')
    expect(ackSchema['$schema']).toBe('https://json-schema.org/draft/2020-12/schema')
    expect(typeof validateEnvelope).toBe('function')
    expect(typeof validateAck).toBe('function')
  })
})

describe('envelope.schema.json accepts what gilmsg sends', () => {
  const payloads: unknown[] = [{ a: 1, nested: { list: [1, 2.5, 'x', null] } }, 'text', 42, [1, 2], null, true, {}]

  it.each(payloads.map((p) => [JSON.stringify(p), p]))('Bus.seal, signed (EC x509_sha256), msg %s', (_, payload) => {
    const doc = wire(busWith(ec).seal('thing', payload))
    expect(doc['crypto']).toBe('x509_sha256')
    expect(typeof doc['signature']).toBe('string')
    expectValid(validateEnvelope, doc)
  })

  it('signed with RSA (x509 and x509_sha256) and Ed25519', () => {
    const eddie = createSigner({ mode: CryptoMode.X509Sha256, keyPem: pki.leaf('eddie').keyPem, certPem: pki.leaf('eddie').certPem })
    for (const signer of [rsa, rsaSha256, eddie]) {
      const doc = wire(busWith(signer).seal('thing', { k: 'v' }))
      expect(doc['crypto']).toBe(signer.mode)
      expectValid(validateEnvelope, doc)
    }
  })

  it('unsigned', () => {
    const doc = wire(busWith(undefined).seal('thing', { k: 'v' }))
    expect(doc['signature']).toBeUndefined()
    expect(doc['crypto']).toBeUndefined()
    expectValid(validateEnvelope, doc)
  })

  it('guaranteed messages (gilmsg_version, gilmsg_recipients), signed and unsigned', () => {
    for (const signer of [ec, rsa, undefined]) {
      const bus = busWith(signer)
      for (const recipients of [['bob'], ['bob', 'carol', 'dave.example.org']]) {
        const doc = wire(bus.seal('order', { id: 7 }, { extra: reliableFields(recipients) }))
        expect(doc['gilmsg_version']).toBe('1.0')
        expect(doc['gilmsg_recipients']).toEqual(recipients)
        expectValid(validateEnvelope, doc)
      }
    }
  })

  it('buildEnvelope + sealEnvelope, with later i and an explicit modname', () => {
    const bus = busWith(ec)
    for (let k = 0; k < 5; k++) bus.seal('x', k)
    expectValid(validateEnvelope, wire(bus.seal('x', 'sixth', { modname: 'app' })))
    const env = buildEnvelope({ topic: 'org.example.test.app.y', msg: { a: 'é' }, i: 1, nowMs: Date.now(), username: 'u' })
    expectValid(validateEnvelope, wire(sealEnvelope(env, ec)))
    // The epoch itself is a valid timestamp.
    const epoch = buildEnvelope({ topic: 'org.example.test.app.y', msg: 1, i: 1, nowMs: 0, username: '' })
    expectValid(validateEnvelope, wire(sealEnvelope(epoch, undefined)))
  })

  it('ACK envelopes, and their msg against ack.schema.json', () => {
    const bus = busWith(ec)
    for (const body of [ackBody('2024-x', DIGEST, 'received'), ackBody('2024-x', DIGEST, 'processed'), ackBody('2024-x', DIGEST, 'rejected', 'no')]) {
      const doc = wire(bus.seal(ACK_TOPIC, body, { modname: ACK_MODNAME }))
      expect(doc['topic']).toBe('org.example.test.gilmsg.ack')
      expectValid(validateEnvelope, doc)
      expectValid(validateAck, doc['msg'])
    }
  })

  it.each([0, 1])('the real fedmsg wire frame of vector case %i', (i) => {
    const c = vectorCases[i] as VectorCase
    const doc = JSON.parse(c.wire_frame1_json) as Record<string, unknown>
    expect(doc['topic']).toBe(c.wire_frame0_topic)
    expectValid(validateEnvelope, doc)
  })
})

describe('ack.schema.json accepts what ackBody produces', () => {
  it.each([
    ['received', ackBody('2024-abc', DIGEST, 'received')],
    ['processed', ackBody('2024-abc', DIGEST, 'processed')],
    ['rejected with reason', ackBody('2024-abc', DIGEST, 'rejected', 'invalid order')],
    ['received with a reason', ackBody('2024-abc', DIGEST, 'received', 'informative')],
  ])('%s', (_, body) => {
    expectValid(validateAck, JSON.parse(JSON.stringify(body)))
  })
})

describe('the schemas reject wrong documents', () => {
  let good: Record<string, unknown>
  beforeAll(() => {
    good = wire(busWith(ec).seal('thing', { a: 1 }, { extra: reliableFields(['bob']) }))
    expectValid(validateEnvelope, good)
  })
  const without = (doc: Record<string, unknown>, key: string): Record<string, unknown> =>
    Object.fromEntries(Object.entries(doc).filter(([k]) => k !== key))

  it.each(['topic', 'msg', 'msg_id', 'timestamp', 'i', 'username'])('envelope without %s', (key) => {
    expectInvalid(validateEnvelope, without(good, key), 'required')
  })

  it('envelope with malformed fields', () => {
    expectInvalid(validateEnvelope, { ...good, msg_id: 'not-an-id' }, 'pattern')
    expectInvalid(validateEnvelope, { ...good, msg_id: '24-' + (good['msg_id'] as string).slice(5) }, 'pattern')
    expectInvalid(validateEnvelope, { ...good, timestamp: 1.5 }, 'type')
    expectInvalid(validateEnvelope, { ...good, timestamp: -1 }, 'minimum')
    expectInvalid(validateEnvelope, { ...good, i: 0 }, 'minimum')
    expectInvalid(validateEnvelope, { ...good, topic: '' }, 'minLength')
    expectInvalid(validateEnvelope, { ...good, crypto: 'gpg' }, 'enum')
    expectInvalid(validateEnvelope, { ...good, gilmsg_recipients: ['bob', 'bob'] }, 'uniqueItems')
    expectInvalid(validateEnvelope, { ...good, gilmsg_recipients: [''] }, 'minLength')
    expectInvalid(validateEnvelope, { ...good, gilmsg_recipients: 'bob' }, 'type')
    expectInvalid(validateEnvelope, [good], 'type')
  })

  it('a signature needs crypto and certificate', () => {
    expectInvalid(validateEnvelope, without(good, 'certificate'), 'dependentRequired')
    expectInvalid(validateEnvelope, without(good, 'crypto'), 'dependentRequired')
  })

  const ack = { ack_msg_id: '2024-abc', ack_digest: DIGEST, disposition: 'received' }

  it('ACK with a bad disposition', () => {
    expectInvalid(validateAck, { ...ack, disposition: 'done' }, 'enum')
    expectInvalid(validateAck, { ...ack, disposition: 'RECEIVED' }, 'enum')
  })

  it('rejected ACK without reason, or with an empty one', () => {
    expectInvalid(validateAck, { ...ack, disposition: 'rejected' }, 'required')
    expectInvalid(validateAck, { ...ack, disposition: 'rejected', reason: '' }, 'minLength')
  })

  it('ACK with a malformed or missing digest', () => {
    expectInvalid(validateAck, { ...ack, ack_digest: DIGEST.toUpperCase() }, 'pattern')
    expectInvalid(validateAck, { ...ack, ack_digest: DIGEST.slice(2) }, 'pattern')
    expectInvalid(validateAck, { ...ack, ack_digest: 'a'.repeat(40) }, 'pattern')
    expectInvalid(validateAck, without(ack, 'ack_digest'), 'required')
  })

  it('ACK without msg_id or disposition', () => {
    expectInvalid(validateAck, without(ack, 'ack_msg_id'), 'required')
    expectInvalid(validateAck, { ...ack, ack_msg_id: '' }, 'minLength')
    expectInvalid(validateAck, without(ack, 'disposition'), 'required')
  })

  it('ACK with an ack_msg_id over 128 characters (as parseAcks refuses it)', () => {
    expectValid(validateAck, { ...ack, ack_msg_id: 'm'.repeat(128) })
    expectInvalid(validateAck, { ...ack, ack_msg_id: 'm'.repeat(129) }, 'maxLength')
  })
})

describe('batched ACK payloads against ack.schema.json', () => {
  const validate = new Ajv2020({ strict: true }).compile(ackSchema)
  const item = (n: number) => ackBody(`2026-${String(n).padStart(8, '0')}-0000-4000-8000-000000000000`, n.toString(16).padStart(64, '0'), 'received')

  it('accepts what batchAckBody makes, and what parseAcks reads back', () => {
    const body = batchAckBody([item(1), item(2), ackBody('m3', 'c'.repeat(64), 'rejected', 'bad input')])
    expect(validate(JSON.parse(JSON.stringify(body))), JSON.stringify(validate.errors)).toBe(true)
    const env = parseJson(JSON.stringify({ topic: 't', msg_id: 'x', msg: body })) as JsonObject
    expect(parseAcks(env)?.map((a) => a.ack_msg_id)).toEqual([item(1).ack_msg_id, item(2).ack_msg_id, 'm3'])
    expect(parseAck(env)).toBeUndefined()
  })

  it('rejects an empty batch, extra keys, an item without a digest, and more than 1024 items', () => {
    const reject = (doc: unknown) => {
      expect(validate(doc)).toBe(false)
      expect(parseAcks(parseJson(JSON.stringify({ topic: 't', msg_id: 'x', msg: doc })) as JsonObject)).toBeUndefined()
    }
    reject({ acks: [] })
    reject({ acks: [item(1)], extra: 1 })
    reject({ acks: [{ ack_msg_id: 'm', disposition: 'received' }] })
    reject({ acks: Array.from({ length: 1025 }, (_, n) => item(n)) })
  })
})
