import {
  AbortedError,
  AckTimeoutError,
  ClosedError,
  ConfigError,
  DeliveryRejectedError,
  errorMessage,
  GilmsgError,
  InvalidArgumentError,
  StoreError,
} from '../errors.js'
import type { Bus, Subscription } from '../bus/bus.js'
import { DEFAULT_RESEND_RATE } from '../config/defaults.js'
import type { SealedMessage } from '../envelope/envelope.js'
import { DeliveryState, type AckOutcome, type AckRecord, type OutboxMessage, type OutboxStore, type RecipientStatus } from '../outbox/store.js'
import { Disposition } from '../protocol/ack.js'
import type { Clock } from '../util/clock.js'
import type { ReasonCounts } from '../util/counters.js'
import { Emitter } from '../util/events.js'
import { onAbort, throwIfAborted } from '../util/abort.js'
import { AckIntake } from './ack-intake.js'
import { ResendBudget } from './resend-budget.js'
import { nextAttemptAt, RESEND_BATCH, RESEND_BURST, ResendScheduler } from './resend-scheduler.js'
import { SubscriberGate } from './subscriber-gate.js'
import { RttEstimator } from './rtt.js'
import { DEFAULT_BACKOFF } from './backoff.js'
import { ACK_MODNAME, ACK_TOPIC, reliableFields } from './protocol.js'
import {
  checkPositive,
  checkQuorum,
  checkRecipients,
  DEFAULT_ACK_TIMEOUT_MS,
  DEFAULT_AWAIT_SUBSCRIBER_MS,
  DEFAULT_DEADLINE_MS,
  DEFAULT_RETENTION_MS,
  MAX_AWAIT_SUBSCRIBER_MS,
} from './publisher-types.js'
import type { DeliveryReceipt, Enqueued, EnqueueOptions, PublisherEvents, ReliablePublisherOptions, ReliablePublishOptions } from './publisher-types.js'
import { NO_REASON, splitStatuses, storedReceipt, waiterReceipt, type Waiter } from './waiters.js'

