/**
 * The round-trip estimator on its own (RFC 6298 with Karn's rule and
 * algorithm): its formulas on known inputs, which samples it learns from, the
 * timeout backoff and the resend delays it gives. `backoff.test.ts` checks the
 * same behaviour through a publisher.
 */
import { describe, expect, it } from 'vitest'
import { DEFAULT_BACKOFF, type BackoffPolicy } from '../../../src/reliable/backoff.js'
import { FIRST_RESEND_JITTER, MAX_RTO_BACKOFF, RttEstimator } from '../../../src/reliable/rtt.js'

const LOW = (): number => 0
const HIGH = (): number => 0.999999
const T = 1_000_000

/** An estimator that has seen the clean round trips `samples` (ms). */
function measured(samples: readonly number[], random: () => number = LOW, policy: BackoffPolicy = DEFAULT_BACKOFF): RttEstimator {
  const rtt = new RttEstimator(policy, random)
  for (const s of samples) rtt.acknowledged(T, T + s, false)
  return rtt
}

describe('RFC 6298 estimates', () => {
  it('knows nothing before a first sample: no srtt, no timeout, the policy unchanged', () => {
    const rtt = new RttEstimator(DEFAULT_BACKOFF)
    expect([rtt.srttMs, rtt.rttvarMs, rtt.rtoMs, rtt.backoff]).toEqual([undefined, 0, undefined, 1])
    expect(rtt.policy(0)).toBe(DEFAULT_BACKOFF)
  })

  it('first sample R: srtt = R, rttvar = R/2, rto = srtt + 4 rttvar', () => {
    const rtt = measured([100])
    expect([rtt.srttMs, rtt.rttvarMs, rtt.rtoMs]).toEqual([100, 50, 300])
  })

  it("later samples R': rttvar = 3/4 rttvar + 1/4 |srtt - R'|, then srtt = 7/8 srtt + 1/8 R'", () => {
    const rtt = measured([100, 200])
    expect([rtt.srttMs, rtt.rttvarMs, rtt.rtoMs]).toEqual([112.5, 62.5, 362.5])
    rtt.acknowledged(T, T + 50, false)
    // rttvar uses the srtt from before this sample: 0.75 * 62.5 + 0.25 * |112.5 - 50|.
    expect([rtt.srttMs, rtt.rttvarMs, rtt.rtoMs]).toEqual([104.6875, 62.5, 354.6875])
  })

  it('the variance term is never below the clock granularity (1 ms)', () => {
    const rtt = measured(Array.from({ length: 40 }, () => 10))
    expect(rtt.rttvarMs).toBeLessThan(0.25)
    expect(rtt.rtoMs).toBe(11)
  })

  it('ignores a negative round trip and one beyond the cap', () => {
    const rtt = measured([100])
    rtt.acknowledged(T + 5, T, false)
    rtt.acknowledged(T, T + DEFAULT_BACKOFF.capMs + 1, false)
    expect([rtt.srttMs, rtt.rttvarMs]).toEqual([100, 50])
    rtt.acknowledged(T, T + DEFAULT_BACKOFF.capMs, false)
    expect(rtt.srttMs).toBe(0.875 * 100 + 0.125 * DEFAULT_BACKOFF.capMs)
  })
})

describe("Karn's rule and algorithm", () => {
  it('a resent message teaches nothing: no sample, and the backoff stays', () => {
    const rtt = measured([100])
    rtt.timedOut(T)
    rtt.acknowledged(T, T + 900, true)
    expect([rtt.srttMs, rtt.rttvarMs, rtt.backoff]).toEqual([100, 50, 2])
    const fresh = new RttEstimator(DEFAULT_BACKOFF)
    fresh.acknowledged(T, T + 40, true)
    expect(fresh.srttMs).toBeUndefined()
  })

  it('a timeout doubles the base, at most once per (doubled) base period', () => {
    const rtt = new RttEstimator(DEFAULT_BACKOFF)
    rtt.timedOut(T)
    expect([rtt.backoff, rtt.policy(0).baseMs]).toEqual([2, 100])
    rtt.timedOut(T + 99) // within the base period (now 100 ms): the same burst of timeouts
    expect(rtt.backoff).toBe(2)
    rtt.timedOut(T + 100)
    expect([rtt.backoff, rtt.policy(0).baseMs]).toEqual([4, 200])
    rtt.timedOut(T + 299)
    expect(rtt.backoff).toBe(4)
  })

  it(`the backoff stops at ${MAX_RTO_BACKOFF} times, and the base never passes the cap`, () => {
    const rtt = new RttEstimator(DEFAULT_BACKOFF)
    for (let i = 0; i < 20; i++) rtt.timedOut(T + i * 10_000)
    expect(rtt.backoff).toBe(MAX_RTO_BACKOFF)
    expect(rtt.policy(0).baseMs).toBe(DEFAULT_BACKOFF.capMs)
    const long = rtt.policy(DEFAULT_BACKOFF.longAfterMs + 1)
    expect(long).toMatchObject({ baseMs: DEFAULT_BACKOFF.baseMs * MAX_RTO_BACKOFF, capMs: DEFAULT_BACKOFF.longCapMs })
  })

  it('a clean ACK resets the backoff to 1', () => {
    const rtt = new RttEstimator(DEFAULT_BACKOFF)
    rtt.timedOut(T)
    rtt.timedOut(T + 1000)
    expect(rtt.backoff).toBe(4)
    rtt.acknowledged(T + 2000, T + 2030, false)
    expect(rtt.backoff).toBe(1)
    expect(rtt.policy(0).baseMs, 'the timeout of that sample, 30 + 4 * 15, times 1').toBe(90)
  })
})

