/**
 * A consumer that validates nothing (no verifier: validate_signatures false) must not sign
 * ACKs unless told to with `ackUnvalidated`: its ACK would vouch for a message anyone could
 * have forged.
 */
import { existsSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { ecPartiesPki, leafSigner, memoryBus } from '../../support/memory-bus.js'
import { FakeClock, settle } from '../../support/fake-clock.js'
import { Bus } from '../../../src/bus/bus.js'
import { parseConfig } from '../../../src/config/config.js'
import type { TestPki } from '../../support/pki.js'
import type { Verifier } from '../../../src/crypto/types.js'
import { ConfigError } from '../../../src/errors.js'
import { MemoryInboxData, MemoryInboxStore } from '../../../src/inbox/memory.js'
import { MemoryOutboxData, MemoryOutboxStore } from '../../../src/outbox/memory.js'
import { openGilmsg } from '../../../src/reliable/from-config.js'
import { Gilmsg } from '../../../src/reliable/gilmsg.js'
import { MemoryHub, MemoryTransport } from '../../../src/transport/memory.js'

const TOPIC = { topicPrefix: 'org.test', environment: 'unit' }

let pki: TestPki
let verifier: Verifier
beforeAll(async () => {
  ;({ pki, verifier } = await ecPartiesPki('ack-unvalidated', ['publisher', 'alice']))
}, 60_000)

const open: { close(): Promise<void> }[] = []
afterEach(async () => {
  await Promise.all(open.splice(0).map((g) => g.close()))
})

/** alice's bus: signs with her certificate, validates nothing. */
function unvalidatedBus(hub: MemoryHub, clock: FakeClock): Bus {
  const bus = new Bus({ transport: new MemoryTransport(hub, 'alice'), signer: leafSigner(pki.leaf('alice')), verifier: undefined, topic: TOPIC, maxJsonDepth: 64, clock })
  open.push(bus)
  return bus
}

describe('acknowledging without validation', () => {
  it('Gilmsg.open refuses an inbox on a bus without a verifier, saying how to allow it', async () => {
    const clock = new FakeClock()
    const bus = unvalidatedBus(new MemoryHub(), clock)
    const opening = Gilmsg.open({ bus, inbox: new MemoryInboxStore(new MemoryInboxData()), clock })
    await expect(opening).rejects.toThrow(ConfigError)
    await expect(opening).rejects.toThrow(/not validated .*ackUnvalidated: true/)
  })

  it('with ackUnvalidated it acknowledges, and the validating publisher counts the ACK', async () => {
    const clock = new FakeClock()
    const hub = new MemoryHub()
    const pub = await Gilmsg.open({ bus: memoryBus({ hub, verifier, topic: TOPIC, clock }, pki, 'publisher'), outbox: new MemoryOutboxStore(new MemoryOutboxData()), clock, awaitSubscriberMs: 0 })
    const alice = await Gilmsg.open({ bus: unvalidatedBus(hub, clock), inbox: new MemoryInboxStore(new MemoryInboxData()), clock, ackUnvalidated: true })
    open.push(pub, alice)
    const got: string[] = []
    const sub = await alice.subscribe('org.test.unit.app.')
    void (async () => {
      for await (const d of sub) got.push(d.msgId)
    })()
    await settle()
    const receipt = await pub.publish('job', { n: 1 }, { recipients: ['alice'], modname: 'app' })
    expect(receipt.recipients.map((r) => r.cn)).toEqual(['alice'])
    await settle()
    expect(got).toEqual([receipt.msgId])
  })

  it('openGilmsg refuses before opening any store', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gilmsg-ack-unvalidated-'))
    const config = parseConfig(
      { validate_signatures: false, ssldir: pki.dir, certname: 'alice', crypto_backend: 'x509_sha256', inbox_path: join(dir, 'alice.inbox.db') },
      'test.json',
    )
    const transport = new MemoryTransport(new MemoryHub(), 'alice')
    await expect(openGilmsg(config, { transport, outbox: false })).rejects.toThrow(/^test\.json: refusing to acknowledge/)
    expect(existsSync(join(dir, 'alice.inbox.db'))).toBe(false)
    const g = await openGilmsg(config, { transport, outbox: false, ackUnvalidated: true })
    open.push(g)
    expect(g.consumer?.cn).toBe('alice')
    // Without an inbox nothing is acknowledged, so nothing is refused.
    open.push(await openGilmsg(config, { transport: new MemoryTransport(new MemoryHub(), 'x'), outbox: false, inbox: false }))
  })
})
