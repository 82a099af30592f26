import { describe, expect, it } from 'vitest'
import { parseJson } from '../../../src/json/parse.js'
import type { JsonObject } from '../../../src/json/value.js'
import { backoffDelay, DEFAULT_BACKOFF, policyFor } from '../../../src/reliable/backoff.js'
import type { BackoffPolicy } from '../../../src/reliable/backoff.js'
import {
  isAckTopic,
  ACK_MODNAME,
  ACK_TOPIC,
  ackBody,
  checkDeadline,
  CLOCK_SKEW_MARGIN_MS,
  DEFAULT_INBOX_RETENTION_MS,
  GILMSG_VERSION,
  MAX_DEADLINE_MS,
  MAX_MESSAGE_AGE_MS,
  MAX_MSG_ID_LENGTH,
  mustAck,
  parseAck,
  parseAcks,
  RECIPIENTS_FIELD,
  refusal,
  reliableFields,
  VERSION_FIELD,
} from '../../../src/reliable/protocol.js'
import { newMsgId } from '../../../src/envelope/envelope.js'
import { InvalidArgumentError } from '../../../src/errors.js'

const DIGEST = 'a'.repeat(32) + '0123456789abcdef'.repeat(2)

/** An envelope in the lossless model, as the bus hands it over. */
function env(fields: Record<string, unknown>): JsonObject {
  return parseJson(JSON.stringify({ topic: 't', msg_id: 'm', ...fields })) as JsonObject
}

describe('constants and reliableFields', () => {
  it('names the fields and the ACK topic as the spec does', () => {
    expect(GILMSG_VERSION).toBe('1.0')
    expect(VERSION_FIELD).toBe('gilmsg_version')
    expect(RECIPIENTS_FIELD).toBe('gilmsg_recipients')
    expect(`${ACK_MODNAME}.${ACK_TOPIC}`).toBe('gilmsg.ack')
  })

  it('reliableFields gives the version and a copy of the recipients', () => {
    const list = ['bob', 'carol']
    const fields = reliableFields(list)
    expect(fields).toEqual({ gilmsg_version: '1.0', gilmsg_recipients: ['bob', 'carol'] })
    list.push('mallory')
    expect(fields['gilmsg_recipients']).toEqual(['bob', 'carol'])
  })
})

describe('mustAck', () => {
  it('version and listed: ACK', () => {
    const e = env({ gilmsg_version: '1.0', gilmsg_recipients: ['alice', 'bob'] })
    expect(mustAck(e, 'bob')).toBe(true)
    expect(mustAck(e, 'alice')).toBe(true)
  })

  it('version and others listed: no ACK', () => {
    const e = env({ gilmsg_version: '1.0', gilmsg_recipients: ['alice'] })
    expect(mustAck(e, 'bob')).toBe(false)
    expect(mustAck(e, 'alic')).toBe(false)
    expect(mustAck(e, 'alice ')).toBe(false)
    expect(mustAck(env({ gilmsg_version: '1.0', gilmsg_recipients: [] }), 'bob')).toBe(false)
  })

  it('version and no recipient list (Python gilmsg 0.1.2): every consumer ACKs', () => {
    const e = env({ gilmsg_version: '0.1.2' })
    expect(mustAck(e, 'bob')).toBe(true)
    expect(mustAck(e, 'anyone')).toBe(true)
  })

  it('no version: never, even when listed', () => {
    expect(mustAck(env({}), 'bob')).toBe(false)
    expect(mustAck(env({ gilmsg_recipients: ['bob'] }), 'bob')).toBe(false)
  })

  it('a recipient list that is not a list: no ACK', () => {
    expect(mustAck(env({ gilmsg_version: '1.0', gilmsg_recipients: 'bob' }), 'bob')).toBe(false)
    expect(mustAck(env({ gilmsg_version: '1.0', gilmsg_recipients: { bob: true } }), 'bob')).toBe(false)
  })
})

