/**
 * How many resends may go out: a token bucket that holds at most `burst`
 * tokens, refills at `ratePerSecond`, and gains one token per ACK counted
 * (ACK clocking, as TCP paces its sends by the ACKs that come back).
 *
 * While recipients answer, every ACK pays for a resend and the bucket stays
 * full, so resends are limited only by their backoff. When nobody answers
 * (a recipient down with a large backlog pending), resends fall to
 * `ratePerSecond`: a publisher holding 100,000 messages for a dead consumer
 * neither burns a core nor floods the bus, and speeds up again as soon as
 * ACKs come back.
 *
 * Pure: the caller passes the time.
 */
export class ResendBudget {
  #tokens: number
  #at: number

  constructor(
    readonly ratePerSecond: number,
    readonly burst: number,
    now: number,
  ) {
    this.#tokens = burst
    this.#at = now
  }

  /** Tokens available at `now` (may be fractional). */
  available(now: number): number {
    if (now > this.#at) {
      this.#tokens = Math.min(this.burst, this.#tokens + ((now - this.#at) * this.ratePerSecond) / 1000)
      this.#at = now
    }
    return this.#tokens
  }

  /** Takes one token if there is one. */
  take(now: number): boolean {
    if (this.available(now) < 1) return false
    this.#tokens -= 1
    return true
  }

  /** Spends one token even if none is left (a resend that may not wait); never below zero. */
  spend(now: number): void {
    this.#tokens = Math.max(0, this.available(now) - 1)
  }

  /** An ACK was counted: it pays for one more resend. */
  credit(n = 1): void {
    this.#tokens = Math.min(this.burst, this.#tokens + n)
  }

  /** ms from `now` until a token is available (0 if one is). */
  waitMs(now: number): number {
    const missing = 1 - this.available(now)
    return missing <= 0 ? 0 : Math.ceil((missing * 1000) / this.ratePerSecond)
  }
}
