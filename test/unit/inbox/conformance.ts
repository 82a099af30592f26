import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ClosedError, ErrorCode } from '../../../src/errors.js'
import type { InboxEntry, InboxStore } from '../../../src/inbox/store.js'

/** What a conformance run needs: a fresh empty store, and a way to open it again (as a restarted process would). */
export interface InboxUnderTest {
  readonly store: InboxStore
  /** Opens the same data again; the suite calls it with the first store closed or still open. */
  readonly reopen: () => Promise<InboxStore>
}

const T0 = 1_700_000_000_000
let counter = 0

export function newEntry(over: Partial<InboxEntry> = {}): InboxEntry {
  counter += 1
  return {
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
      expect(store.get('nope')).toBeUndefined()
    })

    it('put then get returns the entry; reads see it before the promise settles', async () => {
      const e = newEntry()
      const p = store.put(e)
      expect(store.get(e.msgId)).toEqual(e)
      await expect(p).resolves.toBeUndefined()
      expect(store.get(e.msgId)).toEqual(e)
    })

    it('keeps an entry without ACK (manual mode), then replaces it once acked', async () => {
      const e = newEntry({ ackTopic: undefined, ackBody: undefined })
      await store.put(e)
      expect(store.get(e.msgId)).toEqual({ ...e, ackTopic: undefined, ackBody: undefined })
      const acked = { ...e, ackTopic: 'org.example.ack', ackBody: '{"signed":true}' }
      await store.put(acked)
      expect(store.get(e.msgId)).toEqual(acked)
    })

    it('returns copies: mutating a result changes nothing stored', async () => {
      const e = newEntry()
      await store.put(e)
      const got = store.get(e.msgId) as { digest: string }
      got.digest = 'changed'
      expect(store.get(e.msgId)?.digest).toBe(e.digest)
    })

    it('prune deletes entries received before `before` only, resolving with how many', async () => {
      const old = newEntry({ receivedAt: T0 - 10 })
      const edge = newEntry({ receivedAt: T0 })
      const young = newEntry({ receivedAt: T0 + 10 })
      for (const e of [old, edge, young]) await store.put(e)
      await expect(store.prune(T0)).resolves.toBe(1)
      expect(store.get(old.msgId)).toBeUndefined()
      expect(store.get(edge.msgId)).toEqual(edge)
      await expect(store.prune(T0 + 11)).resolves.toBe(2)
      await expect(store.prune(T0 + 11)).resolves.toBe(0)
      expect(store.get(young.msgId)).toBeUndefined()
    })

    it('rejects an invalid entry (usage) without disturbing the writes around it', async () => {
      const a = newEntry()
      const b = newEntry()
      const results = await Promise.allSettled([store.put(a), store.put({ ...newEntry(), digest: '' }), store.put(b)])
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled'])
      expect((results[1] as PromiseRejectedResult).reason).toMatchObject({ code: ErrorCode.Usage })
      expect(store.get(a.msgId)).toEqual(a)
      expect(store.get(b.msgId)).toEqual(b)
    })

    it('300 puts and prunes issued without awaiting all resolve, in a consistent final state', async () => {
      const entries = Array.from({ length: 300 }, (_, i) => newEntry({ receivedAt: T0 + i }))
      const puts = entries.map((e) => store.put(e))
      const pruned = store.prune(T0 + 100)
      const replaced = store.put({ ...entries[250]!, ackBody: 'replaced' })
      await Promise.all(puts)
      await expect(pruned).resolves.toBe(100)
      await replaced
      expect(entries.filter((e) => store.get(e.msgId) !== undefined)).toHaveLength(200)
      expect(store.get(entries[250]!.msgId)?.ackBody).toBe('replaced')
    })

    it('a store reopened after close() has everything', async () => {
      const es = [newEntry(), newEntry({ ackTopic: undefined, ackBody: undefined })]
      await Promise.all(es.map((e) => store.put(e)))
      await store.close()
      const again = await reopen()
      for (const e of es) expect(again.get(e.msgId)).toEqual(e)
    })

    it('resolved writes are visible to a store opened without closing the first', async () => {
      const e = newEntry()
      await store.put(e)
      const other = await reopen()
      expect(other.get(e.msgId)).toEqual(e)
    })

    it('close() is idempotent and flushes writes issued just before it', async () => {
      const e = newEntry()
      const put = store.put(e)
      await Promise.all([store.close(), store.close(), put])
      await expect(store.close()).resolves.toBeUndefined()
      expect((await reopen()).get(e.msgId)).toEqual(e)
    })

    it('after close(), get throws and writes reject with ClosedError', async () => {
      await store.close()
      expect(() => store.get('x')).toThrow(ClosedError)
      await expect(store.put(newEntry())).rejects.toBeInstanceOf(ClosedError)
      await expect(store.prune(T0)).rejects.toBeInstanceOf(ClosedError)
    })
  })
}
