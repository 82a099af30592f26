import { afterEach, describe, expect, it } from 'vitest'
import { Subscriber } from 'zeromq'
import { InvalidArgumentError } from '../../../src/errors.js'
import { startRelay } from '../../../src/transport/relay.js'
import type { PubSocket, RawMessage, SubSocket } from '../../../src/transport/transport.js'
import { ZmqTransport } from '../../../src/transport/zmq.js'
import { PROBE_PREFIX, removeIpcFiles, take, TRANSPORTS, waitForJoin } from './helpers.js'

const cleanups: (() => Promise<void> | void)[] = []

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  removeIpcFiles()
})

function track<T extends { close(): Promise<void> | void }>(closable: T): T {
  cleanups.push(() => closable.close())
  return closable
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

async function bound(bindAddress: string): Promise<PubSocket> {
  return track(await new ZmqTransport({ bind: [bindAddress], subscribeTo: [] }).openPublisher())
}

async function subscriber(
  endpoints: readonly string[],
  prefixes: readonly string[],
): Promise<{ sub: SubSocket; it: AsyncIterator<RawMessage, undefined> }> {
  const sub = track(await new ZmqTransport({ subscribeTo: endpoints }).openSubscriber({ prefixes }))
  return { sub, it: sub[Symbol.asyncIterator]() }
}

/** Polls (every 10 ms, up to `deadlineMs`) until `check` resolves true. */
async function eventually(check: () => Promise<boolean>, deadlineMs = 5000): Promise<boolean> {
  const started = Date.now()
  while (Date.now() - started < deadlineMs) {
    if (await check()) return true
    await sleep(10)
  }
  return false
}

describe.each(TRANSPORTS)('waitForSubscribers over $name', ({ bindAddress }) => {
  it('resolves true when a subscriber joins later; the first message sent then arrives (no probe)', async () => {
    const pub = await bound(bindAddress())
    let it: AsyncIterator<RawMessage, undefined> | undefined
    const joining = sleep(200).then(async () => {
      it = (await subscriber(pub.endpoints, ['org.test.'])).it
    })
    const started = Date.now()
    await expect(pub.waitForSubscribers('org.test.first', { timeoutMs: 5000 })).resolves.toBe(true)
    expect(Date.now() - started).toBeGreaterThanOrEqual(190)
    await pub.send('org.test.first', '{"n":1}')
    await pub.send('org.test.second', '{"n":2}')
    await joining
    const got = await take(it!, 2, 5000)
    expect(got.map((m) => `${m.topic} ${m.body.toString()}`)).toEqual(['org.test.first {"n":1}', 'org.test.second {"n":2}'])
  })

  it('resolves false after the timeout with no subscriber', async () => {
    const pub = await bound(bindAddress())
    const started = Date.now()
    await expect(pub.waitForSubscribers('org.test.x', { timeoutMs: 200 })).resolves.toBe(false)
    expect(Date.now() - started).toBeGreaterThanOrEqual(190)
    await expect(pub.waitForSubscribers('org.test.x', { timeoutMs: 0 })).resolves.toBe(false)
  })

  it('matches by prefix: a subscriber on "a." does not satisfy "b.x"', async () => {
    const pub = await bound(bindAddress())
    await subscriber(pub.endpoints, ['a.'])
    await expect(pub.waitForSubscribers('a.x', { timeoutMs: 5000 })).resolves.toBe(true)
    await expect(pub.waitForSubscribers('a.', { timeoutMs: 0 })).resolves.toBe(true)
    await expect(pub.waitForSubscribers('b.x', { timeoutMs: 200 })).resolves.toBe(false)
    await expect(pub.waitForSubscribers('a', { timeoutMs: 0 })).resolves.toBe(false)
    await expect(pub.waitForSubscribers('xa.x', { timeoutMs: 0 })).resolves.toBe(false)
  })

  it('counts subscribers (same prefix each), and a closed subscriber stops counting', async () => {
    const pub = await bound(bindAddress())
    const first = await subscriber(pub.endpoints, ['c.'])
    await expect(pub.waitForSubscribers('c.t', { timeoutMs: 5000 })).resolves.toBe(true)
    await expect(pub.waitForSubscribers('c.t', { count: 2, timeoutMs: 200 })).resolves.toBe(false)
    const waitingForTwo = pub.waitForSubscribers('c.t', { count: 2, timeoutMs: 5000 })
    const second = await subscriber(pub.endpoints, ['c.'])
    await expect(waitingForTwo).resolves.toBe(true)
    await pub.send('c.t', 'both')
    expect((await take(first.it, 1, 5000))[0]?.body.toString()).toBe('both')
    expect((await take(second.it, 1, 5000))[0]?.body.toString()).toBe('both')
    // The disconnect's unsubscription reaches the publisher asynchronously.
    await second.sub.close()
    expect(await eventually(async () => !(await pub.waitForSubscribers('c.t', { count: 2, timeoutMs: 0 })))).toBe(true)
    await expect(pub.waitForSubscribers('c.t', { timeoutMs: 0 })).resolves.toBe(true)
  })

  it('close() resolves pending and later waits with false', async () => {
    const pub = await bound(bindAddress())
    const pending = [
      pub.waitForSubscribers('x', { timeoutMs: 10_000 }),
      pub.waitForSubscribers('y'), // no timeout at all
    ]
    await sleep(20)
    const started = Date.now()
    await pub.close()
    await expect(Promise.all(pending)).resolves.toEqual([false, false])
    expect(Date.now() - started).toBeLessThan(2000)
    await expect(pub.waitForSubscribers('x', { timeoutMs: 1000 })).resolves.toBe(false)
  })
})

describe('waitForSubscribers', () => {
  it('resolves false when the signal aborts, and at once for an aborted signal', async () => {
    const pub = await bound('tcp://127.0.0.1:*')
    const controller = new AbortController()
    const waiting = pub.waitForSubscribers('x', { signal: controller.signal })
    setTimeout(() => controller.abort(), 50)
    await expect(waiting).resolves.toBe(false)
    await expect(pub.waitForSubscribers('x', { signal: controller.signal })).resolves.toBe(false)
  })

  it('throws InvalidArgumentError for a bad count or timeoutMs', async () => {
    const pub = await bound('tcp://127.0.0.1:*')
    expect(() => pub.waitForSubscribers('x', { count: -1 })).toThrow(InvalidArgumentError)
    expect(() => pub.waitForSubscribers('x', { count: 1.5 })).toThrow(InvalidArgumentError)
    expect(() => pub.waitForSubscribers('x', { timeoutMs: -1 })).toThrow(InvalidArgumentError)
    expect(() => pub.waitForSubscribers('x', { timeoutMs: 2 ** 31 })).toThrow(InvalidArgumentError)
    await expect(pub.waitForSubscribers('x', { count: 0 })).resolves.toBe(true)
  })

  it('matches prefixes as UTF-8 bytes, including a prefix that splits a character', async () => {
    const pub = await bound('tcp://127.0.0.1:*')
    const split = Buffer.from('é').subarray(0, 1).toString('latin1') // not valid UTF-8 on its own
    const raw = new Subscriber({ linger: 0 })
    cleanups.push(() => raw.close())
    raw.connect(pub.endpoints[0]!)
    raw.subscribe(Buffer.from(split, 'latin1'))
    await expect(pub.waitForSubscribers('écho', { timeoutMs: 5000 })).resolves.toBe(true)
    await expect(pub.waitForSubscribers('echo', { timeoutMs: 0 })).resolves.toBe(false)
  })

  it('accepts a subscription prefix of maxMessageBytes; libzmq refuses a longer one before receiving it', async () => {
    const pub = track(await new ZmqTransport({ bind: ['tcp://127.0.0.1:*'], subscribeTo: [], maxMessageBytes: 1000 }).openPublisher())
    const subscribe = (prefix: string): void => {
      const raw = new Subscriber({ linger: 0 })
      cleanups.push(() => raw.close())
      raw.connect(pub.endpoints[0]!)
      raw.subscribe(prefix)
    }
    // The 1001-byte subscription costs its subscriber the connection (it reconnects and tries again, in vain).
    subscribe('b'.repeat(1001))
    subscribe('a'.repeat(1000))
    await expect(pub.waitForSubscribers('a'.repeat(1000), { timeoutMs: 5000 })).resolves.toBe(true)
    await expect(pub.waitForSubscribers('b'.repeat(1001), { timeoutMs: 300 })).resolves.toBe(false)
  })

  it.each(TRANSPORTS)(
    'a publisher connecting to a relay ($name): resolves true and its first message arrives',
    async ({ bindAddress }) => {
      const relay = track(await startRelay({ inbound: [bindAddress()], outbound: [bindAddress()] }))
      // The relay -> subscriber leg is a plain PUB whose subscriber joins late: that one leg is
      // established with the probe helper, through a separate probing publisher.
      const { it: messages } = await subscriber(relay.endpoints.outbound, ['org.relay.', PROBE_PREFIX])
      const prober = track(await new ZmqTransport({ connect: relay.endpoints.inbound, subscribeTo: [] }).openPublisher())
      await waitForJoin((t, b) => prober.send(t, b), messages)
      await prober.close()

      // The publisher -> relay leg: no probe, no sleep.
      const pub = track(await new ZmqTransport({ connect: relay.endpoints.inbound, subscribeTo: [] }).openPublisher())
      await expect(pub.waitForSubscribers('org.relay.any.topic', { timeoutMs: 5000 })).resolves.toBe(true)
      await pub.send('org.relay.first', '{"first":true}')
      const [first] = await take(messages, 1, 5000)
      expect(first?.topic).toBe('org.relay.first')
      expect(first?.body.toString()).toBe('{"first":true}')
    },
  )

  it('a connecting publisher with no relay listening resolves false after the timeout', async () => {
    const pub = track(await new ZmqTransport({ connect: ['tcp://127.0.0.1:1'], subscribeTo: [] }).openPublisher())
    await expect(pub.waitForSubscribers('t', { timeoutMs: 150 })).resolves.toBe(false)
  })
})