describe('parseAck', () => {
  const ack = (msg: unknown): JsonObject => env(msg === undefined ? {} : { msg })

  it('reads a valid ACK', () => {
    expect(parseAck(ack({ ack_msg_id: 'm1', ack_digest: DIGEST, disposition: 'received' }))).toEqual({
      ack_msg_id: 'm1',
      ack_digest: DIGEST,
      disposition: 'received',
    })
    expect(parseAck(ack({ ack_msg_id: 'm1', ack_digest: DIGEST, disposition: 'processed' }))?.disposition).toBe('processed')
    expect(parseAck(ack({ ack_msg_id: 'm1', ack_digest: DIGEST, disposition: 'rejected', reason: 'no room' }))).toEqual({
      ack_msg_id: 'm1',
      ack_digest: DIGEST,
      disposition: 'rejected',
      reason: 'no room',
    })
  })

  it('ignores unknown extra keys', () => {
    const a = parseAck(ack({ ack_msg_id: 'm1', ack_digest: DIGEST, disposition: 'received', extra: 1 }))
    expect(a).toEqual({ ack_msg_id: 'm1', ack_digest: DIGEST, disposition: 'received' })
  })

  it('a legacy ACK without digest is read, with no digest', () => {
    const a = parseAck(ack({ ack_msg_id: 'm1', disposition: 'received' }))
    expect(a).toBeDefined()
    expect(a?.ack_msg_id).toBe('m1')
    expect(a?.ack_digest).toBeUndefined()
    expect(a !== undefined && 'ack_digest' in a).toBe(false)
  })

  it('a missing disposition reads as received', () => {
    expect(parseAck(ack({ ack_msg_id: 'm1', ack_digest: DIGEST }))).toEqual({ ack_msg_id: 'm1', ack_digest: DIGEST, disposition: 'received' })
    // Python gilmsg 0.1.2: only the msg_id.
    expect(parseAck(ack({ ack_msg_id: 'm1' }))).toEqual({ ack_msg_id: 'm1', disposition: 'received' })
  })

  it.each([
    ['upper case', DIGEST.toUpperCase()],
    ['63 digits', DIGEST.slice(1)],
    ['65 digits', DIGEST + '0'],
    ['not hex', 'g'.repeat(64)],
    ['sha1 length', 'a'.repeat(40)],
    ['empty', ''],
    ['a number', 12],
    ['null', null],
    ['a list', [DIGEST]],
  ])('a malformed digest (%s) is refused', (_, digest) => {
    expect(parseAck(ack({ ack_msg_id: 'm1', ack_digest: digest, disposition: 'received' }))).toBeUndefined()
  })

  it.each(['done', 'RECEIVED', 'accepted', '', 1, true])('an unknown disposition (%j) is refused', (disposition) => {
    expect(parseAck(ack({ ack_msg_id: 'm1', ack_digest: DIGEST, disposition }))).toBeUndefined()
  })

  it('ack_msg_id must be a string', () => {
    expect(parseAck(ack({ ack_digest: DIGEST, disposition: 'received' }))).toBeUndefined()
    expect(parseAck(ack({ ack_msg_id: 5, ack_digest: DIGEST, disposition: 'received' }))).toBeUndefined()
    expect(parseAck(ack({ ack_msg_id: null, ack_digest: DIGEST }))).toBeUndefined()
  })

  it(`ack_msg_id of at most ${MAX_MSG_ID_LENGTH} characters: a longer one is refused, alone or in a batch`, () => {
    expect(parseAck(ack({ ack_msg_id: 'm'.repeat(MAX_MSG_ID_LENGTH), ack_digest: DIGEST }))?.ack_msg_id).toHaveLength(MAX_MSG_ID_LENGTH)
    expect(parseAck(ack({ ack_msg_id: 'm'.repeat(MAX_MSG_ID_LENGTH + 1), ack_digest: DIGEST }))).toBeUndefined()
    const item = (id: string) => ({ ack_msg_id: id, ack_digest: DIGEST, disposition: 'received' })
    expect(parseAcks(ack({ acks: [item('m1'), item('m'.repeat(MAX_MSG_ID_LENGTH + 1))] }))).toBeUndefined()
  })

  it('reason must be a string when present', () => {
    expect(parseAck(ack({ ack_msg_id: 'm1', ack_digest: DIGEST, disposition: 'rejected', reason: 5 }))).toBeUndefined()
    expect(parseAck(ack({ ack_msg_id: 'm1', ack_digest: DIGEST, disposition: 'rejected', reason: ['x'] }))).toBeUndefined()
  })

  it.each([
    ['a string', 'm1'],
    ['a number', 1],
    ['null', null],
    ['a list', [{ ack_msg_id: 'm1', ack_digest: DIGEST }]],
    ['an empty list', []],
    ['missing', undefined],
  ])('a msg that is not an object (%s) is refused', (_, msg) => {
    expect(parseAck(ack(msg))).toBeUndefined()
  })
})

