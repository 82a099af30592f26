import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ClosedError, ErrorCode, GilmsgError, StoreError } from '../../../src/errors.js'
import type { AckRecord, NewOutboxMessage, OutboxStore } from '../../../src/outbox/store.js'

/** What a conformance run needs: a fresh empty store, and a way to open it again (as a restarted process would). */
export interface OutboxUnderTest {
  readonly store: OutboxStore
  /** Opens the same data again; the suite calls it with the first store closed or still open. */
  readonly reopen: () => Promise<OutboxStore>
}

const T0 = 1_700_000_000_000

let counter = 0

export function newMessage(over: Partial<NewOutboxMessage> = {}): NewOutboxMessage {
  counter += 1
  return {
    msgId: `2024-${String(counter).padStart(6, '0')}`,
    topic: 'org.example.dev.gilmsg.test',
    body: `{"msg":{"n":${counter}},"signature":"c2ln"}`,
    digest: `digest-${counter}`,
    recipients: ['alice', 'bob'],
    createdAt: T0,
    deadline: T0 + 60_000,
    nextAttemptAt: T0 + 1_000,
    ...over,
  }
}

export function ackOf(m: NewOutboxMessage, cn: string, over: Partial<AckRecord> = {}): AckRecord {
  return {
    msgId: m.msgId,
    cn,
    digest: m.digest,
    disposition: 'received',
    at: T0 + 500,
    ackBody: `{"ack_for":"${m.msgId}","from":"${cn}"}`,
    fingerprint: `fp-${cn}`,
    ...over,
  }
}

/**
 * The OutboxStore contract (src/outbox/store.ts), run against one
 * implementation. `makeStore` returns a new empty store each time.
 */
