/** Resend timing: exponential backoff with full jitter. */
export interface BackoffPolicy {
  /** Upper bound of the first resend delay, ms. */
  readonly baseMs: number
  /** Upper bound of any delay, ms, for messages that must be delivered soon (a deadline within `longAfterMs`). */
  readonly capMs: number
  /** Upper bound of any delay for messages with a longer deadline (background `enqueue`), ms. */
  readonly longCapMs: number
  /** A message whose deadline is further than this from its creation uses `longCapMs`. */
  readonly longAfterMs: number
}

/**
 * First resend within 50 ms; at most 2 s between resends of a message due
 * within 5 minutes (`publish`'s timeouts), at most 30 s for longer deadlines
 * (so 100,000 pending background messages do not flood the bus while their
 * recipients are away).
 */
export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 50, capMs: 2000, longCapMs: 30_000, longAfterMs: 5 * 60_000 }

/** The policy for a message that must be acknowledged within `windowMs` of its creation. */
export function policyFor(policy: BackoffPolicy, windowMs: number): BackoffPolicy {
  return windowMs > policy.longAfterMs ? { ...policy, capMs: policy.longCapMs } : policy
}

/**
 * Delay before resend number `attempt` (1 = the first resend): uniform in
 * [floorMs, min(capMs, baseMs * 2^(attempt-1))] (full jitter with a floor,
 * by default baseMs/4, so resends never spin). `random` returns [0, 1).
 */
export function backoffDelay(policy: BackoffPolicy, attempt: number, random: () => number = Math.random, floorMs = policy.baseMs / 4): number {
  const exponent = Number.isNaN(attempt) ? 0 : Math.min(Math.max(Math.floor(attempt) - 1, 0), 30)
  const ceiling = Math.min(policy.capMs, policy.baseMs * 2 ** exponent)
  const floor = Math.min(floorMs, ceiling)
  return floor + random() * (ceiling - floor)
}
