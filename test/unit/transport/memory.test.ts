import { describe, expect, it } from 'vitest'
import { ClosedError, GilmsgError, InvalidArgumentError } from '../../../src/errors.js'
import type { Delivery, GateDecision } from '../../../src/transport/memory.js'
import { MemoryHub, MemoryTransport } from '../../../src/transport/memory.js'
import type { RawMessage } from '../../../src/transport/transport.js'

/**
 * Reads `it` in the background into a list. Memory delivery is synchronous,
 * so after `settled()` the list holds everything delivered so far.
 */
function collect(it: AsyncIterator<RawMessage, undefined>): { taken: () => string[] } {
  let got: string[] = []
  void (async () => {
    for (;;) {
      const r = await it.next()
      if (r.done === true) return
      got.push(`${r.value.topic}:${r.value.body.toString()}`)
    }
  })()
  return {
    taken: () => {
      const out = got
      got = []
      return out
    },
  }
}

const settled = (): Promise<void> => new Promise((r) => setImmediate(r))

async function drain(c: { taken: () => string[] }): Promise<string[]> {
  await settled()
  return c.taken()
}

async function setup(prefixes?: readonly string[]) {
  const hub = new MemoryHub()
  const alice = new MemoryTransport(hub, 'alice')
  const bob = new MemoryTransport(hub, 'bob')
  const carol = new MemoryTransport(hub, 'carol')
  const pub = await alice.openPublisher()
  const drops: string[] = []
  const bobSub = await bob.openSubscriber({ ...(prefixes ? { prefixes } : {}), onDrop: (r) => drops.push(r) })
  const carolSub = await carol.openSubscriber(prefixes ? { prefixes } : {})
  return { hub, pub, bobSub, carolSub, drops }
}

describe('MemoryTransport', () => {
  it('delivers to every subscriber whose prefix matches, in order, as Buffers', async () => {
    const { pub, bobSub, carolSub } = await setup(['org.a.'])
    carolSub.subscribe('org.c.')
    for (const t of ['org.a.1', 'org.b.1', 'org.c.1', 'org.a.2', 'org.ab']) await pub.send(t, Buffer.from(t))
    const bobIt = bobSub[Symbol.asyncIterator]()
    const first = await bobIt.next()
    expect(first.done).toBe(false)
    expect(Buffer.isBuffer(first.value?.body)).toBe(true)
    expect(await drain(collect(bobIt))).toEqual(['org.a.2:org.a.2'])
    expect(await drain(collect(carolSub[Symbol.asyncIterator]()))).toEqual([
      'org.a.1:org.a.1',
      'org.c.1:org.c.1',
      'org.a.2:org.a.2',
    ])
    expect(pub.endpoints).toEqual(['memory://alice'])
  })

  it('subscribes to everything by default', async () => {
    const { pub, bobSub } = await setup()
    await pub.send('x', 'a')
    await pub.send('', 'b')
    expect(await drain(collect(bobSub[Symbol.asyncIterator]()))).toEqual(['x:a', ':b'])
  })

  it('gives every subscriber its own copy of the body', async () => {
    const { pub, bobSub, carolSub } = await setup()
    const body = Buffer.from('same')
    await pub.send('t', body)
    const b = (await bobSub[Symbol.asyncIterator]().next()).value!
    b.body.fill(0)
    expect((await carolSub[Symbol.asyncIterator]().next()).value!.body.toString()).toBe('same')
    expect(body.toString()).toBe('same')
  })

  it('the gate sees from/to and can drop per recipient', async () => {
    const { hub, pub, bobSub, carolSub } = await setup()
    const bob = collect(bobSub[Symbol.asyncIterator]())
    const carol = collect(carolSub[Symbol.asyncIterator]())
    const seen: Delivery[] = []
    hub.setGate((d) => {
      seen.push(d)
      return d.to === 'bob' ? 'drop' : 'deliver'
    })
    await pub.send('t', 'm')
    expect(seen.map((d) => `${d.from}->${d.to}:${d.topic}:${d.body.toString()}`)).toEqual([
      'alice->bob:t:m',
      'alice->carol:t:m',
    ])
    expect(await drain(bob)).toEqual([])
    expect(await drain(carol)).toEqual(['t:m'])
    hub.setGate(undefined)
    await pub.send('t', 'n')
    expect(await drain(bob)).toEqual(['t:n'])
  })

  it('hold, then release out of order, duplicate and discard', async () => {
    const { hub, pub, bobSub } = await setup()
    const bob = collect(bobSub[Symbol.asyncIterator]())
    hub.setGate((d): GateDecision => (d.to === 'bob' ? 'hold' : 'deliver'))
    for (const m of ['1', '2', '3', '4']) await pub.send('t', m)
    expect(hub.held.map((h) => h.body.toString())).toEqual(['1', '2', '3', '4'])
    expect(new Set(hub.held.map((h) => h.id)).size).toBe(4)
    expect(await drain(bob)).toEqual([])

    expect(hub.release(2)).toBe(true) // '3' first: reordering
    expect(hub.duplicate(0)).toBe(true) // '1' now, and still held
    expect(await drain(bob)).toEqual(['t:3', 't:1'])
    expect(hub.held.map((h) => h.body.toString())).toEqual(['1', '2', '4'])
    hub.discard(1) // '2' is lost
    expect(hub.releaseAll()).toBe(2)
    expect(await drain(bob)).toEqual(['t:1', 't:4'])
    expect(hub.held).toEqual([])
    expect(() => hub.release(0)).toThrow(GilmsgError)
  })

  it('releasing to a closed subscriber reports false', async () => {
    const { hub, pub, bobSub } = await setup()
    hub.setGate(() => 'hold')
    await pub.send('t', 'm')
    await bobSub.close()
    const toBob = hub.held.findIndex((h) => h.to === 'bob')
    expect(hub.release(toBob)).toBe(false)
  })

  it('inject throws raw frames at subscribers, which drop malformed ones by reason', async () => {
    const hub = new MemoryHub()
    const drops: string[] = []
    const sub = await new MemoryTransport(hub, 'bob', { maxMessageBytes: 16 }).openSubscriber({
      prefixes: ['t'],
      onDrop: (r) => drops.push(r),
    })
    const bob = collect(sub[Symbol.asyncIterator]())
    hub.setGate(() => 'drop') // inject bypasses the gate
    hub.inject('t1')
    hub.inject('t2', 'a', 'b')
    hub.inject('t3', Buffer.from([0xff]))
    hub.inject(Buffer.from([0x74, 0xc3]), 'x')
    hub.inject('t4', 'x'.repeat(20))
    hub.inject('u', Buffer.from([0xff]))
    hub.inject()
    hub.inject('t5', 'ok')
    expect(drops).toEqual(['frame_count', 'frame_count', 'not_utf8', 'not_utf8', 'too_large'])
    expect(await drain(bob)).toEqual(['t5:ok'])
  })

  it('close() is idempotent, ends a pending iteration, and later sends reject with ClosedError', async () => {
    const { pub, bobSub } = await setup()
    const bobIt = bobSub[Symbol.asyncIterator]()
    const pending = bobIt.next()
    const closing = bobSub.close()
    expect(bobSub.close()).toBe(closing)
    await closing
    await expect(pending).resolves.toEqual({ done: true, value: undefined })
    await expect(bobIt.next()).resolves.toEqual({ done: true, value: undefined })
    expect(() => bobSub.subscribe('x')).toThrow(ClosedError)

    const pubClosing = pub.close()
    expect(pub.close()).toBe(pubClosing)
    await pubClosing
    await expect(pub.send('t', 'm')).rejects.toBeInstanceOf(ClosedError)
  })

  it('for await ends when the subscriber closes', async () => {
    const { pub, bobSub } = await setup()
    await pub.send('t', '1')
    await pub.send('t', '2')
    const got: string[] = []
    for await (const m of bobSub) {
      got.push(m.body.toString())
      if (got.length === 2) void bobSub.close()
    }
    expect(got).toEqual(['1', '2'])
  })

  it('allows one active iterator; break releases it', async () => {
    const { pub, bobSub } = await setup()
    const it = bobSub[Symbol.asyncIterator]()
    expect(() => bobSub[Symbol.asyncIterator]()).toThrow(GilmsgError)
    await it.return?.()
    await pub.send('t', 'again')
    for await (const m of bobSub) {
      expect(m.body.toString()).toBe('again')
      break
    }
    await pub.send('t', 'third')
    expect((await bobSub[Symbol.asyncIterator]().next()).value?.body.toString()).toBe('third')
  })
})

