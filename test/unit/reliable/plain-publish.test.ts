/**
 * A publish without recipients is a plain fedmsg publish, and it has one path:
 * `Gilmsg.publish` (which needs no outbox). The reliable publisher only
 * handles guaranteed messages and refuses one without recipients.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { ecPartiesPki, memoryBus } from '../../support/memory-bus.js'
import type { TestPki } from '../../support/pki.js'
import type { BusMessage } from '../../../src/bus/bus.js'
import type { Verifier } from '../../../src/crypto/types.js'
import { ClosedError, InvalidArgumentError } from '../../../src/errors.js'
import { MemoryOutboxData, MemoryOutboxStore } from '../../../src/outbox/memory.js'
import { Gilmsg } from '../../../src/reliable/gilmsg.js'
import { MemoryHub } from '../../../src/transport/memory.js'
import { FakeClock, settle } from '../../support/fake-clock.js'

const TOPIC = { topicPrefix: 'org.test', environment: 'unit' }

let pki: TestPki
let verifier: Verifier
beforeAll(async () => {
  ;({ pki, verifier } = await ecPartiesPki('plain-publish', ['publisher', 'alice']))
}, 60_000)

const open: { close(): Promise<void> }[] = []
afterEach(async () => {
  await Promise.all(open.splice(0).map((g) => g.close()))
})

async function world(withOutbox: boolean): Promise<{ pub: Gilmsg; outbox: MemoryOutboxStore; got: BusMessage[] }> {
  const clock = new FakeClock()
  const hub = new MemoryHub()
  const outbox = new MemoryOutboxStore(new MemoryOutboxData())
  const pub = await Gilmsg.open({ bus: memoryBus({ hub, verifier, topic: TOPIC, clock }, pki, 'publisher'), ...(withOutbox ? { outbox } : {}), clock, awaitSubscriberMs: 0 })
  const alice = memoryBus({ hub, verifier, topic: TOPIC, clock }, pki, 'alice')
  open.push(pub, alice)
  const got: BusMessage[] = []
  const sub = await alice.subscribe('org.test.unit.app.')
  void (async () => {
    for await (const m of sub) got.push(m)
  })()
  return { pub, outbox, got }
}

describe('publish without recipients', () => {
  it.each([true, false])('is sent once, waits for no ACK and is kept nowhere (outbox: %s)', async (withOutbox) => {
    const { pub, outbox, got } = await world(withOutbox)
    for (const recipients of [undefined, []]) {
      const receipt = await pub.publish('job', { n: 1 }, { modname: 'app', ...(recipients ? { recipients } : {}) })
      expect(receipt).toMatchObject({ topic: 'org.test.unit.app.job', recipients: [] })
      await settle()
      expect(got.at(-1)?.msgId).toBe(receipt.msgId)
    }
    expect(got).toHaveLength(2)
    expect(outbox.counts()).toEqual({ pending: 0, acked: 0, expired: 0, rejected: 0 })
  })

  it('rejects with a closed error once closed', async () => {
    const { pub } = await world(false)
    await pub.close()
    await expect(pub.publish('job', {}, { modname: 'app' })).rejects.toBeInstanceOf(ClosedError)
  })

  it('the reliable publisher does not do it: it refuses a message without recipients', async () => {
    const { pub, got } = await world(true)
    const publisher = pub.publisher
    if (publisher === undefined) throw new Error('no publisher')
    await expect(publisher.publish('job', {}, { modname: 'app' })).rejects.toThrow(new InvalidArgumentError('recipients: publish needs at least one recipient'))
    await expect(publisher.publish('job', {}, { modname: 'app', recipients: [] })).rejects.toBeInstanceOf(InvalidArgumentError)
    await settle()
    expect(got).toHaveLength(0)
  })
})
