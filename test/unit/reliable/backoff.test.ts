/**
 * The publisher's resend timing: the first resend waits for the
 * retransmission timeout (RFC 6298's srtt + 4 rttvar), learnt only from
 * messages acknowledged without a resend (Karn's rule), and after timeouts
 * later messages start with a doubled base until one is acknowledged cleanly
 * (Karn's algorithm), so that an overloaded recipient is not buried under
 * resends.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { ecPartiesPki, memoryBus } from '../../support/memory-bus.js'
import { Bus } from '../../../src/bus/bus.js'
import type { TestPki } from '../../support/pki.js'
import type { Verifier } from '../../../src/crypto/types.js'
import { MemoryInboxData, MemoryInboxStore } from '../../../src/inbox/memory.js'
import { MemoryOutboxData, MemoryOutboxStore } from '../../../src/outbox/memory.js'
import { backoffDelay, DEFAULT_BACKOFF } from '../../../src/reliable/backoff.js'
import { Gilmsg } from '../../../src/reliable/gilmsg.js'
import { AbortedError, AckTimeoutError } from '../../../src/errors.js'
import { systemClock } from '../../../src/util/clock.js'
import { MemoryHub } from '../../../src/transport/memory.js'
import { FakeClock, settle } from '../../support/fake-clock.js'

const TOPIC = { topicPrefix: 'org.test', environment: 'unit' }
const ACK_TOPIC = 'org.test.unit.gilmsg.ack'
/** Every random draw at the top of its range: each delay is its ceiling. */
const CEILING = (): number => 0.999999

let pki: TestPki
let verifier: Verifier
beforeAll(async () => {
  ;({ pki, verifier } = await ecPartiesPki('backoff', ['publisher', 'alice']))
}, 60_000)

const open: Gilmsg[] = []
afterEach(async () => {
  await Promise.all(open.splice(0).map((g) => g.close()))
})

async function world(): Promise<{ clock: FakeClock; hub: MemoryHub; store: MemoryOutboxStore; pub: Gilmsg; holdAcks: (hold: boolean) => void }> {
  const clock = new FakeClock()
  const hub = new MemoryHub()
  let hold = false
  hub.setGate((d) => (hold && d.topic === ACK_TOPIC ? 'hold' : 'deliver'))
  const bus = (name: string): Bus => memoryBus({ hub, verifier, topic: TOPIC, clock }, pki, name)
  const store = new MemoryOutboxStore(new MemoryOutboxData())
  const pub = await Gilmsg.open({ bus: bus('publisher'), outbox: store, clock, random: CEILING, awaitSubscriberMs: 0 })
  const alice = await Gilmsg.open({ bus: bus('alice'), inbox: new MemoryInboxStore(new MemoryInboxData()), clock })
  open.push(pub, alice)
  const sub = await alice.subscribe('org.test.unit.app.')
  void (async () => {
    for await (const _ of sub);
  })()
  await settle()
  return { clock, hub, store, pub, holdAcks: (h) => void (hold = h) }
}

/** How long after its first send a freshly enqueued message is first resent. */
async function firstResendDelay(w: { pub: Gilmsg; store: MemoryOutboxStore }): Promise<number> {
  const publisher = w.pub.publisher
  if (publisher === undefined) throw new Error('no publisher')
  const { msgId } = await publisher.enqueue('one', { n: 1 }, { recipients: ['alice'], deadline: 60_000, modname: 'app' })
  const m = w.store.get(msgId)
  if (m === undefined) throw new Error('not in the outbox')
  return m.nextAttemptAt - m.createdAt
}

