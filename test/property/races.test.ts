/**
 * Races between ACK arrival, the ackTimeout and resends, explored with
 * fc.scheduler: every timer firing and every network delivery is a scheduled
 * task, and fast-check tries their interleavings (durations are ignored, so
 * this covers every order real time could produce, and more).
 *
 * After all tasks ran: publish() resolved <=> the outbox says acked; it
 * rejected with AckTimeoutError <=> expired, naming exactly the missing ones.
 */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { beforeAll, describe, expect, it } from 'vitest'
import { memoryBus } from '../support/memory-bus.js'
import { createTestPki, type TestPki } from '../support/pki.js'
import { createVerifier } from '../../src/crypto/verifier.js'
import type { Verifier } from '../../src/crypto/types.js'
import { AckTimeoutError } from '../../src/errors.js'
import { MemoryInboxStore } from '../../src/inbox/memory.js'
import { MemoryOutboxStore } from '../../src/outbox/memory.js'
import type { OutboxStore } from '../../src/outbox/store.js'
import { Gilmsg } from '../../src/reliable/gilmsg.js'
import type { DeliveryReceipt } from '../../src/reliable/publisher.js'
import { MemoryHub } from '../../src/transport/memory.js'
import type { Clock } from '../../src/util/clock.js'

let pki: TestPki
let verifier: Verifier

beforeAll(async () => {
  pki = await createTestPki(mkdtempSync(join(tmpdir(), 'gilmsg-races-')), ['publisher', 'alice', 'bob'].map((name) => ({ name, key: 'ec' as const })))
  verifier = await createVerifier({ caPem: pki.caPem })
}, 60_000)

/**
 * A clock whose timers fire when the scheduler says. Timer i becomes eligible
 * only after `delays[i]` other scheduled steps (so a timeout can land anywhere
 * among the deliveries and writes, not just first), then fires in any order.
 */
class ScheduledClock implements Clock {
  #now = Date.UTC(2026, 0, 1)
  #created = 0
  #deferred: { at: number; go: () => void }[] = []
  steps = 0
  constructor(
    readonly s: fc.Scheduler,
    readonly delays: readonly number[],
  ) {}

  now(): number {
    return this.#now
  }

  setTimer(fn: () => void, ms: number): () => void {
    let cancelled = false
    const go = (): void =>
      void this.s.schedule(Promise.resolve(), `timer ${ms.toFixed(0)}ms`).then(() => {
        if (cancelled) return
        this.#now += ms
        fn()
      })
    const wait = this.delays[this.#created++ % this.delays.length] ?? 0
    this.#deferred.push({ at: this.steps + wait, go })
    this.release(false)
    return () => {
      cancelled = true
    }
  }

  /** Schedules the timers whose turn has come (all of them when `force`). */
  release(force: boolean): void {
    const ready = this.#deferred.filter((d) => force || d.at <= this.steps)
    this.#deferred = this.#deferred.filter((d) => !ready.includes(d))
    for (const d of ready) d.go()
  }
}

/**
 * The store applies each write at once, but the scheduler decides when its
 * promise settles (for `add` and `recordAck`, when it is durable; their
 * commit and outcome are known at once, as from a real store).
 */
function scheduledWrites(store: OutboxStore, s: fc.Scheduler, active: () => boolean): OutboxStore {
  const writes = new Set(['add', 'recordAck', 'expire', 'expireDue', 'retry', 'purge'])
  return new Proxy(store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown
      if (typeof value !== 'function') return value
      const fn = value as (...a: unknown[]) => unknown
      if (!writes.has(String(prop)) || !active()) return fn.bind(target)
      return (...args: unknown[]) => {
        const result = fn.apply(target, args)
        if (result instanceof Promise) return s.schedule(result, `store.${String(prop)}`)
        const durable = s.schedule((result as { durable: Promise<unknown> }).durable, `store.${String(prop)}`)
        durable.catch(() => undefined) // as the store's own: never an unhandled rejection
        return { ...(result as object), durable }
      }
    },
  })
}

const numRuns = Number(process.env['GILMSG_PROPERTY_RUNS'] ?? 100)

