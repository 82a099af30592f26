/**
 * The reliability layer's errors carry the class of their code: a publisher
 * closed under a waiting publish() rejects with a ClosedError, a transport
 * failure during a resend is a TransportError (not an outbox error), and
 * calling what an instance was not opened for is an InvalidArgumentError.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { Bus } from '../../../src/bus/bus.js'
import type { TestPki } from '../../support/pki.js'
import type { Verifier } from '../../../src/crypto/types.js'
import { ClosedError, ErrorCode, GilmsgError, InvalidArgumentError, TransportError } from '../../../src/errors.js'
import { MemoryOutboxData, MemoryOutboxStore } from '../../../src/outbox/memory.js'
import { Gilmsg } from '../../../src/reliable/gilmsg.js'
import { MemoryHub, MemoryTransport } from '../../../src/transport/memory.js'
import type { PubSocket, SubscriberOptions, SubSocket, Transport } from '../../../src/transport/transport.js'
import { FakeClock, settle } from '../../support/fake-clock.js'
import { ecPartiesPki, leafSigner } from '../../support/memory-bus.js'

const TOPIC = { topicPrefix: 'org.test', environment: 'unit' }

/** A MemoryTransport whose publishers' sends reject with a plain Error (not a GilmsgError) while `failing`. */
class FlakyTransport implements Transport {
  failing = false
  readonly #inner: MemoryTransport
  constructor(hub: MemoryHub, name: string) {
    this.#inner = new MemoryTransport(hub, name)
  }
  async openPublisher(): Promise<PubSocket> {
    const pub = await this.#inner.openPublisher()
    const send = pub.send.bind(pub)
    return Object.assign(Object.create(pub) as PubSocket, {
      endpoints: pub.endpoints,
      send: (topic: string, body: Buffer | string) => (this.failing ? Promise.reject(new Error('wire cut')) : send(topic, body)),
      waitForSubscribers: pub.waitForSubscribers.bind(pub),
      close: pub.close.bind(pub),
    })
  }
  openSubscriber(options?: SubscriberOptions): Promise<SubSocket> {
    return this.#inner.openSubscriber(options)
  }
}

let pki: TestPki
let verifier: Verifier
beforeAll(async () => {
  ;({ pki, verifier } = await ecPartiesPki('errors', ['publisher']))
}, 60_000)

const open: Gilmsg[] = []
afterEach(async () => {
  await Promise.all(open.splice(0).map((g) => g.close()))
})

async function publisher(options: { outbox?: boolean } = {}): Promise<{ g: Gilmsg; transport: FlakyTransport; clock: FakeClock }> {
  const clock = new FakeClock()
  const transport = new FlakyTransport(new MemoryHub(), 'publisher')
  const bus = new Bus({ transport, signer: leafSigner(pki.leaf('publisher')), verifier, topic: TOPIC, maxJsonDepth: 64, clock })
  const g = await Gilmsg.open({ bus, ...(options.outbox === false ? {} : { outbox: new MemoryOutboxStore(new MemoryOutboxData()) }), clock, awaitSubscriberMs: 0 })
  open.push(g)
  return { g, transport, clock }
}

describe('reliable errors', () => {
  it('a publish() waiting for ACKs when the publisher closes rejects with a ClosedError (GILMSG_CLOSED)', async () => {
    const { g } = await publisher()
    const p = g.publish('job', { n: 1 }, { recipients: ['nobody'], modname: 'app', ackTimeout: 60_000 })
    const outcome = p.then(
      () => undefined,
      (e: unknown) => e,
    )
    await settle()
    await g.close()
    const err = await outcome
    expect(err).toBeInstanceOf(ClosedError)
    expect(err).toMatchObject({ code: ErrorCode.Closed, message: expect.stringMatching(/^publisher closed while waiting for ACKs of /) })
  })

  it('a transport failure during a resend is reported as a TransportError (GILMSG_TRANSPORT), not an outbox error', async () => {
    const { g, transport, clock } = await publisher()
    const errors: GilmsgError[] = []
    g.on('background:error', (e) => errors.push(e))
    await g.enqueue('job', { n: 2 }, { recipients: ['nobody'], modname: 'app' })
    transport.failing = true
    for (let i = 0; i < 20 && errors.length === 0; i++) await clock.advance(60_000)
    expect(errors.length).toBeGreaterThan(0)
    expect(errors[0]).toBeInstanceOf(TransportError)
    expect(errors[0]).toMatchObject({ code: ErrorCode.Transport, message: expect.stringMatching(/wire cut/) })
  })

  it('a send the transport fails with a plain Error rejects publish() with a TransportError', async () => {
    const { g, transport } = await publisher()
    transport.failing = true
    await expect(g.publish('job', { n: 3 }, { recipients: ['nobody'], modname: 'app', ackTimeout: 60_000 })).rejects.toBeInstanceOf(TransportError)
  })

  it('publish() on an instance opened without an outbox is an InvalidArgumentError', async () => {
    const { g } = await publisher({ outbox: false })
    await expect(g.publish('job', {}, { recipients: ['x'], modname: 'app' })).rejects.toBeInstanceOf(InvalidArgumentError)
    await expect(g.subscribe('')).rejects.toBeInstanceOf(InvalidArgumentError)
  })
})
