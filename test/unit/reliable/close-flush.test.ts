/**
 * Gilmsg.close() finishes the ACKs in flight before it closes the sockets and the
 * inbox (issue 14): an ACK being committed when close() is called is still
 * committed and sent, so a message handed over is never left without its ACK.
 */
import { beforeAll, describe, expect, it } from 'vitest'
import { ecPartiesPki, leafSigner, memoryBus } from '../../support/memory-bus.js'
import type { TestPki } from '../../support/pki.js'
import type { Verifier } from '../../../src/crypto/types.js'
import { buildEnvelope, sealEnvelope } from '../../../src/envelope/envelope.js'
import type { InboxEntry } from '../../../src/inbox/store.js'
import { MemoryInboxData, MemoryInboxStore } from '../../../src/inbox/memory.js'
import { CLOSE_DRAIN_TIMEOUT_MS } from '../../../src/reliable/consumer.js'
import { Gilmsg } from '../../../src/reliable/gilmsg.js'
import { reliableFields } from '../../../src/reliable/protocol.js'
import { MemoryHub } from '../../../src/transport/memory.js'
import { FakeClock, settle } from '../../support/fake-clock.js'

const TOPIC = { topicPrefix: 'org.test', environment: 'unit' }

let pki: TestPki
let verifier: Verifier
beforeAll(async () => {
  ;({ pki, verifier } = await ecPartiesPki('close-flush', ['publisher', 'alice']))
}, 60_000)

/** An inbox whose writes wait until the test lets them through. */
class GatedInbox extends MemoryInboxStore {
  readonly waiting: (() => void)[] = []
  override put(entry: InboxEntry): Promise<void> {
    return new Promise<void>((resolve) => this.waiting.push(resolve)).then(() => super.put(entry))
  }
}

describe('Gilmsg.close() and ACKs in flight', () => {
  it.each(['auto', 'manual'] as const)('%s mode: an ACK whose inbox commit is under way when close() is called is committed and sent before the bus closes', async (mode) => {
    const clock = new FakeClock()
    const hub = new MemoryHub()
    const sentAcks: string[] = []
    hub.setGate((d) => {
      if (d.from === 'alice' && d.to === 'publisher') sentAcks.push(d.body.toString())
      return 'deliver'
    })
    const publisher = memoryBus({ hub, verifier, topic: TOPIC, clock }, pki, 'publisher')
    const listening = await publisher.subscribe('org.test.unit.gilmsg.ack')
    const data = new MemoryInboxData()
    const inbox = new GatedInbox(data)
    const errors: unknown[] = []
    const alice = await Gilmsg.open({ bus: memoryBus({ hub, verifier, topic: TOPIC, clock }, pki, 'alice'), inbox, clock, onConsumerError: (e) => errors.push(e) })
    const sub = await alice.subscribe('org.test.unit.app.', { ack: mode })
    void (async () => {
      for await (const d of sub) void d.ack()
    })()
    await settle()

    const env = buildEnvelope({ topic: 'org.test.unit.app.job', msg: { n: 1 }, i: 1, nowMs: clock.now(), username: 'publisher', extra: reliableFields(['alice']) })
    await publisher.send(sealEnvelope(env, leafSigner(pki.leaf('publisher'))))
    for (let i = 0; i < 100 && inbox.waiting.length === 0; i++) await settle(1)
    expect(inbox.waiting).toHaveLength(1)

    const closing = alice.close()
    await settle()
    for (const release of inbox.waiting.splice(0)) release()
    await closing

    expect(errors).toEqual([])
    expect(alice.consumer?.stats.get('ack_failures') ?? 0).toBe(0)
    expect(data.entries.size).toBe(1)
    expect(sentAcks).toHaveLength(1)
    expect(JSON.parse(sentAcks[0] as string)).toMatchObject({ msg: { ack_msg_id: env.get('msg_id') } })
    await listening.close()
    await publisher.close()
  })

  it('close() waits for an ACK that never completes at most CLOSE_DRAIN_TIMEOUT_MS, then closes anyway', async () => {
    const clock = new FakeClock()
    const hub = new MemoryHub()
    const publisher = memoryBus({ hub, verifier, topic: TOPIC, clock }, pki, 'publisher')
    const inbox = new GatedInbox(new MemoryInboxData())
    const alice = await Gilmsg.open({ bus: memoryBus({ hub, verifier, topic: TOPIC, clock }, pki, 'alice'), inbox, clock, onConsumerError: () => undefined })
    const sub = await alice.subscribe('org.test.unit.app.')
    void (async () => {
      for await (const _ of sub);
    })()
    await settle()
    const env = buildEnvelope({ topic: 'org.test.unit.app.job', msg: { n: 2 }, i: 1, nowMs: clock.now(), username: 'publisher', extra: reliableFields(['alice']) })
    await publisher.send(sealEnvelope(env, leafSigner(pki.leaf('publisher'))))
    for (let i = 0; i < 100 && inbox.waiting.length === 0; i++) await settle(1)
    expect(inbox.waiting).toHaveLength(1)

    let closed = false
    const closing = alice.close().then(() => (closed = true))
    await settle()
    await clock.advance(CLOSE_DRAIN_TIMEOUT_MS - 1)
    expect(closed).toBe(false)
    await clock.advance(1)
    await closing
    expect(closed).toBe(true)
    await publisher.close()
  })
})
