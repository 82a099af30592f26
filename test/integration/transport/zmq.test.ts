import { createServer, connect as tcpConnect, type Socket } from 'node:net'
import { Publisher, Subscriber, XPublisher } from 'zeromq'
import { afterEach, describe, expect, it } from 'vitest'
import { ClosedError, InvalidArgumentError, TransportError } from '../../../src/errors.js'
import type { Relay } from '../../../src/transport/relay.js'
import { startRelay } from '../../../src/transport/relay.js'
import type { PubSocket, RawMessage, SubSocket } from '../../../src/transport/transport.js'
import type { ZmqTransportOptions } from '../../../src/transport/zmq.js'
import { ZmqTransport } from '../../../src/transport/zmq.js'
import { applySocketOptions, resolveSocketOptions, SUBSCRIPTION_FRAME_OVERHEAD } from '../../../src/transport/zmq-options.js'
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

type Options = Omit<ZmqTransportOptions, 'bind' | 'subscribeTo'>

/** A bound publisher, a subscriber connected to its real endpoint, and the slow joiner waited for. */
async function connectedPair(
  bindAddress: string,
  options: Options = {},
  prefixes: readonly string[] = [''],
): Promise<{ pub: PubSocket; sub: SubSocket; it: AsyncIterator<RawMessage, undefined> }> {
  const pub = track(await new ZmqTransport({ ...options, bind: [bindAddress], subscribeTo: [] }).openPublisher())
  const sub = track(
    await new ZmqTransport({ ...options, subscribeTo: pub.endpoints }).openSubscriber({
      prefixes: [...prefixes, PROBE_PREFIX],
    }),
  )
  const it = sub[Symbol.asyncIterator]()
  await waitForJoin((t, b) => pub.send(t, b), it)
  return { pub, sub, it }
}

describe.each(TRANSPORTS)('ZmqTransport over $name', ({ bindAddress }) => {
  it('delivers a 20,000-message burst completely with the default high-water mark', async () => {
    const { pub, it: messages } = await connectedPair(bindAddress())
    const n = 20_000
    const body = Buffer.alloc(500, 'b')
    // The whole burst is queued before the subscriber reads anything: with libzmq's default
    // high-water mark (1000) about half of it is dropped here.
    await Promise.all(Array.from({ length: n }, (_, i) => pub.send(`burst.${i}`, body)))
    const got = await take(messages, n)
    expect(got.length).toBe(n)
    expect(got.every((m, i) => m.topic === `burst.${i}` && m.body.equals(body))).toBe(true)
  })
})

