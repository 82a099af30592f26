import type { RunResult } from './run-command.js'

/** How a run of CMD ended, as counted in `gilmsg_exec_runs_total{outcome}`. */
export const ExecOutcome = {
  /** Exit 0: a `processed` ACK. */
  Processed: 'processed',
  /** An exit code of `--reject-codes`: a `rejected` ACK with its reason. */
  Rejected: 'rejected',
  /** Any other exit code, or it could not start: no ACK, run again. */
  Failed: 'failed',
  /** `--timeout` passed: killed, no ACK, run again. */
  Timeout: 'timeout',
  /** Ended by a signal gilmsg did not send for a timeout (or at shutdown): no ACK, run again. */
  Signal: 'signal',
} as const
export type ExecOutcome = (typeof ExecOutcome)[keyof typeof ExecOutcome]

/** What consume does with a message after a run. */
export type Verdict =
  | { readonly outcome: typeof ExecOutcome.Processed }
  | { readonly outcome: typeof ExecOutcome.Rejected; readonly reason: string }
  | { readonly outcome: 'failed' | 'timeout' | 'signal'; readonly why: string }

/** Classifies a finished run: exit 0, a reject code, or a failure to be retried (with a description). */
export function verdictOf(r: RunResult, rejectCodes: ReadonlySet<number>, timeoutSec: number): Verdict {
  if (r.timedOut) return { outcome: ExecOutcome.Timeout, why: `timed out after ${timeoutSec} s` }
  if (r.spawnError !== undefined) return { outcome: ExecOutcome.Failed, why: `could not start: ${r.spawnError}` }
  if (r.code === 0) return { outcome: ExecOutcome.Processed }
  if (r.code !== null && rejectCodes.has(r.code)) return { outcome: ExecOutcome.Rejected, reason: r.lastStderrLine ?? `exit code ${r.code}` }
  if (r.code !== null) return { outcome: ExecOutcome.Failed, why: `exit code ${r.code}${r.lastStderrLine === undefined ? '' : `: ${r.lastStderrLine}`}` }
  return { outcome: ExecOutcome.Signal, why: `killed by ${r.signal ?? 'a signal'}` }
}

/** The reason of the `rejected` ACK sent once `max` attempts did not succeed. */
export function gaveUpReason(max: number, last: string): string {
  return `gave up after ${max} attempt${max === 1 ? '' : 's'} (last: ${last})`
}
