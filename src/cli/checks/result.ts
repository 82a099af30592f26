/** What one check of `gilmsg check` can conclude. */
export const CheckStatus = { Ok: 'ok', Warn: 'warn', Fail: 'fail' } as const
export type CheckStatus = (typeof CheckStatus)[keyof typeof CheckStatus]

/** One line of `gilmsg check`: what was checked, the verdict, and what was found (or what to do). */
export interface CheckResult {
  readonly name: string
  readonly status: CheckStatus
  readonly detail: string
}

/** A passed check. */
export const ok = (name: string, detail: string): CheckResult => ({ name, status: CheckStatus.Ok, detail })
/** A check that passed with something to act on soon; does not change the exit status. */
export const warn = (name: string, detail: string): CheckResult => ({ name, status: CheckStatus.Warn, detail })
/** A failed check: `gilmsg check` exits 1. */
export const fail = (name: string, detail: string): CheckResult => ({ name, status: CheckStatus.Fail, detail })

/** Days before a certificate (or the CA) expires from which `gilmsg check` warns: 30. */
export const CERT_WARN_DAYS = 30
/** Days before a CRL's nextUpdate from which `gilmsg check` warns (or a quarter of its validity, if shorter): 7. */
export const CRL_WARN_DAYS = 7

/** One day in ms. */
export const DAY_MS = 24 * 60 * 60 * 1000

/** `ms` since the epoch as an ISO 8601 UTC timestamp. */
export function iso(ms: number): string {
  return new Date(ms).toISOString()
}

/** `3 days`, `1 day`, `5 hours` for a positive duration in ms. */
export function span(ms: number): string {
  const days = Math.floor(ms / DAY_MS)
  if (days >= 1) return `${days} day${days === 1 ? '' : 's'}`
  const hours = Math.floor(ms / 3_600_000)
  if (hours >= 1) return `${hours} hour${hours === 1 ? '' : 's'}`
  const minutes = Math.max(0, Math.floor(ms / 60_000))
  return `${minutes} minute${minutes === 1 ? '' : 's'}`
}
