/**
 * Hostile ACKs over real sockets (issue #5, section 3; protocol.md I1, I4, I5).
 *
 * A publisher (in-process Gilmsg, SQLite outbox) publishes to recipients [alice] through a
 * relay on loopback tcp. An attacker on the same relay watches the bus (so it knows each
 * message's msg_id and digest, as any subscriber does) and sends ACKs:
 *   - signed by a certificate with CN alice from another CA          -> dropped, unknown_ca
 *   - signed by alice's revoked certificate (CN alice, on the CRL the
 *     publisher reloaded after the revocation)                       -> dropped, revoked
 *   - signed by alice's expired certificate                          -> dropped, expired
 *   - signed by mallory, with alice's certificate pasted in          -> dropped, bad_signature
 *   - alice's genuine ACK of another message, re-pointed at this one -> dropped, bad_signature
 *   - an ACK alice signed with a wrong digest, digest then corrected  -> dropped, bad_signature
 *   - unsigned                                                       -> dropped, malformed
 *   - frame 0 the ACK topic, signed topic another one                -> dropped, topic_mismatch
 *   - alice's genuine ACK of another message, replayed verbatim      -> ignored, not_pending
 *   - the right msg_id with a wrong digest, by alice's genuine key   -> ignored, digest_mismatch
 *   - by bob, a valid certificate that is not a listed recipient     -> ignored, not_recipient
 *   - by alice without ack_digest (legacy, not accepted)             -> ignored, legacy_ack_refused
 *   - by alice with a malformed body (an ack_msg_id over 128 chars)  -> ignored, malformed_ack
 *   - by alice on another topic under the ACK prefix                 -> ignored, not_an_ack
 *   - forged "rejected" dispositions (another CA; bob)               -> dropped / ignored
 * With alice down, publish() rejects with AckTimeoutError (missing [alice], acked []) and the
 * outbox records no ACK; every hostile ACK is counted by reason in `bus.drops` or
 * `publisher.ignoredAcks`, exactly. Then alice starts (a `gilmsg tail` process) and, during a
 * flood of 5,000 forged ACKs, a new publish succeeds with alice's genuine ACK as the receipt;
 * every flood message is accounted for; a last publish after the flood succeeds too.
 *
 * Keys: EC P-256, `x509_sha256`.
 */
import { createHash, randomUUID, X509Certificate } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { leafSigner } from '../support/memory-bus.js'
import { Bus } from '../../src/bus/bus.js'
import type { BusMessage, Subscription } from '../../src/bus/bus.js'
import { Subscriber } from 'zeromq'
import { parseConfig } from '../../src/config/config.js'
import { createTestPki, type TestPki } from '../support/pki.js'
import { revokeCert } from '../../src/crypto/certs.js'
import type { Signer } from '../../src/crypto/types.js'
import { createVerifier, type X509Verifier } from '../../src/crypto/verifier.js'
import { buildEnvelope, envelopeField, openEnvelope, sealEnvelope } from '../../src/envelope/envelope.js'
import { AckTimeoutError } from '../../src/errors.js'
import type { SqliteOutboxStore } from '../../src/outbox/sqlite.js'
import { openGilmsg } from '../../src/reliable/from-config.js'
import type { Gilmsg } from '../../src/reliable/gilmsg.js'
import type { DeliveryReceipt } from '../../src/reliable/publisher.js'
import type { Relay } from '../../src/transport/relay.js'
import { ZmqTransport } from '../../src/transport/zmq.js'
import { CliProcess } from '../support/cli.js'
import {
  APP_MODNAME,
  APP_PREFIX,
  ENVIRONMENT,
  readOutboxFile,
  relayConfig,
  sleep,
  startLoopbackRelay,
  TOPIC_PREFIX,
  waitUntil,
  withTimeout,
  writeConfigFile,
} from '../support/reliable-net.js'

const ACK_TOPIC = `${TOPIC_PREFIX}.${ENVIRONMENT}.gilmsg.ack`
const FLOOD = 5000
/** Copies of each hostile ACK in phase A. */
const K = 3

