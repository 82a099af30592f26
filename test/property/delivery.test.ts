/**
 * The delivery guarantee as a model-based property test (spec/protocol.md I1..I5).
 * Publishes run with and without a quorum (I1 then: exactly k ACKs in the receipt; I2 still
 * for every recipient), and name recipients that reject the message (consumers acknowledge
 * manually: `reject()` when the payload names them, `ack()` otherwise): a publish fails with
 * `DeliveryRejectedError` only once its quorum can no longer be reached, and resolves otherwise.
 *
 * A publisher and two consumers (alice, bob) talk over an in-memory hub whose
 * gate holds every message; the commands decide what is delivered, dropped,
 * duplicated or reordered, when time passes, and who crashes. A forger
 * (mallory) injects ACKs. After every command the invariants are checked
 * against the real outbox and inboxes; at the end the network heals and every
 * message still within its deadline must be acknowledged by all recipients.
 *
 * Replay a failure: GILMSG_PROPERTY_SEED=<seed> GILMSG_PROPERTY_PATH=<path> npx vitest run test/property
 * Soak: GILMSG_PROPERTY_RUNS=10000 npx vitest run test/property
 */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { beforeAll, describe, expect, it } from 'vitest'
import { leafSigner, memoryBus } from '../support/memory-bus.js'
import { Bus } from '../../src/bus/bus.js'
import { createTestPki, type TestPki } from '../support/pki.js'
import { createVerifier } from '../../src/crypto/verifier.js'
import type { Signer, Verifier } from '../../src/crypto/types.js'
import { AckTimeoutError, DeliveryRejectedError } from '../../src/errors.js'
import { MemoryInboxData, MemoryInboxStore } from '../../src/inbox/memory.js'
import { MemoryOutboxData, MemoryOutboxStore } from '../../src/outbox/memory.js'
import { canonicalize } from '../../src/json/canonical.js'
import { Gilmsg } from '../../src/reliable/gilmsg.js'
import type { DeliveryReceipt } from '../../src/reliable/publisher.js'
import { MemoryHub } from '../../src/transport/memory.js'
import { FakeClock, settle } from '../support/fake-clock.js'
import { seededRandom } from '../support/random.js'

const CONSUMERS = ['alice', 'bob'] as const
type Cn = (typeof CONSUMERS)[number]
const TOPIC = { topicPrefix: 'org.test', environment: 'prop' }
const APP_PREFIX = 'org.test.prop.app.'
const ACK_TOPIC = 'org.test.prop.gilmsg.ack'
const HEAL_MS = 8000

let pki: TestPki
let otherPki: TestPki
let verifier: Verifier

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gilmsg-prop-'))
  pki = await createTestPki(join(dir, 'pki'), ['publisher', ...CONSUMERS].map((name) => ({ name, key: 'ec' as const })))
  otherPki = await createTestPki(join(dir, 'other'), [{ name: 'alice', key: 'ec' }])
  verifier = await createVerifier({ caPem: pki.caPem, crlPem: pki.crlPem })
}, 60_000)

function signerFor(p: TestPki, name: string): Signer {
  return leafSigner(p.leaf(name))
}


interface PublishOutcome {
  readonly recipients: readonly Cn[]
  /** How many ACKs it waits for: every recipient's unless the command gave a quorum. */
  readonly quorum: number
  /** The recipients that reject it (the others acknowledge it). */
  readonly rejecters: readonly Cn[]
  result?: { ok: true; receipt: DeliveryReceipt } | { ok: false; error: unknown }
}

interface ConsumerNode {
  readonly data: MemoryInboxData
  g: Gilmsg | undefined
  loop: Promise<void> | undefined
  /** msg_ids the application saw, across restarts. */
  readonly seen: string[]
  /** For each of `seen`, which run of the consumer (counted from 1 at each start) saw it. */
  readonly seenInRun: number[]
  runs: number
}

