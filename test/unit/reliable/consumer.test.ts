/**
 * What a consumer keeps and what it refuses (issue 11, findings 3 to 5), over
 * the in-memory hub with a fake clock and a test PKI whose every party holds
 * a valid certificate (mallory included):
 *   - its inbox is keyed by (signer CN, msg_id): mallory sending a msg_id
 *     first does not shadow the genuine message, whose publish() resolves;
 *   - only the messages it must acknowledge are stored; a msg_id over 128
 *     characters is refused; the inbox is pruned while it runs;
 *   - a guaranteed message signed before the replay window (the retention
 *     minus the clock skew margin) or too far in the future is refused, while
 *     a genuine resend at the end of the longest deadline is still accepted.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { ecPartiesPki, leafSigner, memoryBus } from '../../support/memory-bus.js'
import type { Bus } from '../../../src/bus/bus.js'
import type { TestPki } from '../../support/pki.js'
import type { Verifier } from '../../../src/crypto/types.js'
import { createVerifier } from '../../../src/crypto/verifier.js'
import { buildEnvelope, sealEnvelope, type SealedMessage } from '../../../src/envelope/envelope.js'
import { InvalidArgumentError } from '../../../src/errors.js'
import { MemoryInboxData, MemoryInboxStore } from '../../../src/inbox/memory.js'
import { SqliteInboxStore } from '../../../src/inbox/sqlite.js'
import { MemoryOutboxData, MemoryOutboxStore } from '../../../src/outbox/memory.js'
import { INBOX_PRUNE_INTERVAL_MS, type Delivery } from '../../../src/reliable/consumer.js'
import { Gilmsg } from '../../../src/reliable/gilmsg.js'
import {
  CLOCK_SKEW_MARGIN_MS,
  DEFAULT_INBOX_RETENTION_MS,
  MAX_DEADLINE_MS,
  MAX_MESSAGE_AGE_MS,
  MAX_MSG_ID_LENGTH,
  reliableFields,
} from '../../../src/reliable/protocol.js'
import type { DeliveryReceipt } from '../../../src/reliable/publisher.js'
import { MemoryHub } from '../../../src/transport/memory.js'
import type { Clock } from '../../../src/util/clock.js'
import { FakeClock, settle } from '../../support/fake-clock.js'
import { waitUntil } from '../../support/reliable-net.js'
import { writeSchema1 } from '../inbox/schema1.js'

const TOPIC = { topicPrefix: 'org.test', environment: 'unit' }
const APP = 'org.test.unit.app.'
const HOUR = 60 * 60 * 1000

let pki: TestPki
let verifier: Verifier
beforeAll(async () => {
  ;({ pki, verifier } = await ecPartiesPki('consumer', ['publisher', 'alice', 'mallory']))
}, 60_000)

const open: { close(): Promise<void> }[] = []
afterEach(async () => {
  await Promise.all(open.splice(0).map((g) => g.close()))
})

/** `clock`, seen from a machine whose clock is `skewMs` ahead. */
function skewed(clock: Clock, skewMs: number): Clock {
  return { now: () => clock.now() + skewMs, setTimer: (fn, ms) => clock.setTimer(fn, ms) }
}

interface Consumer {
  readonly g: Gilmsg
  readonly data: MemoryInboxData
  readonly got: Delivery[]
}

class World {
  readonly clock = new FakeClock()
  readonly hub = new MemoryHub()
  readonly outbox = new MemoryOutboxData()

  bus(name: string, clock: Clock = this.clock): Bus {
    const b = memoryBus({ hub: this.hub, verifier, topic: TOPIC, clock }, pki, name)
    open.push(b)
    return b
  }

  async publisher(): Promise<Gilmsg> {
    const g = await Gilmsg.open({ bus: this.bus('publisher'), outbox: new MemoryOutboxStore(this.outbox), clock: this.clock, awaitSubscriberMs: 0 })
    open.push(g)
    return g
  }

  async alice(clock: Clock = this.clock, data = new MemoryInboxData()): Promise<Consumer> {
    const g = await Gilmsg.open({ bus: this.bus('alice', clock), inbox: new MemoryInboxStore(data), clock })
    open.push(g)
    const got: Delivery[] = []
    const sub = await g.subscribe(APP)
    void (async () => {
      for await (const d of sub) got.push(d)
    })()
    await settle()
    return { g, data, got }
  }