describe('refusal: which guaranteed messages a consumer refuses before its inbox', () => {
  const NOW = Date.UTC(2026, 5, 1, 12)
  const signedAt = (ms: number): JsonObject => env({ timestamp: Math.floor(ms / 1000) })

  it('accepts a message signed now, up to MAX_MESSAGE_AGE_MS (6 days) ago, and up to CLOCK_SKEW_MARGIN_MS (1 day) ahead', () => {
    expect(MAX_MESSAGE_AGE_MS).toBe(DEFAULT_INBOX_RETENTION_MS - CLOCK_SKEW_MARGIN_MS)
    expect([DEFAULT_INBOX_RETENTION_MS, CLOCK_SKEW_MARGIN_MS, MAX_MESSAGE_AGE_MS, MAX_DEADLINE_MS].map((ms) => ms / 86_400_000)).toEqual([7, 1, 6, 5])
    expect(refusal('m', signedAt(NOW), NOW)).toBeUndefined()
    expect(refusal('m', signedAt(NOW - MAX_MESSAGE_AGE_MS), NOW)).toBeUndefined()
    expect(refusal('m', signedAt(NOW + CLOCK_SKEW_MARGIN_MS), NOW)).toBeUndefined()
  })

  it('stale: signed (whole seconds) before now - maxAge; from_future: after now + the margin', () => {
    expect(refusal('m', signedAt(NOW - MAX_MESSAGE_AGE_MS - 1000), NOW)).toBe('stale')
    expect(refusal('m', signedAt(NOW + CLOCK_SKEW_MARGIN_MS + 1000), NOW)).toBe('from_future')
    expect(refusal('m', signedAt(0), NOW)).toBe('stale')
    // A shorter retention narrows the window.
    expect(refusal('m', signedAt(NOW - 2 * 3_600_000), NOW, 3_600_000)).toBe('stale')
  })

  it('no_timestamp: missing, not an integer; msg_id_too_long comes first', () => {
    expect(refusal('m', env({}), NOW)).toBe('no_timestamp')
    expect(refusal('m', env({ timestamp: '1700000000' }), NOW)).toBe('no_timestamp')
    expect(refusal('m', env({ timestamp: 1.5e9 + 0.5 }), NOW)).toBe('no_timestamp')
    expect(refusal('m'.repeat(MAX_MSG_ID_LENGTH + 1), signedAt(NOW), NOW)).toBe('msg_id_too_long')
    expect(refusal('m'.repeat(MAX_MSG_ID_LENGTH), signedAt(NOW), NOW)).toBeUndefined()
  })

  it('a publisher never makes a msg_id near the limit: <year>-<uuid> is 41 characters', () => {
    expect(newMsgId(NOW)).toMatch(/^2026-[0-9a-f-]{36}$/)
    expect(newMsgId(NOW)).toHaveLength(41)
  })

  it('checkDeadline: at most MAX_DEADLINE_MS, else an InvalidArgumentError naming the maximum', () => {
    expect(() => checkDeadline(MAX_DEADLINE_MS, 'deadline')).not.toThrow()
    expect(() => checkDeadline(MAX_DEADLINE_MS + 1, 'deadline')).toThrow(InvalidArgumentError)
    expect(() => checkDeadline(MAX_DEADLINE_MS + 1, '--deadline')).toThrow(`--deadline: expected at most ${MAX_DEADLINE_MS} ms (5 days`)
  })
})