/** The system under test plus what the test observed of it. */
class World {
  readonly clock = new FakeClock()
  readonly hub = new MemoryHub()
  readonly outboxData = new MemoryOutboxData()
  readonly random: () => number
  publisher: Gilmsg | undefined
  readonly consumers = new Map<Cn, ConsumerNode>(CONSUMERS.map((cn) => [cn, { data: new MemoryInboxData(), g: undefined, loop: undefined, seen: [], seenInRun: [], runs: 0 }]))
  /** Every ACK body a consumer really sent, by consumer. */
  readonly genuineAcks = new Map<Cn, Set<string>>(CONSUMERS.map((cn) => [cn, new Set()]))
  readonly publishes: PublishOutcome[] = []
  /** enqueue()d messages: msgId -> deadline. */
  readonly enqueued = new Map<string, number>()
  lossless = false
  mallory: Bus | undefined
  forger: Bus | undefined

  constructor(seed: number) {
    this.random = seededRandom(seed)
    this.hub.setGate((d) => {
      if ((CONSUMERS as readonly string[]).includes(d.from) && d.topic === ACK_TOPIC) this.genuineAcks.get(d.from as Cn)?.add(d.body.toString('utf8'))
      if (d.from === 'mallory' || d.from === 'forger' || this.lossless) return 'deliver'
      return 'hold'
    })
  }

  bus(name: string, signer = signerFor(pki, name)): Bus {
    return memoryBus({ hub: this.hub, verifier, topic: TOPIC, clock: this.clock }, pki, name, signer)
  }

  outbox(): MemoryOutboxStore {
    return new MemoryOutboxStore(this.outboxData)
  }

  async startPublisher(): Promise<void> {
    this.publisher = await Gilmsg.open({ bus: this.bus('publisher'), outbox: this.outbox(), clock: this.clock, random: this.random, awaitSubscriberMs: 0 })
    await settle()
  }

  async crashPublisher(): Promise<void> {
    await this.publisher?.close()
    this.publisher = undefined
    await settle()
  }

  async startConsumer(cn: Cn): Promise<void> {
    const node = this.consumers.get(cn) as ConsumerNode
    const g = await Gilmsg.open({ bus: this.bus(cn), inbox: new MemoryInboxStore(node.data), clock: this.clock })
    const sub = await g.subscribe(APP_PREFIX, { ack: 'manual' })
    node.g = g
    const run = ++node.runs
    node.loop = (async () => {
      for await (const d of sub) {
        node.seen.push(d.msgId)
        node.seenInRun.push(run)
        if (rejectersOf(JSON.parse(canonicalize(d.envelope.get('msg') ?? null))).includes(cn)) await d.reject(`${cn} refuses`)
        else await d.ack()
      }
    })()
    await settle()
  }

  async crashConsumer(cn: Cn): Promise<void> {
    const node = this.consumers.get(cn) as ConsumerNode
    await node.g?.close()
    await node.loop
    node.g = undefined
    await settle()
  }

  async close(): Promise<void> {
    await this.publisher?.close()
    for (const cn of CONSUMERS) await this.crashConsumer(cn)
    await this.mallory?.close()
    await this.forger?.close()
  }

  pendingIds(): string[] {
    return this.outbox()
      .list({ state: 'pending' })
      .map((m) => m.msgId)
  }

