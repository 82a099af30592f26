/**
 * A new guaranteed message goes out as soon as the outbox has committed it
 * (it then survives a crash of the process), while the store syncs it to
 * disk; `enqueue()` resolves only once both are done, and rejects if the
 * sync fails even though the message was sent. `publish()` resolves on the
 * ACKs without waiting for the sync (they prove delivery), and rejects if the
 * sync fails first. An outbox whose sync the test releases by hand stands in
 * for a SQLite store opened FULL.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { ecPartiesPki, memoryBus } from '../../support/memory-bus.js'
import type { TestPki } from '../../support/pki.js'
import type { Verifier } from '../../../src/crypto/types.js'
import { MemoryInboxData, MemoryInboxStore } from '../../../src/inbox/memory.js'
import { MemoryOutboxData, MemoryOutboxStore } from '../../../src/outbox/memory.js'
import { added } from '../../../src/outbox/rules.js'
import type { Added, NewOutboxMessage } from '../../../src/outbox/store.js'
import { Gilmsg } from '../../../src/reliable/gilmsg.js'
import { MemoryHub } from '../../../src/transport/memory.js'
import { FakeClock, settle } from '../../support/fake-clock.js'

const TOPIC = { topicPrefix: 'org.test', environment: 'unit' }

/** A memory outbox whose add() commits at once but is "synced" only when the test says so. */
class SlowSyncOutbox extends MemoryOutboxStore {
  readonly syncs: { release: () => void; fail: (e: Error) => void }[] = []

  override add(message: NewOutboxMessage): Added {
    const { committed } = super.add(message)
    return added(
      committed,
      committed.then(() => new Promise<void>((release, fail) => this.syncs.push({ release, fail }))),
    )
  }
}

let pki: TestPki
let verifier: Verifier
beforeAll(async () => {
  ;({ pki, verifier } = await ecPartiesPki('send-commit', ['publisher', 'alice']))
}, 60_000)

const open: Gilmsg[] = []
afterEach(async () => {
  await Promise.all(open.splice(0).map((g) => g.close()))
})

async function world(options: { failSends?: boolean } = {}): Promise<{ outbox: SlowSyncOutbox; pub: Gilmsg; got: string[] }> {
  const clock = new FakeClock()
  const hub = new MemoryHub()
  const outbox = new SlowSyncOutbox(new MemoryOutboxData())
  const pubBus = memoryBus({ hub, verifier, topic: TOPIC, clock }, pki, 'publisher')
  if (options.failSends === true) pubBus.send = () => Promise.reject(new Error('socket is gone'))
  const pub = await Gilmsg.open({ bus: pubBus, outbox, clock, awaitSubscriberMs: 0 })
  const alice = await Gilmsg.open({ bus: memoryBus({ hub, verifier, topic: TOPIC, clock }, pki, 'alice'), inbox: new MemoryInboxStore(new MemoryInboxData()), clock })
  open.push(pub, alice)
  const got: string[] = []
  const sub = await alice.subscribe('org.test.unit.app.')
  void (async () => {
    for await (const d of sub) got.push(d.msgId)
  })()
  await settle()
  return { outbox, pub, got }
}

describe('sending on commit', () => {
  it('the message is delivered and acknowledged while its sync runs; enqueue() resolves only after the sync', async () => {
    const { outbox, pub, got } = await world()
    let enqueued: string | undefined
    const p = pub.enqueue('job', { n: 1 }, { recipients: ['alice'], modname: 'app' }).then((e) => (enqueued = e.msgId))
    await settle()
    expect(outbox.syncs).toHaveLength(1)
    expect(got).toHaveLength(1)
    expect(outbox.get(got[0] as string)?.state, 'acknowledged before its sync finished').toBe('acked')
    expect(enqueued).toBeUndefined()
    outbox.syncs[0]?.release()
    await p
    expect(enqueued).toBe(got[0])
  })

  it('a failed sync rejects enqueue() even though the message went out (the caller cannot count on it)', async () => {
    const { outbox, pub, got } = await world()
    const p = pub.enqueue('job', { n: 2 }, { recipients: ['alice'], modname: 'app' })
    await settle()
    expect(got).toHaveLength(1)
    outbox.syncs[0]?.fail(new Error('fdatasync failed: EIO'))
    await expect(p).rejects.toThrow(/EIO/)
  })

  it('publish() resolves on the ACKs while the sync still runs', async () => {
    const { outbox, pub, got } = await world()
    const receipt = await pub.publish('job', { n: 3 }, { recipients: ['alice'], modname: 'app', ackTimeout: 5000 })
    expect(receipt.recipients.map((r) => r.cn)).toEqual(['alice'])
    await settle()
    expect(got).toEqual([receipt.msgId])
    expect(outbox.syncs, 'its sync was never released').toHaveLength(1)
  })

  it('publish() rejects when the sync fails before every ACK is in', async () => {
    const { outbox, pub, got } = await world()
    // bob never acknowledges: the publish is still waiting when the sync fails.
    const p = pub.publish('job', { n: 4 }, { recipients: ['alice', 'bob'], modname: 'app', ackTimeout: 60_000 })
    const outcome = p.then(
      () => 'resolved',
      (e: Error) => e.message,
    )
    await settle()
    expect(got).toHaveLength(1)
    outbox.syncs[0]?.fail(new Error('fdatasync failed: EIO'))
    expect(await outcome).toMatch(/EIO/)
  })

  it('a sync that fails after publish() resolved is reported as a background:error', async () => {
    const { outbox, pub } = await world()
    const errors: Error[] = []
    pub.on('background:error', (e) => errors.push(e))
    await pub.publish('job', { n: 5 }, { recipients: ['alice'], modname: 'app', ackTimeout: 5000 })
    outbox.syncs[0]?.fail(new Error('fdatasync failed: EIO'))
    await settle()
    expect(errors.map((e) => e.message)).toEqual([expect.stringMatching(/syncing the outbox failed: fdatasync failed: EIO/)])
  })

  it('a send that fails, then its sync: publish() rejects with the send error, and nothing is left unhandled', async () => {
    const { outbox, pub, got } = await world({ failSends: true })
    const p = pub.publish('job', { n: 6 }, { recipients: ['alice'], modname: 'app', ackTimeout: 60_000 })
    await expect(p).rejects.toThrow(/socket is gone/)
    expect(got).toEqual([])
    // The message was committed: it stays pending for the resends. Its sync failing now is nobody's
    // rejection to handle (vitest fails the run on an unhandled one).
    expect(outbox.list().map((m) => m.state)).toEqual(['pending'])
    outbox.syncs[0]?.fail(new Error('fdatasync failed: EIO'))
    await settle()
  })
})
