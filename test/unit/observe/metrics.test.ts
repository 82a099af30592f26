/**
 * createGilmsgMetrics: what each attached object reports in the caller's registry (and
 * nothing in prom-client's global one): a real delivery between two Gilmsg on a memory
 * hub (ACKs by recipient and disposition, latency, guaranteed, consumer ACKs, outbox
 * states), publisher outcomes from events, relay and bus counters read at scrape time,
 * CRL and certificate seconds from the injected clock.
 */
import { Registry, register as globalRegistry } from 'prom-client'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { ecPartiesPki, leafSigner, memoryBus } from '../../support/memory-bus.js'
import type { TestPki } from '../../support/pki.js'
import type { Verifier } from '../../../src/crypto/types.js'
import type { CrlStatus } from '../../../src/crypto/crl.js'
import { InvalidArgumentError } from '../../../src/errors.js'
import { MemoryInboxData, MemoryInboxStore } from '../../../src/inbox/memory.js'
import { MemoryOutboxData, MemoryOutboxStore } from '../../../src/outbox/memory.js'
import { Gilmsg } from '../../../src/reliable/gilmsg.js'
import type { PublisherEvents } from '../../../src/reliable/publisher.js'
import { MemoryHub } from '../../../src/transport/memory.js'
import { ReasonCounter } from '../../../src/util/counters.js'
import { Emitter } from '../../../src/util/events.js'
import { ACK_LATENCY_BUCKETS_SECONDS, createGilmsgMetrics, type PublisherSource } from '../../../src/observe/metrics.js'
import { FakeClock, settle } from '../../support/fake-clock.js'

const TOPIC = { topicPrefix: 'org.test', environment: 'unit' }
const APP = 'org.test.unit.app.'

let pki: TestPki
let verifier: Verifier
beforeAll(async () => {
  ;({ pki, verifier } = await ecPartiesPki('metrics', ['publisher', 'alice']))
}, 60_000)

const open: Gilmsg[] = []
afterEach(async () => {
  await Promise.all(open.splice(0).map((g) => g.close()))
})

/** The value of one sample line `name{labels} value` of the registry's text, or undefined. */
async function sample(registry: Registry, series: string): Promise<number | undefined> {
  const line = (await registry.metrics()).split('\n').find((l) => l.startsWith(series + ' '))
  if (line === undefined) return undefined
  const value = line.slice(series.length + 1)
  return value === '+Inf' ? Infinity : value === '-Inf' ? -Infinity : Number(value)
}

/** A publisher stand-in whose events and counters the test drives. */
class FakePublisher extends Emitter<PublisherEvents> implements PublisherSource {
  resends = 0
  guaranteed = 0
  readonly #resendsTo = new ReasonCounter()
  readonly #ignored = new ReasonCounter()
  readonly resendsTo = this.#resendsTo.view
  readonly ignoredAcks = this.#ignored.view
  resentTo(cn: string): void {
    this.resends++
    this.#resendsTo.add(cn)
  }
  ignore(reason: string): void {
    this.#ignored.add(reason)
  }
}

