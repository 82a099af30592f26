/** Resend timing: exponential backoff with full jitter. */
export interface BackoffPolicy {
  /** Upper bound of the first resend delay, ms. */
  readonly baseMs: number
  /** Upper bound of any delay, ms. */
  readonly capMs: number
}

/** First resend within 50 ms; never more than 2 s between resends. */
export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 50, capMs: 2000 }

/**
 * Delay before resend number `attempt` (1 = the first resend): uniform in
 * [baseMs/4, min(capMs, baseMs * 2^(attempt-1))] (full jitter with a small
 * floor, so resends never spin). `random` returns [0, 1).
 */
export function backoffDelay(policy: BackoffPolicy, attempt: number, random: () => number = Math.random): number {
  const exponent = Number.isNaN(attempt) ? 0 : Math.min(Math.max(Math.floor(attempt) - 1, 0), 30)
  const ceiling = Math.min(policy.capMs, policy.baseMs * 2 ** exponent)
  const floor = Math.min(policy.baseMs / 4, ceiling)
  return floor + random() * (ceiling - floor)
}
