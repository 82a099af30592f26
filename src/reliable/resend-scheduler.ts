import { DeliveryState, type OutboxMessage, type OutboxStore } from '../outbox/store.js'
import type { Clock } from '../util/clock.js'
import { ReasonCounter, type ReasonCounts } from '../util/counters.js'
import type { ResendBudget } from './resend-budget.js'
import type { RttEstimator } from './rtt.js'

/** How many due messages one resend pass sends at most. */
export const RESEND_BATCH = 256
/** Resends a {@link ResendBudget} can hold: what goes out at once after a quiet spell. */
export const RESEND_BURST = 2 * RESEND_BATCH
/** While the budget holds resends back, the resend timer wakes at most this often. */
export const BUDGET_WAKE_MS = 100

/**
 * When a message sent at `now` is due again: after `delayMs`, but never after its deadline,
 * so that the pass that expires it runs at the deadline, not one backoff later.
 */
export function nextAttemptAt(now: number, delayMs: number, deadline: number): number {
  return Math.max(now, Math.min(now + delayMs, deadline))
}

export interface ResendSchedulerOptions {
  readonly store: OutboxStore
  readonly clock: Clock
  /** Says when each message is resent next; learns from the timeouts of first sends. */
  readonly rtt: RttEstimator
  /** Paces resends while nobody acknowledges; undefined: no limit. */
  readonly budget: ResendBudget | undefined
  /** A message whose deadline is at most this far away is urgent: resent before any backlog, never held back by the budget. */
  readonly urgentWithinMs: number
  /** Sends a message's signed bytes again. */
  readonly send: (m: OutboxMessage) => Promise<void>
  /** Awaited at the start of a pass that has something due, with the earliest due message's topic (a publisher waits for a first subscriber). */
  readonly beforePass: (topic: string) => Promise<void>
  /** Awaited in every pass before anything is resent: expires what is past its deadline. */
  readonly expireDue: (now: number) => Promise<void>
  /** Each message as it is resent, before it is sent. */
  readonly onResend: (m: OutboxMessage) => void
  /** A pass failed; it stops there and the next one is armed. */
  readonly onError: (error: unknown) => void
}

/**
 * Resends what the outbox says is due: one timer armed for the earliest
 * `nextAttemptAt`; each pass sends the urgent messages first, then the rest
 * in due order while the budget allows (at most {@link RESEND_BATCH} each,
 * reading from the store only as many as the budget pays for, plus one),
 * and sets when each is due next. When the budget runs out the pass stops
 * and the timer wakes again once a token is back (at least
 * {@link BUDGET_WAKE_MS} later). One pass runs at a time.
 */
export class ResendScheduler {
  readonly #o: ResendSchedulerOptions
  #cancelTimer: (() => void) | undefined
  #timerAt = Infinity
  #running = false
  #stopped = false
  #resends = 0
  #heldBack = 0
  #postponed = 0
  readonly #resendsTo = new ReasonCounter()
  /** Resends by recipient CN: how often a message was resent while that recipient's ACK was missing. */
  readonly resendsTo: ReasonCounts = this.#resendsTo.view

  constructor(options: ResendSchedulerOptions) {
    this.#o = options
  }

  /** Resends performed (not counting first sends). */
  get resends(): number {
    return this.#resends
  }

  /** Passes that stopped because the budget was spent. */
  get heldBack(): number {
    return this.#heldBack
  }

  /** First resends that came due before the retransmission timeout as it stood then, and waited (see {@link #tooEarly}). */
  get postponed(): number {
    return this.#postponed
  }

  /** Makes sure a pass runs by `at` (default: the store's next due time). A no-op once stopped. */
  arm(at?: number): void {
    if (this.#stopped) return
    const next = at ?? this.#o.store.nextDueAt()
    if (next === undefined || next >= this.#timerAt) return
    this.#cancelTimer?.()
    this.#timerAt = next
    this.#cancelTimer = this.#o.clock.setTimer(() => {
      this.#cancelTimer = undefined
      this.#timerAt = Infinity
      void this.#pass()
    }, Math.max(0, next - this.#o.clock.now()))
  }

  /** An ACK was counted: it pays for one more resend. */
  credit(): void {
    this.#o.budget?.credit()
  }

  /** Cancels the timer; a pass under way stops before its next resend. Idempotent. */
  stop(): void {
    this.#stopped = true
    this.#cancelTimer?.()
  }

  async #pass(): Promise<void> {
    if (this.#running || this.#stopped) return
    this.#running = true
    const { store, clock, budget } = this.#o
    let heldBackUntil: number | undefined
    try {
      const next = store.due(clock.now(), 1)[0]
      if (next !== undefined) await this.#o.beforePass(next.topic)
      const now = clock.now()
      await this.#o.expireDue(now)
      const urgent = budget === undefined ? [] : store.due(now, RESEND_BATCH, now + this.#o.urgentWithinMs)
      for (const m of urgent) {
        if (this.#stopped) return
        if (this.#tooEarly(m, now)) continue
        budget?.spend(now)
        await this.#resend(m, now)
      }
      // (markAttempt applies at once: the urgent ones just resent are no longer due.) Only the rows the budget
      // pays for are read, plus one to learn that more is due: a held-back backlog costs one row per pass.
      for (const m of store.due(now, this.#readLimit(now))) {
        if (this.#stopped) return
        if (this.#tooEarly(m, now)) continue
        if (budget !== undefined && !budget.take(now)) {
          heldBackUntil = now + Math.max(BUDGET_WAKE_MS, budget.waitMs(now))
          this.#heldBack++
          break
        }
        await this.#resend(m, now)
      }
    } catch (e) {
      this.#o.onError(e)
    } finally {
      this.#running = false
      this.arm(heldBackUntil)
    }
  }

  /** Due rows worth reading in this pass: what the budget pays for, plus one (held back), at most a batch. */
  #readLimit(now: number): number {
    const budget = this.#o.budget
    if (budget === undefined) return RESEND_BATCH
    return Math.min(RESEND_BATCH, Math.floor(budget.available(now)) + 1)
  }

  /**
   * A first resend is set when the message is sent, from the retransmission timeout of
   * that moment. When it comes due the timeout may have grown (first sends of others timed
   * out, ACKs came back slower): a burst of messages sent together then all came due
   * together, while their ACKs were only queued behind each other. Checked again with the
   * timeout as it stands now, such a resend waits until the first send is that old (moved
   * with `postpone`, no send counted), as TCP's one retransmission timer, restarted with the
   * current timeout, would. Later resends keep their backoff.
   */
  #tooEarly(m: OutboxMessage, now: number): boolean {
    if (m.attempts !== 1) return false
    const timeout = this.#o.rtt.firstResendTimeout(m.deadline - m.createdAt)
    if (timeout === undefined) return false
    const at = nextAttemptAt(now, m.createdAt + timeout - now, m.deadline)
    if (at <= now) return false
    this.#o.store.postpone(m.msgId, at)
    this.#postponed++
    return true
  }

  async #resend(m: OutboxMessage, now: number): Promise<void> {
    const { store, rtt } = this.#o
    if (m.attempts === 1) rtt.timedOut(now)
    this.#o.onResend(m)
    store.markAttempt(m.msgId, nextAttemptAt(now, rtt.resendDelay(m), m.deadline))
    this.#resends++
    for (const r of store.recipients(m.msgId)) if (r.state === DeliveryState.Pending) this.#resendsTo.add(r.cn)
    await this.#o.send(m)
  }
}