let dir: string
let env: NodeJS.ProcessEnv
let pki: TestPki
let net: { relay: Relay; inbound: string; outbound: string }
let pub: Gilmsg
let attacker: Bus
let appWatch: Subscription
/** A raw SUB socket on the relay's outbound side: sees every ACK-topic message, malformed ones too. */
let ackWatch: Subscriber
let alice: CliProcess | undefined
const tails: CliProcess[] = []
/** msg_id -> digest of every application message seen on the bus by the attacker. */
const seenOnBus = new Map<string, string>()
/** Every ACK-topic message that went through the relay (the attacker's view). */
const ackTraffic: string[] = []
const delivered = new Map<string, number>()
let s: {
  alice: Signer
  aliceOtherCa: Signer
  aliceRevoked: Signer
  aliceExpired: Signer
  bob: Signer
  mallory: Signer
}
let seq = 0

interface Wire {
  readonly topic: string
  readonly body: string
}

function ack(signer: Signer | undefined, msg: Record<string, unknown>, topic = ACK_TOPIC): Wire {
  const e = buildEnvelope({ topic, msg, i: ++seq, nowMs: Date.now(), username: 'mallory' })
  const sealed = sealEnvelope(e, signer)
  return { topic, body: sealed.body }
}

const body = (msgId: string, digest: string | undefined, disposition = 'received', reason?: string): Record<string, unknown> => ({
  ack_msg_id: msgId,
  ...(digest === undefined ? {} : { ack_digest: digest }),
  disposition,
  ...(reason === undefined ? {} : { reason }),
})

function edit(w: Wire, change: (env: Record<string, unknown>) => void): Wire {
  const e = JSON.parse(w.body) as Record<string, unknown>
  change(e)
  return { topic: w.topic, body: JSON.stringify(e) }
}

const WRONG_DIGEST = createHash('sha256').update('not this message').digest('hex')

/** One hostile ACK envelope and the counter it must land in, `n` times (once per item of a batch). */
interface Hostile {
  readonly kind: string
  readonly counter: 'drops' | 'ignored'
  readonly reason: string
  readonly n?: number
  readonly wire: Wire
}

/** Where the target stands when an ACK that reaches the outbox arrives: that decides how it is ignored. */
type TargetState = 'pending' | 'finished' | 'unknown'

/**
 * The hostile ACKs aimed at `msgId`/`digest`, each with the counter it must land in. Those
 * that pass validation and parsing reach the outbox, which ignores them as `not_pending`
 * once the target is acked or expired, or `unknown` for a msg_id it never had.
 */