export { RESEND_BURST } from './resend-scheduler.js'
export { DEFAULT_ACK_TIMEOUT_MS, DEFAULT_AWAIT_SUBSCRIBER_MS, DEFAULT_DEADLINE_MS, DEFAULT_RETENTION_MS } from './publisher-types.js'
export type { DeliveryReceipt, Enqueued, EnqueueOptions, PublisherEvents, ReliablePublisherOptions, ReliablePublishOptions } from './publisher-types.js'

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
  readonly #retentionMs: number
  readonly #gate: SubscriberGate
  readonly #rtt: RttEstimator
  readonly #scheduler: ResendScheduler
  readonly #intake: AckIntake
  readonly #ackTopic: string
  readonly #waiters = new Map<string, Waiter>()
  #guaranteed = 0
  #ackSub: Subscription | undefined
  #ackLoop: Promise<void> | undefined
  #closing: Promise<void> | undefined
  #unsentPass: Promise<number> | undefined
  #unsentAgain = false

  constructor(options: ReliablePublisherOptions) {
    super()
    if (options.bus.verifier === undefined) {
      throw new ConfigError('guaranteed delivery needs signature validation (validate_signatures: true): an unvalidated ACK proves nothing')
    }
    this.#bus = options.bus
    this.#store = options.store
    this.#clock = options.clock
    const backoff = options.backoff ?? DEFAULT_BACKOFF
    this.#rtt = new RttEstimator(backoff, options.random ?? Math.random)
    this.#retentionMs = options.retentionMs ?? DEFAULT_RETENTION_MS
    const wait = options.awaitSubscriberMs ?? DEFAULT_AWAIT_SUBSCRIBER_MS
    if (!Number.isInteger(wait) || wait < 0 || wait > MAX_AWAIT_SUBSCRIBER_MS) {
      throw new InvalidArgumentError(`awaitSubscriberMs: expected an integer number of milliseconds >= 0, got ${String(wait)}`)
    }
    this.#gate = new SubscriberGate(options.bus, wait, () => this.#closing !== undefined)
    const rate = options.resendRate ?? DEFAULT_RESEND_RATE
    if (typeof rate !== 'number' || Number.isNaN(rate) || rate <= 0) {
      throw new InvalidArgumentError(`resendRate: expected a number of resends per second > 0 (or Infinity), got ${String(rate)}`)
    }
    this.#scheduler = new ResendScheduler({
      store: this.#store,
      clock: this.#clock,
      rtt: this.#rtt,
      budget: rate === Infinity ? undefined : new ResendBudget(rate, RESEND_BURST, this.#clock.now()),
      // Urgent: due soon (publish() calls waiting), never held back by the budget nor queued behind a backlog.
      urgentWithinMs: backoff.longAfterMs,
      send: (m) => this.#bus.send(m),
      // A publisher resuming its outbox resends at once: not into the void before its first subscriber (or relay) is there.
      beforePass: (topic) => this.#gate.wait(topic),
      expireDue: (now) => this.#expireDue(now),
      onResend: (m) => {
        const waiter = this.#waiters.get(m.msgId)
        if (waiter !== undefined) waiter.resent = true
      },
      onError: (e) => this.emit('background:error', asGilmsgError(e, 'resending failed')),
    })
    this.#ackTopic = options.bus.fullTopic(ACK_TOPIC, ACK_MODNAME)
    this.#intake = new AckIntake({
      store: this.#store,
      clock: this.#clock,
      ackTopic: this.#ackTopic,
      acceptLegacyAcks: options.acceptLegacyAcks ?? false,
      onOutcome: (record, outcome) => this.#onAckOutcome(record, outcome),
      onError: (e) => this.emit('background:error', asGilmsgError(e, 'recording an ACK failed')),
    })
  }

  /**
   * Subscribes to ACKs, expires what is overdue, purges old receipts,
   * resumes resending every pending message and sends those never sent
   * (see {@link sendUnsent}). Resolves once the ACK subscription is open,
   * before anything is sent.
   */
  async start(): Promise<void> {
    this.#ackSub = await this.#bus.subscribe(this.#ackTopic)
    this.#ackLoop = this.#intake.consume(this.#ackSub)
    const now = this.#clock.now()
    await this.#store.purge(now - this.#retentionMs)
    await this.#expireDue(now)
    this.#scheduler.arm()
    void this.sendUnsent()
  }

  /**
   * Sends, oldest first, every pending message that another process
   * committed without sending (`gilmsg enqueue`: the outbox's `unsent`),
   * and schedules its resends as for a message sent by `enqueue()`.
   * Idempotent: a message is sent once this way (`markAttempt` takes it off
   * the list before it is sent). A call while a pass runs makes that pass
   * look again once done; a pass ends by re-arming the resend timer (another
   * process may have made a message due). Resolves with how many it sent; never rejects (a
   * failure is emitted as `background:error`, and what was not sent stays
   * for the next call or the resend timer).
   */
  sendUnsent(): Promise<number> {
    if (this.#unsentPass !== undefined) {
      this.#unsentAgain = true
      return this.#unsentPass
    }
    const pass = (async () => {
      let sent = 0
      try {
        do {
          this.#unsentAgain = false
          sent += await this.#sendUnsentBatches()
        } while (this.#unsentAgain && !this.#closing)
      } catch (e) {
        this.emit('background:error', asGilmsgError(e, 'sending unsent messages failed'))
      }
      // Another process may also have made a message due (gilmsg outbox retry).
      this.#scheduler.arm()
      return sent
    })()
    this.#unsentPass = pass.finally(() => (this.#unsentPass = undefined))
    return this.#unsentPass
  }

  async #sendUnsentBatches(): Promise<number> {
    let sent = 0
    for (;;) {
      if (this.#closing) return sent
      const batch = this.#store.unsent(RESEND_BATCH)
      const first = batch[0]
      if (first === undefined) return sent
      await this.#gate.wait(first.topic)
      for (const m of batch) {
        if (this.#closing) return sent
        const now = this.#clock.now()
        const due = nextAttemptAt(now, this.#rtt.firstResendDelay(m.deadline - now), m.deadline)
        this.#store.markAttempt(m.msgId, due)
        this.#scheduler.arm(due)
        await this.#bus.send(m)
        this.#guaranteed++
        sent++
      }
    }
  }

  /**
   * Publishes and waits for every recipient's ACK (or, with `quorum: k`, for
   * the first k). Resolves with a {@link DeliveryReceipt} as soon as the last
   * (the k-th) ACK is counted, listing exactly the ACKs counted by then, without
   * waiting for the outbox's sync to disk; rejects with `AckTimeoutError`
   * (the message then expires and resends stop), `DeliveryRejectedError`,
   * `AbortedError`, or an outbox/transport error if the message could not be
   * committed or sent, or if its sync failed before the last ACK came (one
   * that fails after is emitted as `background:error`). Rejects with
   * `InvalidArgumentError` without recipients: a plain publish is
   * `Gilmsg.publish`'s (it needs no outbox).
   */
  async publish(topic: string, msg: unknown, options: ReliablePublishOptions = {}): Promise<DeliveryReceipt> {
    throwIfAborted(options.signal, 'publish')
    const recipients = checkRecipients(options.recipients ?? [], 'publish')
    const ackTimeout = checkPositive(options.ackTimeout ?? DEFAULT_ACK_TIMEOUT_MS, 'ackTimeout')
    const quorum = checkQuorum(options.quorum, recipients.length)
    const modname = options.modname !== undefined ? { modname: options.modname } : {}
    const started = this.#clock.now()
    const sealed = await this.#bus.sealAsync(topic, msg, { ...modname, extra: reliableFields(recipients) })
    throwIfAborted(options.signal, 'publish')
    // The closures below keep only the id: the signed message itself is not held while its ACKs are awaited.
    const msgId = sealed.msgId
    const timeoutError = new AckTimeoutError(msgId, [], recipients, 0, quorum)
    const done = new Promise<DeliveryReceipt>((resolve, reject) => {
      this.#waiters.set(msgId, {
        startedAt: started,
        topic: sealed.topic,
        digest: sealed.digest,
        recipients,
        quorum,
        sentAt: undefined,
        resent: false,
        acks: new Map(),
        rejections: new Map(),
        resolve,
        reject,
      })
    })
    const cancelTimeout = this.#clock.setTimer(() => void this.#giveUp(msgId, timeoutError), ackTimeout)
    const removeAbort = onAbort(options.signal, (reason) => void this.#giveUp(msgId, new AbortedError('publish was aborted', { cause: reason })))
    try {
      // Settled early (timeout, abort, close): a message not committed yet is not committed at all.
      const cancel = new AbortController()
      done.catch(() => cancel.abort())
      const { durable } = await this.#commitAndSend(sealed, recipients, started + ackTimeout, cancel.signal, quorum)
      // ACKs prove delivery before fsync. A counted ACK is signed by a listed recipient over this message's
      // digest: it proves delivery whether or not the message (committed before it was sent) or the ACK's
      // record has reached the disk yet, so the receipt waits for neither: AckIntake reports an ACK as soon
      // as its write has run, and here the message's sync races its ACKs. A crash before they reach the disk
      // only means that the message is resent after the restart and acknowledged again. A sync that fails
      // first fails the publish (the message might not survive a power loss, so its resends are not assured).
      durable.catch((e: unknown) => {
        if (!this.#waiters.has(msgId)) this.emit('background:error', asGilmsgError(e, 'syncing the outbox failed'))
      })
      return await Promise.race([done, durable.then(() => done)])
    } finally {
      cancelTimeout()
      removeAbort()
      this.#waiters.delete(msgId)
    }
  }

  /**
   * Commits a guaranteed message and sends it; resolves once committed and
   * handed to the socket. Delivery goes on in the background (and after a
   * restart on the same outbox) until every recipient acked or the deadline
   * passed: listen for `delivered`, `expired` and `rejected`. Has no quorum
   * (all-or-nothing): given one, rejects with `InvalidArgumentError`.
   */
  async enqueue(topic: string, msg: unknown, options: EnqueueOptions): Promise<Enqueued> {
    const recipients = checkRecipients(options.recipients, 'enqueue')
    if ((options as { quorum?: unknown }).quorum !== undefined) {
      throw new InvalidArgumentError('quorum: enqueue() has none (its delivery is all-or-nothing: `delivered` fires when every recipient acked); use publish() for a quorum')
    }
    const deadline = checkPositive(options.deadline ?? DEFAULT_DEADLINE_MS, 'deadline')
    const sealed = await this.#bus.sealAsync(topic, msg, {
      ...(options.modname !== undefined ? { modname: options.modname } : {}),
      extra: reliableFields(recipients),
    })
    const enqueued: Enqueued = { msgId: sealed.msgId, digest: sealed.digest, topic: sealed.topic }
    // The signed message is not held while its sync is awaited.
    const { durable } = await this.#commitAndSend(sealed, recipients, this.#clock.now() + deadline)
    await durable
    return enqueued
  }

  /**
   * Commits and sends, unless `cancel` fires while waiting for a first
   * subscriber (publish() timed out, was aborted or closed). Resolves once the
   * message is committed (it survives a crash of this process) and handed to
   * the socket, with the outbox's `durable` (see `Added`).
   */
  async #commitAndSend(
    sealed: SealedMessage,
    recipients: readonly string[],
    deadline: number,
    cancel?: AbortSignal,
    quorum: number = recipients.length,
  ): Promise<{ readonly durable: Promise<void> }> {
    if (this.#closing) throw new ClosedError('publisher')
    // Waited for before the commit: the resend timer starts when the message can really leave, and the
    // round trip is measured from there.
    await this.#gate.wait(sealed.topic, cancel)
    if (cancel?.aborted === true) return { durable: Promise.resolve() }
    if (this.#closing) throw new ClosedError('publisher')
    const now = this.#clock.now()
    const due = nextAttemptAt(now, this.#rtt.firstResendDelay(deadline - now), deadline)
    // Sent as soon as it is committed (it then survives a crash of this process), while the store syncs it.
    const { committed, durable } = this.#store.add({
      msgId: sealed.msgId,
      topic: sealed.topic,
      body: sealed.body,
      digest: sealed.digest,
      recipients,
      createdAt: now,
      deadline,
      nextAttemptAt: due,
      quorum,
    })
    await committed
    this.#guaranteed++
    const waiter = this.#waiters.get(sealed.msgId)
    if (waiter !== undefined) waiter.sentAt = now
    this.#scheduler.arm(due)
    await this.#bus.send(sealed)
    return { durable }
  }

  /** Expires a waited-for message (timeout or abort) unless an ACK settled it first. */
  async #giveUp(msgId: string, error: AckTimeoutError | AbortedError): Promise<void> {
    const waiter = this.#waiters.get(msgId)
    if (waiter === undefined) return
    if (this.#store.get(msgId) === undefined) {
      // Not committed yet (still waiting for a first subscriber): it now never will be.
      this.#waiters.delete(msgId)
      const elapsed = this.#clock.now() - waiter.startedAt
      waiter.reject(error instanceof AckTimeoutError ? new AckTimeoutError(msgId, [], error.missing, elapsed, waiter.quorum) : error)
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
    const { acked, missing, rejected } = splitStatuses(this.#store.recipients(msgId))
    this.emit('expired', { msgId, acked, missing, rejected })
    if (error instanceof AckTimeoutError) {
      const elapsed = this.#clock.now() - waiter.startedAt
      const e = new AckTimeoutError(msgId, acked, missing, elapsed, waiter.quorum, rejected)
      if (error.stack !== undefined) e.stack = error.stack.replace(/^.*$/m, `${e.name}: ${e.message}`)
      waiter.reject(e)
    } else {
      waiter.reject(error)
    }
  }

  #onAckOutcome(record: AckRecord, outcome: AckOutcome): void {
    const msgId = record.msgId
    if (outcome.kind === 'counted') {
      this.#scheduler.credit()
      if (this.listens('ack')) this.#emitAck(record)
    } else {
      // Another ACK (or process) finished it: a waiting publish() learns the outcome; events were emitted then.
      if ((outcome.kind === 'duplicate' || outcome.kind === 'not_pending') && this.#waiters.has(msgId)) this.#settle(msgId, false)
      return
    }
    const waiter = this.#waiters.get(msgId)
    if (record.disposition === Disposition.Rejected) {
      const reason = record.reason ?? NO_REASON
      waiter?.rejections.set(record.cn, { cn: record.cn, reason })
      this.emit('rejected', { msgId, recipient: record.cn, reason, ended: outcome.state === DeliveryState.Rejected })
    } else {
      waiter?.acks.set(record.cn, { cn: record.cn, at: record.at, disposition: record.disposition })
    }
    if (outcome.state === DeliveryState.Pending) {
      // The quorum's k-th ACK: resolve with exactly the ACKs counted so far; the message stays pending,
      // resent to the others until they ACK or its deadline. (A rejection that leaves it pending changes nothing here.)
      if (waiter !== undefined && waiter.acks.size >= waiter.quorum) {
        this.#waiters.delete(msgId)
        waiter.resolve(waiterReceipt(msgId, waiter))
      }
      return
    }
    if (outcome.state === DeliveryState.Acked && waiter !== undefined && waiter.acks.size === waiter.recipients.length) {
      // The common case, settled from what this process saw: every recipient's counted ACK.
      if (waiter.sentAt !== undefined) this.#rtt.acknowledged(waiter.sentAt, this.#clock.now(), waiter.resent)
      const receipt = waiterReceipt(msgId, waiter)
      this.#waiters.delete(msgId)
      waiter.resolve(receipt)
      this.emit('delivered', receipt)
      return
    }
    const msg = this.#store.get(msgId)
    if (msg === undefined) return
    if (outcome.state === DeliveryState.Acked) this.#rtt.acknowledged(msg.createdAt, this.#clock.now(), msg.attempts > 1)
    this.#settle(msgId, true, msg)
  }

  #emitAck(record: AckRecord): void {
    const sentAt = this.#waiters.get(record.msgId)?.sentAt ?? this.#store.get(record.msgId)?.createdAt
    if (sentAt === undefined) return
    this.emit('ack', { msgId: record.msgId, recipient: record.cn, disposition: record.disposition, latencyMs: Math.max(0, record.at - sentAt) })
  }

  /**
   * Resolves or rejects the waiter of a message that left `pending`; with
   * `emit`, also emits its event (only the ACK that changed its state does). `read`: the message, if already read.
   */
  #settle(msgId: string, emit: boolean, read?: OutboxMessage): void {
    const waiter = this.#waiters.get(msgId)
    // Nobody to tell (enqueue() without listeners): skip reading the message and its receipts.
    if (waiter === undefined && !(emit && this.listens('delivered'))) return
    const msg = read ?? this.#store.get(msgId)
    if (msg === undefined || msg.state === DeliveryState.Pending) return
    const statuses = this.#store.recipients(msgId)
    if (msg.state === DeliveryState.Acked) {
      const receipt = storedReceipt(msg, statuses)
      if (waiter) {
        this.#waiters.delete(msgId)
        waiter.resolve(receipt)
      }
      if (emit) this.emit('delivered', receipt)
    } else if (msg.state === DeliveryState.Rejected && waiter !== undefined) {
      // The rejection that ended it is the last one counted (its `rejected` event was emitted then).
      this.#waiters.delete(msgId)
      waiter.reject(rejectedError(msg, statuses))
    }
  }

  async #expireDue(now: number): Promise<void> {
    for (const msgId of await this.#store.expireDue(now)) {
      const waiter = this.#waiters.get(msgId)
      const { acked, missing, rejected } = splitStatuses(this.#store.recipients(msgId))
      this.emit('expired', { msgId, acked, missing, rejected })
      if (waiter) {
        this.#waiters.delete(msgId)
        waiter.reject(new AckTimeoutError(msgId, acked, missing, now - waiter.startedAt, waiter.quorum, rejected))
      }
    }
  }

  /** ACKs that did not count, by reason. */
  get ignoredAcks(): ReasonCounts {
    return this.#intake.ignored
  }

  /** Guaranteed messages sent for the first time by this publisher: `publish()` with recipients, `enqueue()`, and what another process committed unsent (`sendUnsent()`, the agent). */
  get guaranteed(): number {
    return this.#guaranteed
  }

  /** Messages waiting for ACKs in this process. */
  get inFlight(): number {
    return this.#waiters.size
  }

  /** Resends performed (not counting first sends). */
  get resends(): number {
    return this.#scheduler.resends
  }

  /**
   * First resends that came due before the retransmission timeout as it stood then (it grew
   * since their first send: a burst whose ACKs queue behind each other) and waited longer.
   */
  get resendsPostponed(): number {
    return this.#scheduler.postponed
  }

  /** Resend passes that stopped because the resend budget was spent (nobody acknowledging). */
  get resendsHeldBack(): number {
    return this.#scheduler.heldBack
  }

  /** Resends by recipient CN: how often a message was resent while that recipient's ACK was missing. */
  get resendsTo(): ReasonCounts {
    return this.#scheduler.resendsTo
  }

  /**
   * Stops resending and closes the ACK subscription. Pending messages stay in
   * the outbox and resume when a publisher opens it again; `publish()` calls
   * still waiting reject with a closed error. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#scheduler.stop()
      for (const [msgId, w] of this.#waiters) {
        w.reject(new ClosedError('publisher', `publisher closed while waiting for ACKs of ${msgId} (it stays in the outbox)`))
      }
      this.#waiters.clear()
      await this.#ackSub?.close()
      await this.#ackLoop
    })()
    return this.#closing
  }
}

/** The error of a message the outbox ended `rejected`: the quorum can no longer be reached; the last rejection counted did it. */
function rejectedError(msg: OutboxMessage, statuses: readonly RecipientStatus[]): DeliveryRejectedError {
  const { acked, rejected } = splitStatuses(statuses)
  let last: RecipientStatus | undefined
  for (const s of statuses) if (s.state === DeliveryState.Rejected && (last === undefined || (s.at ?? 0) >= (last.at ?? 0))) last = s
  const recipient = last?.cn ?? '?'
  const reason = last?.reason ?? NO_REASON
  return new DeliveryRejectedError(msg.msgId, recipient, reason, { rejections: rejected, acked, quorum: msg.quorum, recipients: statuses.length })
}

// A GilmsgError keeps its class (a TransportError from a resend stays one: Bus.send wraps what a transport throws);
// anything else came from the store.
function asGilmsgError(e: unknown, what: string): GilmsgError {
  return e instanceof GilmsgError ? e : new StoreError('outbox', `${what}: ${errorMessage(e)}`, { cause: e })
}
