/**
 * The bench's latency statistics come from HdrHistogram (3 significant
 * digits) and are printed the way HdrHistogram summarises a distribution:
 * p50, p90, p99, p99.9 and max, each with its unit.
 */
import { describe, expect, it } from 'vitest'
import { fmtDuration, formatLatency } from '../../bench/lib/format.js'
import { histogramOf, percentile, roundSummary, summarize, summarizeHistogram } from '../../bench/lib/stats.js'

/** 1000 samples 0.01, 0.02, ... 10.00 ms, shuffled (HdrHistogram needs no sorted input). */
const SAMPLES = Array.from({ length: 1000 }, (_, i) => ((i * 389) % 1000) / 100 + 0.01)

describe('summarize (HdrHistogram)', () => {
  it('reports HdrHistogram percentiles: the highest value equivalent to the sample at that rank, within 0.1 %', () => {
    const s = summarize(SAMPLES)
    expect(s.n).toBe(1000)
    for (const [got, exact] of [
      [s.p50, 5],
      [s.p90, 9],
      [s.p99, 9.9],
      [s.p999, 9.99],
      [s.max, 10],
    ] as const) {
      expect(got).toBeGreaterThanOrEqual(exact)
      expect(got).toBeLessThan(exact * 1.001)
    }
    expect(s.min).toBeCloseTo(0.01, 4)
    expect(s.mean).toBeCloseTo(5.005, 2)
    // Exactly what the histogram says (a sort would give 5.00 and 10.00 exactly).
    expect(s.p50).toBe(histogramOf(SAMPLES).getValueAtPercentile(50) / 1e6)
    expect(s.p50).not.toBe(5)
  })

  it("keeps HdrHistogram's percentile distribution, ascending, ending at 100 % with the maximum", () => {
    const { percentiles, max } = summarize(SAMPLES)
    expect(percentiles.length).toBeGreaterThan(20)
    expect(percentiles[0]).toEqual({ percentile: 0, value: expect.closeTo(0.01, 4) as number })
    for (let i = 1; i < percentiles.length; i++) {
      expect(percentiles[i]!.percentile).toBeGreaterThanOrEqual(percentiles[i - 1]!.percentile)
      expect(percentiles[i]!.value).toBeGreaterThanOrEqual(percentiles[i - 1]!.value)
    }
    // 5 steps per half distance to 100 %: 0, 10, 20 ... 50, 55, 60 ... 75, 77.5 ...
    expect(percentiles.slice(0, 7).map((p) => p.percentile)).toEqual([0, 10, 20, 30, 40, 50, 55])
    expect(percentiles.at(-1)).toEqual({ percentile: 100, value: max })
  })

  it('an empty sample gives n 0, NaN figures and no distribution; a negative duration is refused', () => {
    const s = summarize([])
    expect(s.n).toBe(0)
    expect([s.min, s.p50, s.p999, s.max, s.mean].every(Number.isNaN)).toBe(true)
    expect(s.percentiles).toEqual([])
    expect(percentile([], 50)).toBeNaN()
    expect(() => summarize([1, -0.5])).toThrow(/expected a finite duration >= 0 ms, got -0.5/)
    expect(() => summarize([Number.NaN])).toThrow(RangeError)
  })

  it('percentile() takes samples in any order; summarizeHistogram() equals summarize() of the same samples', () => {
    expect(percentile([3, 1, 2], 50)).toBeCloseTo(2, 2)
    expect(summarizeHistogram(histogramOf(SAMPLES))).toEqual(summarize(SAMPLES))
  })

  it('roundSummary rounds every figure and the distribution to microseconds', () => {
    const r = roundSummary(summarize(SAMPLES))
    expect(r.p50).toBe(5.001)
    expect(r.percentiles.every((p) => Number(p.value.toFixed(3)) === p.value)).toBe(true)
    expect(r.percentiles.length).toBe(summarize(SAMPLES).percentiles.length)
  })
})

describe('formatLatency', () => {
  it('prints p50, p90, p99, p99.9 and max to 3 significant digits with their units, and the count', () => {
    expect(formatLatency(summarize(SAMPLES))).toBe('p50 5.00 ms, p90 9.00 ms, p99 9.90 ms, p99.9 9.99 ms, max 10.0 ms (n 1000)')
    expect(formatLatency(summarize([]))).toBe('no samples')
  })

  it('picks us, ms or s for each value', () => {
    expect(fmtDuration(0.17)).toBe('170 us')
    expect(fmtDuration(0.0425)).toBe('42.5 us')
    expect(fmtDuration(2.5)).toBe('2.50 ms')
    expect(fmtDuration(631)).toBe('631 ms')
    expect(fmtDuration(1500)).toBe('1.50 s')
    expect(formatLatency(summarize([0.17, 0.18, 0.2, 1.5, 2500]))).toBe('p50 200 us, p90 2.50 s, p99 2.50 s, p99.9 2.50 s, max 2.50 s (n 5)')
  })
})