function hostileAcks(
  msgId: string,
  digest: string,
  genuineOtherAck: Wire,
  state: TargetState = 'pending',
  options: { oversized?: boolean } = {},
): Hostile[] {
  const atStore = (reason: string): string => (state === 'pending' ? reason : state === 'finished' ? 'not_pending' : 'unknown')
  const right = body(msgId, digest)
  const repointed = (JSON.parse(genuineOtherAck.body) as { msg: { ack_msg_id: string } }).msg.ack_msg_id !== msgId
  return [
    { kind: 'same CN, another CA', counter: 'drops', reason: 'unknown_ca', wire: ack(s.aliceOtherCa, right) },
    { kind: 'forged rejection, another CA', counter: 'drops', reason: 'unknown_ca', wire: ack(s.aliceOtherCa, body(msgId, digest, 'rejected', 'forged')) },
    { kind: 'revoked certificate', counter: 'drops', reason: 'revoked', wire: ack(s.aliceRevoked, right) },
    { kind: 'expired certificate', counter: 'drops', reason: 'expired', wire: ack(s.aliceExpired, right) },
    {
      kind: "mallory's signature, alice's certificate",
      counter: 'drops',
      reason: 'bad_signature',
      wire: edit(ack(s.mallory, right), (e) => (e['certificate'] = s.alice.certificateField)),
    },
    // Re-pointed at the message it was made for, it is the genuine ACK again: a replay.
    repointed
      ? { kind: "alice's ACK of another message, re-pointed", counter: 'drops', reason: 'bad_signature', wire: edit(genuineOtherAck, (e) => (e['msg'] = right)) }
      : { kind: "alice's ACK re-pointed at its own message", counter: 'ignored', reason: 'not_pending', wire: edit(genuineOtherAck, (e) => (e['msg'] = right)) },
    {
      kind: 'wrong digest signed by alice, then corrected',
      counter: 'drops',
      reason: 'bad_signature',
      wire: edit(ack(s.alice, body(msgId, WRONG_DIGEST)), (e) => (e['msg'] = right)),
    },
    { kind: 'unsigned', counter: 'drops', reason: 'malformed', wire: ack(undefined, right) },
    {
      kind: 'frame 0 is the ACK topic, the signed topic is not',
      counter: 'drops',
      reason: 'topic_mismatch',
      wire: { topic: ACK_TOPIC, body: ack(s.alice, right, `${TOPIC_PREFIX}.${ENVIRONMENT}.gilmsg.other`).body },
    },
    { kind: "alice's ACK of another message, replayed", counter: 'ignored', reason: 'not_pending', wire: genuineOtherAck },
    { kind: 'right msg_id, wrong digest, alice', counter: 'ignored', reason: atStore('digest_mismatch'), wire: ack(s.alice, body(msgId, WRONG_DIGEST)) },
    { kind: 'bob is not listed', counter: 'ignored', reason: atStore('not_recipient'), wire: ack(s.bob, right) },
    { kind: 'forged rejection, bob', counter: 'ignored', reason: atStore('not_recipient'), wire: ack(s.bob, body(msgId, digest, 'rejected', 'forged')) },
    { kind: 'no digest (legacy), alice', counter: 'ignored', reason: 'legacy_ack_refused', wire: ack(s.alice, body(msgId, undefined)) },
    { kind: 'digest not hex, alice', counter: 'ignored', reason: 'malformed_ack', wire: ack(s.alice, body(msgId, 'x'.repeat(64))) },
    { kind: 'unknown disposition, alice', counter: 'ignored', reason: 'malformed_ack', wire: ack(s.alice, body(msgId, digest, 'accepted')) },
    { kind: 'another topic under the ACK prefix, alice', counter: 'ignored', reason: 'not_an_ack', wire: ack(s.alice, right, `${ACK_TOPIC}.x`) },
    { kind: 'ack_msg_id over 128 characters, alice', counter: 'ignored', reason: 'malformed_ack', wire: ack(s.alice, body(msgId + 'x'.repeat(128), digest)) },
    // Batched ACKs ({"acks": [...]}: one signature, several items, each counted or ignored alone).
    { kind: 'batch, same CN, another CA', counter: 'drops', reason: 'unknown_ca', wire: ack(s.aliceOtherCa, { acks: [right, right] }) },
    { kind: 'batch, revoked certificate', counter: 'drops', reason: 'revoked', wire: ack(s.aliceRevoked, { acks: [right] }) },
    {
      kind: "batch, mallory's signature, alice's certificate",
      counter: 'drops',
      reason: 'bad_signature',
      wire: edit(ack(s.mallory, { acks: [right] }), (e) => (e['certificate'] = s.alice.certificateField)),
    },
    {
      kind: 'batch signed by alice with wrong digests, one item then corrected',
      counter: 'drops',
      reason: 'bad_signature',
      wire: edit(ack(s.alice, { acks: [body(msgId, WRONG_DIGEST), body(msgId, WRONG_DIGEST)] }), (e) => (e['msg'] = { acks: [right, body(msgId, WRONG_DIGEST)] })),
    },
    { kind: 'batch by alice, 3 items with a wrong digest', counter: 'ignored', reason: atStore('digest_mismatch'), n: 3, wire: ack(s.alice, { acks: [0, 1, 2].map(() => body(msgId, WRONG_DIGEST)) }) },
    { kind: 'batch by bob, 2 right items', counter: 'ignored', reason: atStore('not_recipient'), n: 2, wire: ack(s.bob, { acks: [right, right] }) },
    { kind: 'batch by alice, an item without digest', counter: 'ignored', reason: 'malformed_ack', wire: ack(s.alice, { acks: [body(msgId, WRONG_DIGEST), body(msgId, undefined)] }) },
    { kind: 'batch by alice, a key beside "acks"', counter: 'ignored', reason: 'malformed_ack', wire: ack(s.alice, { acks: [body(msgId, WRONG_DIGEST)], ack_msg_id: msgId }) },
    { kind: 'batch by alice, empty', counter: 'ignored', reason: 'malformed_ack', wire: ack(s.alice, { acks: [] }) },
    { kind: 'batch by alice, an ack_msg_id of 100,000 characters', counter: 'ignored', reason: 'malformed_ack', wire: ack(s.alice, { acks: [body(msgId, WRONG_DIGEST), body('y'.repeat(100_000), digest)] }) },
    { kind: 'batch by alice, "acks" not a list', counter: 'ignored', reason: 'malformed_ack', wire: ack(s.alice, { acks: right }) },
    { kind: 'batch by alice, a rejection without reason', counter: 'ignored', reason: 'malformed_ack', wire: ack(s.alice, { acks: [body(msgId, WRONG_DIGEST, 'rejected')] }) },
    ...(options.oversized
      ? [{ kind: 'batch by alice, 1025 items (over the limit)', counter: 'ignored' as const, reason: 'malformed_ack', wire: ack(s.alice, { acks: Array.from({ length: 1025 }, () => body(msgId, WRONG_DIGEST)) }) }]
      : []),
  ]
}