  /** A guaranteed message signed by `name` (at `nowMs`), as any certificate holder can make one: msg_id of its choosing. */
  seal(name: string, recipients: readonly string[], options: { msgId?: string; nowMs?: number; msg?: unknown } = {}): SealedMessage {
    const env = buildEnvelope({
      topic: `${APP}job`,
      msg: options.msg ?? { from: name },
      i: 1,
      nowMs: options.nowMs ?? this.clock.now(),
      username: name,
      extra: reliableFields(recipients),
      ...(options.msgId !== undefined ? { msgId: options.msgId } : {}),
    })
    return sealEnvelope(env, leafSigner(pki.leaf(name)))
  }
}

const stat = (c: Consumer, name: string): number => c.g.consumer?.stats.get(name) ?? 0

describe('the inbox is keyed by (signer CN, msg_id): squatting a msg_id does not block the genuine message', () => {
  it("mallory's message with the genuine msg_id arrives first: both are handed over and acknowledged, each with its own digest, and the genuine publish() resolves", async () => {
    const w = new World()
    // The genuine message's first send to alice is held: mallory, watching the bus, is faster.
    w.hub.setGate((d) => (d.from === 'publisher' && d.to === 'alice' ? 'hold' : 'deliver'))
    const pub = await w.publisher()
    const alice = await w.alice()
    const mallory = w.bus('mallory')
    let outcome: { receipt: DeliveryReceipt } | { error: unknown } | undefined
    void pub.publish('job', { genuine: true }, { recipients: ['alice'], ackTimeout: 10_000, modname: 'app' }).then(
      (receipt) => (outcome = { receipt }),
      (error: unknown) => (outcome = { error }),
    )
    await settle()
    const genuine = w.hub.held[0]
    if (genuine === undefined) throw new Error('the genuine message was not sent')
    const msgId = (JSON.parse(genuine.body.toString()) as { msg_id: string }).msg_id

    const squat = w.seal('mallory', ['alice'], { msgId, msg: { genuine: false } })
    await mallory.send(squat)
    await settle()
    expect(alice.got.map((d) => [d.signer, d.msgId])).toEqual([['mallory', msgId]])
    // Alice acknowledged mallory's message (it names her): the ACK carries mallory's digest, which the publisher does not count.
    expect(pub.publisher?.ignoredAcks.get('digest_mismatch')).toBe(1)
    expect(outcome).toBeUndefined()

    w.hub.releaseAll()
    await settle()
    expect(outcome, 'the genuine publish() resolved').toHaveProperty('receipt')
    const receipt = (outcome as { receipt: DeliveryReceipt }).receipt
    expect(receipt.msgId).toBe(msgId)
    expect(receipt.recipients.map((r) => r.cn)).toEqual(['alice'])
    expect(alice.got.map((d) => [d.signer, d.msgId, d.digest])).toEqual([
      ['mallory', msgId, squat.digest],
      ['publisher', msgId, receipt.digest],
    ])
    expect(stat(alice, 'digest_conflicts')).toBe(0)
    expect(stat(alice, 'acks_sent')).toBe(2)

    // A resend of either is a duplicate of its own entry.
    await mallory.send(squat)
    await w.clock.advance(3000)
    expect(alice.got).toHaveLength(2)
    expect(stat(alice, 'duplicates_suppressed')).toBeGreaterThanOrEqual(1)
  })
})

describe('a bug while validating', () => {
  it("ends the application's loop over a gilmsg subscription with the error: not a drop, not a silent stop", async () => {
    const w = new World()
    // A real verifier with a bug inside: its clock throws a TypeError.
    const buggy = await createVerifier({
      caPem: pki.caPem,
      clock: () => {
        throw new TypeError('clock bug')
      },
    })
    const bus = memoryBus({ hub: w.hub, verifier: buggy, topic: TOPIC, clock: w.clock }, pki, 'alice')
    open.push(bus)
    const g = await Gilmsg.open({ bus, inbox: new MemoryInboxStore(new MemoryInboxData()), clock: w.clock })
    open.push(g)
    const sub = await g.subscribe(APP)
    const loop = (async () => {
      for await (const _d of sub) throw new Error('no delivery should come through')
    })()
    await w.bus('publisher').send(w.seal('publisher', ['alice']))
    const ended = await Promise.race([
      loop.then(
        () => 'ended without an error',
        (e: unknown) => e,
      ),
      vi.waitUntil(() => bus.drops.total > 0, { timeout: 2000 }).then(() => `dropped: ${JSON.stringify(bus.drops.snapshot())}`),
    ])
    expect(ended).toEqual(new TypeError('clock bug'))
    expect(bus.drops.total).toBe(0)
  })
})

