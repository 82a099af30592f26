import { createHash } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { Bus } from '../../../src/bus/bus.js'
import type { BusMessage, BusOptions, Subscription } from '../../../src/bus/bus.js'
import { createTestPki, type TestPki } from '../../support/pki.js'
import { pemToDer } from '../../../src/crypto/pem.js'
import { createSigner } from '../../../src/crypto/signer.js'
import { CryptoMode } from '../../../src/crypto/types.js'
import type { Signer, Verifier } from '../../../src/crypto/types.js'
import { createVerifier } from '../../../src/crypto/verifier.js'
import { envelopeField, envelopeInt } from '../../../src/envelope/envelope.js'
import { ClosedError } from '../../../src/errors.js'
import { canonicalize } from '../../../src/json/canonical.js'
import { parseJson } from '../../../src/json/parse.js'
import { jsonInt } from '../../../src/json/value.js'
import type { JsonObject } from '../../../src/json/value.js'
import { MemoryHub, MemoryTransport } from '../../../src/transport/memory.js'

const PARTS = { topicPrefix: 'org.example', environment: 'test' }
const ENV = 'org.example.test.'

let pki: TestPki
let other: TestPki
let verifier: Verifier
const dirs: string[] = []
const buses: Bus[] = []

beforeAll(async () => {
  const [d1, d2] = await Promise.all([mkdtemp(join(tmpdir(), 'gilmsg-bus-main-')), mkdtemp(join(tmpdir(), 'gilmsg-bus-other-'))])
  dirs.push(d1, d2)
  ;[pki, other] = await Promise.all([
    createTestPki(d1, [
      { name: 'alice', key: 'ec' },
      { name: 'bob', key: 'ec' },
      { name: 'rob', key: 'rsa' },
    ]),
    createTestPki(d2, [{ name: 'alice', key: 'ec' }]),
  ])
  verifier = await createVerifier({ caPem: pki.caPem })
})

afterEach(async () => {
  await Promise.all(buses.splice(0).map((b) => b.close()))
})

afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })))
})

function signerOf(p: TestPki, name: string, mode: CryptoMode = CryptoMode.X509Sha256): Signer {
  const leaf = p.leaf(name)
  return createSigner({ mode, keyPem: leaf.keyPem, certPem: leaf.certPem })
}

function makeBus(hub: MemoryHub, name: string, opts: Partial<BusOptions> & { maxMessageBytes?: number } = {}): Bus {
  const { maxMessageBytes, ...rest } = opts
  const bus = new Bus({
    transport: new MemoryTransport(hub, name, maxMessageBytes === undefined ? {} : { maxMessageBytes }),
    signer: undefined,
    verifier,
    topic: PARTS,
    maxJsonDepth: 64,
    username: 'tester',
    ...rest,
  })
  buses.push(bus)
  return bus
}