function config(name: string): ReturnType<typeof parseConfig> {
  return parseConfig(relayConfig(pki, net, dir, name), `${name} (test)`)
}

async function startAlice(): Promise<CliProcess> {
  const path = writeConfigFile(dir, 'alice', relayConfig(pki, net, dir, 'alice'))
  const p = new CliProcess(['tail', '--config', path, '--json', '--topic', APP_PREFIX], env)
  tails.push(p)
  await p.waitFor(/acknowledging as alice/, 'stderr', 15_000)
  return p
}

function printedBy(p: CliProcess, msgId: string): number {
  return p.stdoutLines.filter((l) => l.includes(`"msg_id":"${msgId}"`)).length
}

function readOutbox<T>(read: (store: SqliteOutboxStore) => T): Promise<T> {
  return readOutboxFile(join(dir, 'pub.outbox.db'), read)
}

const publisherAccounted = (): number => pub.bus.drops.total + (pub.publisher?.ignoredAcks.total ?? 0)
const ignored = (): Record<string, number> => pub.publisher?.ignoredAcks.snapshot() ?? {}

function delta(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [k, n] of Object.entries(after)) if (n !== (before[k] ?? 0)) out[k] = n - (before[k] ?? 0)
  return out
}

function tally(list: readonly Hostile[], counter: 'drops' | 'ignored', times = 1): Record<string, number> {
  const out: Record<string, number> = {}
  for (const h of list) if (h.counter === counter) out[h.reason] = (out[h.reason] ?? 0) + times * (h.n ?? 1)
  return out
}

async function waitSeen(msgId: () => string | undefined, what: string): Promise<{ msgId: string; digest: string }> {
  await waitUntil(() => {
    const id = msgId()
    return id !== undefined && seenOnBus.has(id)
  }, 5000, what)
  const id = msgId() as string
  return { msgId: id, digest: seenOnBus.get(id) as string }
}