describe('an inbox migrated from schema 1 (entries without a signer)', () => {
  it('an old entry is the message only if the digest is equal: the same bytes are a duplicate (stored ACK resent), a squatted msg_id no longer blocks the genuine message', async () => {
    const w = new World()
    const pub = w.bus('publisher')
    const before = w.seal('publisher', ['alice'], { msg: { n: 1 } })
    const genuine = w.seal('publisher', ['alice'], { msg: { n: 2 } })
    const squat = w.seal('mallory', ['alice'], { msgId: genuine.msgId })
    const dir = mkdtempSync(join(tmpdir(), 'gilmsg-consumer-'))
    try {
      const path = join(dir, 'alice.inbox.db')
      writeSchema1(
        path,
        [
          { msgId: before.msgId, digest: before.digest, receivedAt: w.clock.now(), ackBody: '{"stored":"ack"}' },
          { msgId: squat.msgId, digest: squat.digest, receivedAt: w.clock.now() },
        ],
        'org.test.unit.gilmsg.ack',
      )
      const g = await Gilmsg.open({ bus: w.bus('alice'), inbox: SqliteInboxStore.open(path), clock: w.clock })
      open.push(g)
      const got: Delivery[] = []
      const sub = await g.subscribe(APP)
      void (async () => {
        for await (const d of sub) got.push(d)
      })()
      await settle()
      await pub.send(before)
      await pub.send(genuine)
      // (the SQLite inbox commits and syncs for real before the ACK goes out and the message is handed over)
      await waitUntil(() => got.length > 0 || (g.consumer?.stats.get('digest_conflicts') ?? 0) > 0, 5000, 'the genuine message or a conflict')
      expect(got.map((d) => d.digest)).toEqual([genuine.digest])
      expect(g.consumer?.stats.snapshot()).toMatchObject({ duplicates_suppressed: 1, acks_resent: 1, acks_sent: 1, ack_envelopes: 1 })
      expect(g.consumer?.stats.get('digest_conflicts')).toBe(0)
      await g.close()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('a consumer whose prefix also matches the ACK topic (a bystander on everything)', () => {
  // The bystander's bus verifies through this: every topic it verifies is recorded.
  async function bystander(w: World, options: { acks?: boolean } = {}): Promise<{ g: Gilmsg; got: Delivery[]; verified: string[] }> {
    const verified: string[] = []
    const counting: Verifier = { verify: (fields, o) => (verified.push(String(fields.topic)), verifier.verify(fields, o)) }
    const bus = memoryBus({ hub: w.hub, verifier: counting, topic: TOPIC, clock: w.clock }, pki, 'mallory')
    open.push(bus)
    const g = await Gilmsg.open({ bus, inbox: new MemoryInboxStore(new MemoryInboxData()), clock: w.clock })
    open.push(g)
    const got: Delivery[] = []
    const sub = await g.subscribe('org.test.unit.', options)
    void (async () => {
      for await (const d of sub) got.push(d)
    })()
    await settle()
    return { g, got, verified }
  }

  it('passes ACK traffic over before parsing or verifying it (counted as acks_skipped) and hands over the application message once', async () => {
    const w = new World()
    const alice = await w.alice()
    const carol = await bystander(w)
    const pub = await w.publisher()
    await pub.publish('job', { n: 1 }, { recipients: ['alice'], modname: 'app', ackTimeout: 5000 })
    await settle()
    expect(alice.got).toHaveLength(1)
    expect(carol.got.map((d) => d.topic)).toEqual(['org.test.unit.app.job'])
    expect(carol.verified).toEqual(['org.test.unit.app.job'])
    expect(carol.g.consumer?.stats.get('acks_skipped')).toBe(1)
    expect(carol.g.bus.drops.snapshot()).toEqual({})
  })

  it('with acks: true, the ACK is verified and handed over as a plain message', async () => {
    const w = new World()
    await w.alice()
    const carol = await bystander(w, { acks: true })
    const pub = await w.publisher()
    await pub.publish('job', { n: 1 }, { recipients: ['alice'], modname: 'app', ackTimeout: 5000 })
    await settle()
    expect(carol.got.map((d) => [d.topic, d.requiresAck])).toEqual([
      ['org.test.unit.app.job', false],
      ['org.test.unit.gilmsg.ack', false],
    ])
    expect(carol.verified).toEqual(['org.test.unit.app.job', 'org.test.unit.gilmsg.ack'])
    expect(carol.g.consumer?.stats.get('acks_skipped') ?? 0).toBe(0)
  })
})

describe('what a consumer stores', () => {
  it('1,000 guaranteed messages addressed to someone else are handed over once each and leave the inbox empty', async () => {
    const w = new World()
    const alice = await w.alice()
    const mallory = w.bus('mallory')
    const sent = Array.from({ length: 1000 }, (_, n) => w.seal('mallory', ['bob'], { msg: { n } }))
    for (const m of sent) await mallory.send(m)
    await settle()
    expect(alice.got).toHaveLength(1000)
    expect(alice.data.entries.size).toBe(0)
    // Copies within the process are still suppressed.
    for (const m of sent.slice(0, 10)) await mallory.send(m)
    await settle()
    expect(alice.got).toHaveLength(1000)
    expect(stat(alice, 'duplicates_suppressed')).toBe(10)
    expect(stat(alice, 'acks_sent')).toBe(0)
  })

  it(`a msg_id over ${MAX_MSG_ID_LENGTH} characters is refused (msg_id_too_long): not handed over, not acknowledged, not stored; ${MAX_MSG_ID_LENGTH} is accepted`, async () => {
    const w = new World()
    const alice = await w.alice()
    const mallory = w.bus('mallory')
    await mallory.send(w.seal('mallory', ['alice'], { msgId: 'x'.repeat(MAX_MSG_ID_LENGTH + 1) }))
    await mallory.send(w.seal('mallory', ['bob'], { msgId: 'y'.repeat(100_000) }))
    await settle()
    expect(stat(alice, 'msg_id_too_long')).toBe(2)
    expect(alice.got).toEqual([])
    expect(alice.data.entries.size).toBe(0)
    expect(stat(alice, 'acks_sent')).toBe(0)
    await mallory.send(w.seal('mallory', ['alice'], { msgId: 'z'.repeat(MAX_MSG_ID_LENGTH) }))
    await settle()
    expect(alice.got.map((d) => d.msgId.length)).toEqual([MAX_MSG_ID_LENGTH])
    expect(stat(alice, 'acks_sent')).toBe(1)
  })

  it('the inbox is pruned while the consumer runs (hourly, on the injected clock), and the timer stops on close', async () => {
    const w = new World()
    const alice = await w.alice()
    const pub = w.bus('publisher')
    await pub.send(w.seal('publisher', ['alice']))
    await settle()
    expect(alice.data.entries.size).toBe(1)
    await w.clock.advance(DEFAULT_INBOX_RETENTION_MS - HOUR)
    expect(alice.data.entries.size, 'kept within the retention').toBe(1)
    await w.clock.advance(HOUR + INBOX_PRUNE_INTERVAL_MS)
    expect(alice.data.entries.size, 'pruned without a restart').toBe(0)
    expect(w.clock.pendingTimers).toBe(1)
    await alice.g.close()
    expect(w.clock.pendingTimers).toBe(0)
  })
})

describe('pruning failures', () => {
  it('a prune that fails while running is counted (prune_failures) and given to onConsumerError; the next one still runs', async () => {
    const w = new World()
    /** How many of the next prunes fail (not the one at start). */
    let failures = 0
    class FlakyInbox extends MemoryInboxStore {
      override prune(before: number): Promise<number> {
        if (failures-- > 0) return Promise.reject(new Error('disk I/O error'))
        return super.prune(before)
      }
    }
    const data = new MemoryInboxData()
    const errors: unknown[] = []
    const g = await Gilmsg.open({ bus: w.bus('alice'), inbox: new FlakyInbox(data), clock: w.clock, onConsumerError: (e) => errors.push(e) })
    open.push(g)
    const sub = await g.subscribe(APP)
    void (async () => {
      for await (const _ of sub);
    })()
    await settle()
    await w.bus('publisher').send(w.seal('publisher', ['alice']))
    await settle()
    expect(data.entries.size).toBe(1)
    failures = 1
    await w.clock.advance(INBOX_PRUNE_INTERVAL_MS)
    expect(g.consumer?.stats.get('prune_failures')).toBe(1)
    expect(errors.map((e) => (e as Error).message)).toEqual(['disk I/O error'])
    await w.clock.advance(DEFAULT_INBOX_RETENTION_MS)
    expect(data.entries.size).toBe(0)
  })
})

describe('the replay window: the signed timestamp of a guaranteed message', () => {
  it('a message replayed after the inbox forgot it is refused as stale: not handed over, not acknowledged again', async () => {
    const w = new World()
    const alice = await w.alice()
    const pub = w.bus('publisher')
    const captured = w.seal('publisher', ['alice'])
    await pub.send(captured)
    await settle()
    expect(alice.got).toHaveLength(1)
    expect(stat(alice, 'acks_sent')).toBe(1)

    // Within the retention a replay is a duplicate, answered with the stored ACK.
    await w.clock.advance(MAX_MESSAGE_AGE_MS - HOUR)
    await pub.send(captured)
    await settle()
    expect(stat(alice, 'duplicates_suppressed')).toBe(1)

    // Past the window it is refused before the inbox is asked; after the retention the inbox has forgotten it.
    await w.clock.advance(2 * HOUR)
    await pub.send(captured)
    await settle()
    expect(stat(alice, 'stale')).toBe(1)
    await w.clock.advance(CLOCK_SKEW_MARGIN_MS + INBOX_PRUNE_INTERVAL_MS)
    expect(alice.data.entries.size).toBe(0)
    await pub.send(captured)
    await settle()
    expect(stat(alice, 'stale')).toBe(2)
    expect(alice.got).toHaveLength(1)
    expect(stat(alice, 'acks_sent')).toBe(1)
  })

  it(`a message dated more than the skew margin (${CLOCK_SKEW_MARGIN_MS / HOUR} h) ahead is refused as from_future; one within it is accepted`, async () => {
    const w = new World()
    const alice = await w.alice()
    const mallory = w.bus('mallory')
    await mallory.send(w.seal('mallory', ['alice'], { nowMs: w.clock.now() + CLOCK_SKEW_MARGIN_MS + 1000 }))
    await mallory.send(w.seal('mallory', ['bob'], { nowMs: w.clock.now() + 365 * 24 * HOUR }))
    await settle()
    expect(stat(alice, 'from_future')).toBe(2)
    expect(alice.got).toEqual([])
    await mallory.send(w.seal('mallory', ['alice'], { nowMs: w.clock.now() + CLOCK_SKEW_MARGIN_MS }))
    await settle()
    expect(alice.got).toHaveLength(1)
  })

  it('a genuine resend at the end of the longest deadline is accepted, even by a consumer whose clock is the whole margin ahead', async () => {
    const w = new World()
    w.hub.setGate((d) => (d.to === 'alice' ? 'drop' : 'deliver'))
    const pub = await w.publisher()
    const aliceData = new MemoryInboxData()
    await w.alice(skewed(w.clock, CLOCK_SKEW_MARGIN_MS), aliceData)
    const { msgId } = await pub.enqueue('job', { long: true }, { recipients: ['alice'], deadline: MAX_DEADLINE_MS, modname: 'app' })
    await pub.close()
    await w.clock.advance(MAX_DEADLINE_MS - 60_000)
    w.hub.setGate(undefined)
    // The publisher resumes its outbox and resends the same signed bytes, signed 5 days ago: alice reads 6 days minus a minute.
    await w.publisher()
    await w.clock.advance(1000)
    expect(new MemoryOutboxStore(w.outbox).get(msgId)?.state).toBe('acked')
  })

  it(`deadlines are bounded: over ${MAX_DEADLINE_MS / (24 * HOUR)} days, enqueue() and publish() refuse with InvalidArgumentError naming the maximum`, async () => {
    const w = new World()
    const pub = await w.publisher()
    const over = pub.enqueue('job', {}, { recipients: ['alice'], deadline: MAX_DEADLINE_MS + 1, modname: 'app' })
    await expect(over).rejects.toBeInstanceOf(InvalidArgumentError)
    await expect(over).rejects.toThrow(`deadline: expected at most ${MAX_DEADLINE_MS} ms`)
    await expect(pub.publish('job', {}, { recipients: ['alice'], ackTimeout: MAX_DEADLINE_MS + 1 })).rejects.toThrow(
      `ackTimeout: expected at most ${MAX_DEADLINE_MS} ms`,
    )
    expect(new MemoryOutboxStore(w.outbox).list()).toEqual([])
  })
})
