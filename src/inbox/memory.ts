import { ClosedError } from '../errors.js'
import { checkAttemptKey, checkInboxEntry, checkPruneBefore, inboxKey } from './rules.js'
import { checkTime } from '../util/options.js'
import type { InboxEntry, InboxStore } from './store.js'

/**
 * The contents of a {@link MemoryInboxStore}, kept apart from the store so
 * that it outlives it: a test "crashes" a consumer, then builds a new
 * `MemoryInboxStore` over the same data. Opaque: read it through a store.
 */
export class MemoryInboxData {
  /** @internal By {@link inboxKey}. */
  readonly entries = new Map<string, InboxEntry>()
  /** @internal By {@link inboxKey}: attempts so far and when the last one was recorded. */
  readonly attempts = new Map<string, { readonly n: number; readonly at: number }>()
}

/**
 * An {@link InboxStore} in memory, for tests (it passes the same conformance
 * suite as the SQLite store). Writes apply synchronously, so reads see them at
 * once, and their promises settle on a microtask. Every entry has a signer
 * (only a migrated SQLite file has entries without one).
 *
 * `close()` only detaches this store (every later call throws or rejects a
 * `ClosedError`); the data stays, and `new MemoryInboxStore(data)` or
 * {@link reopen} opens it again.
 */
export class MemoryInboxStore implements InboxStore {
  /** The data this store reads and writes; pass it to a new store to "restart". */
  readonly data: MemoryInboxData
  #closed = false

  /** Opens `data`, or new empty data. */
  constructor(data: MemoryInboxData = new MemoryInboxData()) {
    this.data = data
  }

  /** A new store over the same data (this one may be open or closed). */
  reopen(): MemoryInboxStore {
    return new MemoryInboxStore(this.data)
  }

  get(signer: string, msgId: string): InboxEntry | undefined {
    this.#checkOpen()
    const e = this.data.entries.get(inboxKey(signer, msgId))
    return e === undefined ? undefined : { ...e }
  }

  put(entry: InboxEntry): Promise<void> {
    return this.#write(() => {
      checkInboxEntry(entry)
      const { signer, msgId, digest, receivedAt, ackTopic, ackBody } = entry
      this.data.entries.set(inboxKey(signer as string, msgId), { signer, msgId, digest, receivedAt, ackTopic, ackBody })
    })
  }

  attempts(signer: string, msgId: string): number {
    this.#checkOpen()
    return this.data.attempts.get(inboxKey(signer, msgId))?.n ?? 0
  }

  addAttempt(signer: string, msgId: string, at: number): Promise<number> {
    return this.#write(() => {
      checkAttemptKey(signer, msgId)
      checkTime('addAttempt(at)', at)
      const key = inboxKey(signer, msgId)
      const n = (this.data.attempts.get(key)?.n ?? 0) + 1
      this.data.attempts.set(key, { n, at })
      return n
    })
  }

  prune(before: number): Promise<number> {
    return this.#write(() => {
      checkPruneBefore(before)
      for (const [key, a] of this.data.attempts) if (a.at < before) this.data.attempts.delete(key)
      let n = 0
      for (const [id, e] of this.data.entries) {
        if (e.receivedAt < before) {
          this.data.entries.delete(id)
          n += 1
        }
      }
      return n
    })
  }

  /** Detaches this store; the data stays. Idempotent. */
  close(): Promise<void> {
    this.#closed = true
    return Promise.resolve()
  }

  #checkOpen(): void {
    if (this.#closed) throw new ClosedError('memory inbox')
  }

  #write<T>(apply: () => T): Promise<T> {
    try {
      this.#checkOpen()
      return Promise.resolve(apply())
    } catch (error) {
      return Promise.reject(error)
    }
  }
}
