/**
 * InboxStore: what a consumer remembers of the guaranteed messages it must
 * acknowledge, so that a resend is re-acknowledged with the same signed ACK
 * but handed to the application only once, also across restarts (within the
 * retention window). Entries are keyed by (signer CN, msg_id): a msg_id names
 * a message only together with the publisher that signed it, so a holder of
 * another certificate cannot claim a msg_id before its publisher does.
 * Implementations: SQLite (`sqlite.ts`) and memory (`memory.ts`), one conformance suite.
 */

export interface InboxEntry {
  /**
   * The CN of the certificate that signed the message (`''` when the bus does
   * not validate signatures). Undefined only in an entry read back from a
   * SQLite inbox written before entries had a signer (schema 1): see
   * {@link InboxStore.get}. `put` refuses an entry without one.
   */
  readonly signer: string | undefined
  readonly msgId: string
  /** The message's content digest: a resend must match it. */
  readonly digest: string
  readonly receivedAt: number
  /** The ACK sent for it: full topic and frame 1 as signed. Undefined until the application acked (manual mode). */
  readonly ackTopic: string | undefined
  readonly ackBody: string | undefined
}

export interface InboxStore {
  /**
   * The entry of the message `msgId` signed by `signer`; failing that, an
   * entry for `msgId` from before entries had a signer (`signer` undefined,
   * SQLite schema 1 only), which the consumer takes for the same message
   * only if its digest is the message's. Undefined if neither exists.
   */
  get(signer: string, msgId: string): InboxEntry | undefined
  /** Inserts or replaces the entry of (`signer`, `msgId`); resolves once committed (group commit). */
  put(entry: InboxEntry): Promise<void>
  /**
   * How many attempts at handling the message (`signer`, `msgId`) were recorded by
   * {@link addAttempt} (0 if none): for a consumer that acknowledges only after its work
   * (e.g. `gilmsg consume --exec`), so that a retry limit holds across restarts.
   */
  attempts(signer: string, msgId: string): number
  /**
   * Records one more attempt at handling (`signer`, `msgId`) at time `at`; resolves with the
   * number of attempts so far once committed (group commit). Call it before the attempt starts.
   */
  addAttempt(signer: string, msgId: string, at: number): Promise<number>
  /** Deletes entries received before `before` (those without a signer too), and attempts last made before it. Resolves with how many entries. */
  prune(before: number): Promise<number>
  /** Flushes pending writes and closes. Idempotent. */
  close(): Promise<void>
}