describe('ackBody', () => {
  it('builds received and processed bodies without reason', () => {
    const a = ackBody('m1', DIGEST, 'received')
    expect(a).toEqual({ ack_msg_id: 'm1', ack_digest: DIGEST, disposition: 'received' })
    expect('reason' in a).toBe(false)
    expect(ackBody('m1', DIGEST, 'processed')).toEqual({ ack_msg_id: 'm1', ack_digest: DIGEST, disposition: 'processed' })
  })

  it('keeps the reason of a rejection', () => {
    expect(ackBody('m1', DIGEST, 'rejected', 'bad input')).toEqual({
      ack_msg_id: 'm1',
      ack_digest: DIGEST,
      disposition: 'rejected',
      reason: 'bad input',
    })
  })

  it('round-trips through parseAck', () => {
    for (const body of [ackBody('m1', DIGEST, 'received'), ackBody('m2', DIGEST, 'processed'), ackBody('m3', DIGEST, 'rejected', 'why')]) {
      expect(parseAck(env({ msg: body }))).toEqual(body)
    }
  })
})

describe('backoffDelay', () => {
  const low = (): number => 0
  const high = (): number => 1 - Number.EPSILON / 2 // the largest double below 1
  const long = { longCapMs: 30_000, longAfterMs: 300_000 }
  const policies: BackoffPolicy[] = [DEFAULT_BACKOFF, { baseMs: 10, capMs: 1000, ...long }, { baseMs: 100, capMs: 150, ...long }, { baseMs: 1, capMs: 1, ...long }]

  it('the default policy: first resend within 50 ms, never more than 2 s', () => {
    expect(DEFAULT_BACKOFF).toEqual({ baseMs: 50, capMs: 2000, longCapMs: 30_000, longAfterMs: 300_000 })
    expect(backoffDelay(DEFAULT_BACKOFF, 1, low)).toBe(12.5)
    expect(backoffDelay(DEFAULT_BACKOFF, 1, high)).toBeLessThan(50)
    expect(backoffDelay(DEFAULT_BACKOFF, 1, high)).toBeGreaterThan(49.99)
    expect(backoffDelay(DEFAULT_BACKOFF, 2, high)).toBeGreaterThan(99.99)
    expect(backoffDelay(DEFAULT_BACKOFF, 2, high)).toBeLessThan(100)
    expect(backoffDelay(DEFAULT_BACKOFF, 100, high)).toBeLessThanOrEqual(2000)
    expect(backoffDelay(DEFAULT_BACKOFF, 100, high)).toBeGreaterThan(1999.99)
  })

  it.each(policies)('bounds for %j: floor baseMs/4, ceiling min(cap, base * 2^(n-1))', (policy) => {
    for (let n = 1; n <= 40; n++) {
      const ceiling = Math.min(policy.capMs, policy.baseMs * 2 ** (n - 1))
      const floor = Math.min(policy.baseMs / 4, ceiling)
      const lo = backoffDelay(policy, n, low)
      const hi = backoffDelay(policy, n, high)
      expect(lo).toBe(floor)
      expect(hi).toBeLessThanOrEqual(ceiling)
      expect(hi).toBeGreaterThanOrEqual(ceiling - 1e-9 * ceiling)
      expect(hi).toBeLessThanOrEqual(policy.capMs)
      expect(lo).toBeGreaterThan(0)
      for (const r of [0.25, 0.5, 0.75]) {
        const d = backoffDelay(policy, n, () => r)
        expect(d).toBeGreaterThanOrEqual(floor)
        expect(d).toBeLessThanOrEqual(ceiling)
        expect(d).toBeCloseTo(floor + r * (ceiling - floor), 9)
      }
    }
  })

  it('the ceiling is monotone in the attempt number and reaches the cap', () => {
    let previous = 0
    const ceilings: number[] = []
    for (let n = 1; n <= 64; n++) {
      const c = backoffDelay(DEFAULT_BACKOFF, n, high)
      expect(c).toBeGreaterThanOrEqual(previous)
      previous = c
      ceilings.push(Math.round(c))
    }
    expect(ceilings.slice(0, 7)).toEqual([50, 100, 200, 400, 800, 1600, 2000])
    expect(ceilings.at(-1)).toBe(2000)
  })

  it('attempt 0 and negative attempts act as the first resend', () => {
    for (const n of [0, -1, -1000, Number.MIN_SAFE_INTEGER]) {
      expect(backoffDelay(DEFAULT_BACKOFF, n, low)).toBe(12.5)
      const hi = backoffDelay(DEFAULT_BACKOFF, n, high)
      expect(Number.isFinite(hi)).toBe(true)
      expect(hi).toBeLessThanOrEqual(50)
      expect(hi).toBeGreaterThanOrEqual(12.5)
    }
  })

  it('huge attempt numbers do not overflow', () => {
    for (const n of [31, 1024, 1e6, Number.MAX_SAFE_INTEGER, Infinity]) {
      for (const policy of policies) {
        const hi = backoffDelay(policy, n, high)
        const lo = backoffDelay(policy, n, low)
        expect(Number.isFinite(hi)).toBe(true)
        expect(hi).toBeLessThanOrEqual(policy.capMs)
        expect(hi).toBeGreaterThan(policy.capMs * 0.999)
        expect(lo).toBe(Math.min(policy.baseMs / 4, policy.capMs))
      }
    }
  })

  it('uses Math.random by default and stays within bounds', () => {
    for (let k = 0; k < 1000; k++) {
      const d = backoffDelay(DEFAULT_BACKOFF, 3)
      expect(d).toBeGreaterThanOrEqual(12.5)
      expect(d).toBeLessThanOrEqual(200)
    }
  })
})

