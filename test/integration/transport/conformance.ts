import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ClosedError, ErrorCode, InvalidArgumentError } from '../../../src/errors.js'
import type { PubSocket, RawMessage, SubscriberOptions, SubSocket } from '../../../src/transport/transport.js'
import { take, takeThrough } from './helpers.js'

/** Anything a subscriber can be pointed at: a publisher or a raw sender. */
export interface Source {
  readonly endpoints: readonly string[]
}

/** Sends arbitrary frames (any number, any bytes) as a hostile peer would, bypassing every check. */
export interface RawSender extends Source {
  /** Resolves once `count` subscriptions (one per prefix) of subscribers pointed at it have arrived. */
  waitForSubscriptions(count: number): Promise<void>
  send(...frames: (Buffer | string)[]): Promise<void>
}

/** One transport under test. A fresh one per test; `close()` closes whatever it opened. */
export interface TransportUnderTest {
  /** A publisher that subscribers pointed at it can reach. */
  openPublisher(): Promise<PubSocket>
  /** A subscriber receiving from every source in `from`, accepting messages up to `maxMessageBytes` (default: the transport's). */
  openSubscriber(from: readonly Source[], options?: SubscriberOptions, maxMessageBytes?: number): Promise<SubSocket>
  openRawSender(): Promise<RawSender>
  /** What every endpoint of a publisher looks like. */
  readonly endpointPattern: RegExp
  close(): Promise<void>
}

const END = 'zz.end'

function iterate(sub: SubSocket): AsyncIterator<RawMessage, undefined> {
  return sub[Symbol.asyncIterator]()
}

const topics = (messages: readonly RawMessage[]): string[] => messages.map((m) => m.topic)

/** Whether `p` has settled once everything already queued has run (timers aside). */
async function isSettled(p: Promise<unknown>): Promise<boolean> {
  let settled = false
  void p.then(
    () => (settled = true),
    () => (settled = true),
  )
  await new Promise((resolve) => setImmediate(resolve))
  return settled
}

