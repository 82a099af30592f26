/**
 * The resend budget: a token bucket refilled by time and by ACKs (ACK
 * clocking). Unit tests of the bucket, then the publisher with a fake clock:
 * a backlog nobody acknowledges is resent at the budget's rate (not as fast
 * as the CPU goes); a publish() whose deadline is near is never held back
 * behind that backlog; ACKs coming back open the budget again.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { ecPartiesPki, memoryBus } from '../../support/memory-bus.js'
import type { Bus } from '../../../src/bus/bus.js'
import type { TestPki } from '../../support/pki.js'
import type { Verifier } from '../../../src/crypto/types.js'
import { MemoryInboxData, MemoryInboxStore } from '../../../src/inbox/memory.js'
import { MemoryOutboxData, MemoryOutboxStore } from '../../../src/outbox/memory.js'
import { Gilmsg } from '../../../src/reliable/gilmsg.js'
import { RESEND_BURST } from '../../../src/reliable/publisher.js'
import { ResendBudget } from '../../../src/reliable/resend-budget.js'
import { MemoryHub } from '../../../src/transport/memory.js'
import { FakeClock, settle } from '../../support/fake-clock.js'

const TOPIC = { topicPrefix: 'org.test', environment: 'unit' }
const DAY = 24 * 3600_000

describe('ResendBudget', () => {
  it('starts full, refills at its rate up to the burst, and each ACK credits one token', () => {
    const b = new ResendBudget(10, 5, 0)
    for (let i = 0; i < 5; i++) expect(b.take(0)).toBe(true)
    expect(b.take(0)).toBe(false)
    expect(b.waitMs(0)).toBe(100)
    expect(b.take(99)).toBe(false)
    expect(b.take(100)).toBe(true)
    expect(b.available(10_000)).toBe(5) // never above the burst
    for (let i = 0; i < 5; i++) b.take(10_000)
    b.credit()
    expect(b.take(10_000)).toBe(true)
    expect(b.take(10_000)).toBe(false)
    b.credit(100)
    expect(b.available(10_000)).toBe(5)
  })

  it('spend() takes a token even when none is left, never going below zero', () => {
    const b = new ResendBudget(10, 2, 0)
    b.spend(0)
    b.spend(0)
    b.spend(0)
    expect(b.available(0)).toBe(0)
    expect(b.waitMs(0)).toBe(100)
  })
})

let pki: TestPki
let verifier: Verifier
beforeAll(async () => {
  ;({ pki, verifier } = await ecPartiesPki('budget', ['publisher', 'alice']))
}, 60_000)

const open: Gilmsg[] = []
afterEach(async () => {
  await Promise.all(open.splice(0).map((g) => g.close()))
})

interface World {
  readonly clock: FakeClock
  readonly hub: MemoryHub
  readonly store: MemoryOutboxStore
  readonly pub: Gilmsg
  /** Starts alice (acknowledging automatically). */
  alice(): Promise<void>
  /** Enqueues `n` messages for `recipient` (default alice) with a 24 h deadline. */
  backlog(n: number, recipient?: string): Promise<void>
}

async function world(resendRate: number): Promise<World> {
  const clock = new FakeClock()
  const hub = new MemoryHub()
  const bus = (name: string): Bus => memoryBus({ hub, verifier, topic: TOPIC, clock }, pki, name)
  const store = new MemoryOutboxStore(new MemoryOutboxData())
  const pub = await Gilmsg.open({ bus: bus('publisher'), outbox: store, clock, awaitSubscriberMs: 0, resendRate })
  open.push(pub)
  return {
    clock,
    hub,
    store,
    pub,
    async alice() {
      const alice = await Gilmsg.open({ bus: bus('alice'), inbox: new MemoryInboxStore(new MemoryInboxData()), clock })
      open.push(alice)
      const sub = await alice.subscribe('org.test.unit.app.')
      void (async () => {
        for await (const _ of sub);
      })()
      await settle()
    },
    async backlog(n, recipient = 'alice') {
      for (let i = 0; i < n; i += 100) {
        await Promise.all(Array.from({ length: Math.min(100, n - i) }, (_, k) => pub.enqueue('backlog', { n: i + k }, { recipients: [recipient], deadline: DAY, modname: 'app' })))
      }
    },
  }
}

const resendsOf = (g: Gilmsg): number => g.publisher?.resends ?? Number.NaN

describe('the publisher under a resend budget', () => {
  it('a backlog nobody acknowledges is resent at the budget rate (burst + rate x time), not as fast as it comes due', async () => {
    const RATE = 50
    const limited = await world(RATE)
    await limited.backlog(1000)
    for (let t = 0; t < 20; t++) await limited.clock.advance(500)
    const unlimited = await world(Infinity)
    await unlimited.backlog(1000)
    for (let t = 0; t < 20; t++) await unlimited.clock.advance(500)

    const bound = RESEND_BURST + RATE * 10 + RATE // one refill step of slack
    expect(resendsOf(limited.pub)).toBeLessThanOrEqual(bound)
    expect(resendsOf(limited.pub), 'the budget is used').toBeGreaterThan(RESEND_BURST)
    expect(limited.pub.publisher?.resendsHeldBack).toBeGreaterThan(0)
    // Without the limit the same backlog is resent many times over in those 10 s.
    expect(resendsOf(unlimited.pub)).toBeGreaterThan(3 * bound)
  }, 60_000)

  it('a publish() whose deadline is near is resent on time, never queued behind the held-back backlog', async () => {
    const w = await world(10)
    await w.backlog(1000, 'bob') // bob never comes: his backlog spends the budget
    for (let t = 0; t < 10; t++) await w.clock.advance(500)
    expect(w.store.due(w.clock.now(), 10_000).length, 'most of the backlog is due, held back').toBeGreaterThan(500)
    await w.alice()
    // alice's first copy of the urgent message is lost: only a resend can deliver it.
    let dropped = false
    w.hub.setGate((d) => {
      if (!dropped && d.topic.endsWith('.urgent')) {
        dropped = true
        return 'drop'
      }
      return 'deliver'
    })
    let outcome: unknown
    const p = w.pub.publish('urgent', { n: 1 }, { recipients: ['alice'], ackTimeout: 5000, modname: 'app' }).then(
      (r) => (outcome = r),
      (e: unknown) => (outcome = e),
    )
    for (let t = 0; t < 60 && outcome === undefined; t++) await w.clock.advance(100)
    await p
    expect(dropped).toBe(true)
    // At 10 resends/s behind ~1,000 due messages it would wait 100 s: past its 5 s timeout.
    expect(outcome).toMatchObject({ recipients: [{ cn: 'alice' }] })
  }, 60_000)

  it('ACKs coming back open the budget: a returning recipient gets its backlog far faster than the bare rate', async () => {
    const RATE = 10
    const w = await world(RATE)
    await w.backlog(1500)
    for (let t = 0; t < 10; t++) await w.clock.advance(500) // held back: ~RATE per second
    const before = resendsOf(w.pub)
    await w.alice()
    const joined = w.clock.now()
    for (let t = 0; t < 100 && w.store.counts().pending > 0; t++) await w.clock.advance(200)
    const took = w.clock.now() - joined
    expect(w.store.counts()).toMatchObject({ pending: 0, acked: 1500 })
    // At the bare rate, 1,500 - burst resends would take over 90 s; ACK clocking does it in a few seconds.
    expect(took).toBeLessThan(20_000)
    expect(resendsOf(w.pub) - before).toBeGreaterThanOrEqual(1500 - RESEND_BURST)
  }, 60_000)
})
