/**
 * publish() with `quorum: k`: resolves as soon as k distinct recipients acked, with a receipt
 * listing exactly those ACKs; the others keep getting resends until they ACK (then `delivered`)
 * or the deadline passes (then `expired`); a timeout says how many of k were reached; a
 * rejection fails the publish only once the quorum can no longer be reached (acked + still
 * possible < k); k is validated.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { ecPartiesPki, memoryBus } from '../../support/memory-bus.js'
import type { Bus } from '../../../src/bus/bus.js'
import type { TestPki } from '../../support/pki.js'
import type { Verifier } from '../../../src/crypto/types.js'
import { AckTimeoutError, DeliveryRejectedError, InvalidArgumentError } from '../../../src/errors.js'
import { MemoryInboxData, MemoryInboxStore } from '../../../src/inbox/memory.js'
import { MemoryOutboxData, MemoryOutboxStore } from '../../../src/outbox/memory.js'
import { DeliveryState } from '../../../src/outbox/store.js'
import { Gilmsg } from '../../../src/reliable/gilmsg.js'
import type { DeliveryReceipt } from '../../../src/reliable/publisher.js'
import { MemoryHub } from '../../../src/transport/memory.js'
import { FakeClock, settle } from '../../support/fake-clock.js'

const TOPIC = { topicPrefix: 'org.test', environment: 'unit' }
const APP = 'org.test.unit.app.'
const CONSUMERS = ['alice', 'bob', 'carol'] as const

let pki: TestPki
let verifier: Verifier
beforeAll(async () => {
  ;({ pki, verifier } = await ecPartiesPki('quorum', ['publisher', ...CONSUMERS]))
}, 60_000)

const open: Gilmsg[] = []
afterEach(async () => {
  await Promise.all(open.splice(0).map((g) => g.close()))
})

interface World {
  clock: FakeClock
  store: MemoryOutboxStore
  pub: Gilmsg
  /** Consumers whose copies of application messages are dropped. */
  unreachable: Set<string>
  /** Copies of application messages that reached each consumer. */
  received: Map<string, number>
}

/** A publisher and three consumers; those `rejecting` consume in manual mode and reject everything. */
async function world(...rejecting: string[]): Promise<World> {
  const clock = new FakeClock()
  const hub = new MemoryHub()
  const unreachable = new Set<string>()
  const received = new Map<string, number>()
  hub.setGate((d) => {
    if (!d.topic.startsWith(APP)) return 'deliver'
    if (unreachable.has(d.to)) return 'drop'
    received.set(d.to, (received.get(d.to) ?? 0) + 1)
    return 'deliver'
  })
  const bus = (name: string): Bus => memoryBus({ hub, verifier, topic: TOPIC, clock }, pki, name)
  const store = new MemoryOutboxStore(new MemoryOutboxData())
  const pub = await Gilmsg.open({ bus: bus('publisher'), outbox: store, clock, awaitSubscriberMs: 0 })
  open.push(pub)
  for (const name of CONSUMERS) {
    const g = await Gilmsg.open({ bus: bus(name), inbox: new MemoryInboxStore(new MemoryInboxData()), clock })
    open.push(g)
    const rejects = rejecting.includes(name)
    const sub = await g.subscribe(APP, { ack: rejects ? 'manual' : 'auto' })
    void (async () => {
      for await (const d of sub) if (rejects) await d.reject(`${name} says no`)
    })()
  }
  await settle()
  return { clock, store, pub, unreachable, received }
}

function outcome<T>(p: Promise<T>): { value?: T; error?: unknown } {
  const o: { value?: T; error?: unknown } = {}
  p.then(
    (v) => (o.value = v),
    (e: unknown) => (o.error = e),
  )
  return o
}

