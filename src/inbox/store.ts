/**
 * InboxStore: what a consumer remembers of the guaranteed messages it got, so
 * that a resend is re-acknowledged with the same signed ACK but handed to the
 * application only once, also across restarts (within the retention window).
 * Implementations: SQLite (`sqlite.ts`) and memory (`memory.ts`), one conformance suite.
 */

export interface InboxEntry {
  readonly msgId: string
  /** The message's content digest: a resend must match it. */
  readonly digest: string
  readonly receivedAt: number
  /** The ACK sent for it: full topic and frame 1 as signed. Undefined until the application acked (manual mode). */
  readonly ackTopic: string | undefined
  readonly ackBody: string | undefined
}

export interface InboxStore {
  get(msgId: string): InboxEntry | undefined
  /** Inserts or replaces the entry; resolves once committed (group commit). */
  put(entry: InboxEntry): Promise<void>
  /** Deletes entries received before `before`. Resolves with how many. */
  prune(before: number): Promise<number>
  /** Flushes pending writes and closes. Idempotent. */
  close(): Promise<void>
}
