/**
 * Manual ACK mode is at-least-once: a consumer that dies after its application
 * processed a message but before `delivery.ack()` gets the message again after
 * restarting (spec/protocol.md, spec/failure-model.md). The "crash" closes the
 * consumer without acknowledging; its SQLite inbox survives, as on disk.
 */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { memoryBus } from '../../support/memory-bus.js'
import { createTestPki, type TestPki } from '../../support/pki.js'
import { createVerifier } from '../../../src/crypto/verifier.js'
import type { Verifier } from '../../../src/crypto/types.js'
import { SqliteInboxStore } from '../../../src/inbox/sqlite.js'
import { MemoryOutboxStore } from '../../../src/outbox/memory.js'
import { Gilmsg } from '../../../src/reliable/gilmsg.js'
import { MemoryHub } from '../../../src/transport/memory.js'
import { FakeClock, settle } from '../../support/fake-clock.js'

let dir: string
let pki: TestPki
let verifier: Verifier
const open: Gilmsg[] = []

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gilmsg-manual-crash-'))
  pki = await createTestPki(join(dir, 'pki'), [{ name: 'pub', key: 'ec' }, { name: 'alice', key: 'ec' }])
  verifier = await createVerifier({ caPem: pki.caPem, crlPem: pki.crlPem })
}, 30_000)

afterAll(async () => {
  await Promise.all(open.map((g) => g.close()))
})

describe('manual ACK mode across a consumer crash', () => {
  it('redelivers a message processed but not acknowledged before the crash, then acknowledges it once', async () => {
    const clock = new FakeClock()
    const hub = new MemoryHub()
    const bus = (name: string) => memoryBus({ hub, verifier, topic: { topicPrefix: 'org.test', environment: 'crash' }, clock }, pki, name)
    const inboxPath = join(dir, 'alice.inbox.db')
    const publisher = await Gilmsg.open({ bus: bus('pub'), outbox: new MemoryOutboxStore(), clock, awaitSubscriberMs: 0 })
    open.push(publisher)

    // First life: the application processes the message, then the process dies before ack().
    const first = await Gilmsg.open({ bus: bus('alice'), inbox: SqliteInboxStore.open(inboxPath), clock })
    const sub1 = await first.subscribe('org.test.crash.app.', { ack: 'manual' })
    const processed: string[] = []
    const life1 = (async () => {
      for await (const d of sub1) {
        processed.push(d.msgId)
        break
      }
    })()
    let receipt: Awaited<ReturnType<Gilmsg['publish']>> | undefined
    const published = publisher.publish('job', { id: 7 }, { recipients: ['alice'], ackTimeout: 60_000, modname: 'app' }).then((r) => (receipt = r))
    await life1 // `break` returns at once, even with the socket quiet
    expect(processed).toHaveLength(1)
    await first.close()
    await clock.advance(3000)
    expect(receipt, 'no ACK was sent, so publish() is still waiting').toBeUndefined()

    // Second life on the same inbox: the resend is handed to the application again, which acks.
    const second = await Gilmsg.open({ bus: bus('alice'), inbox: SqliteInboxStore.open(inboxPath), clock })
    open.push(second)
    const sub2 = await second.subscribe('org.test.crash.app.', { ack: 'manual' })
    const again: string[] = []
    const life2 = (async () => {
      for await (const d of sub2) {
        again.push(d.msgId)
        await d.ack()
      }
    })()
    for (let i = 0; i < 20 && receipt === undefined; i++) await clock.advance(500)
    await published
    expect(again).toEqual(processed)
    expect(receipt?.recipients.map((r) => [r.cn, r.disposition])).toEqual([['alice', 'processed']])

    // Once acknowledged, further resends (or replays) are not handed over again.
    await clock.advance(5000)
    await settle()
    expect(again).toHaveLength(1)
    await sub2.close()
    await life2
  })

  it('release() leaves a message pending: the resend is handed over again; startAttempt() counts in the inbox, across a restart', async () => {
    const clock = new FakeClock()
    const hub = new MemoryHub()
    const bus = (name: string) => memoryBus({ hub, verifier, topic: { topicPrefix: 'org.test', environment: 'release' }, clock }, pki, name)
    const inboxPath = join(dir, 'alice-release.inbox.db')
    const publisher = await Gilmsg.open({ bus: bus('pub'), outbox: new MemoryOutboxStore(), clock, awaitSubscriberMs: 0 })
    open.push(publisher)
    const alice = await Gilmsg.open({ bus: bus('alice'), inbox: SqliteInboxStore.open(inboxPath), clock })
    const sub = await alice.subscribe('org.test.release.app.', { ack: 'manual' })
    const attempts: number[] = []
    const life = (async () => {
      for await (const d of sub) {
        const n = await d.startAttempt()
        attempts.push(n)
        if (n < 3) {
          d.release()
          await d.ack() // a no-op after release()
        } else {
          await d.ack()
        }
      }
    })()
    let receipt: Awaited<ReturnType<Gilmsg['publish']>> | undefined
    const published = publisher.publish('job', { id: 8 }, { recipients: ['alice'], ackTimeout: 60_000, modname: 'app' }).then((r) => (receipt = r))
    for (let i = 0; i < 40 && receipt === undefined; i++) await clock.advance(500)
    await published
    expect(attempts).toEqual([1, 2, 3])
    expect(receipt?.recipients.map((r) => [r.cn, r.disposition])).toEqual([['alice', 'processed']])
    await sub.close()
    await life
    await alice.close()
    const reopened = SqliteInboxStore.open(inboxPath)
    expect(reopened.attempts('pub', receipt?.msgId as string)).toBe(3)
    await reopened.close()
  })
})