export function describeOutboxConformance(name: string, makeStore: () => Promise<OutboxUnderTest>): void {
  describe(`OutboxStore conformance: ${name}`, () => {
    let store: OutboxStore
    let reopenStore: () => Promise<OutboxStore>
    const opened: OutboxStore[] = []

    async function reopen(): Promise<OutboxStore> {
      const s = await reopenStore()
      opened.push(s)
      return s
    }

    beforeEach(async () => {
      const made = await makeStore()
      store = made.store
      reopenStore = made.reopen
      opened.push(store)
    })

    afterEach(async () => {
      await Promise.all(opened.splice(0).map((s) => s.close()))
    })

    describe('add, get, recipients', () => {
      it('stores a pending message with attempts 1 and pending recipients in the given order', async () => {
        const m = newMessage({ recipients: ['zed', 'alice', 'mike'] })
        await expect(store.add(m).durable).resolves.toBeUndefined()
        expect(store.get(m.msgId)).toEqual({ ...m, quorum: 3, state: 'pending', attempts: 1, finishedAt: undefined })
        expect(store.recipients(m.msgId)).toEqual(
          ['zed', 'alice', 'mike'].map((cn) => ({
            cn,
            state: 'pending',
            at: undefined,
            disposition: undefined,
            reason: undefined,
            ackBody: undefined,
            ackFingerprint: undefined,
          })),
        )
      })

      it('add(m): committed resolves no later than durable, with the message readable; a refused add rejects both', async () => {
        const m = newMessage()
        const seen: (string | undefined)[] = []
        let resolved = false
        const { committed, durable } = store.add(m)
        void committed.then(() => seen.push(resolved ? 'after' : store.get(m.msgId)?.msgId))
        const added = durable.then(() => (resolved = true))
        await added
        expect(seen).toEqual([m.msgId])
        const duplicate = store.add(m)
        await expect(duplicate.committed).rejects.toThrow(/already/)
        await expect(duplicate.durable).rejects.toThrow(/already/)
      })

      it('a refused add or recordAck awaited through one of its two promises leaves no unhandled rejection', async () => {
        const unhandled: unknown[] = []
        const onUnhandled = (reason: unknown): void => void unhandled.push(reason)
        process.on('unhandledRejection', onUnhandled)
        try {
          const m = newMessage()
          await store.add(m).durable
          await expect(store.add(m).committed).rejects.toThrow(/already/)
          await expect(store.add(m).durable).rejects.toThrow(/already/)
          const bad = { ...ackOf(m, 'alice'), at: Number.NaN }
          await expect(store.recordAck(bad).outcome).rejects.toMatchObject({ code: ErrorCode.InvalidArgument })
          await expect(store.recordAck(bad).durable).rejects.toMatchObject({ code: ErrorCode.InvalidArgument })
          for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r))
        } finally {
          process.off('unhandledRejection', onUnhandled)
        }
        expect(unhandled).toEqual([])
      })

      it('keeps the body byte for byte (unicode, large)', async () => {
        const body = `{"msg":"${'é€😀\\u0000'.repeat(2000)}"}`
        const m = newMessage({ body })
        await store.add(m).durable
        expect(store.get(m.msgId)?.body).toBe(body)
      })

      it('returns undefined and [] for an unknown msgId', () => {
        expect(store.get('nope')).toBeUndefined()
        expect(store.recipients('nope')).toEqual([])
      })

      it('returns copies: mutating a result changes nothing stored', async () => {
        const m = newMessage()
        await store.add(m).durable
        const got = store.get(m.msgId)
        ;(got?.recipients as string[]).push('mallory')
        expect(store.get(m.msgId)?.recipients).toEqual(['alice', 'bob'])
      })

      it('reads see a write before its promise settles', async () => {
        const m = newMessage()
        const p = store.add(m).durable
        expect(store.get(m.msgId)?.state).toBe('pending')
        await p
      })

      it('rejects a duplicate msgId with a StoreError, leaving the rest of the batch alone', async () => {
        const a = newMessage()
        const b = newMessage()
        const results = await Promise.allSettled([store.add(a).durable, store.add({ ...a, body: 'other', digest: 'other' }).durable, store.add(b).durable])
        expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled'])
        const reason = (results[1] as PromiseRejectedResult).reason
        expect(reason).toBeInstanceOf(StoreError)
        expect(reason).toMatchObject({ code: ErrorCode.Store, store: 'outbox' })
        expect(String(reason.message)).toContain(a.msgId)
        expect(store.get(a.msgId)?.body).toBe(a.body)
        expect(store.get(b.msgId)?.state).toBe('pending')
        expect(store.counts().pending).toBe(2)
      })

      it('rejects a message without recipients or with a recipient twice (usage), storing nothing', async () => {
        const empty = newMessage({ recipients: [] })
        const twice = newMessage({ recipients: ['alice', 'alice'] })
        await expect(store.add(empty).durable).rejects.toMatchObject({ code: ErrorCode.InvalidArgument })
        await expect(store.add(twice).durable).rejects.toMatchObject({ code: ErrorCode.InvalidArgument })
        expect(store.get(empty.msgId)).toBeUndefined()
        expect(store.get(twice.msgId)).toBeUndefined()
        expect(store.recipients(twice.msgId)).toEqual([])
      })
    })

    describe('recordAck', () => {
      it('one batched ACK body for many messages, recorded together: each outcome as if alone; the body stored once, never for a refused ACK', async () => {
        const ms = Array.from({ length: 6 }, () => newMessage({ recipients: ['alice', 'bob'] }))
        for (const m of ms) await store.add(m).durable
        await store.recordAck(ackOf(ms[1] as NewOutboxMessage, 'alice', { ackBody: 'earlier' })).durable
        const body = '{"acks":"batch"}'
        const at = (i: number) => ms[i] as NewOutboxMessage
        const stranger = newMessage()
        const outcomes = await Promise.all([
          store.recordAck(ackOf(at(0), 'alice', { ackBody: body })).durable, // counted (the first: looks the body up)
          store.recordAck(ackOf(at(1), 'alice', { ackBody: body })).durable, // duplicate: alice acked before
          store.recordAck(ackOf(at(2), 'alice', { ackBody: body, digest: 'other' })).durable, // digest_mismatch
          store.recordAck(ackOf(at(3), 'mallory', { ackBody: body })).durable, // not_recipient
          store.recordAck(ackOf(stranger, 'alice', { ackBody: body })).durable, // unknown
          store.recordAck(ackOf(at(4), 'alice', { ackBody: body })).durable, // counted
          store.recordAck(ackOf(at(4), 'bob', { ackBody: body })).durable, // counted: finishes it
          store.recordAck(ackOf(at(4), 'bob', { ackBody: body })).durable, // not_pending
          store.recordAck(ackOf(at(5), 'bob', { ackBody: body, digest: undefined })).durable, // counted (legacy ACK without digest)
        ])
        expect(outcomes).toEqual([
          { kind: 'counted', state: 'pending', missing: ['bob'] },
          { kind: 'duplicate' },
          { kind: 'digest_mismatch' },
          { kind: 'not_recipient' },
          { kind: 'unknown' },
          { kind: 'counted', state: 'pending', missing: ['bob'] },
          { kind: 'counted', state: 'acked', missing: [] },
          { kind: 'not_pending', state: 'acked' },
          { kind: 'counted', state: 'pending', missing: ['alice'] },
        ])
        expect(store.recipients(at(1).msgId)[0]?.ackBody).toBe('earlier')
        expect(store.recipients(at(2).msgId).map((r) => r.state)).toEqual(['pending', 'pending'])
        expect(store.recipients(at(4).msgId).map((r) => [r.state, r.ackBody])).toEqual([['acked', body], ['acked', body]])
        expect(store.recipients(at(5).msgId)[1]).toMatchObject({ state: 'acked', ackBody: body, ackFingerprint: 'fp-bob' })
      })

      it('unknown msgId', async () => {
        await expect(store.recordAck(ackOf(newMessage(), 'alice')).durable).resolves.toEqual({ kind: 'unknown' })
      })

      it('not_recipient, changing nothing', async () => {
        const m = newMessage()
        await store.add(m).durable
        await expect(store.recordAck(ackOf(m, 'mallory')).durable).resolves.toEqual({ kind: 'not_recipient' })
        expect(store.recipients(m.msgId).map((r) => r.state)).toEqual(['pending', 'pending'])
      })

      it('digest_mismatch, changing nothing', async () => {
        const m = newMessage()
        await store.add(m).durable
        await expect(store.recordAck(ackOf(m, 'alice', { digest: 'wrong' })).durable).resolves.toEqual({ kind: 'digest_mismatch' })
        expect(store.recipients(m.msgId)[0]).toMatchObject({ cn: 'alice', state: 'pending', ackBody: undefined })
        expect(store.get(m.msgId)?.state).toBe('pending')
      })

      it('recordAck: reads see the write at once; its outcome resolves before durable settles', async () => {
        const m = newMessage({ recipients: ['alice'] })
        await store.add(m).durable
        const seen: unknown[] = []
        let settled = false
        const { outcome, durable } = store.recordAck(ackOf(m, 'alice'))
        const state = store.get(m.msgId)?.state
        void outcome.then((o) => seen.push({ outcome: o, state, settled }))
        const done = durable.then((o) => ((settled = true), o))
        await outcome
        expect(seen).toEqual([{ outcome: { kind: 'counted', state: 'acked', missing: [] }, state: 'acked', settled: false }])
        await expect(done).resolves.toEqual({ kind: 'counted', state: 'acked', missing: [] })
        const refused = store.recordAck(ackOf(m, 'alice'))
        await expect(refused.outcome).resolves.toEqual({ kind: 'not_pending', state: 'acked' })
        await expect(refused.durable).resolves.toEqual({ kind: 'not_pending', state: 'acked' })
      })

      it('counts ACKs, shrinking the missing list, then acks the message when all are in', async () => {
        const m = newMessage({ recipients: ['alice', 'bob', 'carol'] })
        await store.add(m).durable
        await expect(store.recordAck(ackOf(m, 'bob', { at: T0 + 10 })).durable).resolves.toEqual({
          kind: 'counted',
          state: 'pending',
          missing: ['alice', 'carol'],
        })
        await expect(store.recordAck(ackOf(m, 'alice', { at: T0 + 20, disposition: 'processed' })).durable).resolves.toEqual({
          kind: 'counted',
          state: 'pending',
          missing: ['carol'],
        })
        expect(store.get(m.msgId)).toMatchObject({ state: 'pending', finishedAt: undefined })
        await expect(store.recordAck(ackOf(m, 'carol', { at: T0 + 30 })).durable).resolves.toEqual({
          kind: 'counted',
          state: 'acked',
          missing: [],
        })
        expect(store.get(m.msgId)).toMatchObject({ state: 'acked', finishedAt: T0 + 30 })
        expect(store.recipients(m.msgId)).toEqual([
          {
            cn: 'alice',
            state: 'acked',
            at: T0 + 20,
            disposition: 'processed',
            reason: undefined,
            ackBody: ackOf(m, 'alice').ackBody,
            ackFingerprint: 'fp-alice',
          },
          {
            cn: 'bob',
            state: 'acked',
            at: T0 + 10,
            disposition: 'received',
            reason: undefined,
            ackBody: ackOf(m, 'bob').ackBody,
            ackFingerprint: 'fp-bob',
          },
          {
            cn: 'carol',
            state: 'acked',
            at: T0 + 30,
            disposition: 'received',
            reason: undefined,
            ackBody: ackOf(m, 'carol').ackBody,
            ackFingerprint: 'fp-carol',
          },
        ])
      })

      it('duplicate: a second ACK of a recipient while the message is pending keeps the first receipt', async () => {
        const m = newMessage()
        await store.add(m).durable
        await store.recordAck(ackOf(m, 'alice')).durable
        await expect(store.recordAck(ackOf(m, 'alice', { ackBody: 'second', at: T0 + 999 })).durable).resolves.toEqual({ kind: 'duplicate' })
        expect(store.recipients(m.msgId)[0]).toMatchObject({ ackBody: ackOf(m, 'alice').ackBody, at: T0 + 500 })
      })

      it('checks in the contract order: not pending, then not a pending recipient (duplicate), then digest', async () => {
        const m = newMessage()
        await store.add(m).durable
        await store.recordAck(ackOf(m, 'alice')).durable
        await expect(store.recordAck(ackOf(m, 'mallory', { digest: 'wrong' })).durable).resolves.toEqual({ kind: 'not_recipient' })
        await expect(store.recordAck(ackOf(m, 'alice', { digest: 'wrong' })).durable).resolves.toEqual({ kind: 'duplicate' })
        await store.expire(m.msgId, T0)
        await expect(store.recordAck(ackOf(m, 'mallory', { digest: 'wrong' })).durable).resolves.toEqual({ kind: 'not_pending', state: 'expired' })
      })

      it('not_pending once the message is acked', async () => {
        const m = newMessage({ recipients: ['alice'] })
        await store.add(m).durable
        await store.recordAck(ackOf(m, 'alice')).durable
        await expect(store.recordAck(ackOf(m, 'alice')).durable).resolves.toEqual({ kind: 'not_pending', state: 'acked' })
      })

      it('a rejected disposition rejects the message; later ACKs are not_pending', async () => {
        const m = newMessage({ recipients: ['alice', 'bob', 'carol'] })
        await store.add(m).durable
        await store.recordAck(ackOf(m, 'alice')).durable
        await expect(
          store.recordAck(ackOf(m, 'bob', { disposition: 'rejected', reason: 'schema invalid', at: T0 + 42 })).durable,
        ).resolves.toEqual({ kind: 'counted', state: 'rejected', missing: ['carol'] })
        expect(store.get(m.msgId)).toMatchObject({ state: 'rejected', finishedAt: T0 + 42 })
        expect(store.recipients(m.msgId)[1]).toMatchObject({
          cn: 'bob',
          state: 'rejected',
          disposition: 'rejected',
          reason: 'schema invalid',
          at: T0 + 42,
        })
        await expect(store.recordAck(ackOf(m, 'carol')).durable).resolves.toEqual({ kind: 'not_pending', state: 'rejected' })
        expect(store.counts()).toEqual({ pending: 0, acked: 0, expired: 0, rejected: 1 })
      })

      it('with a quorum, a rejection ends the message only once fewer than the quorum acked or may still ACK', async () => {
        // 2 of 4: alice rejects (3 may still ACK), bob acks, carol rejects (bob + dave: still 2), dave rejects (1 < 2).
        const m = newMessage({ recipients: ['alice', 'bob', 'carol', 'dave'], quorum: 2 })
        await store.add(m).durable
        expect(store.get(m.msgId)?.quorum).toBe(2)
        const reject = (cn: string, at: number) => store.recordAck(ackOf(m, cn, { disposition: 'rejected', reason: `${cn} says no`, at })).durable
        await expect(reject('alice', T0 + 1)).resolves.toEqual({ kind: 'counted', state: 'pending', missing: ['bob', 'carol', 'dave'] })
        expect(store.recipients(m.msgId)[0]).toMatchObject({ cn: 'alice', state: 'rejected', reason: 'alice says no' })
        expect(store.pendingByRecipient()).toEqual({ bob: 1, carol: 1, dave: 1 })
        await expect(store.recordAck(ackOf(m, 'bob')).durable).resolves.toEqual({ kind: 'counted', state: 'pending', missing: ['carol', 'dave'] })
        await expect(reject('carol', T0 + 2)).resolves.toEqual({ kind: 'counted', state: 'pending', missing: ['dave'] })
        await expect(reject('alice', T0 + 3)).resolves.toEqual({ kind: 'duplicate' })
        expect(store.get(m.msgId)).toMatchObject({ state: 'pending', finishedAt: undefined })
        await expect(reject('dave', T0 + 4)).resolves.toEqual({ kind: 'counted', state: 'rejected', missing: [] })
        expect(store.get(m.msgId)).toMatchObject({ state: 'rejected', finishedAt: T0 + 4 })
        expect(store.recipients(m.msgId).map((r) => r.state)).toEqual(['rejected', 'acked', 'rejected', 'rejected'])
      })

      it('with a quorum, a message whose quorum acked ends acked once nobody is pending, rejections included', async () => {
        const m = newMessage({ recipients: ['alice', 'bob', 'carol'], quorum: 2 })
        await store.add(m).durable
        await store.recordAck(ackOf(m, 'alice')).durable
        await store.recordAck(ackOf(m, 'bob', { disposition: 'rejected', reason: 'no' })).durable
        await expect(store.recordAck(ackOf(m, 'carol')).durable).resolves.toEqual({ kind: 'counted', state: 'acked', missing: [] })
        expect(store.get(m.msgId)).toMatchObject({ state: 'acked', quorum: 2 })
        // The other order: the rejection comes last.
        const n = newMessage({ recipients: ['alice', 'bob', 'carol'], quorum: 2 })
        await store.add(n).durable
        await store.recordAck(ackOf(n, 'alice')).durable
        await store.recordAck(ackOf(n, 'carol')).durable
        await expect(store.recordAck(ackOf(n, 'bob', { disposition: 'rejected', reason: 'no' })).durable).resolves.toEqual({ kind: 'counted', state: 'acked', missing: [] })
      })

      it('refuses a quorum that is not an integer from 1 to the number of recipients (usage), storing nothing', async () => {
        for (const quorum of [0, 3, 1.5, Number.NaN]) {
          const m = newMessage({ recipients: ['alice', 'bob'], quorum })
          await expect(store.add(m).durable).rejects.toThrow(/quorum: expected an integer from 1 to 2/)
          expect(store.get(m.msgId)).toBeUndefined()
        }
      })

      it('not_pending after expiry', async () => {
        const m = newMessage()
        await store.add(m).durable
        await store.expire(m.msgId, T0 + 5)
        await expect(store.recordAck(ackOf(m, 'alice')).durable).resolves.toEqual({ kind: 'not_pending', state: 'expired' })
      })

      it('a legacy ACK without digest counts', async () => {
        const m = newMessage({ recipients: ['alice'] })
        await store.add(m).durable
        await expect(store.recordAck(ackOf(m, 'alice', { digest: undefined })).durable).resolves.toEqual({
          kind: 'counted',
          state: 'acked',
          missing: [],
        })
      })

      it('sees an add issued just before it, not yet committed', async () => {
        const m = newMessage({ recipients: ['alice'] })
        const added = store.add(m).durable
        const acked = store.recordAck(ackOf(m, 'alice')).durable
        await added
        await expect(acked).resolves.toEqual({ kind: 'counted', state: 'acked', missing: [] })
      })

      it('rejects an invalid disposition (usage) without changing anything', async () => {
        const m = newMessage()
        await store.add(m).durable
        const bad = { ...ackOf(m, 'alice'), disposition: 'maybe' } as unknown as AckRecord
        await expect(store.recordAck(bad).durable).rejects.toMatchObject({ code: ErrorCode.InvalidArgument })
        expect(store.recipients(m.msgId)[0]?.state).toBe('pending')
      })
    })

    describe('due, nextDueAt, markAttempt', () => {
      it('due: pending messages with nextAttemptAt <= now, earliest first (ties by msgId), at most limit', async () => {
        const later = newMessage({ nextAttemptAt: T0 + 30 })
        const first = newMessage({ nextAttemptAt: T0 + 10 })
        const tieB = newMessage({ msgId: 'tie-b', nextAttemptAt: T0 + 20 })
        const tieA = newMessage({ msgId: 'tie-a', nextAttemptAt: T0 + 20 })
        const future = newMessage({ nextAttemptAt: T0 + 40 })
        const finished = newMessage({ nextAttemptAt: T0 + 1, recipients: ['alice'] })
        for (const m of [later, first, tieB, tieA, future, finished]) await store.add(m).durable
        await store.recordAck(ackOf(finished, 'alice')).durable
        expect(store.due(T0 + 30, 100).map((m) => m.msgId)).toEqual([first.msgId, 'tie-a', 'tie-b', later.msgId])
        expect(store.due(T0 + 30, 2).map((m) => m.msgId)).toEqual([first.msgId, 'tie-a'])
        expect(store.due(T0 + 30, 0)).toEqual([])
        expect(store.due(T0, 10)).toEqual([])
        expect(store.due(T0 + 10, 10)[0]).toEqual({ ...first, quorum: first.recipients.length, state: 'pending', attempts: 1, finishedAt: undefined })
      })

      it('due with deadlineBy: only due messages whose deadline is <= deadlineBy, earliest deadline first (ties by msgId)', async () => {
        const backlog = newMessage({ nextAttemptAt: T0 + 1, deadline: T0 + 86_400_000 })
        const soonLate = newMessage({ nextAttemptAt: T0 + 5, deadline: T0 + 9_000 })
        const soonest = newMessage({ nextAttemptAt: T0 + 8, deadline: T0 + 5_000 })
        const tieB = newMessage({ msgId: 'tie-b', nextAttemptAt: T0 + 2, deadline: T0 + 7_000 })
        const tieA = newMessage({ msgId: 'tie-a', nextAttemptAt: T0 + 3, deadline: T0 + 7_000 })
        const notDue = newMessage({ nextAttemptAt: T0 + 50, deadline: T0 + 1_000 })
        for (const m of [backlog, soonLate, soonest, tieB, tieA, notDue]) await store.add(m).durable
        expect(store.due(T0 + 10, 100, T0 + 10_000).map((m) => m.msgId)).toEqual([soonest.msgId, 'tie-a', 'tie-b', soonLate.msgId])
        expect(store.due(T0 + 10, 2, T0 + 10_000).map((m) => m.msgId)).toEqual([soonest.msgId, 'tie-a'])
        expect(store.due(T0 + 10, 100, T0 + 7_000).map((m) => m.msgId)).toEqual([soonest.msgId, 'tie-a', 'tie-b'])
        expect(store.due(T0 + 10, 100, T0 + 1_000)).toEqual([])
        expect(store.due(T0 + 10, 100).map((m) => m.msgId)).toEqual([backlog.msgId, 'tie-b', 'tie-a', soonLate.msgId, soonest.msgId])
        expect(() => store.due(T0, 1, Number.NaN)).toThrow(GilmsgError)
      })

      it('due rejects a negative or fractional limit (usage)', () => {
        expect(() => store.due(T0, -1)).toThrow(GilmsgError)
        expect(() => store.due(T0, 1.5)).toThrow(/non-negative integer/)
      })

      it('nextDueAt: the earliest pending nextAttemptAt, or undefined', async () => {
        expect(store.nextDueAt()).toBeUndefined()
        const a = newMessage({ nextAttemptAt: T0 + 300 })
        const b = newMessage({ nextAttemptAt: T0 + 200, recipients: ['alice'] })
        const c = newMessage({ nextAttemptAt: T0 + 250 })
        for (const m of [a, b, c]) await store.add(m).durable
        expect(store.nextDueAt()).toBe(T0 + 200)
        await store.recordAck(ackOf(b, 'alice')).durable
        expect(store.nextDueAt()).toBe(T0 + 250)
        await store.expire(c.msgId, T0)
        await store.expire(a.msgId, T0)
        expect(store.nextDueAt()).toBeUndefined()
      })

      it('markAttempt counts a send and moves nextAttemptAt; reads see it at once', async () => {
        const m = newMessage({ nextAttemptAt: T0 + 10 })
        await store.add(m).durable
        expect(store.due(T0 + 10, 10)).toHaveLength(1)
        store.markAttempt(m.msgId, T0 + 5_000)
        expect(store.get(m.msgId)).toMatchObject({ attempts: 2, nextAttemptAt: T0 + 5_000 })
        expect(store.due(T0 + 10, 10)).toEqual([])
        expect(store.nextDueAt()).toBe(T0 + 5_000)
        store.markAttempt(m.msgId, T0 + 9_000)
        expect(store.get(m.msgId)).toMatchObject({ attempts: 3, nextAttemptAt: T0 + 9_000 })
      })

      it('unsent: pending messages added unsent (attempts 0), oldest first (ties by msgId), until markAttempt sends them', async () => {
        const sent = newMessage({ createdAt: T0 })
        const later = newMessage({ createdAt: T0 + 20, unsent: true })
        const tieB = newMessage({ msgId: 'tie-b', createdAt: T0 + 10, unsent: true })
        const tieA = newMessage({ msgId: 'tie-a', createdAt: T0 + 10, unsent: true })
        const finished = newMessage({ createdAt: T0, recipients: ['alice'], unsent: true })
        for (const m of [sent, later, tieB, tieA, finished]) await store.add(m).durable
        await store.recordAck(ackOf(finished, 'alice')).durable
        expect(store.get(later.msgId)).toMatchObject({ attempts: 0, state: 'pending' })
        expect(store.unsent(10).map((m) => m.msgId)).toEqual(['tie-a', 'tie-b', later.msgId])
        expect(store.unsent(1).map((m) => m.msgId)).toEqual(['tie-a'])
        store.markAttempt('tie-a', T0 + 500)
        expect(store.get('tie-a')).toMatchObject({ attempts: 1, nextAttemptAt: T0 + 500 })
        expect(store.unsent(10).map((m) => m.msgId)).toEqual(['tie-b', later.msgId])
        expect(() => store.unsent(-1)).toThrow(GilmsgError)
      })

      it('postpone moves nextAttemptAt and counts no send; a no-op for an unknown or finished message', async () => {
        const m = newMessage({ nextAttemptAt: T0 + 10 })
        const done = newMessage({ recipients: ['alice'] })
        for (const x of [m, done]) await store.add(x).durable
        await store.recordAck(ackOf(done, 'alice')).durable
        store.postpone(m.msgId, T0 + 800)
        expect(store.get(m.msgId)).toMatchObject({ attempts: 1, nextAttemptAt: T0 + 800 })
        expect(store.due(T0 + 799, 10)).toEqual([])
        expect(store.nextDueAt()).toBe(T0 + 800)
        expect(() => store.postpone('nope', T0)).not.toThrow()
        store.postpone(done.msgId, T0 + 7)
        expect(store.get(done.msgId)).toMatchObject({ attempts: 1, nextAttemptAt: done.nextAttemptAt })
        expect(() => store.postpone(m.msgId, Number.NaN)).toThrow(GilmsgError)
      })

      it('markAttempt is a no-op for an unknown or finished message', async () => {
        const m = newMessage({ recipients: ['alice'] })
        await store.add(m).durable
        await store.recordAck(ackOf(m, 'alice')).durable
        expect(() => store.markAttempt('nope', T0)).not.toThrow()
        store.markAttempt(m.msgId, T0 + 7)
        expect(store.get(m.msgId)).toMatchObject({ attempts: 1, nextAttemptAt: m.nextAttemptAt })
      })
    })

    describe('expireDue, expire, retry', () => {
      it('expireDue expires only pending messages whose deadline <= now, and their pending recipients', async () => {
        const past = newMessage({ deadline: T0 + 100, recipients: ['alice', 'bob'] })
        const exact = newMessage({ deadline: T0 + 200 })
        const future = newMessage({ deadline: T0 + 201 })
        const done = newMessage({ deadline: T0 + 50, recipients: ['alice'] })
        for (const m of [future, exact, past, done]) await store.add(m).durable
        await store.recordAck(ackOf(done, 'alice')).durable
        await store.recordAck(ackOf(past, 'alice', { at: T0 + 90 })).durable
        const ids = await store.expireDue(T0 + 200)
        expect([...ids].sort()).toEqual([past.msgId, exact.msgId].sort())
        expect(store.get(past.msgId)).toMatchObject({ state: 'expired', finishedAt: T0 + 200 })
        expect(store.recipients(past.msgId)).toMatchObject([
          { cn: 'alice', state: 'acked', at: T0 + 90 },
          { cn: 'bob', state: 'expired', at: T0 + 200, ackBody: undefined },
        ])
        expect(store.get(future.msgId)?.state).toBe('pending')
        expect(store.get(done.msgId)).toMatchObject({ state: 'acked', finishedAt: T0 + 500 })
        await expect(store.expireDue(T0 + 200)).resolves.toEqual([])
        expect(store.counts()).toEqual({ pending: 1, acked: 1, expired: 2, rejected: 0 })
      })

      it('expire: true for a pending message, false if it was not pending or is unknown', async () => {
        const m = newMessage({ deadline: T0 + 1_000_000 })
        const acked = newMessage({ recipients: ['alice'] })
        await store.add(m).durable
        await store.add(acked).durable
        await store.recordAck(ackOf(acked, 'alice')).durable
        await expect(store.expire(m.msgId, T0 + 7)).resolves.toBe(true)
        expect(store.get(m.msgId)).toMatchObject({ state: 'expired', finishedAt: T0 + 7 })
        expect(store.recipients(m.msgId).map((r) => [r.state, r.at])).toEqual([
          ['expired', T0 + 7],
          ['expired', T0 + 7],
        ])
        await expect(store.expire(m.msgId, T0 + 8)).resolves.toBe(false)
        expect(store.get(m.msgId)?.finishedAt).toBe(T0 + 7)
        await expect(store.expire(acked.msgId, T0 + 8)).resolves.toBe(false)
        await expect(store.expire('nope', T0 + 8)).resolves.toBe(false)
      })

      it('retry makes an expired message pending again: new deadline, due now, acked recipients stay acked', async () => {
        const m = newMessage({ recipients: ['alice', 'bob'] })
        await store.add(m).durable
        store.markAttempt(m.msgId, T0 + 2_000)
        await store.recordAck(ackOf(m, 'alice')).durable
        await store.expire(m.msgId, T0 + 3_000)
        await expect(store.retry(m.msgId, T0 + 4_000, T0 + 90_000)).resolves.toBe(true)
        expect(store.get(m.msgId)).toEqual({
          ...m,
          quorum: 2,
          state: 'pending',
          attempts: 2,
          deadline: T0 + 90_000,
          nextAttemptAt: T0 + 4_000,
          finishedAt: undefined,
        })
        expect(store.recipients(m.msgId)).toMatchObject([
          { cn: 'alice', state: 'acked', at: T0 + 500, ackFingerprint: 'fp-alice' },
          { cn: 'bob', state: 'pending', at: undefined },
        ])
        expect(store.due(T0 + 4_000, 10).map((x) => x.msgId)).toEqual([m.msgId])
        await expect(store.recordAck(ackOf(m, 'bob')).durable).resolves.toEqual({ kind: 'counted', state: 'acked', missing: [] })
      })

      it('retry is false unless the message is expired', async () => {
        const pending = newMessage()
        const acked = newMessage({ recipients: ['alice'] })
        const rejected = newMessage({ recipients: ['alice'] })
        for (const m of [pending, acked, rejected]) await store.add(m).durable
        await store.recordAck(ackOf(acked, 'alice')).durable
        await store.recordAck(ackOf(rejected, 'alice', { disposition: 'rejected', reason: 'no' })).durable
        for (const m of [pending, acked, rejected]) await expect(store.retry(m.msgId, T0, T0 + 1)).resolves.toBe(false)
        await expect(store.retry('nope', T0, T0 + 1)).resolves.toBe(false)
        expect(store.get(pending.msgId)?.deadline).toBe(pending.deadline)
        expect(store.counts()).toEqual({ pending: 1, acked: 1, expired: 0, rejected: 1 })
      })

      it('pendingByRecipient counts the pending messages each recipient has not acknowledged, sorted by CN', async () => {
        expect(store.pendingByRecipient()).toEqual({})
        const both = newMessage({ recipients: ['bob', 'alice'] })
        const half = newMessage({ recipients: ['alice', 'carol'] })
        const done = newMessage({ recipients: ['alice'] })
        const gone = newMessage({ recipients: ['dave'] })
        for (const m of [both, half, done, gone]) await store.add(m).durable
        await store.recordAck(ackOf(half, 'alice')).durable
        await store.recordAck(ackOf(done, 'alice')).durable
        await store.expire(gone.msgId, T0 + 1)
        const counts = store.pendingByRecipient()
        expect(counts).toEqual({ alice: 1, bob: 1, carol: 1 })
        expect(Object.keys(counts)).toEqual(['alice', 'bob', 'carol'])
      })
    })

    describe('purge', () => {
      it('deletes only finished messages that finished before `before`, with their recipients', async () => {
        const old = newMessage({ recipients: ['alice'] })
        const edge = newMessage({ recipients: ['alice'] })
        const young = newMessage()
        const pending = newMessage({ createdAt: T0 - 1_000_000 })
        for (const m of [old, edge, young, pending]) await store.add(m).durable
        await store.recordAck(ackOf(old, 'alice', { at: T0 + 100 })).durable
        await store.recordAck(ackOf(edge, 'alice', { at: T0 + 200 })).durable
        await store.expire(young.msgId, T0 + 300)
        await expect(store.purge(T0 + 200)).resolves.toBe(1)
        expect(store.get(old.msgId)).toBeUndefined()
        expect(store.recipients(old.msgId)).toEqual([])
        expect(store.get(edge.msgId)?.state).toBe('acked')
        await expect(store.purge(T0 + 10_000)).resolves.toBe(2)
        expect(store.get(pending.msgId)?.state).toBe('pending')
        await expect(store.purge(T0 + 10_000)).resolves.toBe(0)
        expect(store.counts()).toEqual({ pending: 1, acked: 0, expired: 0, rejected: 0 })
      })

      it('a purged msgId can be added again', async () => {
        const m = newMessage({ recipients: ['alice'] })
        await store.add(m).durable
        await store.recordAck(ackOf(m, 'alice')).durable
        await store.purge(Number.MAX_SAFE_INTEGER)
        await store.add(m).durable
        expect(store.get(m.msgId)?.state).toBe('pending')
      })
    })

    describe('list, counts', () => {
      it('lists newest first (ties by msgId, descending), filtered by state, limited', async () => {
        const a = newMessage({ msgId: 'a', createdAt: T0 + 1 })
        const b = newMessage({ msgId: 'b', createdAt: T0 + 3, recipients: ['alice'] })
        const c = newMessage({ msgId: 'c', createdAt: T0 + 2 })
        const d = newMessage({ msgId: 'd', createdAt: T0 + 2 })
        for (const m of [a, b, c, d]) await store.add(m).durable
        await store.recordAck(ackOf(b, 'alice')).durable
        expect(store.list().map((m) => m.msgId)).toEqual(['b', 'd', 'c', 'a'])
        expect(store.list({}).map((m) => m.msgId)).toEqual(['b', 'd', 'c', 'a'])
        expect(store.list({ state: 'pending' }).map((m) => m.msgId)).toEqual(['d', 'c', 'a'])
        expect(store.list({ state: 'pending', limit: 2 }).map((m) => m.msgId)).toEqual(['d', 'c'])
        expect(store.list({ limit: 1 })).toEqual([{ ...b, quorum: b.recipients.length, state: 'acked', attempts: 1, finishedAt: T0 + 500 }])
        expect(store.list({ limit: 0 })).toEqual([])
        expect(store.list({ state: 'expired' })).toEqual([])
      })

      it('list rejects an unknown state or a bad limit (usage)', () => {
        expect(() => store.list({ state: 'lost' as never })).toThrow(GilmsgError)
        expect(() => store.list({ limit: -1 })).toThrow(/non-negative integer/)
      })

      it('counts every state, zeros included', async () => {
        expect(store.counts()).toEqual({ pending: 0, acked: 0, expired: 0, rejected: 0 })
        const ms = [newMessage({ recipients: ['alice'] }), newMessage({ recipients: ['alice'] }), newMessage(), newMessage()]
        for (const m of ms) await store.add(m).durable
        await store.recordAck(ackOf(ms[0]!, 'alice')).durable
        await store.recordAck(ackOf(ms[1]!, 'alice', { disposition: 'rejected' })).durable
        await store.expire(ms[2]!.msgId, T0)
        expect(store.counts()).toEqual({ pending: 1, acked: 1, expired: 1, rejected: 1 })
      })
    })

    describe('concurrency', () => {
      it('200 adds and their ACKs issued without awaiting all resolve, in a consistent final state', async () => {
        const ms = Array.from({ length: 200 }, (_, i) => newMessage({ recipients: ['alice', 'bob'], nextAttemptAt: T0 + i }))
        const adds = ms.map((m) => store.add(m).durable)
        const acks = ms.flatMap((m, i) =>
          i % 2 === 0 ? [store.recordAck(ackOf(m, 'alice')).durable, store.recordAck(ackOf(m, 'bob')).durable] : [store.recordAck(ackOf(m, 'bob')).durable],
        )
        const dup = store.add(ms[7]!).durable
        const expired = store.expire(ms[1]!.msgId, T0 + 1)
        await expect(Promise.all(adds)).resolves.toHaveLength(200)
        const outcomes = await Promise.all(acks)
        await expect(dup).rejects.toBeInstanceOf(StoreError)
        await expect(expired).resolves.toBe(true)
        expect(outcomes.every((o) => o.kind === 'counted')).toBe(true)
        expect(outcomes.filter((o) => o.kind === 'counted' && o.state === 'acked')).toHaveLength(100)
        expect(store.counts()).toEqual({ pending: 99, acked: 100, expired: 1, rejected: 0 })
        expect(store.recipients(ms[3]!.msgId).map((r) => r.state)).toEqual(['pending', 'acked'])
        expect(store.recipients(ms[1]!.msgId).map((r) => r.state)).toEqual(['expired', 'acked'])
        expect(store.due(T0 + 1_000, 1_000)).toHaveLength(99)
      })
    })

    describe('durability and close', () => {
      async function populate(): Promise<NewOutboxMessage[]> {
        const ms = [newMessage({ recipients: ['alice', 'bob'] }), newMessage({ recipients: ['alice'] }), newMessage()]
        await Promise.all(ms.map((m) => store.add(m).durable))
        await store.recordAck(ackOf(ms[0]!, 'alice', { reason: 'fine' })).durable
        await store.recordAck(ackOf(ms[1]!, 'alice')).durable
        await store.expire(ms[2]!.msgId, T0 + 9)
        return ms
      }

      it('a store reopened after close() has everything, markAttempt included', async () => {
        const ms = await populate()
        store.markAttempt(ms[0]!.msgId, T0 + 77_000)
        const before = { list: store.list(), recipients: ms.map((m) => store.recipients(m.msgId)), counts: store.counts() }
        await store.close()
        const again = await reopen()
        expect(again.list()).toEqual(before.list)
        expect(ms.map((m) => again.recipients(m.msgId))).toEqual(before.recipients)
        expect(again.counts()).toEqual(before.counts)
        expect(again.get(ms[0]!.msgId)).toMatchObject({ attempts: 2, nextAttemptAt: T0 + 77_000 })
        await expect(again.recordAck(ackOf(ms[0]!, 'bob')).durable).resolves.toEqual({ kind: 'counted', state: 'acked', missing: [] })
      })

      it('resolved writes are visible to a store opened without closing the first (a crash loses nothing resolved)', async () => {
        const ms = await populate()
        const other = await reopen()
        expect(other.list()).toEqual(store.list())
        expect(other.recipients(ms[0]!.msgId)).toEqual(store.recipients(ms[0]!.msgId))
      })

      it('close() is idempotent and flushes writes issued just before it', async () => {
        const m = newMessage()
        const added = store.add(m).durable
        const first = store.close()
        const second = store.close()
        await expect(Promise.all([first, second, added])).resolves.toBeDefined()
        await expect(store.close()).resolves.toBeUndefined()
        const again = await reopen()
        expect(again.get(m.msgId)?.state).toBe('pending')
      })

      it('after close(), reads throw and writes reject with ClosedError', async () => {
        const m = newMessage()
        await store.add(m).durable
        await store.close()
        expect(() => store.get(m.msgId)).toThrow(ClosedError)
        expect(() => store.recipients(m.msgId)).toThrow(ClosedError)
        expect(() => store.due(T0, 1)).toThrow(ClosedError)
        expect(() => store.nextDueAt()).toThrow(ClosedError)
        expect(() => store.list()).toThrow(ClosedError)
        expect(() => store.counts()).toThrow(ClosedError)
        expect(() => store.pendingByRecipient()).toThrow(ClosedError)
        expect(() => store.markAttempt(m.msgId, T0)).toThrow(ClosedError)
        await expect(store.add(newMessage()).durable).rejects.toBeInstanceOf(ClosedError)
        await expect(store.recordAck(ackOf(m, 'alice')).durable).rejects.toBeInstanceOf(ClosedError)
        await expect(store.expireDue(T0)).rejects.toBeInstanceOf(ClosedError)
        await expect(store.expire(m.msgId, T0)).rejects.toBeInstanceOf(ClosedError)
        await expect(store.retry(m.msgId, T0, T0)).rejects.toBeInstanceOf(ClosedError)
        await expect(store.purge(T0)).rejects.toBeInstanceOf(ClosedError)
      })
    })
  })
}