describe('publish() with a quorum', () => {
  it('resolves at k ACKs with exactly those; the others get resends until they ACK, then `delivered` fires', async () => {
    const w = await world()
    w.unreachable.add('carol')
    const delivered: DeliveryReceipt[] = []
    w.pub.on('delivered', (r) => delivered.push(r))
    const receipt = await w.pub.publish('job', { n: 1 }, { recipients: [...CONSUMERS], quorum: 2, ackTimeout: 60_000, modname: 'app' })
    expect(receipt.recipients.map((a) => a.cn)).toEqual(['alice', 'bob'])
    // Still pending for carol: the outbox shows her missing, and the message is resent.
    expect(w.store.get(receipt.msgId)?.state).toBe(DeliveryState.Pending)
    expect(w.store.recipients(receipt.msgId).map((r) => [r.cn, r.state])).toEqual([
      ['alice', 'acked'],
      ['bob', 'acked'],
      ['carol', 'pending'],
    ])
    expect(delivered).toEqual([])
    for (let i = 0; i < 5; i++) await w.clock.advance(1000)
    expect(w.store.get(receipt.msgId)?.attempts).toBeGreaterThan(1)
    expect(w.pub.publisher?.resendsTo.get('carol')).toBeGreaterThan(0)
    expect(w.pub.publisher?.resendsTo.get('alice')).toBe(0)
    // Carol comes back: the next resend reaches her, her ACK counts, and the message is delivered to all.
    w.unreachable.delete('carol')
    for (let i = 0; i < 60 && delivered.length === 0; i++) await w.clock.advance(1000)
    expect(delivered.map((r) => r.recipients.map((a) => a.cn))).toEqual([['alice', 'bob', 'carol']])
    expect(w.store.get(receipt.msgId)?.state).toBe(DeliveryState.Acked)
  })

  it('after resolving, the missing ones are resent to until the deadline, then `expired` names them', async () => {
    const w = await world()
    w.unreachable.add('bob').add('carol')
    const expired: { missing: readonly string[] }[] = []
    w.pub.on('expired', (e) => expired.push(e))
    const receipt = await w.pub.publish('job', { n: 2 }, { recipients: [...CONSUMERS], quorum: 1, ackTimeout: 30_000, modname: 'app' })
    expect(receipt.recipients.map((a) => a.cn)).toEqual(['alice'])
    for (let i = 0; i < 40; i++) await w.clock.advance(1000)
    expect(expired).toEqual([expect.objectContaining({ msgId: receipt.msgId, missing: ['bob', 'carol'] })])
    expect(w.store.get(receipt.msgId)?.state).toBe(DeliveryState.Expired)
    const attempts = w.store.get(receipt.msgId)?.attempts ?? 0
    expect(attempts).toBeGreaterThan(2)
    for (let i = 0; i < 10; i++) await w.clock.advance(10_000)
    expect(w.store.get(receipt.msgId)?.attempts).toBe(attempts)
  })

  it('times out below the quorum with an AckTimeoutError saying how many of k, who acked and who is missing', async () => {
    const w = await world()
    w.unreachable.add('bob').add('carol')
    const p = outcome(w.pub.publish('job', { n: 3 }, { recipients: [...CONSUMERS], quorum: 2, ackTimeout: 5000, modname: 'app' }))
    await settle()
    await w.clock.advance(5000)
    await settle()
    const e = p.error
    expect(e).toBeInstanceOf(AckTimeoutError)
    expect(e).toMatchObject({ quorum: 2, missing: ['bob', 'carol'], acked: [expect.objectContaining({ cn: 'alice' })] })
    expect((e as AckTimeoutError).message).toMatch(/no ACK from bob, carol for .* \(acked by alice\): 1 of the 2 needed$/)
  })

  it('without a quorum a timeout error is as before: quorum = every recipient, no "of k" in the message', async () => {
    const w = await world()
    w.unreachable.add('carol')
    const p = outcome(w.pub.publish('job', { n: 4 }, { recipients: [...CONSUMERS], ackTimeout: 5000, modname: 'app' }))
    await settle()
    await w.clock.advance(5000)
    await settle()
    expect(p.error).toMatchObject({ quorum: 3, missing: ['carol'] })
    expect((p.error as Error).message).not.toMatch(/needed/)
  })

  it('without a quorum, the first rejection fails the publish, as before', async () => {
    const w = await world('carol')
    const p = w.pub.publish('job', { n: 5 }, { recipients: [...CONSUMERS], ackTimeout: 60_000, modname: 'app' })
    const e = await p.then(
      () => undefined,
      (err: unknown) => err,
    )
    expect(e).toBeInstanceOf(DeliveryRejectedError)
    expect(e).toMatchObject({ recipient: 'carol', reason: 'carol says no', quorum: 3, recipients: 3, rejections: [{ cn: 'carol', reason: 'carol says no' }] })
    expect((e as Error).message).toMatch(/^carol rejected \S+: carol says no$/)
    expect(w.store.get((e as DeliveryRejectedError).msgId)?.state).toBe(DeliveryState.Rejected)
  })

  it('a rejection while the quorum can still be reached does not fail the publish: it resolves once k others acked', async () => {
    const w = await world('carol')
    w.unreachable.add('bob')
    const rejected: { msgId: string; recipient: string; ended: boolean }[] = []
    w.pub.on('rejected', (r) => rejected.push(r))
    const p = outcome(w.pub.publish('job', { n: 6 }, { recipients: [...CONSUMERS], quorum: 2, ackTimeout: 60_000, modname: 'app' }))
    for (let i = 0; i < 20 && rejected.length === 0; i++) await w.clock.advance(100)
    // alice acked, carol rejected, bob may still ACK: 1 + 1 >= 2.
    expect(rejected).toEqual([expect.objectContaining({ recipient: 'carol', reason: 'carol says no', ended: false })])
    const msgId = rejected[0]?.msgId as string
    await settle()
    expect(p).toEqual({})
    expect(w.store.get(msgId)?.state).toBe(DeliveryState.Pending)
    w.unreachable.delete('bob')
    for (let i = 0; i < 60 && p.value === undefined; i++) await w.clock.advance(1000)
    expect(p.value?.recipients.map((a) => a.cn)).toEqual(['alice', 'bob'])
    // Nobody is pending and the quorum acked: the message ends acked, carol's rejection on her row.
    expect(w.store.get(msgId)?.state).toBe(DeliveryState.Acked)
    expect(w.store.recipients(msgId).map((r) => [r.cn, r.state, r.reason])).toEqual([
      ['alice', 'acked', undefined],
      ['bob', 'acked', undefined],
      ['carol', 'rejected', 'carol says no'],
    ])
  })

  it('fails with DeliveryRejectedError once the quorum can no longer be reached, naming every rejection, the ACKs and k', async () => {
    const w = await world('bob', 'carol')
    const e = await w.pub.publish('job', { n: 7 }, { recipients: [...CONSUMERS], quorum: 2, ackTimeout: 60_000, modname: 'app' }).then(
      () => undefined,
      (err: unknown) => err,
    )
    expect(e).toBeInstanceOf(DeliveryRejectedError)
    const r = e as DeliveryRejectedError
    expect(r.quorum).toBe(2)
    expect(r.recipients).toBe(3)
    expect(r.rejections.map((x) => x.cn).sort()).toEqual(['bob', 'carol'])
    expect(r.acked.map((a) => a.cn)).toEqual(['alice'])
    expect(r.message).toMatch(/^(bob|carol) rejected \S+: (bob|carol) says no; the quorum of 2 of 3 can no longer be reached \(rejected by bob \(bob says no\), carol \(carol says no\); acked by alice\)$/)
    expect(w.store.get(r.msgId)?.state).toBe(DeliveryState.Rejected)
  })

  it('a timeout after a rejection names the rejection apart from those missing', async () => {
    const w = await world('carol')
    w.unreachable.add('bob')
    const p = outcome(w.pub.publish('job', { n: 8 }, { recipients: [...CONSUMERS], quorum: 2, ackTimeout: 5000, modname: 'app' }))
    await settle()
    await w.clock.advance(5000)
    await settle()
    expect(p.error).toBeInstanceOf(AckTimeoutError)
    expect(p.error).toMatchObject({ quorum: 2, missing: ['bob'], acked: [expect.objectContaining({ cn: 'alice' })], rejected: [{ cn: 'carol', reason: 'carol says no' }] })
    expect((p.error as Error).message).toMatch(/no ACK from bob for .* \(acked by alice\) \(rejected by carol \(carol says no\)\): 1 of the 2 needed$/)
  })

  it('a rejection after the quorum was reached only fires `rejected`; the others still count', async () => {
    const w = await world('carol')
    w.unreachable.add('carol')
    const rejected: { recipient: string; ended: boolean }[] = []
    w.pub.on('rejected', (r) => rejected.push(r))
    const receipt = await w.pub.publish('job', { n: 9 }, { recipients: [...CONSUMERS], quorum: 2, ackTimeout: 60_000, modname: 'app' })
    expect(receipt.recipients.map((a) => a.cn)).toEqual(['alice', 'bob'])
    w.unreachable.delete('carol')
    for (let i = 0; i < 60 && rejected.length === 0; i++) await w.clock.advance(1000)
    expect(rejected).toEqual([expect.objectContaining({ msgId: receipt.msgId, recipient: 'carol', ended: false })])
    expect(w.store.get(receipt.msgId)?.state).toBe(DeliveryState.Acked)
  })

  it('refuses a quorum that is not an integer from 1 to the number of recipients, sending nothing', async () => {
    const w = await world()
    for (const bad of [0, 4, 1.5, -1, Number.NaN, '2']) {
      await expect(w.pub.publish('job', {}, { recipients: [...CONSUMERS], quorum: bad as number, modname: 'app' })).rejects.toThrow(
        new InvalidArgumentError(`quorum: expected an integer from 1 to 3 (the number of recipients), got ${typeof bad === 'string' ? '"2"' : String(bad)}`),
      )
    }
    expect(w.store.list()).toEqual([])
    expect(w.received.size).toBe(0)
  })

  it('enqueue() has no quorum (all-or-nothing): it refuses one and commits nothing', async () => {
    const w = await world()
    const options = { recipients: [...CONSUMERS], quorum: 2, modname: 'app' }
    await expect(w.pub.enqueue('job', {}, options)).rejects.toThrow(/^quorum: enqueue\(\) has none/)
    expect(w.store.list()).toEqual([])
  })
})
