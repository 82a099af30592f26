/**
 * Public counters are read-only: `bus.drops`, `consumer.stats` and the
 * publisher's `ignoredAcks`, `resendsTo`, `resends` and `resendsHeldBack`
 * count what happened and cannot be changed from outside (at compile time,
 * and at run time for JavaScript callers).
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { ecPartiesPki, memoryBus } from '../../support/memory-bus.js'
import type { TestPki } from '../../support/pki.js'
import type { Verifier } from '../../../src/crypto/types.js'
import { MemoryInboxData, MemoryInboxStore } from '../../../src/inbox/memory.js'
import { MemoryOutboxStore } from '../../../src/outbox/memory.js'
import { Gilmsg } from '../../../src/reliable/gilmsg.js'
import { MemoryHub } from '../../../src/transport/memory.js'
import { ReasonCounter, type ReasonCounts } from '../../../src/util/counters.js'
import { FakeClock } from '../../support/fake-clock.js'

const TOPIC = { topicPrefix: 'org.test', environment: 'unit' }

let pki: TestPki
let verifier: Verifier
beforeAll(async () => {
  ;({ pki, verifier } = await ecPartiesPki('counters', ['publisher']))
}, 60_000)

const open: Gilmsg[] = []
afterEach(async () => {
  await Promise.all(open.splice(0).map((g) => g.close()))
})

/** Tries every way a caller could change `counts`, and says whether any worked. */
function tamperedWith(counts: ReasonCounts): boolean {
  const before = JSON.stringify(counts.snapshot())
  const loose = counts as unknown as Record<string, unknown>
  try {
    ;(loose['add'] as ((reason: string) => void) | undefined)?.('forged')
  } catch {
    // not callable: fine
  }
  for (const key of ['get', 'snapshot', 'total', 'add']) {
    try {
      loose[key] = () => 99
    } catch {
      // frozen: fine
    }
  }
  return JSON.stringify(counts.snapshot()) !== before || counts.get('forged') !== 0
}

describe('ReasonCounter.view', () => {
  it('reads the counter as it changes, and offers nothing that changes it', () => {
    const counter = new ReasonCounter()
    const view = counter.view
    counter.add('b', 2)
    counter.add('a')
    expect([view.get('a'), view.get('b'), view.get('c'), view.total]).toEqual([1, 2, 0, 3])
    expect(view.snapshot()).toEqual({ a: 1, b: 2 })
    expect('add' in view).toBe(false)
    expect(tamperedWith(view)).toBe(false)
    expect(view.snapshot()).toEqual({ a: 1, b: 2 })
  })
})

describe('public counters', () => {
  it('bus.drops, consumer.stats and the publisher counters cannot be written', async () => {
    const clock = new FakeClock()
    const bus = memoryBus({ hub: new MemoryHub(), verifier, topic: TOPIC, clock }, pki, 'publisher')
    const g = await Gilmsg.open({ bus, outbox: new MemoryOutboxStore(), inbox: new MemoryInboxStore(new MemoryInboxData()), clock, awaitSubscriberMs: 0 })
    open.push(g)
    const publisher = g.publisher
    const consumer = g.consumer
    if (publisher === undefined || consumer === undefined) throw new Error('expected a publisher and a consumer')

    // @ts-expect-error a read-only view: no add()
    expect(() => bus.drops.add('forged')).toThrow(TypeError)
    // @ts-expect-error a read-only view: no add()
    expect(() => consumer.stats.add('acks_sent')).toThrow(TypeError)
    // @ts-expect-error a read-only view: no add()
    expect(() => publisher.ignoredAcks.add('unknown')).toThrow(TypeError)
    // @ts-expect-error a read-only view: no add()
    expect(() => publisher.resendsTo.add('alice')).toThrow(TypeError)
    for (const counts of [bus.drops, consumer.stats, publisher.ignoredAcks, publisher.resendsTo]) expect(tamperedWith(counts)).toBe(false)
    // @ts-expect-error read-only
    expect(() => (publisher.resends = 5)).toThrow(TypeError)
    // @ts-expect-error read-only
    expect(() => (publisher.resendsHeldBack = 5)).toThrow(TypeError)
    expect([publisher.resends, publisher.resendsHeldBack, bus.drops.total, consumer.stats.total, publisher.ignoredAcks.total]).toEqual([0, 0, 0, 0, 0])
  })
})