describe('createGilmsgMetrics', () => {
  it('counts a real delivery: ACKs by recipient and disposition, their latency, guaranteed messages, the consumer’s ACKs, outbox states', async () => {
    const clock = new FakeClock()
    const hub = new MemoryHub()
    const outbox = new MemoryOutboxStore(new MemoryOutboxData())
    const pub = await Gilmsg.open({ bus: memoryBus({ hub, verifier, topic: TOPIC, clock }, pki, 'publisher'), outbox, clock, awaitSubscriberMs: 0 })
    open.push(pub)
    const alice = await Gilmsg.open({ bus: memoryBus({ hub, verifier, topic: TOPIC, clock }, pki, 'alice'), inbox: new MemoryInboxStore(new MemoryInboxData()), clock })
    open.push(alice)
    const registry = new Registry()
    const metrics = createGilmsgMetrics({ registry, clock })
    metrics.attachGilmsg(pub)
    metrics.attachGilmsg(alice)
    const sub = await alice.subscribe(APP)
    void (async () => {
      for await (const _ of sub);
    })()
    await settle()

    // The message takes 400 ms (fake) to arrive: less than the first resend's delay, so no timer fires meanwhile.
    hub.setGate((d) => {
      if (d.topic.startsWith(APP)) void clock.advance(400)
      return 'deliver'
    })
    await pub.publish('hello', { n: 1 }, { recipients: ['alice'], modname: 'app' })
    await pub.bus.publish('plain', { n: 2 }, { modname: 'app' })
    await settle()

    expect(await sample(registry, 'gilmsg_acks_total{recipient="alice",disposition="received"}')).toBe(1)
    expect(await sample(registry, 'gilmsg_ack_latency_seconds_count')).toBe(1)
    const latency = (await sample(registry, 'gilmsg_ack_latency_seconds_sum')) ?? NaN
    expect(latency).toBeGreaterThanOrEqual(0.4)
    expect(latency).toBeLessThan(0.5)
    expect(await sample(registry, 'gilmsg_ack_latency_seconds_bucket{le="0.25"}')).toBe(0)
    expect(await sample(registry, 'gilmsg_ack_latency_seconds_bucket{le="0.5"}')).toBe(1)
    expect(await sample(registry, 'gilmsg_messages_guaranteed_total')).toBe(1)
    expect(await sample(registry, 'gilmsg_messages_published_total')).toBe(2)
    expect(await sample(registry, 'gilmsg_messages_delivered_total')).toBe(1)
    expect(await sample(registry, 'gilmsg_consumer_acks_sent_total{disposition="received"}')).toBe(1)
    expect(await sample(registry, 'gilmsg_outbox_messages{state="acked"}')).toBe(1)
    expect(await sample(registry, 'gilmsg_outbox_messages{state="pending"}')).toBe(0)
    expect(await sample(registry, 'gilmsg_certificate_expiry_seconds')).toBeGreaterThan(0)
    expect(await sample(registry, 'gilmsg_crl_next_update_seconds')).toBeGreaterThan(0)
    // Nothing reached prom-client's global registry.
    expect(globalRegistry.getMetricsAsArray()).toEqual([])

    // A closed store reports nothing (and the scrape still works).
    await outbox.close()
    expect(await sample(registry, 'gilmsg_outbox_messages{state="acked"}')).toBeUndefined()
  })

  it('counts outcomes from events and reads counters at scrape time; detach stops both', async () => {
    const registry = new Registry()
    const metrics = createGilmsgMetrics({ registry, prefix: 'x_' })
    const p = new FakePublisher()
    const detach = metrics.attachPublisher(p)
    p.emit('ack', { msgId: 'm1', recipient: 'bob', disposition: 'rejected', latencyMs: 3 })
    p.emit('rejected', { msgId: 'm1', recipient: 'bob', reason: 'no', ended: true })
    p.emit('expired', { msgId: 'm2', acked: [], missing: ['carol', 'dave'], rejected: [] })
    p.resentTo('carol')
    p.resentTo('carol')
    p.ignore('digest_mismatch')
    p.guaranteed = 2
    expect(await sample(registry, 'x_acks_total{recipient="bob",disposition="rejected"}')).toBe(1)
    expect(await sample(registry, 'x_ack_latency_seconds_bucket{le="0.0025"}')).toBe(0)
    expect(await sample(registry, 'x_ack_latency_seconds_bucket{le="0.005"}')).toBe(1)
    expect(await sample(registry, 'x_messages_rejected_total{recipient="bob"}')).toBe(1)
    expect(await sample(registry, 'x_messages_expired_total')).toBe(1)
    expect(await sample(registry, 'x_expired_recipients_total{recipient="dave"}')).toBe(1)
    expect(await sample(registry, 'x_resends_total')).toBe(2)
    expect(await sample(registry, 'x_resends_by_recipient_total{recipient="carol"}')).toBe(2)
    expect(await sample(registry, 'x_acks_ignored_total{reason="digest_mismatch"}')).toBe(1)
    expect(await sample(registry, 'x_messages_guaranteed_total')).toBe(2)
    // Read again: counters read at scrape time are not added up twice.
    expect(await sample(registry, 'x_resends_total')).toBe(2)

    detach()
    detach()
    p.emit('expired', { msgId: 'm3', acked: [], missing: ['carol'], rejected: [] })
    p.resentTo('carol')
    expect(await sample(registry, 'x_messages_expired_total')).toBe(1)
    expect(await sample(registry, 'x_resends_total')).toBe(0)
    expect(p.listens('ack')).toBe(false)
  })

  it('a native relay counts no message: only its connection counters exist', async () => {
    const registry = new Registry()
    const metrics = createGilmsgMetrics({ registry })
    metrics.attachRelay({ forwarded: undefined, dropped: undefined, inboundConnects: 4, inboundDisconnects: 2 })
    expect(await sample(registry, 'gilmsg_relay_inbound_connections_total')).toBe(4)
    expect(await sample(registry, 'gilmsg_relay_inbound_disconnects_total')).toBe(2)
    expect(await registry.metrics()).not.toMatch(/gilmsg_relay_forwarded_total|gilmsg_relay_dropped_total/)
  })

  it('registers only the metrics of what is attached: a relay’s, its bus’s drops, the CRL seconds', async () => {
    const clock = new FakeClock()
    const registry = new Registry()
    const metrics = createGilmsgMetrics({ registry, clock })
    metrics.attachRelay({ forwarded: 7, dropped: { not_utf8: 2 }, inboundConnects: 2, inboundDisconnects: 1 })
    metrics.attachRelay({ forwarded: 3, dropped: { not_utf8: 1, too_large: 4 }, inboundConnects: 1, inboundDisconnects: 0 })
    expect(await sample(registry, 'gilmsg_relay_forwarded_total')).toBe(10)
    expect(await sample(registry, 'gilmsg_relay_inbound_connections_total')).toBe(3)
    expect(await sample(registry, 'gilmsg_relay_dropped_total{reason="not_utf8"}')).toBe(3)
    expect(await sample(registry, 'gilmsg_relay_dropped_total{reason="too_large"}')).toBe(4)
    expect(await sample(registry, 'gilmsg_relay_inbound_disconnects_total')).toBe(1)
    expect(await registry.metrics()).not.toMatch(/gilmsg_acks_total|gilmsg_outbox/)

    const drops = new ReasonCounter()
    drops.add('bad_signature', 5)
    let status: CrlStatus | undefined
    metrics.attachBus({ drops: drops.view, published: 0, signer: leafSigner(pki.leaf('alice')), verifier: { verify: () => ({ ok: false, reason: 'malformed', detail: '' }), crlStatus: () => status } as unknown as Verifier })
    expect(await sample(registry, 'gilmsg_messages_dropped_total{reason="bad_signature"}')).toBe(5)
    expect(await sample(registry, 'gilmsg_crl_next_update_seconds')).toBe(Infinity)
    status = { nextUpdate: clock.now() - 90_000, stale: true } as CrlStatus
    expect(await sample(registry, 'gilmsg_crl_next_update_seconds')).toBe(-90)
    const notAfter = Date.parse(new (await import('node:crypto')).X509Certificate(pki.leaf('alice').certPem).validTo)
    expect(await sample(registry, 'gilmsg_certificate_expiry_seconds')).toBe((notAfter - clock.now()) / 1000)
  })

  it('refuses what is not a registry or a metric-name prefix', () => {
    expect(() => createGilmsgMetrics({ registry: {} as Registry })).toThrow(InvalidArgumentError)
    expect(() => createGilmsgMetrics({ registry: new Registry(), prefix: '9bad-' })).toThrow(/prefix: expected a metric name prefix/)
  })

  it('has latency buckets from a millisecond to an hour, increasing', () => {
    expect(ACK_LATENCY_BUCKETS_SECONDS[0]).toBe(0.001)
    expect(ACK_LATENCY_BUCKETS_SECONDS.at(-1)).toBe(3600)
    expect([...ACK_LATENCY_BUCKETS_SECONDS].sort((a, b) => a - b)).toEqual(ACK_LATENCY_BUCKETS_SECONDS)
  })
})