  /** I1, I3, I4, I5: checked after every command. */
  checkInvariants(): void {
    const store = this.outbox()
    for (const m of store.list()) {
      for (const r of store.recipients(m.msgId)) {
        if (r.state !== 'acked') continue
        // I5: an ACK counts only if it is one that recipient really sent, for this msg_id and digest.
        expect(this.genuineAcks.get(r.cn as Cn)?.has(r.ackBody ?? ''), `ACK of ${r.cn} for ${m.msgId} is genuine`).toBe(true)
        type Ack = { ack_msg_id: string; ack_digest: string }
        const msg = (JSON.parse(r.ackBody ?? '{}') as { msg: Ack | { acks: Ack[] } }).msg
        const ack = 'acks' in msg ? msg.acks.find((a) => a.ack_msg_id === m.msgId) : msg
        expect(ack?.ack_msg_id, `the ACK stored for ${r.cn} names ${m.msgId}`).toBe(m.msgId)
        expect(ack?.ack_digest).toBe(m.digest)
      }
    }
    for (const p of this.publishes) {
      if (p.result === undefined) continue
      if (p.result.ok) {
        // A rejection never counts towards the quorum, and never fails a publish whose quorum can still be reached.
        // I1: resolved only with a genuine ACK recorded for every recipient (with a quorum: for exactly k
        // distinct recipients, the k-th ACK resolving it), and its receipt lists exactly those ACKs.
        const receipt = p.result.receipt
        const cns = receipt.recipients.map((r) => r.cn)
        expect(cns.length, `receipt of ${receipt.msgId} lists quorum ${p.quorum}`).toBe(p.quorum)
        expect(new Set(cns).size).toBe(cns.length)
        expect(cns, 'receipt in the order of the recipients').toEqual(p.recipients.filter((cn) => cns.includes(cn)))
        expect(cns.filter((cn) => (p.rejecters as readonly string[]).includes(cn)), 'no rejecter in the receipt').toEqual([])
        const rows = store.recipients(receipt.msgId)
        for (const a of receipt.recipients) {
          const row = rows.find((r) => r.cn === a.cn)
          expect(row?.state).toBe('acked')
          expect({ at: row?.at, disposition: row?.disposition }, `${a.cn}'s ACK in the receipt is the one recorded`).toEqual({ at: a.at, disposition: a.disposition })
        }
      } else if (p.result.error instanceof AckTimeoutError) {
        // I4: a timeout names exactly the recipients whose valid ACK is missing, those who acked and those who rejected.
        const e = p.result.error
        expect([...e.acked.map((a) => a.cn), ...e.missing, ...e.rejected.map((r) => r.cn)].sort()).toEqual([...p.recipients].sort())
        for (const r of e.rejected) expect(p.rejecters, `${r.cn} rejected ${e.msgId}`).toContain(r.cn)
        expect(p.recipients.length - e.rejected.length, 'a timeout, not a rejection: the quorum was still within reach').toBeGreaterThanOrEqual(p.quorum)
        expect(e.quorum, 'the timeout says how many ACKs were needed').toBe(p.quorum)
        const rows = store.recipients(e.msgId)
        for (const cn of e.missing) expect(rows.find((r) => r.cn === cn)?.state).not.toBe('acked')
        for (const a of e.acked) expect(rows.find((r) => r.cn === a.cn)?.state).toBe('acked')
      } else if (p.result.error instanceof DeliveryRejectedError) {
        // Rejected only once fewer than k recipients acked or may still ACK: more than n - k rejected.
        const e = p.result.error
        expect(e.quorum).toBe(p.quorum)
        expect(e.recipients).toBe(p.recipients.length)
        expect(e.rejections.length, `${e.msgId} rejected with the quorum ${p.quorum} of ${p.recipients.length} still within reach`).toBeGreaterThan(p.recipients.length - p.quorum)
        for (const r of e.rejections) expect(p.rejecters).toContain(r.cn)
        expect(e.rejections.map((r) => r.cn)).toContain(e.recipient)
        expect(store.get(e.msgId)?.state).toBe('rejected')
      }
    }
    // I3: the application sees each msg_id addressed to it at most once per consumer, across restarts;
    // one addressed to others (not stored in the inbox), at most once per run of the consumer.
    for (const [cn, node] of this.consumers) {
      const seen = node.seen.map((id, i) => (store.recipients(id).some((r) => r.cn === cn) ? id : `${id} in run ${node.seenInRun[i]}`))
      expect(new Set(seen).size, `${cn} saw a message twice`).toBe(seen.length)
    }
  }

