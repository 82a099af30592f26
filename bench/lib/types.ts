import type { Pki } from './pki.js'

/** One line of the benchmark: gilmsg's figure beside its baseline, measured in the same run. */
export interface CaseResult {
  /** Stable id, `<group>.<variant>` (e.g. `delivery.ec.r3.pipelined`). */
  readonly id: string
  readonly name: string
  readonly figure: number
  readonly unit: string
  readonly baseline: number
  readonly baselineUnit: string
  /** `figure / baseline`. */
  readonly ratio: number
  /** What the issue asks for, in words (absent: no target). */
  readonly target?: string
  /** Whether the target was met (absent when there is no target). */
  readonly met?: boolean
  /** One short line for the table (latency percentiles, resends...). */
  readonly notes?: string
  /** Everything measured, for the JSON file. */
  readonly details: Record<string, unknown>
}

/** What a case gets from the runner. */
export interface BenchContext {
  /** Tiny counts, so that every case runs in seconds (the test suite uses it). */
  readonly quick: boolean
  /** A temporary directory for this run, removed at the end. */
  readonly dir: string
  /** Environment for child processes: keeps gilmsg's state (CRL cache, default stores) in `dir`. */
  readonly childEnv: NodeJS.ProcessEnv
  /** Extra `execArgv` for worker processes (e.g. `--cpu-prof`), from `GILMSG_BENCH_WORKER_ARGS`. */
  readonly workerExecArgv: readonly string[]
  /** Writes one progress line on stderr. */
  progress(message: string): void
  /** The run's certificates (made on first use): see `bench/lib/setup.ts`. */
  pki(): Promise<Pki>
}

/** A group of lines (one file under `bench/cases/`). */
export interface BenchCase {
  /** Group id, as accepted by `--only`. */
  readonly id: string
  readonly title: string
  run(ctx: BenchContext): Promise<CaseResult[]>
}

/** A target on a line: its text and how to judge it. */
export interface Target {
  readonly text: string
  readonly met: (figure: number, baseline: number, ratio: number) => boolean
}

/** Builds a {@link CaseResult}, computing the ratio and the verdict. A non-finite figure never meets a target. */
export function line(r: {
  id: string
  name: string
  figure: number
  unit: string
  baseline: number
  baselineUnit: string
  target?: Target | undefined
  notes?: string
  details?: Record<string, unknown>
}): CaseResult {
  const ratio = r.baseline === 0 ? NaN : r.figure / r.baseline
  const finite = Number.isFinite(r.figure) && Number.isFinite(r.baseline)
  return {
    id: r.id,
    name: r.name,
    figure: r.figure,
    unit: r.unit,
    baseline: r.baseline,
    baselineUnit: r.baselineUnit,
    ratio,
    ...(r.target ? { target: r.target.text, met: finite && r.target.met(r.figure, r.baseline, ratio) } : {}),
    ...(r.notes !== undefined ? { notes: r.notes } : {}),
    details: r.details ?? {},
  }
}
