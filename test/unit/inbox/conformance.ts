import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ClosedError, ErrorCode } from '../../../src/errors.js'
import type { InboxEntry, InboxStore } from '../../../src/inbox/store.js'

/** Reads an entry back under its own key. */
export function getOf(store: InboxStore, e: InboxEntry): InboxEntry | undefined {
  return store.get(e.signer as string, e.msgId)
}

/** What a conformance run needs: a fresh empty store, and a way to open it again (as a restarted process would). */
export interface InboxUnderTest {
  readonly store: InboxStore
  /** Opens the same data again; the suite calls it with the first store closed or still open. */
  readonly reopen: () => Promise<InboxStore>
}

const T0 = 1_700_000_000_000
let counter = 0

/** What every entry of {@link newEntry} is signed by unless told otherwise. */
export const SIGNER = 'publisher'

export function newEntry(over: Partial<InboxEntry> = {}): InboxEntry {
  counter += 1
  return {
    signer: SIGNER,
    msgId: `2024-${String(counter).padStart(6, '0')}`,
    digest: `digest-${counter}`,
    receivedAt: T0 + counter,
    ackTopic: 'org.example.dev.gilmsg.ack',
    ackBody: `{"ack_for":${counter}}`,
    ...over,
  }
}

/**
 * The InboxStore contract (src/inbox/store.ts), run against one
 * implementation. `makeStore` returns a new empty store each time.
 */
