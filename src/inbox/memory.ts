import { ClosedError } from '../errors.js'
import { checkInboxEntry, checkPruneBefore, inboxKey } from './rules.js'
import type { InboxEntry, InboxStore } from './store.js'

/**
 * The contents of a {@link MemoryInboxStore}, kept apart from the store so
 * that it outlives it: a test "crashes" a consumer, then builds a new
 * `MemoryInboxStore` over the same data. Opaque: read it through a store.
 */
export class MemoryInboxData {
  /** @internal By {@link inboxKey}. */
  readonly entries = new Map<string, InboxEntry>()
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

  prune(before: number): Promise<number> {
    return this.#write(() => {
      checkPruneBefore(before)
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
