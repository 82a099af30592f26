/**
 * Guaranteed delivery over real ZeroMQ sockets (a relay on loopback tcp) and
 * real SQLite files: a recipient that joins after `publish()` was called,
 * a recipient that never comes (AckTimeoutError, expired outbox row), and
 * manual acknowledgement (processed / rejected).
 *
 * Keys: EC P-256 leaves, messages signed with `x509_sha256`, for speed.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseConfig } from '../../../src/config/config.js'
import { createTestPki, type TestPki } from '../../support/pki.js'
import { AckTimeoutError, DeliveryRejectedError } from '../../../src/errors.js'
import type { SqliteOutboxStore } from '../../../src/outbox/sqlite.js'
import type { Delivery } from '../../../src/reliable/consumer.js'
import { openGilmsg } from '../../../src/reliable/from-config.js'
import type { Gilmsg } from '../../../src/reliable/gilmsg.js'
import type { Relay } from '../../../src/transport/relay.js'
import { APP_MODNAME, APP_PREFIX, readOutboxFile, relayConfig, startLoopbackRelay, waitUntil, withTimeout } from '../../support/reliable-net.js'

let dir: string
let pki: TestPki
let net: { relay: Relay; inbound: string; outbound: string }
let pub: Gilmsg
const apps = new Map<string, App>()

interface App {
  readonly g: Gilmsg
  /** Guaranteed messages handed to the application, in order. */
  readonly seen: Delivery[]
  close(): Promise<void>
}

function config(certname: string) {
  return parseConfig(relayConfig(pki, net, dir, certname), `${certname} (test)`)
}

/** A consumer process stand-in: gilmsg without outbox, an app loop recording what it is handed. */
async function startApp(name: string, ack: 'auto' | 'manual' = 'auto', onDelivery?: (d: Delivery) => Promise<void>): Promise<App> {
  const g = await openGilmsg(config(name), { outbox: false })
  const sub = await g.subscribe(APP_PREFIX, { ack })
  const seen: Delivery[] = []
  const loop = (async () => {
    for await (const d of sub) {
      seen.push(d)
      await onDelivery?.(d)
    }
  })()
  const app: App = {
    g,
    seen,
    async close() {
      await sub.close()
      await withTimeout(loop, 5000, `${name}'s app loop to end`)
      await g.close()
    },
  }
  apps.set(name, app)
  return app
}

async function app(name: string): Promise<App> {
  return apps.get(name) ?? startApp(name)
}

function seenCount(a: App, msgId: string): number {
  return a.seen.filter((d) => d.msgId === msgId).length
}

/** Reads the publisher's outbox through a second connection. */
function readOutbox<T>(read: (store: SqliteOutboxStore) => T): Promise<T> {
  return readOutboxFile(join(dir, 'pub.outbox.db'), read)
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gilmsg-late-'))
  // The verifier's CRL cache lives in the state directory: keep it in the temp dir.
  process.env['XDG_STATE_HOME'] = join(dir, 'state')
  pki = await createTestPki(
    join(dir, 'pki'),
    ['pub', 'alice', 'bob'].map((name) => ({ name, key: 'ec' as const })),
  )
  net = await startLoopbackRelay()
  pub = await openGilmsg(config('pub'), { inbox: false })
}, 30_000)