/** Resolves with the next message, or fails the test after `ms`. */
async function next(it: AsyncIterator<BusMessage>, ms = 2000): Promise<BusMessage> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no message within ${ms} ms`)), ms)
  })
  try {
    const r = await Promise.race([it.next(), timeout])
    if (r.done === true) throw new Error('subscription ended')
    return r.value
  } finally {
    clearTimeout(timer)
  }
}

function iter(sub: Subscription): AsyncIterator<BusMessage> {
  return sub[Symbol.asyncIterator]()
}

/** Re-serialises a body after a lossless edit. */
function edit(body: string, change: (env: JsonObject) => void): string {
  const env = parseJson(body) as JsonObject
  change(env)
  return canonicalize(env)
}

describe('publish -> subscribe', () => {
  it('round trip (EC, x509_sha256): plain JS payload, signer CN, msgId, digest, body', async () => {
    const hub = new MemoryHub()
    const pub = makeBus(hub, 'pub', { signer: signerOf(pki, 'alice') })
    const subBus = makeBus(hub, 'sub')
    const sub = await subBus.subscribe(ENV)
    const it = iter(sub)
    const payload = { a: 1, list: [1, 'two', null, true], nested: { 'é': '✓ 😀' }, big: 2 ** 40 }
    const sealed = await pub.publish('thing.done', payload)
    const m = await next(it)
    expect(m.msg).toEqual(payload)
    expect(m.signer).toBe('alice')
    expect(m.fingerprint).toBe(createHash('sha256').update(pemToDer(pki.leaf('alice').certPem, 'CERTIFICATE')).digest('hex'))
    expect(m.msgId).toBe(sealed.msgId)
    expect(m.topic).toBe('org.example.test.gilmsg.thing.done')
    expect(sealed.topic).toBe('org.example.test.gilmsg.thing.done')
    expect(m.digest).toBe(sealed.digest)
    expect(m.body).toBe(sealed.body)
    expect(envelopeField(m.envelope, 'crypto')).toBe('x509_sha256')
    expect(envelopeField(m.envelope, 'username')).toBe('tester')
    expect(subBus.drops.total).toBe(0)
  })

  it('round trip (RSA, fedmsg mode x509)', async () => {
    const hub = new MemoryHub()
    const pub = makeBus(hub, 'pub', { signer: signerOf(pki, 'rob', CryptoMode.X509) })
    const subBus = makeBus(hub, 'sub')
    const it = iter(await subBus.subscribe(''))
    const sealed = await pub.publish('rsa', { hello: 'world' }, { modname: 'app' })
    const m = await next(it)
    expect(m.msg).toEqual({ hello: 'world' })
    expect(m.signer).toBe('rob')
    expect(m.msgId).toBe(sealed.msgId)
    expect(m.topic).toBe('org.example.test.app.rsa')
    expect(envelopeField(m.envelope, 'crypto')).toBe('x509')
  })

  it('extra fields reach the receiver, signed', async () => {
    const hub = new MemoryHub()
    const pub = makeBus(hub, 'pub', { signer: signerOf(pki, 'alice') })
    const subBus = makeBus(hub, 'sub')
    const it = iter(await subBus.subscribe(''))
    await pub.publish('x', 1, { extra: { gilmsg_version: '1.0', gilmsg_recipients: ['bob'] } })
    const m = await next(it)
    expect(envelopeField(m.envelope, 'gilmsg_recipients')).toEqual(['bob'])
    expect(m.canonical.toString('latin1')).toContain('"gilmsg_recipients":["bob"]')
  })

  it('unsigned bus to a bus without verifier', async () => {
    const hub = new MemoryHub()
    const pub = makeBus(hub, 'pub', { verifier: undefined })
    const subBus = makeBus(hub, 'sub', { verifier: undefined })
    const it = iter(await subBus.subscribe(''))
    await pub.publish('plain', { x: 1 })
    const m = await next(it)
    expect(m.msg).toEqual({ x: 1 })
    expect(m.signer).toBeUndefined()
    expect(envelopeField(m.envelope, 'signature')).toBeUndefined()
  })

  it('an unsigned message is dropped by a validating bus', async () => {
    const hub = new MemoryHub()
    const pub = makeBus(hub, 'pub', { signer: undefined })
    const signed = makeBus(hub, 'signed', { signer: signerOf(pki, 'alice') })
    const subBus = makeBus(hub, 'sub')
    const it = iter(await subBus.subscribe(''))
    await pub.publish('plain', 1)
    await signed.publish('signed', 2)
    expect((await next(it)).msg).toBe(2)
    expect(subBus.drops.get('malformed')).toBe(1)
  })

  it('filters by prefix on frame 0', async () => {
    const hub = new MemoryHub()
    const pub = makeBus(hub, 'pub', { signer: signerOf(pki, 'alice') })
    const subBus = makeBus(hub, 'sub')
    const onlyA = iter(await subBus.subscribe('org.example.test.gilmsg.a'))
    const aOrC = iter(await subBus.subscribe(['org.example.test.gilmsg.c', 'org.example.test.gilmsg.a.x']))
    await pub.publish('b', 'b')
    await pub.publish('a', 'a')
    await pub.publish('c.1', 'c')
    await pub.publish('ab', 'ab') // a prefix match on bytes, as ZeroMQ
    await pub.publish('a.x.y', 'axy')
    await pub.publish('org.other.topic', 'other')
    expect((await next(onlyA)).msg).toBe('a')
    expect((await next(onlyA)).msg).toBe('ab')
    expect((await next(onlyA)).msg).toBe('axy')
    expect((await next(aOrC)).msg).toBe('c')
    expect((await next(aOrC)).msg).toBe('axy')
    expect(subBus.drops.total).toBe(0)
  })

  it('i increments by one per published (or sealed) message, from 1', async () => {
    const hub = new MemoryHub()
    const pub = makeBus(hub, 'pub', { signer: signerOf(pki, 'alice') })
    const subBus = makeBus(hub, 'sub')
    const it = iter(await subBus.subscribe(''))
    for (let k = 0; k < 3; k++) await pub.publish('n', k)
    const is = []
    for (let k = 0; k < 3; k++) is.push(envelopeInt((await next(it)).envelope, 'i'))
    expect(is).toEqual([1, 2, 3])
    const sealed = pub.seal('n', 'later')
    expect(envelopeInt(parseJson(sealed.body) as JsonObject, 'i')).toBe(4)
    // Another bus has its own counter.
    const pub2 = makeBus(hub, 'pub2', { signer: signerOf(pki, 'bob') })
    expect(envelopeInt(parseJson(pub2.seal('n', 0).body) as JsonObject, 'i')).toBe(1)
  })

  it('send() re-sends sealed bytes unchanged', async () => {
    const hub = new MemoryHub()
    const pub = makeBus(hub, 'pub', { signer: signerOf(pki, 'alice') })
    const subBus = makeBus(hub, 'sub')
    const it = iter(await subBus.subscribe(''))
    const sealed = pub.seal('again', { k: 1 })
    await pub.send(sealed)
    await pub.send(sealed)
    const a = await next(it)
    const b = await next(it)
    expect(a.body).toBe(sealed.body)
    expect(b.body).toBe(sealed.body)
    expect(b.msgId).toBe(a.msgId)
  })
})

describe('drops', () => {
  it('counts junk by reason, calls onDrop, and keeps yielding good messages', async () => {
    const hub = new MemoryHub()
    const seen: [string, string][] = []
    const alice = makeBus(hub, 'alice', { signer: signerOf(pki, 'alice') })
    const stranger = makeBus(hub, 'stranger', { signer: signerOf(other, 'alice') })
    const subBus = makeBus(hub, 'sub', { maxMessageBytes: 8192, onDrop: (reason, detail) => seen.push([reason, detail]) })
    const it = iter(await subBus.subscribe(ENV))
    const T = 'org.example.test.gilmsg.junk'

    await alice.publish('first', 'first')
    expect((await next(it)).msg).toBe('first')

    hub.inject(T) // 1 frame
    hub.inject(T, '{}', '{}') // 3 frames
    hub.inject(T, Buffer.from([0x7b, 0xff, 0xfe, 0x7d])) // invalid UTF-8
    hub.inject(Buffer.from([0x6f, 0x72, 0x67, 0x2e, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x74, 0x65, 0x73, 0x74, 0x2e, 0xc3]), '{}') // bad UTF-8 in frame 0
    hub.inject(T, 'x'.repeat(9000)) // over maxMessageBytes
    hub.inject(T, 'not json')
    hub.inject(T, '[]')
    hub.inject(T, `{"topic":"${T}","msg_id":"m","msg":${'['.repeat(64)}${']'.repeat(64)}}`)
    hub.inject(T, `{"msg_id":"m","msg":1}`)
    const good = alice.seal('good', { ok: true })
    hub.inject(T, good.body) // frame 0 is not the signed topic
    const foreign = stranger.seal('foreign', 'forged')
    hub.inject(foreign.topic, foreign.body) // same CN, other CA
    const tampered = edit(alice.seal('tampered', { amount: 1 }).body, (e) => (e.get('msg') as JsonObject).set('amount', jsonInt(1000n)))
    hub.inject('org.example.test.gilmsg.tampered', tampered)

    // Transport-level drops are counted at once, before anything is read.
    expect(subBus.drops.snapshot()).toEqual({ frame_count: 2, not_utf8: 2, too_large: 1 })

    await alice.send(good)
    const m = await next(it)
    expect(m.msg).toEqual({ ok: true })
    expect(m.msgId).toBe(good.msgId)
    expect(subBus.drops.snapshot()).toEqual({
      bad_signature: 1,
      frame_count: 2,
      missing_field: 1,
      not_json: 1,
      not_object: 1,
      not_utf8: 2,
      too_deep: 1,
      too_large: 1,
      topic_mismatch: 1,
      unknown_ca: 1,
    })
    expect(subBus.drops.total).toBe(12)
    expect(seen.map(([r]) => r)).toEqual([
      'frame_count',
      'frame_count',
      'not_utf8',
      'not_utf8',
      'too_large',
      'not_json',
      'not_object',
      'too_deep',
      'missing_field',
      'topic_mismatch',
      'unknown_ca',
      'bad_signature',
    ])
    for (const [, detail] of seen) expect(detail.length).toBeGreaterThan(0)
    expect(seen[9]?.[1]).toContain(T)
    expect(seen[11]?.[1]).toContain('alice')

    await alice.publish('after', 'after')
    expect((await next(it)).msg).toBe('after')
    expect(subBus.drops.total).toBe(12)
  })

  it('a message exactly at maxMessageBytes passes, one byte more is too_large', async () => {
    const hub = new MemoryHub()
    const subBus = makeBus(hub, 'sub', { maxMessageBytes: 200, verifier: undefined })
    const it = iter(await subBus.subscribe(''))
    const topic = 'org.example.test.gilmsg.size'
    const make = (total: number): string => {
      const head = `{"msg_id":"m","topic":"${topic}","msg":"`
      return head + 'a'.repeat(total - topic.length - head.length - 2) + '"}'
    }
    hub.inject(topic, make(201))
    hub.inject(topic, make(200))
    const m = await next(it)
    expect(Buffer.byteLength(topic) + Buffer.byteLength(m.body)).toBe(200)
    expect(subBus.drops.snapshot()).toEqual({ too_large: 1 })
  })

  it('signedBy drops messages signed by someone else with policy_denied', async () => {
    const hub = new MemoryHub()
    const alice = makeBus(hub, 'alice', { signer: signerOf(pki, 'alice') })
    const bob = makeBus(hub, 'bob', { signer: signerOf(pki, 'bob') })
    const reasons: string[] = []
    const subBus = makeBus(hub, 'sub', { onDrop: (r) => reasons.push(r) })
    const onlyBob = iter(await subBus.subscribe('', { signedBy: 'bob' }))
    const everyone = iter(await subBus.subscribe(''))
    await alice.publish('x', 'from alice')
    await bob.publish('x', 'from bob')
    const m = await next(onlyBob)
    expect(m.msg).toBe('from bob')
    expect(m.signer).toBe('bob')
    expect(subBus.drops.snapshot()).toEqual({ policy_denied: 1 })
    expect(reasons).toEqual(['policy_denied'])
    // The other subscription, without signedBy, sees both.
    expect((await next(everyone)).signer).toBe('alice')
    expect((await next(everyone)).signer).toBe('bob')
  })
})

