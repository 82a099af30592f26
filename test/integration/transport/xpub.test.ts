import { afterEach, describe, expect, it } from 'vitest'
import { Subscriber } from 'zeromq'
import { startRelay } from '../../../src/transport/relay.js'
import { testRelayMode } from '../../support/reliable-net.js'
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

// The rest of waitForSubscribers is in the conformance suite (conformance.ts), for every transport.
describe('waitForSubscribers over ZeroMQ', () => {
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
      const mode = testRelayMode()
      const relay = track(await startRelay({ inbound: [bindAddress()], outbound: [bindAddress()], ...(mode ? { mode } : {}) }))
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
