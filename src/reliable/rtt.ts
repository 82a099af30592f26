import { backoffDelay, policyFor, type BackoffPolicy } from './backoff.js'

/** Once the round trip is known, a first resend waits the retransmission timeout plus up to this fraction of it. */
export const FIRST_RESEND_JITTER = 0.25
/** After timeouts, the first-resend base grows at most this many times over (and never past the cap). */
export const MAX_RTO_BACKOFF = 64
/** Clock granularity G of RFC 6298, ms: the variance term of the timeout is never below it. */
const CLOCK_GRANULARITY_MS = 1

/**
 * When a guaranteed message is resent, learnt from how long full
 * acknowledgement takes, as TCP does.
 *
 * - RFC 6298: a smoothed round trip `srtt` and its mean deviation `rttvar`
 *   give the retransmission timeout `rto = srtt + max(G, 4 * rttvar)`
 *   (no 1 s floor: the backoff policy's base is the floor).
 * - Karn's rule: only a message acknowledged without a resend is a sample
 *   (the ACK of a resent one may answer any of its copies).
 * - Karn's algorithm: each time first sends time out, the base for later
 *   messages doubles (at most once per base period, up to
 *   {@link MAX_RTO_BACKOFF} times, never past the cap) until a clean sample
 *   comes. Otherwise, once ACKs take longer than the base (an overloaded
 *   recipient), every message is resent before its ACK arrives, no clean
 *   sample ever comes, and the resends add to the load that caused them.
 *
 * Pure: the caller passes the times; `random` (in [0, 1)) is the jitter.
 */
export class RttEstimator {
  readonly #policy: BackoffPolicy
  readonly #random: () => number
  #srttMs: number | undefined
  #rttvarMs = 0
  #backoff = 1
  #backedOffAt = -Infinity

  constructor(policy: BackoffPolicy, random: () => number = Math.random) {
    this.#policy = policy
    this.#random = random
  }

  /** The smoothed round trip, ms; undefined until a first clean sample. */
  get srttMs(): number | undefined {
    return this.#srttMs
  }

  /** The round trip's mean deviation, ms (0 until a first clean sample). */
  get rttvarMs(): number {
    return this.#rttvarMs
  }

  /** The retransmission timeout `srtt + max(G, 4 * rttvar)`, ms; undefined until a first clean sample. */
  get rtoMs(): number | undefined {
    return this.#srttMs === undefined ? undefined : this.#srttMs + Math.max(CLOCK_GRANULARITY_MS, 4 * this.#rttvarMs)
  }

  /** What the first-resend base is multiplied by after timeouts: 1, 2, 4, ... {@link MAX_RTO_BACKOFF}. */
  get backoff(): number {
    return this.#backoff
  }

  /**
   * Every recipient acknowledged a message first sent at `sentAt`. With
   * `resent` this teaches nothing (Karn's rule). Otherwise the round trip
   * `now - sentAt` is a sample (ignored if negative or beyond the policy's
   * cap) and the timeout backoff returns to 1.
   */
  acknowledged(sentAt: number, now: number, resent: boolean): void {
    if (resent) return
    const sample = now - sentAt
    if (sample < 0 || sample > this.#policy.capMs) return
    if (this.#srttMs === undefined) {
      this.#srttMs = sample
      this.#rttvarMs = sample / 2
    } else {
      this.#rttvarMs = 0.75 * this.#rttvarMs + 0.25 * Math.abs(this.#srttMs - sample)
      this.#srttMs = 0.875 * this.#srttMs + 0.125 * sample
    }
    this.#backoff = 1
  }

  /** A message's first send timed out at `now` (it is being resent): doubles the backoff, at most once per base period. */
  timedOut(now: number): void {
    if (now - this.#backedOffAt < this.policy(0).baseMs) return
    this.#backedOffAt = now
    this.#backoff = Math.min(this.#backoff * 2, MAX_RTO_BACKOFF)
  }

  /** The backoff for a message due within `windowMs`: the base never below the retransmission timeout, times the timeout backoff, at most the cap. */
  policy(windowMs: number): BackoffPolicy {
    const p = policyFor(this.#policy, windowMs)
    const base = Math.max(p.baseMs, this.rtoMs ?? 0) * this.#backoff
    return base === p.baseMs ? p : { ...p, baseMs: Math.min(p.capMs, base) }
  }

  /**
   * How long after its first send a new message due within `windowMs` is
   * first resent. Until a round trip was measured: full jitter below the
   * base (a lost first send is resent soon). After: never before the
   * retransmission timeout (earlier is spurious), up to
   * {@link FIRST_RESEND_JITTER} above it.
   */
  firstResendDelay(windowMs: number): number {
    const p = this.policy(windowMs)
    if (this.#srttMs === undefined) return backoffDelay(p, 1, this.#random)
    return Math.min(p.capMs, p.baseMs * (1 + FIRST_RESEND_JITTER * this.#random()))
  }

  /**
   * The least age of a first send at which it is resent, by what is known now: the
   * jitter-free floor of {@link firstResendDelay} (the retransmission timeout, times the
   * timeout backoff, within the policy's base and cap). Undefined until a round trip was
   * measured: until then a lost first send is resent soon, whatever its age.
   */
  firstResendTimeout(windowMs: number): number | undefined {
    return this.#srttMs === undefined ? undefined : this.policy(windowMs).baseMs
  }

  /**
   * How long after this resend of `m` (sent `m.attempts` times so far) the
   * next one is due: exponential backoff with jitter; once the round trip is
   * known, never sooner than the retransmission timeout (the base), in
   * [base, 2^attempts base].
   */
  resendDelay(m: { readonly createdAt: number; readonly deadline: number; readonly attempts: number }): number {
    const p = this.policy(m.deadline - m.createdAt)
    if (this.#srttMs === undefined) return backoffDelay(p, m.attempts, this.#random)
    return backoffDelay(p, m.attempts + 1, this.#random, p.baseMs)
  }
}
