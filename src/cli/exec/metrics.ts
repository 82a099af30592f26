import { Counter, Histogram, type Registry } from 'prom-client'
import { ExecOutcome } from './outcome.js'

/** Buckets of `gilmsg_exec_duration_seconds`: from a quick script to a ten-minute job. */
export const EXEC_DURATION_BUCKETS_SECONDS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600]

/** The metrics of `gilmsg consume --exec`, in the service's registry. */
export interface ExecMetrics {
  run(outcome: ExecOutcome, seconds: number): void
  gaveUp(): void
}

export function createExecMetrics(registry: Registry, prefix = 'gilmsg_'): ExecMetrics {
  const runs = new Counter({ name: `${prefix}exec_runs_total`, help: 'Runs of the --exec command, by outcome', labelNames: ['outcome'], registers: [registry] })
  const duration = new Histogram({
    name: `${prefix}exec_duration_seconds`,
    help: 'How long each run of the --exec command took, by outcome',
    labelNames: ['outcome'],
    buckets: [...EXEC_DURATION_BUCKETS_SECONDS],
    registers: [registry],
  })
  const gaveUp = new Counter({ name: `${prefix}exec_gave_up_total`, help: 'Messages rejected because --max-attempts runs did not succeed', registers: [registry] })
  for (const outcome of Object.values(ExecOutcome)) runs.inc({ outcome }, 0)
  return {
    run(outcome, seconds) {
      runs.inc({ outcome })
      duration.observe({ outcome }, seconds)
    },
    gaveUp() {
      gaveUp.inc()
    },
  }
}
