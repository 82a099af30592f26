import { build, JsHistogram, type Histogram } from 'hdr-histogram-js'

/** Samples are recorded into the histogram in integer nanoseconds (the samples themselves are in ms). */
export const HDR_UNITS_PER_MS = 1_000_000

/** HdrHistogram's precision: values are kept to 3 significant decimal digits (0.1 %). */
export const HDR_SIGNIFICANT_DIGITS = 3

/** Steps per half distance to 100 % in the stored percentile distribution (HdrHistogram's own default). */
export const HDR_TICKS_PER_HALF_DISTANCE = 5

/** One step of HdrHistogram's percentile distribution: `percentile` % of the samples took at most `value` ms. */
export interface PercentilePoint {
  readonly percentile: number
  readonly value: number
}

/**
 * A latency distribution (times in ms unless said otherwise), recorded with
 * HdrHistogram: percentiles are the histogram's (3 significant digits),
 * `max` and `mean` too.
 */
export interface Summary {
  readonly n: number
  readonly min: number
  readonly p50: number
  readonly p90: number
  readonly p99: number
  /** p99.9. */
  readonly p999: number
  readonly max: number
  readonly mean: number
  /** HdrHistogram's percentile distribution (its `outputPercentileDistribution` steps, 100 % last), for plots. */
  readonly percentiles: readonly PercentilePoint[]
}

/** An empty HdrHistogram that grows as values come (3 significant digits). */
export function newHistogram(): JsHistogram {
  const h: Histogram = build({ numberOfSignificantValueDigits: HDR_SIGNIFICANT_DIGITS })
  if (!(h instanceof JsHistogram)) throw new TypeError('expected hdr-histogram-js to build a JsHistogram, got a WebAssembly histogram')
  return h
}

/** Records one duration of `ms` milliseconds into `h`. Throws a RangeError for a negative or non-finite duration. */
export function recordMs(h: Histogram, ms: number): void {
  if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`expected a finite duration >= 0 ms, got ${ms}`)
  h.recordValue(Math.round(ms * HDR_UNITS_PER_MS))
}

/** A histogram of `samples` (ms). */
export function histogramOf(samples: Iterable<number>): JsHistogram {
  const h = newHistogram()
  for (const s of samples) recordMs(h, s)
  return h
}

/** HdrHistogram's value at percentile `p` (0-100) of `samples` (ms, any order); NaN when empty. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return NaN
  return histogramOf(samples).getValueAtPercentile(p) / HDR_UNITS_PER_MS
}

/** The {@link Summary} of histogram `h` (values recorded with {@link recordMs}); every figure NaN when empty (n 0). */
export function summarizeHistogram(h: JsHistogram): Summary {
  const n = h.totalCount
  const at = (p: number): number => (n === 0 ? NaN : h.getValueAtPercentile(p) / HDR_UNITS_PER_MS)
  const percentiles: PercentilePoint[] = []
  if (n > 0) {
    const it = h.percentileIterator
    it.reset(HDR_TICKS_PER_HALF_DISTANCE)
    while (it.hasNext()) {
      const v = it.next()
      percentiles.push({ percentile: v.percentileLevelIteratedTo, value: v.valueIteratedTo / HDR_UNITS_PER_MS })
    }
  }
  return {
    n,
    min: at(0),
    p50: at(50),
    p90: at(90),
    p99: at(99),
    p999: at(99.9),
    // As HdrHistogram reports it (Java getMaxValue()): the highest value equivalent to the largest recorded.
    max: n === 0 ? NaN : h.highestEquivalentValue(h.maxValue) / HDR_UNITS_PER_MS,
    mean: n === 0 ? NaN : h.mean / HDR_UNITS_PER_MS,
    percentiles,
  }
}

/** {@link Summary} of `samples` (ms; not modified), recorded into an HdrHistogram; every figure NaN when empty (n 0). */
export function summarize(samples: readonly number[]): Summary {
  return summarizeHistogram(histogramOf(samples))
}

/** The median (the mean of the middle two for an even count); NaN when empty. For a handful of rates, not for latencies. */
export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b)
  if (s.length === 0) return NaN
  const mid = s.length >> 1
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2
}

/** `summary` rounded to microseconds (its percentile distribution too), for the JSON file. */
export function roundSummary(summary: Summary, digits = 3): Summary {
  const r = (x: number): number => (Number.isFinite(x) ? Number(x.toFixed(digits)) : x)
  return {
    n: summary.n,
    min: r(summary.min),
    p50: r(summary.p50),
    p90: r(summary.p90),
    p99: r(summary.p99),
    p999: r(summary.p999),
    max: r(summary.max),
    mean: r(summary.mean),
    percentiles: summary.percentiles.map((p) => ({ percentile: p.percentile, value: r(p.value) })),
  }
}