afterAll(async () => {
  await Promise.allSettled([...apps.values()].map((a) => a.close()))
  await pub?.close()
  await net?.relay.close()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

describe('gilmsg over a tcp relay with SQLite stores', () => {
  it('a recipient that starts after the message was sent and resent still gets it within the ackTimeout', async () => {
    const resendsToAlice = () => pub.publisher?.resendsTo.snapshot()['alice'] ?? 0
    const publishing = pub.publish('late', { n: 1 }, { recipients: ['alice'], ackTimeout: 5000, modname: APP_MODNAME })
    // Nobody is listening yet: the first send and at least one resend go into the void.
    await waitUntil(() => resendsToAlice() > 0, 4000, 'a resend to alice before she starts')
    expect(apps.has('alice')).toBe(false)
    const alice = await startApp('alice')
    const receipt = await publishing

    expect(receipt.topic).toBe(`${APP_PREFIX}late`)
    expect(receipt.recipients.map((r) => r.cn)).toEqual(['alice'])
    expect(receipt.recipients[0]?.disposition).toBe('received')

    await waitUntil(() => seenCount(alice, receipt.msgId) > 0, 3000, "alice's app to get the message")
    const d = alice.seen.find((x) => x.msgId === receipt.msgId)
    expect(d?.msg).toEqual({ n: 1 })
    expect(d?.requiresAck).toBe(true)
    expect(d?.signer).toBe('pub')
    expect(d?.digest).toBe(receipt.digest)

    const [row, recipients] = await readOutbox((s) => [s.get(receipt.msgId), s.recipients(receipt.msgId)] as const)
    expect(row?.state).toBe('acked')
    expect(recipients.map((r) => [r.cn, r.state, r.disposition])).toEqual([['alice', 'acked', 'received']])
    expect(recipients[0]?.ackBody).toContain(receipt.msgId)

    // Another copy of the same signed bytes (a late resend, or a replay) is answered but never
    // reaches the app twice: wait until alice's consumer has seen it, then count.
    const suppressed = () => alice.g.consumer?.stats.get('duplicates_suppressed') ?? 0
    const before = suppressed()
    if (row === undefined) throw new Error('the row is gone')
    await pub.bus.send({ topic: row.topic, body: row.body })
    await waitUntil(() => suppressed() > before, 3000, "alice's consumer to suppress the copy")
    expect(seenCount(alice, receipt.msgId)).toBe(1)
  })

  it('two recipients, one never comes: AckTimeoutError names the live one as acked and the other as missing; the row expires', async () => {
    const alice = await app('alice')
    const started = performance.now()
    const error = await pub
      .publish('half', { n: 2 }, { recipients: ['alice', 'carol'], ackTimeout: 1500, modname: APP_MODNAME })
      .then(
        () => undefined,
        (e: unknown) => e,
      )
    const elapsed = performance.now() - started

    expect(error).toBeInstanceOf(AckTimeoutError)
    const e = error as AckTimeoutError
    expect(e.acked.map((a) => a.cn)).toEqual(['alice'])
    expect(e.acked[0]?.disposition).toBe('received')
    expect(e.missing).toEqual(['carol'])
    expect(e.message).toMatch(/no ACK from carol/)
    expect(elapsed).toBeGreaterThanOrEqual(1400)
    expect(seenCount(alice, e.msgId)).toBe(1)

    const [row, recipients] = await readOutbox((s) => [s.get(e.msgId), s.recipients(e.msgId)] as const)
    expect(row?.state).toBe('expired')
    expect(row?.finishedAt).toBeDefined()
    expect(recipients.map((r) => [r.cn, r.state])).toEqual([
      ['alice', 'acked'],
      ['carol', 'expired'],
    ])

    // It was resent while pending; expired, it is never due again, however late it gets.
    expect(pub.publisher?.resendsTo.snapshot()['carol'] ?? 0).toBeGreaterThan(0)
    const due = await readOutbox((s) => s.due(Number.MAX_SAFE_INTEGER, 1_000_000).map((m) => m.msgId))
    expect(due).not.toContain(e.msgId)
  })

  describe('manual acknowledgement', () => {
    let bob: App

    beforeAll(async () => {
      bob = await startApp('bob', 'manual', async (d) => {
        const msg = d.msg as { action?: string }
        if (msg.action === 'reject') await d.reject('nope')
        else await d.ack()
      })
    })

    it('delivery.reject("nope") makes publish reject with DeliveryRejectedError at once', async () => {
      const error = await pub
        .publish('manual', { action: 'reject' }, { recipients: ['bob'], ackTimeout: 10_000, modname: APP_MODNAME })
        .then(
          () => undefined,
          (e: unknown) => e,
        )

      expect(error).toBeInstanceOf(DeliveryRejectedError)
      const e = error as DeliveryRejectedError
      expect(e.recipient).toBe('bob')
      expect(e.reason).toBe('nope')
      // The rejection settled the publish, not the 10 s deadline (that would be an AckTimeoutError).
      expect(seenCount(bob, e.msgId)).toBe(1)

      const [row, recipients] = await readOutbox((s) => [s.get(e.msgId), s.recipients(e.msgId)] as const)
      expect(row?.state).toBe('rejected')
      expect(recipients.map((r) => [r.cn, r.state, r.disposition, r.reason])).toEqual([['bob', 'rejected', 'rejected', 'nope']])
    })

    it('delivery.ack() resolves publish with a receipt whose disposition is "processed"', async () => {
      const receipt = await pub.publish('manual', { action: 'ack' }, { recipients: ['bob'], ackTimeout: 5000, modname: APP_MODNAME })
      expect(receipt.recipients.map((r) => [r.cn, r.disposition])).toEqual([['bob', 'processed']])
      expect(seenCount(bob, receipt.msgId)).toBe(1)
      const recipients = await readOutbox((s) => s.recipients(receipt.msgId))
      expect(recipients.map((r) => [r.cn, r.state, r.disposition])).toEqual([['bob', 'acked', 'processed']])
    })
  })
})
