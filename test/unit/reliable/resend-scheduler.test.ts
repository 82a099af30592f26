/**
 * The resend scheduler on its own, over a memory outbox and a fake clock:
 * what is due goes out when its timer fires (earliest first, at most a batch
 * per pass), urgent messages before the backlog and never held back by the
 * budget, expiry before any resend, and stop() ends it all.
 * `resend-budget.test.ts` checks the same through a publisher.
 */
import { describe, expect, it } from 'vitest'
import { MemoryOutboxStore } from '../../../src/outbox/memory.js'
import { DEFAULT_BACKOFF } from '../../../src/reliable/backoff.js'
import { ResendBudget } from '../../../src/reliable/resend-budget.js'
import { BUDGET_WAKE_MS, nextAttemptAt, RESEND_BATCH, ResendScheduler } from '../../../src/reliable/resend-scheduler.js'
import { RttEstimator } from '../../../src/reliable/rtt.js'
import type { AckRecord, OutboxMessage } from '../../../src/outbox/store.js'
import { Disposition } from '../../../src/protocol/ack.js'
import { FakeClock, settle } from '../../support/fake-clock.js'

const DAY = 24 * 3600_000
/** Every random draw at the top of its range: each delay is its ceiling. */
const CEILING = (): number => 0.999999

interface World {
  readonly clock: FakeClock
  readonly store: CountingStore
  readonly rtt: RttEstimator
  readonly scheduler: ResendScheduler
  /** msgIds in the order they were sent. */
  readonly sent: string[]
  /** How many had been sent when each pass began (with something due). */
  readonly passes: number[]
  readonly expired: string[]
  readonly errors: unknown[]
  /** Adds a pending message for alice and bob, first resend due in `dueIn` ms, deadline in `deadlineIn` ms. */
  add(msgId: string, dueIn: number, deadlineIn?: number): Promise<void>
  failSends: boolean
  /** While set, each pass waits for it before resending. */
  gate: Promise<void> | undefined
}

function ack(msgId: string, cn: string, at: number): AckRecord {
  return { msgId, cn, digest: 'd', disposition: Disposition.Received, at, ackBody: '{}', fingerprint: `fp-${cn}` }
}

/** A memory outbox that notes the `limit` of every `due()` read of the backlog (no `deadlineBy`). */
class CountingStore extends MemoryOutboxStore {
  readonly dueLimits: number[] = []
  override due(now: number, limit: number, deadlineBy?: number): OutboxMessage[] {
    if (deadlineBy === undefined) this.dueLimits.push(limit)
    return super.due(now, limit, deadlineBy)
  }
}

function world(budget?: { rate: number; burst: number }): World {
  const clock = new FakeClock()
  const store = new CountingStore()
  const rtt = new RttEstimator(DEFAULT_BACKOFF, CEILING)
  const w: World = {
    clock,
    store,
    rtt,
    sent: [],
    passes: [],
    expired: [],
    errors: [],
    failSends: false,
    gate: undefined,
    scheduler: new ResendScheduler({
      store,
      clock,
      rtt,
      budget: budget === undefined ? undefined : new ResendBudget(budget.rate, budget.burst, clock.now()),
      urgentWithinMs: DEFAULT_BACKOFF.longAfterMs,
      send: (m) => {
        if (w.failSends) return Promise.reject(new Error('socket is gone'))
        w.sent.push(m.msgId)
        return Promise.resolve()
      },
      beforePass: async () => {
        w.passes.push(w.sent.length)
        await w.gate
      },
      expireDue: async (now) => {
        w.expired.push(...(await store.expireDue(now)))
      },
      onResend: () => undefined,
      onError: (e) => w.errors.push(e),
    }),
    async add(msgId, dueIn, deadlineIn = 60_000) {
      const now = clock.now()
      await store.add({ msgId, topic: `t.${msgId}`, body: '{}', digest: 'd', recipients: ['alice', 'bob'], createdAt: now, deadline: now + deadlineIn, nextAttemptAt: now + dueIn }).durable
    },
  }
  return w
}

