import {
  AbortedError,
  AckTimeoutError,
  ConfigError,
  DeliveryRejectedError,
  ErrorCode,
  GilmsgError,
  InvalidArgumentError,
  type RecipientAck,
} from '../errors.js'
import type { Bus, BusMessage, Subscription } from '../bus/bus.js'
import { DEFAULT_RESEND_RATE } from '../config/defaults.js'
import type { SealedMessage } from '../envelope/envelope.js'
import { DeliveryState, Disposition, type AckOutcome, type AckRecord, type OutboxMessage, type OutboxStore, type RecipientStatus } from '../outbox/store.js'
import type { Clock } from '../util/clock.js'
import { ReasonCounter } from '../util/counters.js'
import { Emitter } from '../util/events.js'
import { onAbort, throwIfAborted } from '../util/abort.js'
import { ResendBudget } from './resend-budget.js'
import { backoffDelay, DEFAULT_BACKOFF, policyFor, type BackoffPolicy } from './backoff.js'
import { ACK_MODNAME, ACK_TOPIC, checkDeadline, parseAcks, reliableFields } from './protocol.js'

/** `publish()` waits this long for every ACK unless told otherwise. */
export const DEFAULT_ACK_TIMEOUT_MS = 10_000
/** `enqueue()` keeps resending this long unless told otherwise. */
export const DEFAULT_DEADLINE_MS = 24 * 60 * 60 * 1000
/** Messages that left `pending` are purged after this long. */
export const DEFAULT_RETENTION_MS = 7 * 24 * 60 * 60 * 1000
/** How many received ACKs are recorded at once (their outbox writes share a commit). */
const ACKS_IN_FLIGHT = 256
/** How many due messages one resend pass sends at most. */
const RESEND_BATCH = 256
/** Once the round trip is known, a first resend waits the retransmission timeout plus up to this fraction of it. */
const FIRST_RESEND_JITTER = 0.25
/** The first-resend base grows at most this many times over after timeouts (and never past the cap). */
const MAX_RTO_BACKOFF = 64

/** What `publish()` resolves with: proof that every recipient acknowledged this exact message. */
export interface DeliveryReceipt {
  readonly msgId: string
  /** SHA-256 hex of the canonical signed bytes that every ACK carried. */
  readonly digest: string
  readonly topic: string
  readonly recipients: readonly RecipientAck[]
}

export interface ReliablePublishOptions {
  /** Certificate CNs that must acknowledge. Empty or absent: a plain fire-and-forget publish. */
  readonly recipients?: readonly string[]
  /** ms to wait for every ACK (default {@link DEFAULT_ACK_TIMEOUT_MS}); then the message expires. */
  readonly ackTimeout?: number
  readonly signal?: AbortSignal
  readonly modname?: string
}

export interface EnqueueOptions {
  readonly recipients: readonly string[]
  /** ms from now during which resends continue, across restarts (default 24 h). */
  readonly deadline?: number
  readonly modname?: string
}

/** What `enqueue()` resolves with once the message is committed. */
export interface Enqueued {
  readonly msgId: string
  readonly digest: string
  readonly topic: string
}

export interface PublisherEvents {
  /** Every recipient acknowledged. */
  delivered: (receipt: DeliveryReceipt) => void
  /** The deadline passed with ACKs missing. */
  expired: (info: { msgId: string; acked: readonly RecipientAck[]; missing: readonly string[] }) => void
  /** A recipient rejected the message. */
  rejected: (info: { msgId: string; recipient: string; reason: string }) => void
  /** A background step failed (a resend, an outbox write); delivery goes on where it can. */
  'background:error': (error: GilmsgError) => void
}

export interface ReliablePublisherOptions {
  readonly bus: Bus
  readonly store: OutboxStore
  readonly clock: Clock
  readonly backoff?: BackoffPolicy
  readonly random?: () => number
  /** Count ACKs without `ack_digest` (Python gilmsg 0.1.2 consumers). Default false. */
  readonly acceptLegacyAcks?: boolean
  readonly retentionMs?: number
  /**
   * Before sending, wait up to this many ms for a first subscriber (or relay)
   * when there is none yet, so that a freshly opened publisher does not send
   * into the void and wait for a resend. 0 disables. Default 250.
   */
  readonly awaitSubscriberMs?: number
  /**
   * Resends per second while no ACK comes back (see {@link ResendBudget}):
   * each counted ACK pays for one more, up to a burst of
   * {@link RESEND_BURST}. Messages whose deadline is less than the backoff's
   * `longAfterMs` (5 min) away are never held back. `Infinity` disables the
   * limit. Default {@link DEFAULT_RESEND_RATE}.
   */
  readonly resendRate?: number
}

