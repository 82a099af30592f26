import type { Pki } from './pki.js'
import type { Summary } from './stats.js'

/**
 * A latency curve for the report's percentile plot (one plot per case group,
 * curves with the same `label` drawn once): a distribution from `summarize()`
 * drawn as HdrHistogram draws it (value against percentile, log scale of
 * 1/(1-p)), or a constant drawn as a dashed horizontal rule (a floor computed
 * from parts, e.g. the floor of signed, durable delivery).
 */
export type LatencyCurve =
  | {
      readonly label: string
      /** The distribution (ms) with its percentile steps. */
      readonly distribution: Summary
      /** Drawn dashed: a baseline or floor, not gilmsg. */
      readonly floor?: boolean
    }
  | { readonly label: string; /** ms. */ readonly value: number }

/**
 * One line of an x/y plot in the report. Series with the same `plot` title
 * share one chart (its axis titles and scales are taken from the first);
 * each series is a line with points in its own colour, and its `floor`, when
 * given, a dashed horizontal rule of the same colour (e.g. the throughput the
 * crypto CPU allows, against which the measured points are read).
 */
export interface Series {
  /** Chart title, e.g. `Acknowledged messages/s against publish() calls in flight`. */
  readonly plot: string
  /** Legend text of this line. */
  readonly label: string
  readonly xTitle: string
  readonly yTitle: string
  /** Default `linear`. */
  readonly xScale?: 'linear' | 'log'
  /** Default `linear`. */
  readonly yScale?: 'linear' | 'log'
  readonly points: readonly { readonly x: number; readonly y: number }[]
  /** A y value the points are read against (same unit as y). */
  readonly floor?: number
  /** What the floor is, for the legend (default `floor`). */
  readonly floorLabel?: string
}

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
  /** Latency distributions for the report's percentile plot of this line's group (e.g. the one-at-a-time runs and their raw round trips). */
  readonly latency?: readonly LatencyCurve[]
  /** x/y lines for the report's plots (throughput against the in-flight window, scaling lines...). */
  readonly series?: readonly Series[]
}

/** The JSON file's `cases` entries: a measured line, or a case group that failed. */
export type CaseEntry = CaseResult | { readonly id: string; readonly name: string; readonly error: string }

/** The facts about the machine a run was measured on. */
export interface MachineFacts {
  readonly cpus: number
  readonly model: string
  readonly node: string
  readonly platform: string
  /** 1, 5 and 15 minute load averages at the start. */
  readonly loadavg: number[]
}

/** The JSON file written at the end of a run (what `--report-from` reads back). */
export interface BenchReport {
  readonly machine: MachineFacts
  readonly quick: boolean
  readonly startedAt: string
  readonly finishedAt: string
  readonly loadavgAtEnd: number[]
  readonly cases: CaseEntry[]
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
  latency?: readonly LatencyCurve[]
  series?: readonly Series[]
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
    ...(r.latency !== undefined ? { latency: r.latency } : {}),
    ...(r.series !== undefined ? { series: r.series } : {}),
  }
}