export function describeInboxConformance(name: string, makeStore: () => Promise<InboxUnderTest>): void {
  describe(`InboxStore conformance: ${name}`, () => {
    let store: InboxStore
    let reopenStore: () => Promise<InboxStore>
    const opened: InboxStore[] = []

    async function reopen(): Promise<InboxStore> {
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

    it('get: undefined for an unknown msgId', () => {
      expect(store.get(SIGNER, 'nope')).toBeUndefined()
    })

    it('put then get returns the entry; reads see it before the promise settles', async () => {
      const e = newEntry()
      const p = store.put(e)
      expect(getOf(store, e)).toEqual(e)
      await expect(p).resolves.toBeUndefined()
      expect(getOf(store, e)).toEqual(e)
    })

    it('keeps an entry without ACK (manual mode), then replaces it once acked', async () => {
      const e = newEntry({ ackTopic: undefined, ackBody: undefined })
      await store.put(e)
      expect(getOf(store, e)).toEqual({ ...e, ackTopic: undefined, ackBody: undefined })
      const acked = { ...e, ackTopic: 'org.example.ack', ackBody: '{"signed":true}' }
      await store.put(acked)
      expect(getOf(store, e)).toEqual(acked)
    })

    it('keys entries by (signer, msgId): the same msgId from another signer is another entry, put and replaced on its own', async () => {
      const genuine = newEntry({ signer: 'publisher' })
      const squatter = { ...genuine, signer: 'mallory', digest: 'digest-of-mallory', ackBody: '{"mallory":true}' }
      await store.put(squatter)
      expect(store.get('publisher', genuine.msgId), 'a squatter does not claim the msgId for another signer').toBeUndefined()
      await store.put(genuine)
      expect(getOf(store, genuine)).toEqual(genuine)
      expect(getOf(store, squatter)).toEqual(squatter)
      await store.put({ ...squatter, ackBody: 'replaced' })
      expect(getOf(store, genuine)).toEqual(genuine)
      expect(getOf(store, squatter)?.ackBody).toBe('replaced')
      expect(store.get('bob', genuine.msgId)).toBeUndefined()
      await expect(store.prune(Math.max(genuine.receivedAt, squatter.receivedAt) + 1)).resolves.toBe(2)
    })

    it("keys are unambiguous whatever a CN holds: ('a', 'bc') and ('ab', 'c') are two entries; '' is a signer too", async () => {
      const one = newEntry({ signer: 'a', msgId: 'bc', digest: 'one' })
      const two = newEntry({ signer: 'ab', msgId: 'c', digest: 'two' })
      const unsigned = newEntry({ signer: '', msgId: 'abc', digest: 'three' })
      const odd = newEntry({ signer: '3:ab\u0000', msgId: 'c', digest: 'four' })
      for (const e of [one, two, unsigned, odd]) await store.put(e)
      for (const e of [one, two, unsigned, odd]) expect(getOf(store, e)).toEqual(e)
      expect(store.get('', 'bc')).toBeUndefined()
      expect(store.get('a', 'abc')).toBeUndefined()
    })

    it('put refuses an entry without a signer (usage)', async () => {
      await expect(store.put({ ...newEntry(), signer: undefined })).rejects.toMatchObject({ code: ErrorCode.InvalidArgument })
    })

    it('returns copies: mutating a result changes nothing stored', async () => {
      const e = newEntry()
      await store.put(e)
      const got = getOf(store, e) as { digest: string }
      got.digest = 'changed'
      expect(getOf(store, e)?.digest).toBe(e.digest)
    })

    it('prune deletes entries received before `before` only, resolving with how many', async () => {
      const old = newEntry({ receivedAt: T0 - 10 })
      const edge = newEntry({ receivedAt: T0 })
      const young = newEntry({ receivedAt: T0 + 10 })
      for (const e of [old, edge, young]) await store.put(e)
      await expect(store.prune(T0)).resolves.toBe(1)
      expect(getOf(store, old)).toBeUndefined()
      expect(getOf(store, edge)).toEqual(edge)
      await expect(store.prune(T0 + 11)).resolves.toBe(2)
      await expect(store.prune(T0 + 11)).resolves.toBe(0)
      expect(getOf(store, young)).toBeUndefined()
    })

    it('rejects an invalid entry (usage) without disturbing the writes around it', async () => {
      const a = newEntry()
      const b = newEntry()
      const results = await Promise.allSettled([store.put(a), store.put({ ...newEntry(), digest: '' }), store.put(b)])
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled'])
      expect((results[1] as PromiseRejectedResult).reason).toMatchObject({ code: ErrorCode.InvalidArgument })
      expect(getOf(store, a)).toEqual(a)
      expect(getOf(store, b)).toEqual(b)
    })

    it('300 puts and prunes issued without awaiting all resolve, in a consistent final state', async () => {
      const entries = Array.from({ length: 300 }, (_, i) => newEntry({ receivedAt: T0 + i }))
      const puts = entries.map((e) => store.put(e))
      const pruned = store.prune(T0 + 100)
      const replaced = store.put({ ...entries[250]!, ackBody: 'replaced' })
      await Promise.all(puts)
      await expect(pruned).resolves.toBe(100)
      await replaced
      expect(entries.filter((e) => getOf(store, e) !== undefined)).toHaveLength(200)
      expect(getOf(store, entries[250]!)?.ackBody).toBe('replaced')
    })

    it('a store reopened after close() has everything', async () => {
      const es = [newEntry(), newEntry({ ackTopic: undefined, ackBody: undefined })]
      await Promise.all(es.map((e) => store.put(e)))
      await store.close()
      const again = await reopen()
      for (const e of es) expect(getOf(again, e)).toEqual(e)
    })

    it('resolved writes are visible to a store opened without closing the first', async () => {
      const e = newEntry()
      await store.put(e)
      const other = await reopen()
      expect(getOf(other, e)).toEqual(e)
    })

    it('close() is idempotent and flushes writes issued just before it', async () => {
      const e = newEntry()
      const put = store.put(e)
      await Promise.all([store.close(), store.close(), put])
      await expect(store.close()).resolves.toBeUndefined()
      expect(getOf(await reopen(), e)).toEqual(e)
    })

    it('counts attempts per (signer, msg_id), keeps them across a reopen, prunes them by their last time', async () => {
      expect(store.attempts(SIGNER, 'job-1')).toBe(0)
      expect(await store.addAttempt(SIGNER, 'job-1', T0)).toBe(1)
      expect(await store.addAttempt(SIGNER, 'job-1', T0 + 10)).toBe(2)
      expect(await store.addAttempt('other', 'job-1', T0)).toBe(1)
      expect(store.attempts(SIGNER, 'job-1')).toBe(2)
      expect(store.attempts('other', 'job-1')).toBe(1)
      await store.close()
      const again = await reopen()
      expect(again.attempts(SIGNER, 'job-1')).toBe(2)
      await again.prune(T0 + 5)
      expect(again.attempts('other', 'job-1')).toBe(0)
      expect(again.attempts(SIGNER, 'job-1')).toBe(2)
      await expect(again.addAttempt(SIGNER, '', T0)).rejects.toThrow(/msgId/)
      await again.close()
    })

    it('after close(), get throws and writes reject with ClosedError', async () => {
      await store.close()
      expect(() => store.get(SIGNER, 'x')).toThrow(ClosedError)
      await expect(store.put(newEntry())).rejects.toBeInstanceOf(ClosedError)
      await expect(store.prune(T0)).rejects.toBeInstanceOf(ClosedError)
    })
  })
}