/** Default of {@link ReliablePublisherOptions.awaitSubscriberMs}. */
export const DEFAULT_AWAIT_SUBSCRIBER_MS = 250
/** Resends the budget can hold: what goes out at once after a quiet spell. */
export const RESEND_BURST = 2 * RESEND_BATCH
/** While the budget holds resends back, the resend timer wakes at most this often. */
const BUDGET_WAKE_MS = 100

/** A publish() call waiting for its ACKs, with what its receipt needs (so that settling it reads nothing back from the store). */
interface Waiter {
  readonly startedAt: number
  readonly topic: string
  readonly digest: string
  readonly recipients: readonly string[]
  /** When it was committed and first sent; undefined until then. */
  sentAt: number | undefined
  /** Resent at least once: its round trip then says nothing clear (Karn's rule). */
  resent: boolean
  /** The ACKs counted for it, by CN. */
  readonly acks: Map<string, RecipientAck>
  resolve(receipt: DeliveryReceipt): void
  reject(error: Error): void
}

/**
 * The publishing half of the reliability layer: commits each guaranteed
 * message to the outbox, sends it, resends the same signed bytes with
 * backoff until every recipient's valid ACK is in or the deadline passes, and
 * counts only ACKs that are validly signed by a listed recipient and carry
 * the message's digest.
 */
export class ReliablePublisher extends Emitter<PublisherEvents> {
  readonly #bus: Bus
  readonly #store: OutboxStore
  readonly #clock: Clock
  readonly #backoff: BackoffPolicy
  readonly #random: () => number
  readonly #legacy: boolean
  readonly #retentionMs: number
  readonly #awaitSubscriberMs: number
  /** Undefined: no limit. */
  readonly #budget: ResendBudget | undefined
  readonly #ackTopic: string
  readonly #waiters = new Map<string, Waiter>()
  #ackSub: Subscription | undefined
  #ackLoop: Promise<void> | undefined
  #cancelTimer: (() => void) | undefined
  #timerAt = Infinity
  #resending = false
  #closing: Promise<void> | undefined
  #srttMs: number | undefined
  #rttvarMs = 0
  /** Multiplies the first-resend base after timeouts until a clean RTT sample (Karn's algorithm). */
  #rtoBackoff = 1
  #rtoBackedOffAt = -Infinity
  /** ACKs that did not count, by reason. */
  readonly ignoredAcks = new ReasonCounter()
  /** Resends performed (not counting first sends). */
  resends = 0
  /** Resend passes that stopped because the resend budget was spent (nobody acknowledging). */
  resendsHeldBack = 0
  /** Resends by recipient CN: how often a message was resent while that recipient's ACK was missing. */
  readonly resendsTo = new ReasonCounter()

  constructor(options: ReliablePublisherOptions) {
    super()
    if (options.bus.verifier === undefined) {
      throw new ConfigError('guaranteed delivery needs signature validation (validate_signatures: true): an unvalidated ACK proves nothing')
    }
    this.#bus = options.bus
    this.#store = options.store
    this.#clock = options.clock
    this.#backoff = options.backoff ?? DEFAULT_BACKOFF
    this.#random = options.random ?? Math.random
    this.#legacy = options.acceptLegacyAcks ?? false
    this.#retentionMs = options.retentionMs ?? DEFAULT_RETENTION_MS
    const wait = options.awaitSubscriberMs ?? DEFAULT_AWAIT_SUBSCRIBER_MS
    if (!Number.isInteger(wait) || wait < 0 || wait > 2 ** 31 - 1) {
      throw new InvalidArgumentError(`awaitSubscriberMs: expected an integer number of milliseconds >= 0, got ${String(wait)}`)
    }
    this.#awaitSubscriberMs = wait
    const rate = options.resendRate ?? DEFAULT_RESEND_RATE
    if (typeof rate !== 'number' || Number.isNaN(rate) || rate <= 0) {
      throw new InvalidArgumentError(`resendRate: expected a number of resends per second > 0 (or Infinity), got ${String(rate)}`)
    }
    this.#budget = rate === Infinity ? undefined : new ResendBudget(rate, RESEND_BURST, this.#clock.now())
    this.#ackTopic = options.bus.fullTopic(ACK_TOPIC, ACK_MODNAME)
  }