describe('publish races (fc.scheduler)', () => {
  it('settles consistently with the outbox whatever the order of ACKs, timeout and resends', async () => {
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), fc.subarray(['alice', 'bob'], { minLength: 1 }), fc.boolean(), fc.array(fc.nat(16), { minLength: 1, maxLength: 8 }), async (s, recipients, bobUp, delays) => {
        const clock = new ScheduledClock(s, delays)
        const hub = new MemoryHub()
        // Every delivery is held; a scheduled task releases it, so the scheduler orders deliveries and timers.
        const scheduled = new Set<number>()
        const pump = (): void => {
          for (const h of hub.held) {
            if (scheduled.has(h.id)) continue
            scheduled.add(h.id)
            void s.schedule(Promise.resolve(), `deliver #${h.id}`).then(() => {
              const i = hub.held.findIndex((x) => x.id === h.id)
              if (i >= 0) hub.release(i)
            })
          }
        }
        hub.setGate(() => {
          queueMicrotask(pump)
          return 'hold'
        })
        const bus = (name: string) => memoryBus({ hub, verifier, topic: { topicPrefix: 'org.test', environment: 'race' }, clock }, pki, name)
        const outbox = new MemoryOutboxStore()
        let racing = false
        const publisher = await Gilmsg.open({ bus: bus('publisher'), outbox: scheduledWrites(outbox, s, () => racing), clock, awaitSubscriberMs: 0, random: () => 0.5 })
        const consumers = await Promise.all(
          (bobUp ? ['alice', 'bob'] : ['alice']).map(async (cn) => {
            const g = await Gilmsg.open({ bus: bus(cn), inbox: new MemoryInboxStore(), clock })
            const sub = await g.subscribe('org.test.race.app.')
            const loop = (async () => {
              for await (const _ of sub) void _
            })()
            return { g, loop }
          }),
        )
        let outcome: { receipt?: DeliveryReceipt; error?: unknown } | undefined
        racing = true
        const p = publisher
          .publish('x', { hello: 'race' }, { recipients, ackTimeout: 1000, modname: 'app' })
          .then((receipt) => (outcome = { receipt }), (error: unknown) => (outcome = { error }))
        for (let i = 0; i < 500 && outcome === undefined; i++) {
          if (s.count() === 0) {
            clock.release(true)
            await new Promise((r) => setImmediate(r))
          } else {
            await s.waitOne()
            clock.steps++
            clock.release(false)
          }
        }
        expect(outcome, `publish settled; scheduler report:\n${s.report().slice(-20).map((t) => t.label).join(', ')}`).toBeDefined()
        await p
        const msg = outbox.list()[0]
        expect(msg, 'the message was committed').toBeDefined()
        if (msg === undefined || outcome === undefined) return
        const rows = outbox.recipients(msg.msgId)
        if (outcome.receipt) {
          expect(msg.state).toBe('acked')
          expect(outcome.receipt.recipients.map((r) => r.cn).sort()).toEqual([...recipients].sort())
        } else {
          expect(outcome.error).toBeInstanceOf(AckTimeoutError)
          const e = outcome.error as AckTimeoutError
          expect(msg.state).toBe('expired')
          expect([...e.missing].sort()).toEqual(rows.filter((r) => r.state !== 'acked').map((r) => r.cn).sort())
          expect(e.acked.map((a) => a.cn).sort()).toEqual(rows.filter((r) => r.state === 'acked').map((r) => r.cn).sort())
          if (!bobUp && recipients.includes('bob')) expect(e.missing).toContain('bob')
        }
        // Closing waits for writes still scheduled: keep the scheduler running until it is done.
        let closed = false
        const closing = (async () => {
          await publisher.close()
          for (const c of consumers) {
            await c.g.close()
            await c.loop
          }
        })().finally(() => (closed = true))
        while (!closed) {
          clock.release(true)
          if (s.count() > 0) await s.waitAll()
          else await new Promise((r) => setImmediate(r))
        }
        await closing
      }),
      { numRuns },
    )
  }, 120_000)
})