async function sendAll(wires: readonly Wire[]): Promise<void> {
  for (const w of wires) await attacker.send(w)
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gilmsg-hostile-acks-'))
  env = { XDG_STATE_HOME: join(dir, 'state'), GILMSG_CONFIG: '' }
  process.env['XDG_STATE_HOME'] = env['XDG_STATE_HOME']
  const now = Date.now()
  const day = 86_400_000
  pki = await createTestPki(join(dir, 'pki'), [
    { name: 'pub', key: 'ec' },
    { name: 'alice', key: 'ec' },
    { name: 'bob', key: 'ec' },
    { name: 'mallory', key: 'ec' },
    { name: 'alice-old', cn: 'alice', key: 'ec' },
    { name: 'alice-expired', cn: 'alice', key: 'ec', notBefore: new Date(now - 30 * day), notAfter: new Date(now - day) },
  ])
  const other = await createTestPki(join(dir, 'other-ca'), [{ name: 'alice', key: 'ec' }])
  s = {
    alice: leafSigner(pki.leaf('alice')),
    aliceOtherCa: leafSigner(other.leaf('alice')),
    aliceRevoked: leafSigner(pki.leaf('alice-old')),
    aliceExpired: leafSigner(pki.leaf('alice-expired')),
    bob: leafSigner(pki.leaf('bob')),
    mallory: leafSigner(pki.leaf('mallory')),
  }
  net = await startLoopbackRelay()

  // The publisher starts with the CRL as it was (nothing revoked); alice-old is revoked
  // afterwards and the publisher reloads the CRL, as an operator would.
  pub = await openGilmsg(config('pub'), { inbox: false })
  pub.on('delivered', (r) => delivered.set(r.msgId, (delivered.get(r.msgId) ?? 0) + 1))
  await revokeCert(pki.dir, 'alice-old')
  await (pub.bus.verifier as X509Verifier).reloadCrl(readFileSync(pki.crlPath, 'utf8'))

  attacker = new Bus({
    transport: new ZmqTransport({ connect: [net.inbound], subscribeTo: [net.outbound] }),
    signer: undefined,
    verifier: undefined,
    topic: { topicPrefix: TOPIC_PREFIX, environment: ENVIRONMENT },
    maxJsonDepth: 64,
  })
  appWatch = await attacker.subscribe(APP_PREFIX)
  ackWatch = new Subscriber({ linger: 0, receiveHighWaterMark: 0 })
  ackWatch.connect(net.outbound)
  ackWatch.subscribe(ACK_TOPIC)
  void (async () => {
    for await (const m of appWatch as AsyncIterable<BusMessage>) seenOnBus.set(m.msgId, m.digest)
  })()
  void (async () => {
    try {
      for await (const [, b] of ackWatch) ackTraffic.push(String(b))
    } catch {
      // closed
    }
  })()
  expect(await attacker.waitForSubscribers(ACK_TOPIC, { timeoutMs: 5000 }), 'the relay subscribed to the attacker').toBe(true)
  // The slow joiner: probe until the watcher sees one, then let the stragglers pass.
  await waitUntil(() => {
    void attacker.send({ topic: ACK_TOPIC, body: 'probe' })
    return ackTraffic.length > 0
  }, 5000, 'the ACK watcher to join', () => '', 50)
  await sleep(300)
}, 60_000)