  /** I2: heal the network, bring everyone up; everything within its deadline gets acknowledged. */
  async healAndCheckLiveness(): Promise<void> {
    if (this.publisher === undefined) await this.startPublisher()
    for (const cn of CONSUMERS) if (this.consumers.get(cn)?.g === undefined) await this.startConsumer(cn)
    this.lossless = true
    const healStart = this.clock.now()
    while (this.hub.held.length > 0) this.hub.releaseAll()
    await settle()
    for (let t = 0; t < HEAL_MS; t += 250) await this.clock.advance(250)
    const store = this.outbox()
    for (const m of store.list()) {
      if (m.deadline <= healStart + HEAL_MS) continue
      const rejecters = rejectersOf((JSON.parse(m.body) as { msg: unknown }).msg)
      const unreachable = rejecters.length > m.recipients.length - m.quorum
      const expected = unreachable ? 'rejected' : 'acked'
      expect(m.state, `${m.msgId} (deadline ${m.deadline - healStart} ms after healing began, quorum ${m.quorum}, rejected by ${rejecters.join('+') || 'nobody'}) is ${expected}`).toBe(expected)
      const rows = store.recipients(m.msgId)
      for (const r of rows) if (r.state !== 'pending') expect(r.state, `${r.cn} on ${m.msgId}`).toBe(rejecters.includes(r.cn as Cn) ? 'rejected' : 'acked')
      if (unreachable) continue
      for (const r of rows) {
        const seen = this.consumers.get(r.cn as Cn)?.seen.filter((id) => id === m.msgId).length
        expect(seen, `${r.cn}'s application saw ${m.msgId} once`).toBe(1)
      }
    }
    this.checkInvariants()
  }
}

interface M {
  publisherUp: boolean
  consumersUp: Set<Cn>
}
type Cmd = fc.AsyncCommand<M, World>

const recipientsArb = fc.subarray([...CONSUMERS], { minLength: 1 })

/** The recipients a payload names as rejecting it (`reject`). */
function rejectersOf(msg: unknown): Cn[] {
  const r = (msg as { reject?: unknown } | null)?.reject
  return Array.isArray(r) ? (r as Cn[]) : []
}

class PublishCmd implements Cmd {
  constructor(readonly recipients: Cn[], readonly timeoutMs: number, readonly quorum?: number, readonly rejecters: Cn[] = []) {}
  check = (m: M) => m.publisherUp
  async run(_m: unknown, w: World) {
    const outcome: PublishOutcome = { recipients: this.recipients, quorum: this.quorum ?? this.recipients.length, rejecters: this.rejecters }
    w.publishes.push(outcome)
    const quorum = this.quorum !== undefined ? { quorum: this.quorum } : {}
    const payload = { n: w.publishes.length, ...(this.rejecters.length > 0 ? { reject: this.rejecters } : {}) }
    ;(w.publisher as Gilmsg).publish('x', payload, { recipients: this.recipients, ackTimeout: this.timeoutMs, modname: 'app', ...quorum }).then(
      (receipt) => (outcome.result = { ok: true, receipt }),
      (error: unknown) => (outcome.result = { ok: false, error }),
    )
    await settle()
    w.checkInvariants()
  }
  toString = () =>
    `publish(${this.recipients.join('+')}, ${this.timeoutMs}ms${this.quorum !== undefined ? `, quorum ${this.quorum}` : ''}${this.rejecters.length > 0 ? `, rejected by ${this.rejecters.join('+')}` : ''})`
}

class EnqueueCmd implements Cmd {
  constructor(readonly recipients: Cn[], readonly deadlineMs: number) {}
  check = (m: M) => m.publisherUp
  async run(_m: unknown, w: World) {
    const e = await (w.publisher as Gilmsg).enqueue('y', { q: w.enqueued.size }, { recipients: this.recipients, deadline: this.deadlineMs, modname: 'app' })
    w.enqueued.set(e.msgId, w.clock.now() + this.deadlineMs)
    await settle()
    w.checkInvariants()
  }
  toString = () => `enqueue(${this.recipients.join('+')}, ${this.deadlineMs}ms)`
}

class NetCmd implements Cmd {
  constructor(readonly op: 'deliver' | 'drop' | 'duplicate' | 'deliverAll', readonly index: number) {}
  check = () => true
  async run(_m: unknown, w: World) {
    const n = w.hub.held.length
    if (n > 0) {
      const i = this.index % n
      if (this.op === 'deliverAll') w.hub.releaseAll()
      else if (this.op === 'deliver') w.hub.release(i)
      else if (this.op === 'drop') w.hub.discard(i)
      else w.hub.duplicate(i)
    }
    await settle()
    w.checkInvariants()
  }
  toString = () => `${this.op}(#${this.index})`
}

