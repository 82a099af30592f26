/**
 * A publisher waits at most `awaitSubscriberMs` for a first subscriber of a topic before it
 * sends (no send into the void of a fresh socket), but not for every message: behind a relay
 * that passes subscriptions upstream, a topic nobody subscribed to would cost each message the
 * whole wait. After one wait timed out, the topic is not waited for again until a
 * subscription for it is seen; once that subscriber has gone, the next message waits once more.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { ecPartiesPki, memoryBus } from '../../support/memory-bus.js'
import type { TestPki } from '../../support/pki.js'
import type { Verifier } from '../../../src/crypto/types.js'
import { MemoryOutboxData, MemoryOutboxStore } from '../../../src/outbox/memory.js'
import { MemoryInboxData, MemoryInboxStore } from '../../../src/inbox/memory.js'
import { Gilmsg } from '../../../src/reliable/gilmsg.js'
import { MemoryHub } from '../../../src/transport/memory.js'
import { FakeClock } from '../../support/fake-clock.js'

const TOPIC = { topicPrefix: 'org.test', environment: 'unit' }
const WAIT_MS = 600
const MESSAGES = 6

let pki: TestPki
let verifier: Verifier
beforeAll(async () => {
  ;({ pki, verifier } = await ecPartiesPki('await-sub', ['publisher', 'alice']))
}, 60_000)

const open: Gilmsg[] = []
afterEach(async () => {
  await Promise.all(open.splice(0).map((g) => g.close()))
})

async function timed(f: () => Promise<unknown>): Promise<number> {
  const started = performance.now()
  await f()
  return performance.now() - started
}

describe('waiting for a first subscriber', () => {
  it('waits once for a topic nobody subscribed to, not once per message; again after a subscriber came and went', async () => {
    const clock = new FakeClock()
    const hub = new MemoryHub()
    const pub = await Gilmsg.open({
      bus: memoryBus({ hub, verifier, topic: TOPIC, clock }, pki, 'publisher'),
      outbox: new MemoryOutboxStore(new MemoryOutboxData()),
      clock,
      awaitSubscriberMs: WAIT_MS,
    })
    open.push(pub)
    const enqueue = (): Promise<unknown> => pub.enqueue('job', { n: 1 }, { recipients: ['alice'], modname: 'app' })

    // The first message waits the whole WAIT_MS (nobody subscribed), the others not at all:
    // waiting for each would take MESSAGES x WAIT_MS.
    const first = await timed(enqueue)
    expect(first).toBeGreaterThanOrEqual(WAIT_MS - 5)
    const rest = await timed(async () => {
      for (let i = 1; i < MESSAGES; i++) await enqueue()
    })
    expect(rest, `${MESSAGES - 1} messages after a timed-out wait`).toBeLessThan(WAIT_MS)

    // A subscriber arrives: it is seen at the next message, which does not wait.
    const alice = await Gilmsg.open({ bus: memoryBus({ hub, verifier, topic: TOPIC, clock }, pki, 'alice'), inbox: new MemoryInboxStore(new MemoryInboxData()), clock })
    open.push(alice)
    const sub = await alice.subscribe('org.test.unit.app.')
    expect(await timed(enqueue)).toBeLessThan(WAIT_MS)
    // It leaves: the next message waits again, once (the topic is no longer known as unheard).
    await sub.close()
    expect(await timed(enqueue)).toBeGreaterThanOrEqual(WAIT_MS - 5)
    expect(await timed(enqueue)).toBeLessThan(WAIT_MS)
  }, 30_000)
})