describe('waiting for a first subscriber', () => {
  it('a publish() that times out (or is aborted) while waiting commits nothing and rejects at its ackTimeout', async () => {
    const hub = new MemoryHub() // nobody ever subscribes to the application topic
    const store = new MemoryOutboxStore(new MemoryOutboxData())
    const leafBus = memoryBus({ hub, verifier, topic: TOPIC, clock: systemClock }, pki, 'publisher')
    const pub = await Gilmsg.open({ bus: leafBus, outbox: store, clock: systemClock, awaitSubscriberMs: 5000 })
    open.push(pub)
    const started = performance.now()
    const timedOut = pub.publisher?.publish('one', { n: 1 }, { recipients: ['alice'], ackTimeout: 50, modname: 'app' })
    await expect(timedOut).rejects.toBeInstanceOf(AckTimeoutError)
    const aborted = pub.publisher?.publish('one', { n: 2 }, { recipients: ['alice'], signal: AbortSignal.timeout(50), modname: 'app' })
    await expect(aborted).rejects.toBeInstanceOf(AbortedError)
    expect(performance.now() - started).toBeLessThan(2000)
    await new Promise((r) => setTimeout(r, 20))
    expect(store.list()).toEqual([])
  })

  it('refuses an awaitSubscriberMs that is not an integer >= 0', async () => {
    const bus = memoryBus({ hub: new MemoryHub(), verifier, topic: TOPIC, clock: systemClock }, pki, 'publisher')
    for (const bad of [-1, 2.5, Number.NaN]) {
      await expect(Gilmsg.open({ bus, outbox: new MemoryOutboxStore(), awaitSubscriberMs: bad })).rejects.toThrow(/awaitSubscriberMs: expected an integer/)
    }
  })
})

describe('resend timing', () => {
  const base = backoffDelay(DEFAULT_BACKOFF, 1, CEILING)

  it('doubles the first-resend base after a timeout, again after the next, and resets on a clean ACK', async () => {
    const w = await world()
    w.holdAcks(true)
    expect(await firstResendDelay(w)).toBeCloseTo(base, 0)
    await w.clock.advance(base + 1) // its ACK is held: resent, a timeout
    expect(await firstResendDelay(w)).toBeCloseTo(2 * base, 0)
    await w.clock.advance(2 * base + 1) // that one times out too
    expect(await firstResendDelay(w)).toBeCloseTo(4 * base, 0)
    await w.clock.advance(4 * base + 1)
    expect(w.store.list().every((m) => m.attempts > 1)).toBe(true)

    // The held ACKs come in: every one was for a resent message, so they teach nothing and the base stays up.
    w.holdAcks(false)
    w.hub.releaseAll()
    await settle()
    expect(w.store.counts().pending).toBe(0)
    expect(await firstResendDelay(w)).toBeCloseTo(8 * base, 0)
    // ...until that one is acknowledged without a resend (at once here: a round trip of 0 ms). Now that a
    // round trip is known, a first resend waits at least the retransmission timeout (the floor of 50 ms here),
    // jittered up to a quarter above it.
    await settle()
    expect(await firstResendDelay(w)).toBeCloseTo(DEFAULT_BACKOFF.baseMs * 1.25, 0)
  })

  it('doubles at most once per base period, however many messages time out together', async () => {
    const w = await world()
    w.holdAcks(true)
    const publisher = w.pub.publisher
    for (let i = 0; i < 20; i++) await publisher?.enqueue('one', { i }, { recipients: ['alice'], deadline: 60_000, modname: 'app' })
    await w.clock.advance(base + 1)
    expect(publisher?.resends).toBe(20)
    expect(await firstResendDelay(w)).toBeCloseTo(2 * base, 0)
  })

  it('publish(): an ACK that came after a resend teaches no round trip; a clean one does', async () => {
    const w = await world()
    w.holdAcks(true)
    const p = w.pub.publish('one', { n: 1 }, { recipients: ['alice'], ackTimeout: 60_000, modname: 'app' })
    await settle()
    await w.clock.advance(base + 1) // its ACK is held: resent, a timeout
    expect(w.pub.publisher?.resends).toBe(1)
    w.holdAcks(false)
    w.hub.releaseAll()
    expect((await p).recipients.map((r) => r.cn)).toEqual(['alice'])
    expect(await firstResendDelay(w), 'base still doubled: nothing learnt from a resent message').toBeCloseTo(2 * base, 0)
    await settle() // that enqueued one is acknowledged without a resend, in 0 ms
    const clean = await w.pub.publish('one', { n: 2 }, { recipients: ['alice'], ackTimeout: 60_000, modname: 'app' })
    expect(clean.recipients.map((r) => r.cn)).toEqual(['alice'])
    expect(await firstResendDelay(w)).toBeCloseTo(DEFAULT_BACKOFF.baseMs * 1.25, 0)
  })

  it('never starts beyond the cap', async () => {
    const w = await world()
    w.holdAcks(true)
    for (let i = 0; i < 12; i++) {
      await firstResendDelay(w)
      await w.clock.advance(DEFAULT_BACKOFF.capMs + 1)
    }
    expect(await firstResendDelay(w)).toBeLessThanOrEqual(DEFAULT_BACKOFF.capMs)
  })
})