describe('MemoryTransport waitForSubscribers', () => {
  it('resolves true at once when a matching subscriber is attached', async () => {
    const { pub } = await setup(['org.a.'])
    await expect(pub.waitForSubscribers('org.a.x', { timeoutMs: 0 })).resolves.toBe(true)
    await expect(pub.waitForSubscribers('org.a.x', { count: 2, timeoutMs: 0 })).resolves.toBe(true) // bob and carol
    await expect(pub.waitForSubscribers('org.a.x', { count: 3, timeoutMs: 0 })).resolves.toBe(false)
  })

  it('waits for a later subscriber or subscription, by prefix', async () => {
    const hub = new MemoryHub()
    const pub = await new MemoryTransport(hub, 'alice').openPublisher()
    const forB = pub.waitForSubscribers('b.x', { timeoutMs: 5000 })
    const forTwo = pub.waitForSubscribers('a.x', { count: 2, timeoutMs: 5000 })
    let settledB = false
    void forB.then(() => (settledB = true))
    const sub = await new MemoryTransport(hub, 'bob').openSubscriber({ prefixes: ['a.'] })
    await settled()
    expect(settledB).toBe(false) // 'a.' does not match 'b.x'
    sub.subscribe('b.')
    await expect(forB).resolves.toBe(true)
    await new MemoryTransport(hub, 'carol').openSubscriber({ prefixes: ['a.x'] })
    await expect(forTwo).resolves.toBe(true)
  })

  it('resolves false after the timeout, on abort and on close; a closed subscriber does not count', async () => {
    const { pub, bobSub, carolSub } = await setup(['a.'])
    await bobSub.close()
    await carolSub.close()
    const started = Date.now()
    await expect(pub.waitForSubscribers('a.x', { timeoutMs: 50 })).resolves.toBe(false)
    expect(Date.now() - started).toBeGreaterThanOrEqual(45)
    const controller = new AbortController()
    const aborted = pub.waitForSubscribers('a.x', { signal: controller.signal })
    controller.abort()
    await expect(aborted).resolves.toBe(false)
    const pending = pub.waitForSubscribers('a.x')
    await pub.close()
    await expect(pending).resolves.toBe(false)
    await expect(pub.waitForSubscribers('a.x', { count: 0 })).resolves.toBe(false)
  })

  it('throws InvalidArgumentError for a bad count or timeoutMs', async () => {
    const { pub } = await setup()
    expect(() => pub.waitForSubscribers('t', { count: -1 })).toThrow(InvalidArgumentError)
    expect(() => pub.waitForSubscribers('t', { timeoutMs: Number.NaN })).toThrow(InvalidArgumentError)
  })
})