class AdvanceCmd implements Cmd {
  constructor(readonly ms: number) {}
  check = () => true
  async run(_m: unknown, w: World) {
    await w.clock.advance(this.ms)
    w.checkInvariants()
  }
  toString = () => `advance(${this.ms}ms)`
}

class PublisherCrashCmd implements Cmd {
  check = (m: M) => m.publisherUp
  async run(m: { publisherUp: boolean }, w: World) {
    await w.crashPublisher()
    m.publisherUp = false
    w.checkInvariants()
  }
  toString = () => 'crash(publisher)'
}

class PublisherRestartCmd implements Cmd {
  check = (m: M) => !m.publisherUp
  async run(m: { publisherUp: boolean }, w: World) {
    await w.startPublisher()
    m.publisherUp = true
    w.checkInvariants()
  }
  toString = () => 'restart(publisher)'
}

class ConsumerCrashCmd implements Cmd {
  constructor(readonly cn: Cn) {}
  check = (m: M) => m.consumersUp.has(this.cn)
  async run(m: { consumersUp: Set<Cn> }, w: World) {
    await w.crashConsumer(this.cn)
    m.consumersUp.delete(this.cn)
    w.checkInvariants()
  }
  toString = () => `crash(${this.cn})`
}

class ConsumerRestartCmd implements Cmd {
  constructor(readonly cn: Cn) {}
  check = (m: M) => !m.consumersUp.has(this.cn)
  async run(m: { consumersUp: Set<Cn> }, w: World) {
    await w.startConsumer(this.cn)
    m.consumersUp.add(this.cn)
    w.checkInvariants()
  }
  toString = () => `restart(${this.cn})`
}

/** Hostile ACKs: forged (same CN, other CA), wrong digest (real key), another message's ACK re-pointed. */
class HostileAckCmd implements Cmd {
  constructor(readonly kind: 'forged' | 'wrong_digest' | 'wrong_digest_batch' | 'repointed' | 'replayed', readonly cn: Cn, readonly index: number) {}
  check = () => true
  async run(_m: unknown, w: World) {
    const pending = w.pendingIds()
    const target = pending[this.index % Math.max(1, pending.length)]
    const digestOf = (id: string) => w.outbox().get(id)?.digest ?? '0'.repeat(64)
    if (this.kind === 'forged' && target !== undefined) {
      w.forger ??= w.bus('forger', signerFor(otherPki, 'alice'))
      const ack = w.forger.seal('ack', { ack_msg_id: target, ack_digest: digestOf(target), disposition: 'received' }, { modname: 'gilmsg' })
      await w.forger.send(ack)
    } else if (this.kind === 'wrong_digest' && target !== undefined) {
      w.mallory ??= w.bus('mallory', signerFor(pki, this.cn))
      const ack = w.mallory.seal('ack', { ack_msg_id: target, ack_digest: 'f'.repeat(64), disposition: 'received' }, { modname: 'gilmsg' })
      await w.mallory.send(ack)
    } else if (this.kind === 'wrong_digest_batch' && pending.length > 0) {
      w.mallory ??= w.bus('mallory', signerFor(pki, this.cn))
      const acks = pending.map((id, n) => ({ ack_msg_id: id, ack_digest: n % 2 === 0 ? 'e'.repeat(64) : digestOf(pending[(n + 1) % pending.length] as string), disposition: 'received' }))
      const ack = w.mallory.seal('ack', { acks: pending.length > 1 ? acks : [...acks, ...acks] }, { modname: 'gilmsg' })
      await w.mallory.send(ack)
    } else {
      const acks = [...(w.genuineAcks.get(this.cn) ?? [])]
      const body = acks[this.index % Math.max(1, acks.length)]
      if (body !== undefined) {
        const text = this.kind === 'repointed' && target !== undefined ? body.replace(/"ack_msg_id":"[^"]*"/, `"ack_msg_id":"${target}"`) : body
        w.hub.inject(ACK_TOPIC, text)
      }
    }
    await settle()
    w.checkInvariants()
  }
  toString = () => `hostile(${this.kind}, ${this.cn}, #${this.index})`
}