afterAll(async () => {
  await Promise.allSettled(tails.map((t) => t.stop('SIGKILL')))
  await pub?.close()
  await attacker?.close()
  ackWatch?.close()
  await net?.relay.close()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

describe('hostile ACKs at a real publisher', () => {
  let m0: DeliveryReceipt
  let genuineM0Ack: Wire

  it('(setup) alice acknowledges a first message; her signed ACK is the receipt', async () => {
    alice = await startAlice()
    m0 = await pub.publish('first', { n: 0 }, { recipients: ['alice'], ackTimeout: 10_000, modname: APP_MODNAME })
    const recipients = await readOutbox((store) => store.recipients(m0.msgId))
    expect(recipients.map((r) => [r.cn, r.state])).toEqual([['alice', 'acked']])
    genuineM0Ack = { topic: ACK_TOPIC, body: recipients[0]?.ackBody as string }
    // The attacker saw it go by: its subscription is joined.
    await waitSeen(() => m0.msgId, 'the attacker to see the first message')
    await waitUntil(() => printedBy(alice as CliProcess, m0.msgId) === 1, 5000, 'alice to print it')
    expect(await alice.stop('SIGTERM')).toBe(0)
    alice = undefined
  }, 30_000)

  it('with alice down, no hostile ACK counts: AckTimeoutError missing [alice], no ACK in the outbox, every one counted by reason', async () => {
    const drops0 = pub.bus.drops.snapshot()
    const ignored0 = ignored()
    const traffic0 = ackTraffic.length
    const started = performance.now()
    let publishedId: string | undefined
    const before = new Set(seenOnBus.keys())
    const publishing = pub.publish('second', { n: 1 }, { recipients: ['alice'], ackTimeout: 3000, modname: APP_MODNAME }).then(
      () => undefined,
      (e: unknown) => e,
    )
    const target = await waitSeen(() => (publishedId ??= [...seenOnBus.keys()].find((id) => !before.has(id))), 'the attacker to see the message')
    const hostile = hostileAcks(target.msgId, target.digest, genuineM0Ack, 'pending', { oversized: true })
    for (let k = 0; k < K; k++) await sendAll(hostile.map((h) => h.wire))
    const sent = hostile.length * K

    const error = await withTimeout(publishing, 6000, 'publish to time out')
    const elapsed = performance.now() - started
    expect(error).toBeInstanceOf(AckTimeoutError)
    const e = error as AckTimeoutError
    expect(e.msgId).toBe(target.msgId)
    expect(e.missing).toEqual(['alice'])
    expect(e.acked).toEqual([])
    expect(elapsed).toBeGreaterThanOrEqual(2900)

    // Every hostile ACK went through the relay and is counted once, by the expected reason.
    await waitUntil(() => ackTraffic.length - traffic0 >= sent, 5000, 'the hostile ACKs to cross the relay')
    expect(ackTraffic.length - traffic0).toBe(sent)
    const items = sum(tally(hostile, 'drops', K)) + sum(tally(hostile, 'ignored', K))
    await waitUntil(() => publisherAccounted() - sum(drops0) - sum(ignored0) >= items, 5000, 'the publisher to account for every hostile ACK')
    const table = (): string => hostile.map((h) => `  ${h.counter}.${h.reason}: ${h.kind}`).join('\n')
    expect(delta(pub.bus.drops.snapshot(), drops0), table()).toEqual(tally(hostile, 'drops', K))
    expect(delta(ignored(), ignored0), table()).toEqual(tally(hostile, 'ignored', K))

    const [row, recipients] = await readOutbox((store) => [store.get(target.msgId), store.recipients(target.msgId)] as const)
    expect(row?.state).toBe('expired')
    expect(recipients.map((r) => [r.cn, r.state, r.ackBody, r.ackFingerprint, r.disposition])).toEqual([['alice', 'expired', undefined, undefined, undefined]])
  }, 20_000)

  it('during a flood of 5,000 forged ACKs (900 aimed at the new message), alice starts and a new publish succeeds with her genuine ACK; every flood message is accounted for, by reason', async () => {
    const drops0 = pub.bus.drops.snapshot()
    const ignored0 = ignored()
    const accounted0 = publisherAccounted()
    const traffic0 = ackTraffic.length

    // Pre-signed forgeries aimed at old messages (the first, acked; the second, expired) and at
    // msg_ids that never existed; plus 100 that are not JSON.
    const expiredId = [...seenOnBus.keys()].find((id) => id !== m0.msgId) as string
    const targets: { msgId: string; digest: string; state: TargetState }[] = [
      { msgId: m0.msgId, digest: m0.digest, state: 'finished' },
      { msgId: expiredId, digest: seenOnBus.get(expiredId) as string, state: 'finished' },
      ...Array.from({ length: 20 }, () => ({ msgId: `2026-${randomUUID()}`, digest: createHash('sha256').update(randomUUID()).digest('hex'), state: 'unknown' as const })),
    ]
    type Forged = Hostile
    const AIMED = 900
    const flood: Forged[] = []
    for (let i = 0; flood.length < FLOOD - AIMED - 100; i++) {
      const t = targets[i % targets.length] as (typeof targets)[number]
      flood.push(...hostileAcks(t.msgId, t.digest, genuineM0Ack, t.state))
    }
    flood.length = FLOOD - AIMED - 100
    for (let i = 0; i < 100; i++) flood.push({ kind: 'not JSON', counter: 'drops', reason: 'not_json', wire: { topic: ACK_TOPIC, body: `{"garbage": ${i}` } })

    const queue = [...flood]
    /** The envelopes in the order they were sent. */
    const sentOrder: Forged[] = []
    let sent = 0
    let m2: { msgId: string; digest: string } | undefined
    let aimedSentAt: number | undefined
    let receiptAt: number | undefined
    const flooding = (async () => {
      while (sent < FLOOD) {
        if (m2 !== undefined && aimedSentAt === undefined) {
          // The new message is on the bus: the next 900 forgeries name it.
          const aimed: Forged[] = []
          while (aimed.length < AIMED) aimed.push(...hostileAcks(m2.msgId, m2.digest, genuineM0Ack, 'pending'))
          aimed.length = AIMED
          flood.push(...aimed)
          await sendAll(aimed.map((h) => h.wire))
          sentOrder.push(...aimed)
          sent += AIMED
          aimedSentAt = sent
          continue
        }
        // Keep the last 100 until the publish settled, so that it settles during the flood.
        if (FLOOD - sent <= 100 && receiptAt === undefined) {
          await sleep(20)
          continue
        }
        const chunk = queue.splice(0, Math.min(100, queue.length))
        await sendAll(chunk.map((h) => h.wire))
        sentOrder.push(...chunk)
        sent += chunk.length
        await sleep(60)
      }
    })()

    // A fifth of the way into the flood, with alice still down, publish.
    await waitUntil(() => sent >= FLOOD / 5, 10_000, 'the flood to start')
    const before = new Set(seenOnBus.keys())
    let newId: string | undefined
    const started = performance.now()
    const publishing = pub.publish('third', { n: 2 }, { recipients: ['alice'], ackTimeout: 20_000, modname: APP_MODNAME })
    publishing.then(
      () => (receiptAt = sent),
      () => (receiptAt = sent),
    )
    m2 = await waitSeen(() => (newId ??= [...seenOnBus.keys()].find((id) => !before.has(id))), 'the attacker to see the new message')
    // Every forgery aimed at it has been handled while it was pending (none counted) ...
    await waitUntil(() => aimedSentAt !== undefined, 10_000, 'the aimed forgeries to be sent')
    // (a batch is accounted once per item: count what the envelopes sent so far weigh)
    const weightOfFirst = (k: number): number => sentOrder.slice(0, k).reduce((w, h) => w + (h.n ?? 1), 0)
    await waitUntil(
      () => publisherAccounted() - accounted0 >= weightOfFirst(aimedSentAt as number),
      15_000,
      'the publisher to handle the aimed forgeries',
      () => `${publisherAccounted() - accounted0} of ${weightOfFirst(aimedSentAt as number)}`,
    )
    expect(receiptAt, 'publish is still waiting for alice').toBeUndefined()
    // ... then alice starts, with the flood going on.
    alice = await startAlice()
    const receipt = await withTimeout(publishing, 20_000, 'publish during the flood')
    const latency = performance.now() - started
    await withTimeout(flooding, 30_000, 'the flood to end')
    expect(sent).toBe(FLOOD)
    expect(flood.length).toBe(FLOOD)
    expect(receiptAt, 'the publish settled during the flood').toBeLessThan(FLOOD)

    expect(receipt.msgId).toBe(m2.msgId)
    expect(receipt.digest).toBe(m2.digest)
    expect(receipt.recipients.map((r) => [r.cn, r.disposition])).toEqual([['alice', 'received']])

    // The receipt in the outbox is alice's own signed ACK of exactly this message.
    const recipients = await readOutbox((store) => store.recipients(m2!.msgId))
    const aliceFingerprint = new X509Certificate(pki.leaf('alice').certPem).fingerprint256.replaceAll(':', '').toLowerCase()
    expect(recipients.map((r) => [r.cn, r.state, r.ackFingerprint])).toEqual([['alice', 'acked', aliceFingerprint]])
    const verifier = await createVerifier({ caPem: pki.caPem, crlPem: readFileSync(pki.crlPath, 'utf8') })
    const opened = openEnvelope(ACK_TOPIC, recipients[0]?.ackBody as string, { maxDepth: 64, verifier })
    if (!opened.ok) throw new Error(`stored ACK does not validate: ${opened.reason}`)
    expect(opened.message.signer).toBe('alice')
    expect(envelopeField(opened.message.envelope, 'msg')).toEqual({ ack_msg_id: m2.msgId, ack_digest: m2.digest, disposition: 'received' })

    // Accounting: everything that crossed the relay on the ACK topic is counted exactly once by
    // the publisher: dropped or ignored by the expected reason, or (alice's one ACK) counted.
    // Alice's further copies (answers to resends in flight) are ignored as not_pending.
    await waitUntil(() => ackTraffic.length - traffic0 >= FLOOD + 1, 10_000, 'the flood to cross the relay')
    // (a batch is accounted once per item)
    const floodItems = weightOfFirst(FLOOD)
    // Exact, not "at least": the publisher has accounted for exactly what crossed the relay so far
    // (a late copy of alice's ACK may still come: the counts below are read in this same turn).
    await waitUntil(
      () => publisherAccounted() - accounted0 + 1 === floodItems + (ackTraffic.length - traffic0 - FLOOD),
      15_000,
      'the publisher to account for the flood',
      () => `${publisherAccounted() - accounted0 + 1} of ${floodItems + (ackTraffic.length - traffic0 - FLOOD)}`,
    )
    const traffic = ackTraffic.length - traffic0
    const genuine = traffic - FLOOD
    expect(genuine, 'alice sent at least her one ACK').toBeGreaterThanOrEqual(1)
    expect(publisherAccounted() - accounted0 + 1, 'dropped + ignored + the one counted, item by item').toBe(floodItems + genuine)
    const table = (): string => Object.entries(tally(flood, 'ignored')).map(([r, n]) => `${r}=${n}`).join(' ')
    expect(delta(pub.bus.drops.snapshot(), drops0)).toEqual(tally(flood, 'drops'))
    const expectedIgnored = tally(flood, 'ignored')
    if (genuine > 1) expectedIgnored['not_pending'] = (expectedIgnored['not_pending'] ?? 0) + genuine - 1
    const ignoredDelta = delta(ignored(), ignored0)
    expect(ignoredDelta, table()).toEqual(expectedIgnored)

    expect(printedBy(alice, m2.msgId)).toBe(1)
    console.log(
      `flood: ${FLOOD} forged ACKs in ${Math.round(performance.now() - started)} ms; publish took ${Math.round(latency)} ms and settled with ${receiptAt} sent; ` +
        `drops ${JSON.stringify(delta(pub.bus.drops.snapshot(), drops0))}, ignored ${JSON.stringify(ignoredDelta)}, genuine ACK copies ${genuine}`,
    )
  }, 60_000)

  it('after the flood the publisher still works, and nothing hostile ever reached alice as a message', async () => {
    const receipt = await pub.publish('fourth', { n: 3 }, { recipients: ['alice'], ackTimeout: 5000, modname: APP_MODNAME })
    expect(receipt.recipients.map((r) => r.cn)).toEqual(['alice'])
    await waitUntil(() => printedBy(alice as CliProcess, receipt.msgId) === 1, 5000, 'alice to print the last message')
    const counts = await readOutbox((store) => store.counts())
    expect(counts).toEqual({ pending: 0, acked: 3, expired: 1, rejected: 0 })
  })

  // Anyone on the bus can replay an old genuine ACK, and a recipient re-acknowledges every resend:
  // 'delivered' is emitted once, by the ACK that changed the message's state, never again.
  it("replaying a genuine ACK of a delivered message does not emit 'delivered' again", async () => {
    const before = delivered.get(m0.msgId) ?? 0
    const ignoredBefore = pub.publisher?.ignoredAcks.get('not_pending') ?? 0
    await sendAll(Array.from({ length: 5 }, () => genuineM0Ack))
    await waitUntil(() => (pub.publisher?.ignoredAcks.get('not_pending') ?? 0) >= ignoredBefore + 5, 5000, 'the replays to be ignored')
    expect(delivered.get(m0.msgId) ?? 0).toBe(before)
  })
})

describe('a broken ACK path (protocol.md: false negatives are possible, false positives are not)', () => {
  it("bob gets the message but his ACKs cannot reach the publisher: publish() rejects with AckTimeoutError naming bob; the app saw it once", async () => {
    // Bob receives through the relay's outbound side, but publishes (his ACKs) to a port where
    // nothing listens: only the ACK path is broken.
    const path = writeConfigFile(dir, 'bob-deaf', relayConfig(pki, { inbound: 'tcp://127.0.0.1:9', outbound: net.outbound }, dir, 'bob'))
    const bob = new CliProcess(['tail', '--config', path, '--json', '--topic', APP_PREFIX], env)
    tails.push(bob)
    await bob.waitFor(/acknowledging as bob/, 'stderr', 15_000)
    const before = new Set(seenOnBus.keys())
    let id: string | undefined
    const error = await pub.publish('one-way', { n: 9 }, { recipients: ['bob'], ackTimeout: 2500, modname: APP_MODNAME }).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(error).toBeInstanceOf(AckTimeoutError)
    expect((error as AckTimeoutError).missing).toEqual(['bob'])
    const target = await waitSeen(() => (id ??= [...seenOnBus.keys()].find((k) => !before.has(k))), 'the message on the bus')
    await waitUntil(() => printedBy(bob, target.msgId) >= 1, 5000, 'bob to print the message')
    expect(printedBy(bob, target.msgId), 'handed to the app once, however often it was resent').toBe(1)
    const row = await readOutbox((store) => store.get(target.msgId))
    expect(row?.state).toBe('expired')
    expect(await bob.stop('SIGTERM')).toBe(0)
  }, 20_000)
})

function sum(o: Record<string, number>): number {
  return Object.values(o).reduce((a, b) => a + b, 0)
}