  /**
   * Subscribes to ACKs, expires what is overdue, purges old receipts and
   * resumes resending every pending message. Resolves once the ACK
   * subscription is open, before anything is sent.
   */
  async start(): Promise<void> {
    this.#ackSub = await this.#bus.subscribe(this.#ackTopic)
    this.#ackLoop = this.#consumeAcks(this.#ackSub)
    const now = this.#clock.now()
    await this.#store.purge(now - this.#retentionMs)
    await this.#expireDue(now)
    this.#arm()
  }

  /**
   * Publishes and waits for every recipient's ACK. Resolves with a
   * {@link DeliveryReceipt}; rejects with `AckTimeoutError` (the message then
   * expires and resends stop), `DeliveryRejectedError`, `AbortedError`, or an
   * outbox/transport error if the message could not be committed or sent.
   * Without recipients it is a plain publish and resolves once sent.
   *
   * It resolves as soon as the last ACK is validated and recorded, without
   * waiting for that record's commit (at the end of the event-loop turn) and
   * fsync, nor for the fsync of the message itself (it was committed before
   * it was sent): the ACKs prove delivery either way, and a crash before the
   * receipt reaches the disk only means the message is resent after restart
   * and acknowledged again. A failed sync of the message rejects it if it
   * comes first, else it is emitted as `background:error`.
   */
  async publish(topic: string, msg: unknown, options: ReliablePublishOptions = {}): Promise<DeliveryReceipt> {
    throwIfAborted(options.signal, 'publish')
    const recipients = checkRecipients(options.recipients ?? [], true)
    const ackTimeout = checkPositive(options.ackTimeout ?? DEFAULT_ACK_TIMEOUT_MS, 'ackTimeout')
    const modname = options.modname !== undefined ? { modname: options.modname } : {}
    if (recipients.length === 0) {
      const sealed = await this.#bus.publish(topic, msg, modname)
      return { msgId: sealed.msgId, digest: sealed.digest, topic: sealed.topic, recipients: [] }
    }
    const started = this.#clock.now()
    const sealed = await this.#bus.sealAsync(topic, msg, { ...modname, extra: reliableFields(recipients) })
    throwIfAborted(options.signal, 'publish')
    const timeoutError = new AckTimeoutError(sealed.msgId, [], recipients, 0)
    const done = new Promise<DeliveryReceipt>((resolve, reject) => {
      this.#waiters.set(sealed.msgId, {
        startedAt: started,
        topic: sealed.topic,
        digest: sealed.digest,
        recipients,
        sentAt: undefined,
        resent: false,
        acks: new Map(),
        resolve,
        reject,
      })
    })
    const cancelTimeout = this.#clock.setTimer(() => void this.#giveUp(sealed.msgId, timeoutError), ackTimeout)
    const removeAbort = onAbort(options.signal, (reason) => void this.#giveUp(sealed.msgId, new AbortedError('publish was aborted', { cause: reason })))
    try {
      // Settled early (timeout, abort, close): a message not committed yet is not committed at all.
      const cancel = new AbortController()
      done.catch(() => cancel.abort())
      const { durable } = await this.#commitAndSend(sealed, recipients, started + ackTimeout, cancel.signal)
      // The ACKs prove delivery whether or not the outbox's sync to disk has finished (the message was
      // committed before it was sent): the receipt does not wait for it. A sync that fails first fails
      // the publish (the message might not survive a power loss, so resends are not assured).
      durable.catch((e: unknown) => {
        if (!this.#waiters.has(sealed.msgId)) this.emit('background:error', asGilmsgError(e, 'syncing the outbox failed'))
      })
      return await Promise.race([done, durable.then(() => done)])
    } finally {
      cancelTimeout()
      removeAbort()
      this.#waiters.delete(sealed.msgId)
    }
  }

  /**
   * Commits a guaranteed message and sends it; resolves once committed and
   * handed to the socket. Delivery goes on in the background (and after a
   * restart on the same outbox) until every recipient acked or the deadline
   * passed: listen for `delivered`, `expired` and `rejected`.
   */
  async enqueue(topic: string, msg: unknown, options: EnqueueOptions): Promise<Enqueued> {
    const recipients = checkRecipients(options.recipients, false)
    const deadline = checkPositive(options.deadline ?? DEFAULT_DEADLINE_MS, 'deadline')
    const sealed = await this.#bus.sealAsync(topic, msg, {
      ...(options.modname !== undefined ? { modname: options.modname } : {}),
      extra: reliableFields(recipients),
    })
    await (await this.#commitAndSend(sealed, recipients, this.#clock.now() + deadline)).durable
    return { msgId: sealed.msgId, digest: sealed.digest, topic: sealed.topic }
  }

  /**
   * Commits and sends, unless `cancel` fires while waiting for a first
   * subscriber (publish() timed out, was aborted or closed). Resolves once the
   * message is committed (it survives a crash of this process) and handed to
   * the socket, with `durable`: resolves once the outbox synced it to disk
   * (with the commit, for a store without a separate sync), and rejects if
   * that failed.
   */
  async #commitAndSend(sealed: SealedMessage, recipients: readonly string[], deadline: number, cancel?: AbortSignal): Promise<{ readonly durable: Promise<void> }> {
    if (this.#closing) throw new GilmsgError(ErrorCode.Closed, 'publisher is closed')
    // Waited for before the commit: the resend timer starts when the message can really leave, and the
    // round trip is measured from there.
    await this.#awaitSubscriber(sealed.topic, cancel)
    if (cancel?.aborted === true) return { durable: Promise.resolve() }
    if (this.#closing) throw new GilmsgError(ErrorCode.Closed, 'publisher is closed')
    const now = this.#clock.now()
    const nextAttemptAt = now + this.#firstResendDelay(deadline - now)
    // Sent as soon as it is committed (it then survives a crash of this process), while the store
    // syncs it to disk. A refused or failed write rejects `durable` before any commit; a store that
    // does not report its commits has the message sent once it is durable.
    let onCommitted!: () => void
    const committed = new Promise<void>((resolve) => (onCommitted = resolve))
    const durable = this.#store.add(
      { msgId: sealed.msgId, topic: sealed.topic, body: sealed.body, digest: sealed.digest, recipients, createdAt: now, deadline, nextAttemptAt },
      onCommitted,
    )
    await Promise.race([committed, durable])
    const waiter = this.#waiters.get(sealed.msgId)
    if (waiter !== undefined) waiter.sentAt = now
    this.#arm(nextAttemptAt)
    await this.#bus.send(sealed)
    return { durable }
  }

  /** Waits (at most `awaitSubscriberMs`) until something subscribes to `topic`: no send into the void of a fresh socket. */
  async #awaitSubscriber(topic: string, signal?: AbortSignal): Promise<void> {
    if (this.#awaitSubscriberMs > 0) await this.#bus.waitForSubscribers(topic, { timeoutMs: this.#awaitSubscriberMs, ...(signal ? { signal } : {}) })
  }

  /** Expires a waited-for message (timeout or abort) unless an ACK settled it first. */
  async #giveUp(msgId: string, error: AckTimeoutError | AbortedError): Promise<void> {
    const waiter = this.#waiters.get(msgId)
    if (waiter === undefined) return
    if (this.#store.get(msgId) === undefined) {
      // Not committed yet (still waiting for a first subscriber): it now never will be.
      this.#waiters.delete(msgId)
      const elapsed = this.#clock.now() - waiter.startedAt
      waiter.reject(error instanceof AckTimeoutError ? new AckTimeoutError(msgId, [], error.missing, elapsed) : error)
      return
    }
    let expired: boolean
    try {
      expired = await this.#store.expire(msgId, this.#clock.now())
    } catch (e) {
      waiter.reject(e as Error)
      return
    }
    if (!expired) {
      this.#settle(msgId, false)
      return
    }
    const { acked, missing } = this.#split(this.#store.recipients(msgId))
    this.emit('expired', { msgId, acked, missing })
    if (error instanceof AckTimeoutError) {
      const elapsed = this.#clock.now() - waiter.startedAt
      const e = new AckTimeoutError(msgId, acked, missing, elapsed)
      if (error.stack !== undefined) e.stack = error.stack.replace(/^.*$/m, `${e.name}: ${e.message}`)
      waiter.reject(e)
    } else {
      waiter.reject(error)
    }
  }

  async #consumeAcks(sub: Subscription): Promise<void> {
    const inFlight = new Set<Promise<void>>()
    for await (const m of sub) {
      const p: Promise<void> = this.#onAck(m)
        .catch((e: unknown) => this.emit('background:error', asGilmsgError(e, 'recording an ACK failed')))
        .finally(() => inFlight.delete(p))
      inFlight.add(p)
      if (inFlight.size >= ACKS_IN_FLIGHT) await Promise.race(inFlight)
    }
    await Promise.all(inFlight)
  }

  async #onAck(m: BusMessage): Promise<void> {
    if (m.topic !== this.#ackTopic || m.signer === undefined || m.fingerprint === undefined) {
      this.ignoredAcks.add('not_an_ack')
      return
    }
    const acks = parseAcks(m.envelope)
    if (acks === undefined) {
      this.ignoredAcks.add('malformed_ack')
      return
    }
    const signer = m.signer
    const fingerprint = m.fingerprint
    await Promise.all(
      acks.map(async (ack) => {
        if (ack.ack_digest === undefined && !this.#legacy) {
          this.ignoredAcks.add('legacy_ack_refused')
          return
        }
        let handled = false
        // Acts on the outcome once: as soon as the store ran the write (a valid ACK needs no fsync to be true), else when it resolves.
        const handle = (outcome: AckOutcome): void => {
          if (handled) return
          handled = true
          this.#onAckOutcome(ack.ack_msg_id, outcome, record)
        }
        const record = {
          msgId: ack.ack_msg_id,
          cn: signer,
          digest: ack.ack_digest,
          disposition: ack.disposition,
          ...(ack.reason !== undefined ? { reason: ack.reason } : {}),
          at: this.#clock.now(),
          ackBody: m.body,
          fingerprint,
        }
        handle(await this.#store.recordAck(record, handle))
      }),
    )
  }

  #onAckOutcome(msgId: string, outcome: AckOutcome, record: AckRecord): void {
    if (outcome.kind === 'counted') this.#budget?.credit()
    if (outcome.kind !== 'counted') {
      this.ignoredAcks.add(outcome.kind)
      // Another ACK (or process) finished it: a waiting publish() learns the outcome; events were emitted then.
      if ((outcome.kind === 'duplicate' || outcome.kind === 'not_pending') && this.#waiters.has(msgId)) this.#settle(msgId, false)
      return
    }
    const waiter = this.#waiters.get(msgId)
    waiter?.acks.set(record.cn, { cn: record.cn, at: record.at, disposition: record.disposition })
    if (outcome.state === DeliveryState.Pending) return
    if (outcome.state === DeliveryState.Acked && waiter !== undefined && waiter.acks.size === waiter.recipients.length) {
      // The common case, settled from what this process saw: every recipient's counted ACK.
      if (!waiter.resent && waiter.sentAt !== undefined) this.#sampleRtt(waiter.sentAt)
      const receipt: DeliveryReceipt = {
        msgId,
        digest: waiter.digest,
        topic: waiter.topic,
        recipients: waiter.recipients.map((cn) => waiter.acks.get(cn) as RecipientAck),
      }
      this.#waiters.delete(msgId)
      waiter.resolve(receipt)
      this.emit('delivered', receipt)
      return
    }
    const msg = this.#store.get(msgId)
    if (msg === undefined) return
    if (outcome.state === DeliveryState.Acked && msg.attempts === 1) this.#sampleRtt(msg.createdAt)
    this.#settle(msgId, true, msg)
  }

  /**
   * Learns how long full acknowledgement takes, as TCP does (RFC 6298: a
   * smoothed RTT and its mean deviation, from messages acknowledged without a
   * resend), so that a first resend waits for the retransmission timeout
   * `srtt + 4 * rttvar` and is not spurious under load. Only for a message
   * sent once (Karn's rule: a resent one says nothing clear about the round
   * trip), first sent at `sentAt`.
   */
  #sampleRtt(sentAt: number): void {
    const sample = this.#clock.now() - sentAt
    if (sample < 0 || sample > this.#backoff.capMs) return
    if (this.#srttMs === undefined) {
      this.#srttMs = sample
      this.#rttvarMs = sample / 2
    } else {
      this.#rttvarMs = 0.75 * this.#rttvarMs + 0.25 * Math.abs(this.#srttMs - sample)
      this.#srttMs = 0.875 * this.#srttMs + 0.125 * sample
    }
    this.#rtoBackoff = 1
  }

  /**
   * The other half of Karn's algorithm: when first sends time out, later
   * messages start with a doubled base (at most once per base period, up to
   * the cap) until one is acknowledged without a resend. Otherwise, once ACKs
   * take longer than the base (an overloaded recipient), every message is
   * resent before its ACK arrives, no clean sample ever comes, and the
   * resends add to the load that caused them.
   */
  #timedOut(now: number): void {
    const base = this.#policy(0).baseMs
    if (now - this.#rtoBackedOffAt < base) return
    this.#rtoBackedOffAt = now
    this.#rtoBackoff = Math.min(this.#rtoBackoff * 2, MAX_RTO_BACKOFF)
  }

  /** The backoff for a message due within `windowMs`: the base never below the retransmission timeout, times the timeout backoff. */
  #policy(windowMs: number): BackoffPolicy {
    const p = policyFor(this.#backoff, windowMs)
    const rto = this.#srttMs === undefined ? 0 : this.#srttMs + Math.max(1, 4 * this.#rttvarMs)
    const base = Math.max(p.baseMs, rto) * this.#rtoBackoff
    return base === p.baseMs ? p : { ...p, baseMs: Math.min(p.capMs, base) }
  }

  /**
   * When a new message is first resent. Until a round trip was measured:
   * full jitter below the base (a lost first send is resent soon). After:
   * never before the retransmission timeout (earlier is spurious), jittered
   * up to a quarter above it.
   */
  #firstResendDelay(windowMs: number): number {
    const p = this.#policy(windowMs)
    if (this.#srttMs === undefined) return backoffDelay(p, 1, this.#random)
    return Math.min(p.capMs, p.baseMs * (1 + FIRST_RESEND_JITTER * this.#random()))
  }

  /**
   * When a message being resent is resent next: exponential backoff with
   * jitter; once the round trip is known, never sooner than the
   * retransmission timeout (the base), in [base, 2^n base].
   */
  #resendDelay(m: OutboxMessage): number {
    const p = this.#policy(m.deadline - m.createdAt)
    if (this.#srttMs === undefined) return backoffDelay(p, m.attempts, this.#random)
    return backoffDelay(p, m.attempts + 1, this.#random, p.baseMs)
  }

  /**
   * Resolves or rejects the waiter of a message that left `pending`; with
   * `emit`, also emits its event (only the ACK that changed its state does). `read`: the message, if already read.
   */
  #settle(msgId: string, emit: boolean, read?: OutboxMessage): void {
    const waiter = this.#waiters.get(msgId)
    // Nobody to tell (enqueue() without listeners): skip reading the message and its receipts.
    if (waiter === undefined && !(emit && (this.listens('delivered') || this.listens('rejected')))) return
    const msg = read ?? this.#store.get(msgId)
    if (msg === undefined || msg.state === DeliveryState.Pending) return
    const statuses = this.#store.recipients(msgId)
    if (msg.state === DeliveryState.Acked) {
      const receipt = this.#receipt(msg, statuses)
      if (waiter) {
        this.#waiters.delete(msgId)
        waiter.resolve(receipt)
      }
      if (emit) this.emit('delivered', receipt)
    } else if (msg.state === DeliveryState.Rejected) {
      const r = statuses.find((s) => s.disposition === Disposition.Rejected)
      const recipient = r?.cn ?? '?'
      const reason = r?.reason ?? 'no reason given'
      if (waiter) {
        this.#waiters.delete(msgId)
        waiter.reject(new DeliveryRejectedError(msgId, recipient, reason))
      }
      if (emit) this.emit('rejected', { msgId, recipient, reason })
    }
  }

  #receipt(msg: OutboxMessage, statuses: readonly RecipientStatus[]): DeliveryReceipt {
    return { msgId: msg.msgId, digest: msg.digest, topic: msg.topic, recipients: this.#split(statuses).acked }
  }

  #split(statuses: readonly RecipientStatus[]): { acked: RecipientAck[]; missing: string[] } {
    const acked: RecipientAck[] = []
    const missing: string[] = []
    for (const s of statuses) {
      if (s.state === DeliveryState.Acked) acked.push({ cn: s.cn, at: s.at ?? 0, disposition: s.disposition ?? Disposition.Received })
      else missing.push(s.cn)
    }
    return { acked, missing }
  }

  /** Makes sure the resend timer fires by `at` (default: the store's next due time). */
  #arm(at?: number): void {
    if (this.#closing) return
    const next = at ?? this.#store.nextDueAt()
    if (next === undefined || next >= this.#timerAt) return
    this.#cancelTimer?.()
    this.#timerAt = next
    this.#cancelTimer = this.#clock.setTimer(() => {
      this.#cancelTimer = undefined
      this.#timerAt = Infinity
      void this.#resendDue()
    }, Math.max(0, next - this.#clock.now()))
  }

  async #resendDue(): Promise<void> {
    if (this.#resending || this.#closing) return
    this.#resending = true
    let heldBackUntil: number | undefined
    try {
      // A publisher resuming its outbox resends at once: not into the void before its first subscriber (or relay) is there.
      const next = this.#store.due(this.#clock.now(), 1)[0]
      if (next !== undefined) await this.#awaitSubscriber(next.topic)
      const now = this.#clock.now()
      await this.#expireDue(now)
      // Urgent first (deadline near: publish() calls waiting), never held back by the budget nor queued behind a backlog.
      const urgent = this.#budget === undefined ? [] : this.#store.due(now, RESEND_BATCH, now + this.#backoff.longAfterMs)
      for (const m of urgent) {
        if (this.#closing) return
        this.#budget?.spend(now)
        await this.#resend(m, now)
      }
      // (markAttempt applies at once: the urgent ones just resent are no longer due.)
      for (const m of this.#store.due(now, RESEND_BATCH)) {
        if (this.#closing) return
        if (this.#budget !== undefined && !this.#budget.take(now)) {
          heldBackUntil = now + Math.max(BUDGET_WAKE_MS, this.#budget.waitMs(now))
          this.resendsHeldBack++
          break
        }
        await this.#resend(m, now)
      }
    } catch (e) {
      this.emit('background:error', asGilmsgError(e, 'resending failed'))
    } finally {
      this.#resending = false
      this.#arm(heldBackUntil)
    }
  }

  async #resend(m: OutboxMessage, now: number): Promise<void> {
    if (m.attempts === 1) this.#timedOut(now)
    const waiter = this.#waiters.get(m.msgId)
    if (waiter !== undefined) waiter.resent = true
    this.#store.markAttempt(m.msgId, now + this.#resendDelay(m))
    this.resends++
    for (const r of this.#store.recipients(m.msgId)) if (r.state === DeliveryState.Pending) this.resendsTo.add(r.cn)
    await this.#bus.send(m)
  }

  async #expireDue(now: number): Promise<void> {
    for (const msgId of await this.#store.expireDue(now)) {
      const waiter = this.#waiters.get(msgId)
      const { acked, missing } = this.#split(this.#store.recipients(msgId))
      this.emit('expired', { msgId, acked, missing })
      if (waiter) {
        this.#waiters.delete(msgId)
        waiter.reject(new AckTimeoutError(msgId, acked, missing, now - waiter.startedAt))
      }
    }
  }

  /** Messages waiting for ACKs in this process. */
  get inFlight(): number {
    return this.#waiters.size
  }

  /**
   * Stops resending and closes the ACK subscription. Pending messages stay in
   * the outbox and resume when a publisher opens it again; `publish()` calls
   * still waiting reject with a closed error. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#cancelTimer?.()
      for (const [msgId, w] of this.#waiters) {
        w.reject(new GilmsgError(ErrorCode.Closed, `publisher closed while waiting for ACKs of ${msgId} (it stays in the outbox)`))
      }
      this.#waiters.clear()
      await this.#ackSub?.close()
      await this.#ackLoop
    })()
    return this.#closing
  }
}

function checkRecipients(value: unknown, allowEmpty: boolean): string[] {
  if (!Array.isArray(value) || !value.every((r) => typeof r === 'string' && r !== '')) {
    throw new InvalidArgumentError(`recipients: expected a list of certificate CNs (non-empty strings), got ${JSON.stringify(value)}`)
  }
  const unique = [...new Set(value as string[])]
  if (unique.length !== value.length) throw new InvalidArgumentError(`recipients: duplicate CN in ${JSON.stringify(value)}`)
  if (!allowEmpty && unique.length === 0) throw new InvalidArgumentError('recipients: enqueue needs at least one recipient')
  return unique
}

function checkPositive(value: number, what: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new InvalidArgumentError(`${what}: expected a number of milliseconds > 0, got ${String(value)}`)
  }
  checkDeadline(value, what)
  return value
}

function asGilmsgError(e: unknown, what: string): GilmsgError {
  return e instanceof GilmsgError ? e : new GilmsgError(ErrorCode.Outbox, `${what}: ${(e as Error)?.message ?? String(e)}`, { cause: e })
}