describe('resend delays', () => {
  const base = DEFAULT_BACKOFF.baseMs

  it('before a round trip is known: the first resend in [base/4, base), later ones the plain backoff', () => {
    expect(new RttEstimator(DEFAULT_BACKOFF, LOW).firstResendDelay(60_000)).toBe(base / 4)
    expect(new RttEstimator(DEFAULT_BACKOFF, HIGH).firstResendDelay(60_000)).toBeCloseTo(base, 1)
    const m = { createdAt: T, deadline: T + 60_000, attempts: 3 }
    expect(new RttEstimator(DEFAULT_BACKOFF, LOW).resendDelay(m)).toBe(base / 4)
    expect(new RttEstimator(DEFAULT_BACKOFF, HIGH).resendDelay(m)).toBeCloseTo(4 * base, 1)
  })

  it('once it is known: the first resend in [rto, (1 + jitter) rto], never past the cap', () => {
    expect(measured([100], LOW).firstResendDelay(60_000)).toBe(300)
    expect(measured([100], HIGH).firstResendDelay(60_000)).toBeCloseTo(300 * (1 + FIRST_RESEND_JITTER), 1)
    expect(measured([1900], HIGH).firstResendDelay(60_000)).toBe(DEFAULT_BACKOFF.capMs)
  })

  it('once it is known: resend n + 1 of a message in [rto, 2^n rto], never past its cap', () => {
    const m = { createdAt: T, deadline: T + 60_000, attempts: 2 }
    expect(measured([100], LOW).resendDelay(m)).toBe(300)
    expect(measured([100], HIGH).resendDelay(m)).toBeCloseTo(1200, 1)
    expect(measured([100], HIGH).resendDelay({ ...m, attempts: 10 })).toBeCloseTo(DEFAULT_BACKOFF.capMs, 1)
    const background = { ...m, attempts: 10, deadline: T + DEFAULT_BACKOFF.longAfterMs + 1 }
    expect(measured([100], HIGH).resendDelay(background)).toBeCloseTo(DEFAULT_BACKOFF.longCapMs, 1)
  })

  it('the timeout backoff multiplies the first-resend delay', () => {
    const rtt = new RttEstimator(DEFAULT_BACKOFF, HIGH)
    rtt.timedOut(T)
    rtt.timedOut(T + 1000)
    expect(rtt.firstResendDelay(60_000)).toBeCloseTo(4 * base, 1)
  })

  it('firstResendTimeout: none before a round trip is known; then the jitter-free floor of the first-resend delay, backoff included', () => {
    expect(new RttEstimator(DEFAULT_BACKOFF, HIGH).firstResendTimeout(60_000)).toBeUndefined()
    const rtt = measured([100], LOW)
    expect(rtt.firstResendTimeout(60_000)).toBe(300)
    expect(rtt.firstResendDelay(60_000)).toBe(300)
    expect(measured([100], HIGH).firstResendDelay(60_000)).toBeGreaterThanOrEqual(300)
    rtt.timedOut(T)
    expect(rtt.firstResendTimeout(60_000)).toBe(600)
    const slow = measured([1500], LOW)
    expect(slow.firstResendTimeout(60_000), 'never past the cap').toBe(DEFAULT_BACKOFF.capMs)
  })
})