/** Polls `check` every 10 ms until it returns true; false after `deadlineMs`. */
async function eventually(check: () => Promise<boolean>, deadlineMs = 5000): Promise<boolean> {
  const until = Date.now() + deadlineMs
  for (;;) {
    if (await check()) return true
    if (Date.now() > until) return false
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/**
 * The Transport / PubSocket / SubSocket contract (src/transport/transport.ts),
 * run against one implementation. Subscribers are known to be connected by
 * `waitForSubscribers` alone (the contract's answer to the slow joiner), never
 * by probes or sleeps; "nothing else arrived" is shown by reading through an
 * end marker sent after it.
 */
export function describeTransportConformance(name: string, make: () => TransportUnderTest): void {
  describe(`Transport conformance: ${name}`, () => {
    let t: TransportUnderTest

    beforeEach(() => {
      t = make()
    })

    afterEach(async () => {
      await t.close()
    })

    /** A publisher and one subscriber on `prefixes`, connected: the subscriber receives what is sent from now on. */
    async function pair(
      prefixes: readonly string[] = [''],
      options: Omit<SubscriberOptions, 'prefixes'> = {},
    ): Promise<{ pub: PubSocket; sub: SubSocket; it: AsyncIterator<RawMessage, undefined> }> {
      const pub = await t.openPublisher()
      const sub = await t.openSubscriber([pub], { ...options, prefixes })
      for (const prefix of prefixes) await expect(pub.waitForSubscribers(prefix, { timeoutMs: 5000 })).resolves.toBe(true)
      return { pub, sub, it: iterate(sub) }
    }

    describe('messages', () => {
      it('delivers two-frame messages byte for byte, as Buffers, in send order', async () => {
        const { pub, it: messages } = await pair()
        const special = [
          { topic: '', body: Buffer.alloc(0) },
          { topic: 'org.example.nul\u0000inside', body: Buffer.from('a\u0000b') },
          { topic: 'org.example.bom', body: Buffer.from([0xef, 0xbb, 0xbf, 0x7b, 0x7d]) },
          { topic: 'org.example.é€😀', body: Buffer.from('{"s":"é€😀 \\"q\\" \\\\ /","n":1.0e+16}') },
        ]
        const sent = [
          ...special,
          ...Array.from({ length: 1000 }, (_, i) => ({
            topic: `org.example.n${i}`,
            body: Buffer.from(JSON.stringify({ i, text: 'é€😀', pad: 'x'.repeat(i % 97) })),
          })),
        ]
        for (const [i, m] of sent.entries()) await pub.send(m.topic, i % 2 === 0 ? m.body : m.body.toString('utf8'))
        const got = await take(messages, sent.length)
        expect(topics(got)).toEqual(sent.map((m) => m.topic))
        got.forEach((m, i) => {
          expect(Buffer.isBuffer(m.body)).toBe(true)
          expect(m.body.equals(sent[i]!.body)).toBe(true)
        })
      })

      it('send() resolves when no subscriber is listening', async () => {
        const pub = await t.openPublisher()
        await expect(pub.send('nobody.listens', '{}')).resolves.toBeUndefined()
      })

      it('copies the body in send(): changing the buffer after send() returned changes nothing', async () => {
        const { pub, it: messages } = await pair()
        const large = Buffer.alloc(4096, 'a')
        const small = Buffer.from('small')
        // Several sends in flight at once, each buffer overwritten as soon as send() returns.
        const sending = [pub.send('copy.first', 'x'), pub.send('copy.large', large), pub.send('copy.small', small)]
        large.fill('b')
        small.fill('c')
        await Promise.all(sending)
        const got = await take(messages, 3)
        expect(topics(got)).toEqual(['copy.first', 'copy.large', 'copy.small'])
        expect(got[1]!.body.equals(Buffer.alloc(4096, 'a'))).toBe(true)
        expect(got[2]!.body.toString()).toBe('small')
      })

      it('gives every subscriber its own copy of every message', async () => {
        const pub = await t.openPublisher()
        const subs = [await t.openSubscriber([pub]), await t.openSubscriber([pub]), await t.openSubscriber([pub])]
        await expect(pub.waitForSubscribers('each', { count: 3, timeoutMs: 5000 })).resolves.toBe(true)
        const its = subs.map(iterate)
        for (let i = 0; i < 20; i++) await pub.send(`each.${i}`, `body ${i}`)
        const got = await Promise.all(its.map((i) => take(i, 20)))
        const expected = Array.from({ length: 20 }, (_, i) => `each.${i}:body ${i}`)
        for (const list of got) expect(list.map((m) => `${m.topic}:${m.body.toString()}`)).toEqual(expected)
        got[0]![0]!.body.fill(0)
        expect(got[1]![0]!.body.toString()).toBe('body 0')
        expect(got[2]![0]!.body.toString()).toBe('body 0')
      })

      it('keeps the order of each publisher when a subscriber hears several', async () => {
        const p1 = await t.openPublisher()
        const p2 = await t.openPublisher()
        const messages = iterate(await t.openSubscriber([p1, p2]))
        for (const pub of [p1, p2]) await expect(pub.waitForSubscribers('', { timeoutMs: 5000 })).resolves.toBe(true)
        const n = 200
        for (let i = 0; i < n; i++) {
          await p1.send(`one.${i}`, '{}')
          await p2.send(`two.${i}`, '{}')
        }
        const got = topics(await take(messages, 2 * n))
        expect(got.filter((x) => x.startsWith('one.'))).toEqual(Array.from({ length: n }, (_, i) => `one.${i}`))
        expect(got.filter((x) => x.startsWith('two.'))).toEqual(Array.from({ length: n }, (_, i) => `two.${i}`))
      })

      it('accepts a message of exactly maxMessageBytes (topic + body) and drops one byte more as too_large', async () => {
        const drops: string[] = []
        const pub = await t.openPublisher()
        // Each frame stays within the limit: a single frame over it costs the connection over ZeroMQ (its own test).
        const messages = iterate(await t.openSubscriber([pub], { onDrop: (r) => drops.push(r) }, 64))
        await expect(pub.waitForSubscribers('t', { timeoutMs: 5000 })).resolves.toBe(true)
        await pub.send('t', 'x'.repeat(63))
        await pub.send('t', 'y'.repeat(64))
        await pub.send('end', '')
        const got = await takeThrough(messages, 'end')
        expect(got.map((m) => `${m.topic}:${m.body.toString()}`)).toEqual([`t:${'x'.repeat(63)}`, 'end:'])
        expect(drops).toEqual(['too_large'])
      })
    })

    describe('endpoints', () => {
      it('lists where the publisher can be reached, and keeps it after close()', async () => {
        const pub = await t.openPublisher()
        const endpoints = [...pub.endpoints]
        expect(endpoints.length).toBeGreaterThan(0)
        for (const e of endpoints) expect(e).toMatch(t.endpointPattern)
        await pub.close()
        expect(pub.endpoints).toEqual(endpoints)
      })
    })

    describe('prefix filtering', () => {
      it('delivers the topics that start with a prefix, once even when several prefixes match', async () => {
        const { pub, it: messages } = await pair(['org.a.', 'org.a.b', END])
        for (const topic of ['org.a.1', 'org.b.1', 'org.ab', 'org.a.b.c', 'org.a', 'org.a.', 'xorg.a.1', END]) await pub.send(topic, '{}')
        expect(topics(await takeThrough(messages, END))).toEqual(['org.a.1', 'org.a.b.c', 'org.a.', END])
      })

      it('compares prefixes with topics as UTF-8 bytes', async () => {
        const { pub, it: messages } = await pair(['café.', '😀', END])
        const sent = ['café.1', 'cafe.1', 'cafe\u0301.1', 'CAFÉ.1', 'café', '😀', '😀.x', '😁.x', 'é', END]
        for (const topic of sent) await pub.send(topic, '{}')
        expect(topics(await takeThrough(messages, END))).toEqual(['café.1', '😀', '😀.x', END])
        await expect(pub.waitForSubscribers('😀.y', { timeoutMs: 0 })).resolves.toBe(true)
        await expect(pub.waitForSubscribers('cafe\u0301.x', { timeoutMs: 0 })).resolves.toBe(false)
        await expect(pub.waitForSubscribers('😁', { timeoutMs: 0 })).resolves.toBe(false)
      })

      it('subscribes to everything by default, the empty topic included', async () => {
        const pub = await t.openPublisher()
        const messages = iterate(await t.openSubscriber([pub]))
        await expect(pub.waitForSubscribers('', { timeoutMs: 5000 })).resolves.toBe(true)
        for (const topic of ['x', '', 'org.anything', END]) await pub.send(topic, '{}')
        expect(topics(await takeThrough(messages, END))).toEqual(['x', '', 'org.anything', END])
      })

      it('receives a prefix added later, from the first message sent once waitForSubscribers says so', async () => {
        const { pub, sub, it: messages } = await pair(['org.a.'])
        await pub.send('org.b.before', '{}')
        sub.subscribe('org.b.')
        await expect(pub.waitForSubscribers('org.b.x', { timeoutMs: 5000 })).resolves.toBe(true)
        for (const topic of ['org.b.after', 'org.c.1', 'org.a.1']) await pub.send(topic, '{}')
        expect(topics(await take(messages, 2))).toEqual(['org.b.after', 'org.a.1'])
      })

      it('with prefixes [] receives nothing until subscribe()', async () => {
        const pub = await t.openPublisher()
        const none = await t.openSubscriber([pub], { prefixes: [] })
        const witness = iterate(await t.openSubscriber([pub], { prefixes: ['t'] }))
        await expect(pub.waitForSubscribers('t', { timeoutMs: 5000 })).resolves.toBe(true)
        await expect(pub.waitForSubscribers('t', { count: 2, timeoutMs: 0 })).resolves.toBe(false)
        await pub.send('t.1', '{}')
        expect(topics(await take(witness, 1))).toEqual(['t.1'])
        none.subscribe('t')
        await expect(pub.waitForSubscribers('t', { count: 2, timeoutMs: 5000 })).resolves.toBe(true)
        await pub.send('t.2', '{}')
        expect(topics(await take(iterate(none), 1))).toEqual(['t.2'])
      })
    })

    describe('waitForSubscribers', () => {
      it('resolves true at once when already satisfied, and for count 0', async () => {
        const pub = await t.openPublisher()
        await expect(pub.waitForSubscribers('t', { count: 0, timeoutMs: 0 })).resolves.toBe(true)
        await t.openSubscriber([pub], { prefixes: ['t'] })
        await expect(pub.waitForSubscribers('t.x', { timeoutMs: 5000 })).resolves.toBe(true)
        await expect(pub.waitForSubscribers('t.x', { timeoutMs: 0 })).resolves.toBe(true)
        expect(await isSettled(pub.waitForSubscribers('t.y'))).toBe(true)
      })

      it('resolves true when a subscriber opens later; the first message sent then arrives', async () => {
        const pub = await t.openPublisher()
        const waiting = pub.waitForSubscribers('org.later.first')
        expect(await isSettled(waiting)).toBe(false)
        const messages = iterate(await t.openSubscriber([pub], { prefixes: ['org.later.'] }))
        await expect(waiting).resolves.toBe(true)
        await pub.send('org.later.first', '{"n":1}')
        await pub.send('org.later.second', '{"n":2}')
        expect((await take(messages, 2)).map((m) => `${m.topic} ${m.body.toString()}`)).toEqual([
          'org.later.first {"n":1}',
          'org.later.second {"n":2}',
        ])
      })

      it('matches by prefix, and a later subscribe() satisfies a pending wait', async () => {
        const { pub, sub } = await pair(['a.'])
        await expect(pub.waitForSubscribers('a.', { timeoutMs: 0 })).resolves.toBe(true)
        for (const topic of ['b.x', 'a', 'xa.x', '']) await expect(pub.waitForSubscribers(topic, { timeoutMs: 0 })).resolves.toBe(false)
        const forB = pub.waitForSubscribers('b.x', { timeoutMs: 5000 })
        expect(await isSettled(forB)).toBe(false)
        sub.subscribe('b.')
        await expect(forB).resolves.toBe(true)
      })

      it('counts subscriptions: two matching prefixes of one subscriber count twice, and every subscriber counts', async () => {
        const pub = await t.openPublisher()
        await t.openSubscriber([pub], { prefixes: ['c.', 'c.d'] })
        await expect(pub.waitForSubscribers('c.d.e', { count: 2, timeoutMs: 5000 })).resolves.toBe(true)
        await expect(pub.waitForSubscribers('c.x', { timeoutMs: 0 })).resolves.toBe(true)
        await expect(pub.waitForSubscribers('c.x', { count: 2, timeoutMs: 0 })).resolves.toBe(false)
        const forThree = pub.waitForSubscribers('c.d.e', { count: 3, timeoutMs: 5000 })
        await t.openSubscriber([pub], { prefixes: ['c.'] })
        await expect(forThree).resolves.toBe(true)
        await expect(pub.waitForSubscribers('c.d.e', { count: 4, timeoutMs: 0 })).resolves.toBe(false)
      })

      it('stops counting a closed subscriber', async () => {
        const pub = await t.openPublisher()
        await t.openSubscriber([pub], { prefixes: ['s.'] })
        const second = await t.openSubscriber([pub], { prefixes: ['s.'] })
        await expect(pub.waitForSubscribers('s.t', { count: 2, timeoutMs: 5000 })).resolves.toBe(true)
        await second.close()
        expect(await eventually(async () => !(await pub.waitForSubscribers('s.t', { count: 2, timeoutMs: 0 })))).toBe(true)
        await expect(pub.waitForSubscribers('s.t', { timeoutMs: 0 })).resolves.toBe(true)
      })

      it('resolves false after timeoutMs, and at once for timeoutMs 0', async () => {
        const pub = await t.openPublisher()
        const started = Date.now()
        await expect(pub.waitForSubscribers('t', { timeoutMs: 50 })).resolves.toBe(false)
        expect(Date.now() - started).toBeGreaterThanOrEqual(45)
        expect(await isSettled(pub.waitForSubscribers('t', { timeoutMs: 0 }))).toBe(true)
        await expect(pub.waitForSubscribers('t', { timeoutMs: 0 })).resolves.toBe(false)
      })

      it('resolves false when the signal aborts, and at once for a signal already aborted', async () => {
        const pub = await t.openPublisher()
        const controller = new AbortController()
        const waiting = pub.waitForSubscribers('t', { signal: controller.signal })
        expect(await isSettled(waiting)).toBe(false)
        controller.abort()
        await expect(waiting).resolves.toBe(false)
        const again = pub.waitForSubscribers('t', { signal: controller.signal, timeoutMs: 5000 })
        expect(await isSettled(again)).toBe(true)
        await expect(again).resolves.toBe(false)
      })

      it('resolves pending waits with false on close(), and every later one, even for count 0', async () => {
        const pub = await t.openPublisher()
        const pending = [pub.waitForSubscribers('x', { timeoutMs: 10_000 }), pub.waitForSubscribers('y')]
        expect(await isSettled(Promise.race(pending))).toBe(false)
        await pub.close()
        await expect(Promise.all(pending)).resolves.toEqual([false, false])
        await expect(pub.waitForSubscribers('x', { timeoutMs: 1000 })).resolves.toBe(false)
        await expect(pub.waitForSubscribers('x', { count: 0 })).resolves.toBe(false)
      })

      it('throws InvalidArgumentError synchronously for a bad count, timeoutMs or topic, also after close()', async () => {
        const pub = await t.openPublisher()
        const bad: [string, { count?: number; timeoutMs?: number }][] = [
          ['t', { count: -1 }],
          ['t', { count: 1.5 }],
          ['t', { count: Number.NaN }],
          ['t', { count: Infinity }],
          ['t', { timeoutMs: -1 }],
          ['t', { timeoutMs: 1.5 }],
          ['t', { timeoutMs: Number.NaN }],
          ['t', { timeoutMs: 2 ** 31 }],
          [5 as unknown as string, {}],
        ]
        const check = (): void => {
          for (const [topic, options] of bad) expect(() => pub.waitForSubscribers(topic, options)).toThrow(InvalidArgumentError)
        }
        check()
        await expect(pub.waitForSubscribers('t', { count: 0, timeoutMs: 2 ** 31 - 1 })).resolves.toBe(true)
        await expect(pub.waitForSubscribers('t', { count: 0, timeoutMs: Infinity })).resolves.toBe(true)
        await pub.close()
        check()
      })
    })

    describe('close', () => {
      it('publisher: close() is idempotent (the same promise); send() afterwards rejects with ClosedError', async () => {
        const pub = await t.openPublisher()
        const closing = pub.close()
        expect(pub.close()).toBe(closing)
        await expect(closing).resolves.toBeUndefined()
        expect(pub.close()).toBe(closing)
        let sending: Promise<void> | undefined
        expect(() => (sending = pub.send('t', 'b'))).not.toThrow()
        await expect(sending).rejects.toBeInstanceOf(ClosedError)
        await expect(pub.send('t', Buffer.from('b'))).rejects.toMatchObject({ code: ErrorCode.Closed })
      })

      it('subscriber: close() is idempotent and ends the iteration, a pending next() included; subscribe() then throws ClosedError', async () => {
        const { sub, it: messages } = await pair()
        const pending = messages.next()
        expect(await isSettled(pending)).toBe(false)
        const closing = sub.close()
        expect(sub.close()).toBe(closing)
        await expect(closing).resolves.toBeUndefined()
        await expect(pending).resolves.toEqual({ done: true, value: undefined })
        await expect(messages.next()).resolves.toEqual({ done: true, value: undefined })
        expect(() => sub.subscribe('x')).toThrow(ClosedError)
      })

      it('subscriber: close() discards messages not yet read', async () => {
        const { pub, sub, it: messages } = await pair()
        for (const topic of ['m.1', 'm.2', 'm.3']) await pub.send(topic, '{}')
        expect(topics(await take(messages, 1))).toEqual(['m.1'])
        await sub.close()
        await expect(messages.next()).resolves.toEqual({ done: true, value: undefined })
      })

      it('for await ends when the subscriber closes', async () => {
        const pub = await t.openPublisher()
        const sub = await t.openSubscriber([pub])
        await expect(pub.waitForSubscribers('t', { timeoutMs: 5000 })).resolves.toBe(true)
        await pub.send('t', '1')
        await pub.send('t', '2')
        const got: string[] = []
        for await (const m of sub) {
          got.push(m.body.toString())
          if (got.length === 2) void sub.close()
        }
        expect(got).toEqual(['1', '2'])
      })
    })

    describe('iteration', () => {
      it('allows one active iterator: a second throws InvalidArgumentError until return() or break releases the first', async () => {
        const { pub, sub, it: first } = await pair()
        let err: unknown
        try {
          sub[Symbol.asyncIterator]()
        } catch (e) {
          err = e
        }
        expect(err).toBeInstanceOf(InvalidArgumentError)
        expect(err).toMatchObject({ code: ErrorCode.InvalidArgument })
        await expect(first.return!()).resolves.toEqual({ done: true, value: undefined })
        await expect(first.next()).resolves.toEqual({ done: true, value: undefined })
        await pub.send('t', 'again')
        for await (const m of sub) {
          expect(m.body.toString()).toBe('again')
          break
        }
        await pub.send('t', 'third')
        expect((await take(iterate(sub), 1))[0]?.body.toString()).toBe('third')
      })

      it('resolves concurrent next() calls in call order', async () => {
        const { pub, it: messages } = await pair()
        const nexts = [messages.next(), messages.next(), messages.next()]
        for (const topic of ['n.1', 'n.2', 'n.3']) await pub.send(topic, '{}')
        const got = await Promise.all(nexts)
        expect(got.map((r) => (r.done === true ? 'done' : r.value.topic))).toEqual(['n.1', 'n.2', 'n.3'])
      })
    })

    describe('arguments', () => {
      it('send() throws InvalidArgumentError synchronously for a non-string topic or a body neither Buffer nor string', async () => {
        const pub = await t.openPublisher()
        const bad: [unknown, unknown][] = [
          [5, '{}'],
          [undefined, '{}'],
          [Buffer.from('t'), '{}'],
          ['t', 5],
          ['t', undefined],
          ['t', null],
          ['t', { body: 1 }],
        ]
        const check = (): void => {
          for (const [topic, body] of bad) expect(() => pub.send(topic as string, body as string)).toThrow(InvalidArgumentError)
        }
        check()
        await pub.close()
        check()
      })

      it('subscribe() throws InvalidArgumentError for a prefix that is not a string', async () => {
        const pub = await t.openPublisher()
        const sub = await t.openSubscriber([pub])
        for (const prefix of [5, undefined, null, Buffer.from('t')] as unknown[]) {
          expect(() => sub.subscribe(prefix as string)).toThrow(InvalidArgumentError)
        }
      })

      it('openSubscriber() rejects with InvalidArgumentError for prefixes that are not an array of strings', async () => {
        const pub = await t.openPublisher()
        for (const prefixes of ['org.', [5], ['ok', null], null]) {
          await expect(t.openSubscriber([pub], { prefixes: prefixes as string[] })).rejects.toBeInstanceOf(InvalidArgumentError)
        }
      })
    })

    describe('malformed input', () => {
      async function rawPair(
        prefixes: readonly string[],
        onDrop: (reason: string) => void,
        maxMessageBytes = 64,
      ): Promise<{ raw: RawSender; it: AsyncIterator<RawMessage, undefined> }> {
        const raw = await t.openRawSender()
        const sub = await t.openSubscriber([raw], { prefixes, onDrop }, maxMessageBytes)
        await raw.waitForSubscriptions(prefixes.length)
        return { raw, it: iterate(sub) }
      }

      it('drops malformed messages with the reason of the first failed check, and delivers the rest in order', async () => {
        const drops: string[] = []
        const { raw, it: messages } = await rawPair([''], (r) => drops.push(r))
        const bad = Buffer.from([0xc3, 0x28])
        await raw.send('one frame')
        await raw.send('a', 'b', 'c')
        await raw.send('good.1', 'ok')
        await raw.send('t', bad)
        await raw.send(Buffer.concat([Buffer.from('t'), bad]), '{}')
        await raw.send('t', Buffer.from([0xed, 0xa0, 0x80])) // a UTF-16 surrogate encoded: not UTF-8
        await raw.send('t', 'x'.repeat(64))
        await raw.send(bad, Buffer.alloc(63, 0xff), 'third') // frame_count is checked first
        await raw.send(bad, Buffer.alloc(63, 0xff)) // then too_large (65 bytes, each frame within 64), before not_utf8
        await raw.send('good.2', Buffer.from([0xef, 0xbb, 0xbf]))
        const got = await takeThrough(messages, 'good.2')
        expect(got.map((m) => `${m.topic}:${m.body.toString('hex')}`)).toEqual(['good.1:6f6b', 'good.2:efbbbf'])
        expect(drops).toEqual(['frame_count', 'frame_count', 'not_utf8', 'not_utf8', 'not_utf8', 'too_large', 'frame_count', 'too_large'])
      })

      it('filters by prefix before checking: a malformed message on another topic is not reported', async () => {
        const drops: string[] = []
        const { raw, it: messages } = await rawPair(['t'], (r) => drops.push(r))
        await raw.send('u', Buffer.from([0xff]))
        await raw.send('u', 'a', 'b')
        await raw.send('t', Buffer.from([0xff]))
        await raw.send('t.ok', '{}')
        expect(topics(await take(messages, 1))).toEqual(['t.ok'])
        expect(drops).toEqual(['not_utf8'])
      })

      it('an exception thrown by onDrop rejects next() in the dropped message place; iterating again continues', async () => {
        const boom = new Error('listener failed')
        const { raw, it: messages } = await rawPair([''], () => {
          throw boom
        })
        await raw.send('first', '{}')
        await raw.send('bad', Buffer.from([0xff]))
        await raw.send('second', '{}')
        expect(topics(await take(messages, 1))).toEqual(['first'])
        await expect(messages.next()).rejects.toBe(boom)
        expect(topics(await take(messages, 1))).toEqual(['second'])
      })
    })
  })
}