describe('a bug while validating', () => {
  it('ends the subscription loop with the error: not a drop, not a silent stop', async () => {
    const hub = new MemoryHub()
    const pub = makeBus(hub, 'pub', { signer: signerOf(pki, 'alice') })
    // A real verifier with a bug inside: its clock throws a TypeError.
    const buggy = await createVerifier({
      caPem: pki.caPem,
      clock: () => {
        throw new TypeError('clock bug')
      },
    })
    const drops: string[] = []
    const subBus = makeBus(hub, 'sub', { verifier: buggy, onDrop: (reason) => drops.push(reason) })
    const sub = await subBus.subscribe(ENV)
    const loop = (async () => {
      for await (const _m of sub) throw new Error('no message should come through')
    })()
    await pub.publish('thing.done', { a: 1 })
    const ended = await Promise.race([
      loop.then(
        () => 'ended without an error',
        (e: unknown) => e,
      ),
      vi.waitUntil(() => drops.length > 0, { timeout: 2000 }).then(() => `dropped as ${drops.join(', ')}`),
    ])
    expect(ended).toEqual(new TypeError('clock bug'))
    expect(subBus.drops.total).toBe(0)
  })
})

describe('lifecycle', () => {
  it('has no open() for subscriptions to call back: each gets the validating function it needs', () => {
    const bus = makeBus(new MemoryHub(), 'sub')
    expect('open' in bus).toBe(false)
  })

  it('close() is idempotent and ends iteration; publish and subscribe after close reject with ClosedError', async () => {
    const hub = new MemoryHub()
    const bus = makeBus(hub, 'bus', { signer: signerOf(pki, 'alice') })
    const sub = await bus.subscribe('')
    const it = iter(sub)
    await bus.publish('x', 1)
    expect((await next(it)).msg).toBe(1)
    const pending = it.next()
    const c1 = bus.close()
    const c2 = bus.close()
    expect(c2).toBe(c1)
    await c1
    await expect(bus.close()).resolves.toBeUndefined()
    await expect(pending).resolves.toEqual({ done: true, value: undefined })
    await expect(bus.publish('x', 2)).rejects.toBeInstanceOf(ClosedError)
    await expect(bus.subscribe('')).rejects.toBeInstanceOf(ClosedError)
    await expect(bus.waitForSubscribers('x')).rejects.toBeInstanceOf(ClosedError)
  })

  it('a closed subscription ends, and the hub no longer delivers to it', async () => {
    const hub = new MemoryHub()
    const pub = makeBus(hub, 'pub', { signer: signerOf(pki, 'alice') })
    const subBus = makeBus(hub, 'sub')
    const sub = await subBus.subscribe('')
    const it = iter(sub)
    const c = sub.close()
    expect(sub.close()).toBe(c)
    await c
    await pub.publish('x', 1)
    await expect(it.next()).resolves.toEqual({ done: true, value: undefined })
    expect(await pub.waitForSubscribers('org.example.test.gilmsg.x', { timeoutMs: 0 })).toBe(false)
  })

  it('closing the bus ends a for-await loop', async () => {
    const hub = new MemoryHub()
    const pub = makeBus(hub, 'pub', { signer: signerOf(pki, 'alice') })
    const subBus = makeBus(hub, 'sub')
    const sub = await subBus.subscribe('')
    const got: unknown[] = []
    const loop = (async () => {
      for await (const m of sub) got.push(m.msg)
    })()
    await pub.publish('a', 1)
    await pub.publish('b', 2)
    await vi.waitFor(() => expect(got).toHaveLength(2))
    await subBus.close()
    await loop
    expect(got).toEqual([1, 2])
  })

  it('waitForSubscribers resolves true when a memory subscriber matches, false after a timeout otherwise', async () => {
    const hub = new MemoryHub()
    const pub = makeBus(hub, 'pub', { signer: signerOf(pki, 'alice') })
    const subBus = makeBus(hub, 'sub')
    const topic = pub.fullTopic('w')
    expect(topic).toBe('org.example.test.gilmsg.w')
    expect(await pub.waitForSubscribers(topic, { timeoutMs: 20 })).toBe(false)
    const waiting = pub.waitForSubscribers(topic, { timeoutMs: 2000 })
    await subBus.subscribe('org.example.test.other')
    await subBus.subscribe(ENV)
    expect(await waiting).toBe(true)
    expect(await pub.waitForSubscribers(topic)).toBe(true)
    expect(await pub.waitForSubscribers('org.elsewhere.x', { timeoutMs: 20 })).toBe(false)
  })

  it('openPublisher resolves with memory endpoints', async () => {
    const hub = new MemoryHub()
    const pub = makeBus(hub, 'p1', { signer: signerOf(pki, 'alice') })
    expect(await pub.openPublisher()).toEqual(['memory://p1'])
    expect(pub.signer?.cn).toBe('alice')
    expect(pub.verifier).toBe(verifier)
    expect(pub.topicParts).toEqual(PARTS)
  })
})