describe('parseAck follows ack.schema.json', () => {
  it('refuses a rejection without a reason and a null disposition', () => {
    const base = { ack_msg_id: 'm', ack_digest: 'a'.repeat(64) }
    expect(parseAck(env({ msg: { ...base, disposition: 'rejected' } }))).toBeUndefined()
    expect(parseAck(env({ msg: { ...base, disposition: 'rejected', reason: '' } }))).toBeUndefined()
    expect(parseAck(env({ msg: { ...base, disposition: null } }))).toBeUndefined()
    expect(parseAck(env({ msg: { ...base, disposition: 'rejected', reason: 'bad' } }))).toMatchObject({ disposition: 'rejected', reason: 'bad' })
  })
})

describe('policyFor', () => {
  it('caps resends of long-deadline messages at longCapMs, others at capMs', () => {
    expect(policyFor(DEFAULT_BACKOFF, 10_000).capMs).toBe(2000)
    expect(policyFor(DEFAULT_BACKOFF, 300_000).capMs).toBe(2000)
    expect(policyFor(DEFAULT_BACKOFF, 24 * 3_600_000).capMs).toBe(30_000)
    expect(backoffDelay(policyFor(DEFAULT_BACKOFF, 24 * 3_600_000), 40, () => 0.999999)).toBeGreaterThan(29_000)
  })
})

describe('isAckTopic', () => {
  it('recognises <prefix>.<env>.gilmsg.ack of any prefix and environment, and nothing else', () => {
    for (const t of ['org.fedoraproject.prod.gilmsg.ack', 'org.test.unit.gilmsg.ack', 'gilmsg.ack', 'x.gilmsg.ack']) expect(isAckTopic(t), t).toBe(true)
    for (const t of ['org.fedoraproject.prod.gilmsg.log', 'org.fedoraproject.prod.gilmsg.ack.more', 'org.test.unit.notgilmsg.ack', 'org.test.unit.gilmsg.acks', 'gilmsgxack', '']) {
      expect(isAckTopic(t), t).toBe(false)
    }
  })
})