describe('ZmqTransport', () => {
  it('tells onConnection of each connection made and lost: at start, when the publisher goes, when it is back', async () => {
    const first = await new ZmqTransport({ bind: ['tcp://127.0.0.1:*'], subscribeTo: [] }).openPublisher()
    const address = first.endpoints[0] as string
    const events: string[] = []
    const until = async (n: number): Promise<void> => {
      for (let waited = 0; events.length < n; waited += 10) {
        if (waited > 10_000) throw new Error(`expected ${n} connection events, got ${JSON.stringify(events)}`)
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
    }
    track(
      await new ZmqTransport({ subscribeTo: [address], reconnectIvlMs: 50 }).openSubscriber({
        onConnection: (event, at) => events.push(`${event} ${at}`),
      }),
    )
    await until(1)
    await first.close()
    await until(2)
    track(await new ZmqTransport({ bind: [address], subscribeTo: [] }).openPublisher())
    await until(3)
    expect(events).toEqual([`connected ${address}`, `disconnected ${address}`, `connected ${address}`])
  })

  it('names the address and the reason when a bind fails', async () => {
    const first = track(await new ZmqTransport({ bind: ['tcp://127.0.0.1:*'], subscribeTo: [] }).openPublisher())
    const address = first.endpoints[0]!
    const second = new ZmqTransport({ bind: [address], subscribeTo: [] }).openPublisher()
    await expect(second).rejects.toBeInstanceOf(TransportError)
    await expect(second).rejects.toThrow(`cannot bind ${address}: Address already in use`)
  })

  it('rejects a publisher with nowhere to send and an invalid address', async () => {
    await expect(new ZmqTransport({ subscribeTo: [] }).openPublisher()).rejects.toBeInstanceOf(TransportError)
    await expect(new ZmqTransport({ subscribeTo: ['nonsense'] }).openSubscriber()).rejects.toThrow(
      'cannot connect nonsense: Invalid argument',
    )
  })

  it('validates options with "expected X, got Y" messages', () => {
    expect(() => new ZmqTransport({ subscribeTo: [], highWaterMark: -1 })).toThrow(InvalidArgumentError)
    expect(() => new ZmqTransport({ subscribeTo: [], maxMessageBytes: 1.5 })).toThrow(
      'maxMessageBytes: expected an integer >= 64, got 1.5',
    )
    // Below that libzmq's own handshake would not fit, and the connection would fail silently forever.
    expect(() => new ZmqTransport({ subscribeTo: [], maxMessageBytes: 32 })).toThrow('maxMessageBytes: expected an integer >= 64, got 32')
    expect(() => new ZmqTransport({ subscribeTo: 'tcp://x:1' as unknown as string[] })).toThrow(InvalidArgumentError)
  })

  it('sets ZMQ_TCP_MAXRT, ZMQ_CONNECT_TIMEOUT and the ZMTP heartbeat options on the socket, and validates them', () => {
    const socket = new Publisher()
    try {
      applySocketOptions(socket, resolveSocketOptions({ tcpMaxRetransmitMs: 2000, connectTimeoutMs: 500, heartbeat: { intervalMs: 250, timeoutMs: 750, ttlMs: 1500 } }))
      expect(socket.tcpMaxRetransmitTimeout).toBe(2000)
      expect(socket.connectTimeout).toBe(500)
      expect(socket.heartbeatInterval).toBe(250)
      expect(socket.heartbeatTimeout).toBe(750)
      expect(socket.heartbeatTimeToLive).toBe(1500)
    } finally {
      socket.close()
    }
    expect(() => resolveSocketOptions({ heartbeat: { intervalMs: 0 } })).toThrow('heartbeat.intervalMs: expected an integer in [1, 2147483647], got 0')
    expect(() => resolveSocketOptions({ tcpMaxRetransmitMs: -5 })).toThrow(InvalidArgumentError)
  })

  it('takes Infinity as "no high-water mark" (libzmq\'s 0, set only on the socket) and refuses 0', () => {
    expect(resolveSocketOptions({}).highWaterMark).toBe(Infinity)
    expect(() => resolveSocketOptions({ highWaterMark: 0 })).toThrow('highWaterMark: expected an integer in [1, 2147483647] or Infinity, got 0')
    const sub = new Subscriber()
    const pub = new XPublisher()
    try {
      for (const socket of [sub, pub]) applySocketOptions(socket, resolveSocketOptions({}))
      expect([sub.receiveHighWaterMark, pub.sendHighWaterMark]).toEqual([0, 0])
      for (const socket of [sub, pub]) applySocketOptions(socket, resolveSocketOptions({ highWaterMark: 7 }))
      expect([sub.receiveHighWaterMark, pub.sendHighWaterMark]).toEqual([7, 7])
    } finally {
      sub.close()
      pub.close()
    }
  })

  it('sets ZMQ_MAXMSGSIZE: maxMessageBytes on a subscriber, plus the subscription overhead on a publisher', () => {
    const o = resolveSocketOptions({ maxMessageBytes: 5000 })
    const sockets = [new Subscriber(), new Publisher(), new XPublisher()]
    try {
      for (const socket of sockets) applySocketOptions(socket, o)
      expect(sockets.map((socket) => socket.maxMessageSize)).toEqual([5000, 5000 + SUBSCRIPTION_FRAME_OVERHEAD, 5000 + SUBSCRIPTION_FRAME_OVERHEAD])
      expect(resolveSocketOptions({}).maxMessageBytes).toBe(1024 * 1024)
    } finally {
      for (const socket of sockets) socket.close()
    }
  })

  it('heartbeats as applied detect a peer that went silent: the connection is dropped within the timeout', async () => {
    // publisher <- black-hole proxy <- subscriber: once the proxy stops forwarding (the TCP
    // connection stays open, as behind a dead NAT or a partition), only ZMTP heartbeats notice.
    const publisher = new Publisher()
    cleanups.push(() => publisher.close())
    await publisher.bind('tcp://127.0.0.1:*')
    const upstream = Number(new URL(publisher.lastEndpoint ?? '').port)
    const proxy = await startBlackHoleProxy(upstream)
    cleanups.push(() => proxy.close())
    const subscriber = new Subscriber()
    cleanups.push(() => subscriber.close())
    applySocketOptions(subscriber, resolveSocketOptions({ heartbeat: { intervalMs: 50, timeoutMs: 300 } }))
    const events: string[] = []
    subscriber.events.on('handshake', () => events.push('handshake'))
    subscriber.events.on('disconnect', () => events.push('disconnect'))
    subscriber.connect(`tcp://127.0.0.1:${proxy.port}`)
    subscriber.subscribe('')
    await waitFor(() => events.includes('handshake'), 3000, 'the ZMTP handshake through the proxy')
    proxy.blackHole()
    await waitFor(() => events.includes('disconnect'), 3000, 'the silent peer to be detected by heartbeats')
  })

  it('noDrop with a small high-water mark waits instead of dropping', async () => {
    const { pub, it: messages } = await connectedPair('tcp://127.0.0.1:*', { highWaterMark: 10, noDrop: true })
    const n = 5000
    const body = Buffer.alloc(2000, 'n')
    const sending = Promise.all(Array.from({ length: n }, (_, i) => pub.send(`nodrop.${i}`, body)))
    const got = await take(messages, n)
    await sending
    expect(got.every((m, i) => m.topic === `nodrop.${i}`)).toBe(true)
  })

  it('noDrop: close() of a publisher blocked by a stuck subscriber finishes within the linger time', async () => {
    // The subscriber never reads after joining, so its queues and the kernel buffers fill up.
    const { pub } = await connectedPair('tcp://127.0.0.1:*', { highWaterMark: 1, noDrop: true, lingerMs: 200 })
    const body = Buffer.alloc(256 * 1024, 's')
    const results = Array.from({ length: 400 }, (_, i) =>
      pub.send(`stuck.${i}`, body).then(
        () => 'sent',
        (err: unknown) => err,
      ),
    )
    await new Promise((r) => setTimeout(r, 100))
    const started = Date.now()
    await pub.close()
    expect(Date.now() - started).toBeLessThan(2000)
    const outcomes = await Promise.all(results)
    const rejected = outcomes.filter((o) => o !== 'sent')
    expect(rejected.length).toBeGreaterThan(0)
    expect(rejected.every((o) => o instanceof ClosedError)).toBe(true)
  })
})

describe.each(['native', 'js'] as const)('relay (%s mode)', (mode) => {
  async function relayed(options: { onDrop?: (reason: string) => void; onInboundDisconnect?: (address: string) => void } = {}): Promise<{
    relay: Relay
    pub: PubSocket
    it: AsyncIterator<RawMessage, undefined>
  }> {
    const relay = track(
      await startRelay({ inbound: ['tcp://127.0.0.1:*'], outbound: ['tcp://127.0.0.1:*'], maxMessageBytes: 4096, mode, ...options }),
    )
    expect(relay.mode).toBe(mode)
    expect(relay.endpoints.inbound[0]).toMatch(/^tcp:\/\/127\.0\.0\.1:\d+$/)
    expect(relay.endpoints.outbound[0]).toMatch(/^tcp:\/\/127\.0\.0\.1:\d+$/)
    const pub = track(await new ZmqTransport({ connect: relay.endpoints.inbound, subscribeTo: [] }).openPublisher())
    const sub = track(await new ZmqTransport({ subscribeTo: relay.endpoints.outbound }).openSubscriber())
    const it = sub[Symbol.asyncIterator]()
    // Slow joiner on both hops: the publisher -> relay connection and relay -> subscriber.
    await waitForJoin((t, b) => pub.send(t, b), it)
    return { relay, pub, it }
  }

  it('passes messages from a connecting publisher through byte for byte', async () => {
    const { relay, pub, it: messages } = await relayed()
    const bodies = [
      Buffer.from('{"b": 1,  "a" : [1.0, -0.0, 1e+16], "s": "\\u00e9"}'),
      Buffer.from('{"z":"é€😀","y":12345678901234567890123}'),
      Buffer.from(''),
    ]
    const before = relay.forwarded
    for (const body of bodies) await pub.send('org.fedoraproject.dev.relay.t', body)
    const got = await take(messages, bodies.length)
    got.forEach((m, i) => {
      expect(m.topic).toBe('org.fedoraproject.dev.relay.t')
      expect(m.body.equals(bodies[i]!)).toBe(true)
    })
    if (mode === 'js') expect(relay.forwarded! - before!).toBe(bodies.length)
    else expect([relay.forwarded, relay.dropped]).toEqual([undefined, undefined])
    await waitFor(() => relay.inboundConnects === 1, 5000, 'one inbound connection')
  })

  it('passes subscriptions and unsubscriptions upstream: a publisher sends only what somebody wants', async () => {
    const relay = track(await startRelay({ inbound: ['tcp://127.0.0.1:*'], outbound: ['tcp://127.0.0.1:*'], mode }))
    const upstream = new XPublisher({ linger: 0 })
    cleanups.push(() => upstream.close())
    upstream.connect(relay.endpoints.inbound[0]!)
    const sub = new Subscriber({ linger: 0 })
    sub.connect(relay.endpoints.outbound[0]!)
    sub.subscribe('org.wanted.')
    const [subscribe] = await upstream.receive()
    expect(subscribe).toEqual(Buffer.concat([Buffer.from([1]), Buffer.from('org.wanted.')]))
    sub.close()
    const [unsubscribe] = await upstream.receive()
    expect(unsubscribe).toEqual(Buffer.concat([Buffer.from([0]), Buffer.from('org.wanted.')]))
  })

  if (mode === 'js') {
    it('drops and counts what a Python subscriber would choke on', async () => {
      const drops: string[] = []
      const { relay, it: messages } = await relayed({ onDrop: (r) => drops.push(r) })
      const raw = new Publisher({ linger: 0 })
      cleanups.push(() => raw.close())
      raw.connect(relay.endpoints.inbound[0]!)
      await waitForJoin((t, b) => raw.send([t, b]), messages)
      await raw.send(['one frame'])
      await raw.send(['a', 'b', 'c'])
      await raw.send(['t', Buffer.from([0xc3, 0x28])])
      await raw.send([Buffer.alloc(2048, 't'), Buffer.alloc(2049, 'x')]) // each frame within the limit, together over it
      await raw.send(['good', 'ok'])
      const [good] = await take(messages, 1)
      expect(good?.topic).toBe('good')
      expect(drops).toEqual(['frame_count', 'frame_count', 'not_utf8', 'too_large'])
      expect(relay.dropped).toEqual({ frame_count: 2, not_utf8: 1, too_large: 1 })
    })
  } else {
    it('forwards every frame as received, even what a fedmsg subscriber drops (it checks nothing but the frame size)', async () => {
      const relay = track(await startRelay({ inbound: ['tcp://127.0.0.1:*'], outbound: ['tcp://127.0.0.1:*'], maxMessageBytes: 4096, mode }))
      const raw = new Publisher({ linger: 0 })
      cleanups.push(() => raw.close())
      raw.connect(relay.endpoints.inbound[0]!)
      const sub = new Subscriber({ linger: 0 })
      cleanups.push(() => sub.close())
      sub.connect(relay.endpoints.outbound[0]!)
      sub.subscribe('')
      const sent = [
        [Buffer.from('one frame')],
        [Buffer.from('a'), Buffer.from('b'), Buffer.from('c')],
        [Buffer.from('t'), Buffer.from([0xc3, 0x28])],
        [Buffer.alloc(2048, 't'), Buffer.alloc(2049, 'x')],
      ]
      // Slow joiner: probe until the subscription has reached the raw publisher through the relay.
      let joined = false
      const probing = (async () => {
        while (!joined) {
          await raw.send(['probe', 'p'])
          await new Promise((r) => setTimeout(r, 10))
        }
      })()
      while (String((await sub.receive())[0]) !== 'probe');
      joined = true
      await probing
      for (const frames of sent) await raw.send(frames)
      const got: Buffer[][] = []
      while (got.length < sent.length) {
        const frames = await sub.receive()
        if (String(frames[0]) !== 'probe') got.push(frames)
      }
      expect(got).toEqual(sent)
      expect([relay.forwarded, relay.dropped]).toEqual([undefined, undefined])
    })
  }

  it('disconnects a publisher that sends a frame over maxMessageBytes (counted as an inbound disconnect) and goes on forwarding', async () => {
    const disconnects: string[] = []
    const { relay, it: messages } = await relayed({ onInboundDisconnect: (a) => disconnects.push(a) })
    const raw = new Publisher({ linger: 0 })
    cleanups.push(() => raw.close())
    raw.connect(relay.endpoints.inbound[0]!)
    await waitForJoin((t, b) => raw.send([t, b]), messages)
    await raw.send(['t', Buffer.alloc(4097, 'x')])
    await waitFor(() => relay.inboundDisconnects > 0, 5000, 'the inbound disconnect')
    expect(relay.inboundDisconnects).toBe(1)
    expect(disconnects).toEqual([relay.endpoints.inbound[0]])
    // libzmq's publisher reconnects by itself (for it the relay closed the connection); a probe gets through again.
    await waitForJoin((t, b) => raw.send([t, b]), messages)
    // The gilmsg publisher, the raw one, the raw one again (monitor events arrive on their own path).
    await waitFor(() => relay.inboundConnects === 3, 5000, 'three inbound connections')
    if (mode === 'js') expect(relay.dropped).toEqual({})
  })

  it('an exception thrown by onInboundDisconnect stops the relay: closed resolves with it', async () => {
    const boom = new Error('listener failed')
    const relay = track(
      await startRelay({
        inbound: ['tcp://127.0.0.1:*'],
        outbound: ['tcp://127.0.0.1:*'],
        mode,
        onInboundDisconnect: () => {
          throw boom
        },
      }),
    )
    const raw = new Publisher({ linger: 0 })
    const events = raw.events // watched before connecting: the handshake can be over before the next line
    raw.connect(relay.endpoints.inbound[0]!)
    while ((await events.receive()).type !== 'handshake');
    raw.close()
    await expect(relay.closed).resolves.toBe(boom)
    expect(relay.inboundDisconnects).toBe(1)
  })

  it('close() is idempotent and resolves closed with undefined', async () => {
    const relay = await startRelay({ inbound: ['tcp://127.0.0.1:*'], outbound: ['tcp://127.0.0.1:*'], mode })
    const closing = relay.close()
    expect(relay.close()).toBe(closing)
    await closing
    await expect(relay.closed).resolves.toBeUndefined()
  })

  it('fails to start, leaving nothing open, when an address is taken', async () => {
    const first = track(await startRelay({ inbound: ['tcp://127.0.0.1:*'], outbound: ['tcp://127.0.0.1:*'], mode }))
    const taken = first.endpoints.outbound[0]!
    await expect(startRelay({ inbound: ['tcp://127.0.0.1:*'], outbound: [taken], mode })).rejects.toThrow(
      `cannot bind ${taken}: Address already in use`,
    )
  })
})

it('startRelay refuses an unknown mode, opening nothing', async () => {
  await expect(startRelay({ inbound: ['tcp://127.0.0.1:*'], outbound: ['tcp://127.0.0.1:*'], mode: 'fast' as never })).rejects.toThrow(InvalidArgumentError)
})

async function waitFor(condition: () => boolean, ms: number, what: string): Promise<void> {
  const until = Date.now() + ms
  while (!condition()) {
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/** A TCP proxy on 127.0.0.1 to `upstreamPort` that can stop forwarding while keeping every connection open. */
async function startBlackHoleProxy(upstreamPort: number): Promise<{ port: number; blackHole(): void; close(): Promise<void> }> {
  let forwarding = true
  const sockets: Socket[] = []
  const server = createServer((client) => {
    const upstream = tcpConnect(upstreamPort, '127.0.0.1')
    sockets.push(client, upstream)
    client.on('data', (d) => void (forwarding && upstream.write(d)))
    upstream.on('data', (d) => void (forwarding && client.write(d)))
    client.on('error', () => upstream.destroy())
    upstream.on('error', () => client.destroy())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('proxy: no port')
  return {
    port: address.port,
    blackHole: () => {
      forwarding = false
    },
    close: () => {
      for (const s of sockets) s.destroy()
      return new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