describe('ResendScheduler', () => {
  it('resends a message when it is due, not before, then again when the rtt estimator says', async () => {
    const w = world()
    await w.add('m1', 100)
    w.scheduler.arm()
    await w.clock.advance(99)
    expect(w.sent).toEqual([])
    await w.clock.advance(1)
    expect(w.sent).toEqual(['m1'])
    // Its first send timed out: the estimator backs off (base 50 -> 100), and the next resend is due one
    // (doubled) base later, the ceiling of the jitter here.
    expect(w.rtt.backoff).toBe(2)
    const m = w.store.get('m1')
    expect(m?.attempts).toBe(2)
    expect((m?.nextAttemptAt ?? 0) - w.clock.now()).toBeCloseTo(100, 1)
    await w.clock.advance(100)
    expect(w.sent).toEqual(['m1', 'm1'])
    expect(w.rtt.backoff, 'only a first send timing out backs off').toBe(2)
    expect(w.scheduler.resends).toBe(2)
  })

  it('a first resend due before the retransmission timeout as it stands now waits until its first send is that old', async () => {
    const w = world()
    // A round trip of 100 ms was measured: rto 300 ms (srtt + 4 rttvar); first resends are set 300-375 ms after
    // the first send (here at the ceiling of the jitter).
    w.rtt.acknowledged(w.clock.now(), w.clock.now() + 100, false)
    const firstDelay = w.rtt.firstResendDelay(60_000)
    expect(firstDelay).toBeCloseTo(375, 1)
    await w.add('early', 310) // an older message, really lost: its first resend is due at 310 ms
    await w.clock.advance(300)
    for (const id of ['b1', 'b2', 'b3']) await w.add(id, firstDelay) // a burst, sent together 300 ms later
    w.scheduler.arm()
    await w.clock.advance(10)
    // The older one timed out: the timeout backoff doubles the floor of first resends to 600 ms.
    expect(w.sent).toEqual(['early'])
    expect(w.rtt.firstResendTimeout(60_000)).toBe(600)
    await w.clock.advance(firstDelay - 10)
    // Due by the timeout of the moment they were sent, too early by today's: moved to 600 ms after their first
    // send, no send counted, the backoff unchanged (postponing is not a timeout).
    expect(w.sent).toEqual(['early'])
    expect(w.scheduler.postponed).toBe(3)
    expect(w.rtt.backoff).toBe(2)
    expect(w.store.get('b1')).toMatchObject({ attempts: 1, nextAttemptAt: 600 + (w.store.get('b1')?.createdAt ?? NaN) })
    // b1 is acknowledged meanwhile; b2 and b3 are resent once 600 ms old, with no second postponement.
    await w.store.recordAck(ack('b1', 'alice', w.clock.now())).durable
    await w.store.recordAck(ack('b1', 'bob', w.clock.now())).durable
    await w.clock.advance(600 - firstDelay)
    expect(w.sent).toEqual(['early', 'b2', 'b3'])
    expect(w.scheduler.postponed).toBe(3)
    expect(w.store.get('b2')?.attempts).toBe(2)
  })

  it('before a round trip is known, and after the first resend, nothing is postponed', async () => {
    const w = world()
    await w.add('m1', 20)
    w.scheduler.arm()
    await w.clock.advance(20)
    expect(w.sent).toEqual(['m1'])
    w.rtt.acknowledged(0, 5_000, false) // a slow round trip, learnt after m1's first resend
    const next = w.store.get('m1')?.nextAttemptAt ?? Infinity
    await w.clock.advance(next - w.clock.now())
    expect(w.sent).toEqual(['m1', 'm1'])
    expect(w.scheduler.postponed).toBe(0)
  })

  it('counts resends by recipient whose ACK is still missing', async () => {
    const w = world()
    await w.add('m1', 10)
    w.scheduler.arm()
    await w.clock.advance(10)
    await w.store.recordAck(ack('m1', 'bob', w.clock.now())).durable
    await w.clock.advance((w.store.get('m1')?.nextAttemptAt ?? Infinity) - w.clock.now())
    expect(w.scheduler.resendsTo.snapshot()).toEqual({ alice: 2, bob: 1 })
    expect('add' in w.scheduler.resendsTo, 'a read-only view').toBe(false)
  })

  it('resends the earliest due first, at most a batch per pass, and arms the next pass for the rest', async () => {
    const w = world()
    for (let i = 0; i < RESEND_BATCH + 10; i++) await w.add(`m${String(i).padStart(3, '0')}`, 1000 - i)
    await w.clock.advance(1000) // all due by now; armed late, the timer fires at once
    w.scheduler.arm()
    await w.clock.advance(0)
    expect(w.passes).toEqual([0, RESEND_BATCH])
    expect(w.sent.slice(0, 3)).toEqual(['m265', 'm264', 'm263'])
    expect(new Set(w.sent).size).toBe(RESEND_BATCH + 10)
  })

  it('expires what is past its deadline before resending, and never resends it', async () => {
    const w = world()
    await w.add('late', 100, 100)
    await w.add('fine', 100, 60_000)
    w.scheduler.arm()
    await w.clock.advance(100)
    expect(w.expired).toEqual(['late'])
    expect(w.sent).toEqual(['fine'])
  })

  it('a resend whose backoff would run past the deadline is due at the deadline: it expires then, not one backoff later', async () => {
    const w = world()
    // First resend at 100; the next one, a doubled base (100 ms) later, would be at 200: past the deadline at 150.
    await w.add('m1', 100, 150)
    w.scheduler.arm()
    await w.clock.advance(100)
    expect(w.sent).toEqual(['m1'])
    expect(w.store.get('m1')?.nextAttemptAt).toBe(w.clock.now() + 50)
    await w.clock.advance(49)
    expect(w.expired).toEqual([])
    await w.clock.advance(1)
    expect(w.expired).toEqual(['m1'])
    expect(w.sent).toEqual(['m1'])
  })

  it('nextAttemptAt: after the delay, never after the deadline, never before now', () => {
    expect(nextAttemptAt(1000, 50, 2000)).toBe(1050)
    expect(nextAttemptAt(1000, 5000, 2000)).toBe(2000)
    expect(nextAttemptAt(1000, 50, 900)).toBe(1000)
  })

  it('urgent messages go first and are never held back by the budget; the backlog waits for tokens', async () => {
    const w = world({ rate: 10, burst: 2 })
    for (const id of ['b1', 'b2', 'b3', 'b4']) await w.add(id, 10, DAY)
    await w.add('u1', 20, 60_000)
    await w.add('u2', 20, 60_000)
    await w.clock.advance(20)
    w.scheduler.arm()
    await w.clock.advance(0)
    // Both urgent ones spend the two tokens; none is left for the backlog.
    expect(w.sent).toEqual(['u1', 'u2'])
    expect(w.scheduler.heldBack).toBe(1)
    for (const msgId of ['u1', 'u2']) for (const cn of ['alice', 'bob']) await w.store.recordAck(ack(msgId, cn, w.clock.now())).durable
    // A token comes back after 100 ms (10/s): one more of the backlog, earliest due first.
    await w.clock.advance(BUDGET_WAKE_MS - 1)
    expect(w.sent).toEqual(['u1', 'u2'])
    await w.clock.advance(1)
    expect(w.sent).toEqual(['u1', 'u2', 'b1'])
    // Urgent again with no token at all: still resent at once.
    await w.add('u3', 0, 60_000)
    w.scheduler.arm()
    await w.clock.advance(0)
    expect(w.sent).toEqual(['u1', 'u2', 'b1', 'u3'])
  })

  it('reads from the store only the due rows the budget pays for, plus one', async () => {
    const w = world({ rate: 10, burst: 5 })
    for (let i = 0; i < 50; i++) await w.add(`b${String(i).padStart(2, '0')}`, 10, DAY)
    w.scheduler.arm()
    await w.clock.advance(10)
    expect(w.sent).toEqual(['b00', 'b01', 'b02', 'b03', 'b04'])
    expect(w.scheduler.heldBack).toBe(1)
    // The first read of each pass (one row: its topic, for beforePass), then the backlog: 5 tokens, 6 rows.
    expect(w.store.dueLimits).toEqual([1, 6])
    // Held back: the next pass, once a token is back, reads two rows and resends one.
    await w.clock.advance(BUDGET_WAKE_MS)
    expect(w.sent.slice(5)).toEqual(['b05'])
    expect(w.store.dueLimits.slice(2)).toEqual([1, 2])
    // Without a budget, a full batch.
    const free = world()
    await free.add('m1', 10)
    free.scheduler.arm()
    await free.clock.advance(10)
    expect(free.store.dueLimits).toEqual([1, RESEND_BATCH])
  })

  it('a credited ACK pays for one more resend of the backlog', async () => {
    const w = world({ rate: 1, burst: 2 })
    for (const id of ['b1', 'b2', 'b3', 'b4', 'b5']) await w.add(id, 10, DAY)
    w.scheduler.arm()
    await w.clock.advance(10)
    expect(w.sent).toEqual(['b1', 'b2'])
    w.scheduler.credit()
    // The budget wakes the scheduler once a token is back (1 s at 1/s): the credited one and that one.
    await w.clock.advance(999)
    expect(w.sent).toEqual(['b1', 'b2'])
    await w.clock.advance(1)
    expect(w.sent).toEqual(['b1', 'b2', 'b3', 'b4'])
  })

  it('a pass waits for beforePass, with something due, before resending', async () => {
    const w = world()
    let open!: () => void
    w.gate = new Promise((resolve) => (open = resolve))
    await w.add('m1', 10)
    w.scheduler.arm()
    await w.clock.advance(10)
    expect(w.passes).toEqual([0])
    expect(w.sent).toEqual([])
    open()
    await settle()
    expect(w.sent).toEqual(['m1'])
  })

  it('a failed send ends the pass with onError; the next pass, armed at once, goes on with what is due', async () => {
    const w = world()
    await w.add('m1', 10)
    await w.add('m2', 10)
    w.failSends = true
    w.scheduler.arm()
    await w.clock.advance(10)
    expect(w.errors.map((e) => (e as Error).message)).toEqual(['socket is gone', 'socket is gone'])
    expect(w.passes, 'one pass per failure').toEqual([0, 0])
    expect([w.store.get('m1')?.attempts, w.store.get('m2')?.attempts]).toEqual([2, 2])
    w.failSends = false
    await w.clock.advance(200)
    expect(w.sent.slice(0, 2)).toEqual(['m1', 'm2'])
  })

  it('stop(): the armed timer is cancelled, arm() does nothing, and a pass under way resends nothing more', async () => {
    const w = world()
    await w.add('m1', 10)
    w.scheduler.arm()
    let open!: () => void
    w.gate = new Promise((resolve) => (open = resolve))
    await w.clock.advance(10)
    expect(w.passes).toEqual([0])
    w.scheduler.stop()
    open()
    await settle()
    expect(w.sent).toEqual([])
    w.scheduler.arm()
    expect(w.clock.pendingTimers).toBe(0)
    await w.clock.advance(10_000)
    expect(w.sent).toEqual([])
    w.scheduler.stop()
  })
})