const commands: fc.Arbitrary<Cmd>[] = [
  fc.tuple(recipientsArb, fc.integer({ min: 50, max: 4000 })).map(([r, t]) => new PublishCmd(r, t)),
  // With a quorum of k: some outlive the healing phase, so that I2 is checked for every recipient of theirs.
  fc
    .tuple(recipientsArb, fc.oneof(fc.integer({ min: 50, max: 4000 }), fc.integer({ min: 20_000, max: 60_000 })), fc.nat())
    .map(([r, t, k]) => new PublishCmd(r, t, 1 + (k % r.length))),
  // Some recipients reject it, with or without a quorum.
  fc
    .tuple(recipientsArb, fc.oneof(fc.integer({ min: 50, max: 4000 }), fc.integer({ min: 20_000, max: 60_000 })), fc.nat(), fc.boolean(), fc.nat())
    .map(([r, t, k, withQuorum, pick]) => {
      const rejecters = r.filter((_, i) => ((pick >> i) & 1) === 1)
      return new PublishCmd(r, t, withQuorum ? 1 + (k % r.length) : undefined, rejecters.length > 0 ? rejecters : [r[pick % r.length] as Cn])
    }),
  // The case the quorum rule is about, made frequent: 1 of alice and bob, one of them (or both) rejecting.
  fc
    .tuple(fc.constantFrom(...CONSUMERS), fc.oneof(fc.integer({ min: 200, max: 4000 }), fc.integer({ min: 20_000, max: 60_000 })), fc.nat(3))
    .map(([cn, t, both]) => new PublishCmd([...CONSUMERS], t, 1, both === 0 ? [...CONSUMERS] : [cn])),
  fc.tuple(recipientsArb, fc.integer({ min: 500, max: 60_000 })).map(([r, d]) => new EnqueueCmd(r, d)),
  fc.tuple(fc.constantFrom('deliver' as const, 'drop' as const, 'duplicate' as const), fc.nat(50)).map(([op, i]) => new NetCmd(op, i)),
  fc.tuple(fc.constant('deliver' as const), fc.nat(50)).map(([op, i]) => new NetCmd(op, i)),
  fc.constant(new NetCmd('deliverAll', 0)),
  fc.integer({ min: 1, max: 3000 }).map((ms) => new AdvanceCmd(ms)),
  fc.constant(new PublisherCrashCmd()),
  fc.constant(new PublisherRestartCmd()),
  fc.constantFrom(...CONSUMERS).map((cn) => new ConsumerCrashCmd(cn)),
  fc.constantFrom(...CONSUMERS).map((cn) => new ConsumerRestartCmd(cn)),
  fc
    .tuple(
      fc.constantFrom('forged' as const, 'wrong_digest' as const, 'wrong_digest_batch' as const, 'repointed' as const, 'replayed' as const),
      fc.constantFrom(...CONSUMERS),
      fc.nat(20),
    )
    .map(([k, cn, i]) => new HostileAckCmd(k, cn, i)),
]

const numRuns = Number(process.env['GILMSG_PROPERTY_RUNS'] ?? 60)
const seed = process.env['GILMSG_PROPERTY_SEED']
const path = process.env['GILMSG_PROPERTY_PATH']

describe('delivery guarantee (model-based, in-memory transport)', () => {
  it(
    'holds I1..I5 (with and without a quorum) under loss, duplication, reordering, delay, crashes and hostile ACKs',
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.commands(commands, { maxCommands: 40 }), fc.integer(), async (cmds, worldSeed) => {
          const w = new World(worldSeed)
          try {
            await w.startPublisher()
            for (const cn of CONSUMERS) await w.startConsumer(cn)
            await fc.asyncModelRun(() => ({ model: { publisherUp: true, consumersUp: new Set<Cn>(CONSUMERS) } as M, real: w }), cmds)
            await w.healAndCheckLiveness()
          } finally {
            await w.close()
          }
        }),
        {
          numRuns,
          ...(seed !== undefined ? { seed: Number(seed) } : {}),
          ...(path !== undefined ? { path } : {}),
          endOnFailure: numRuns > 1000,
        },
      )
    },
    Math.max(120_000, numRuns * 2_000),
  )
})

