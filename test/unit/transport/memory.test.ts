import { describe, expect, it } from 'vitest'
import { InvalidArgumentError } from '../../../src/errors.js'
import type { Delivery, GateDecision } from '../../../src/transport/memory.js'
import { MemoryHub, MemoryTransport } from '../../../src/transport/memory.js'
import type { RawMessage } from '../../../src/transport/transport.js'
import { describeTransportConformance } from '../../integration/transport/conformance.js'

describeTransportConformance('memory', () => {
  const hub = new MemoryHub()
  const opened: { close(): Promise<void> }[] = []
  let n = 0
  return {
    endpointPattern: /^memory:\/\/pub-\d+$/,
    openPublisher: async () => {
      const pub = await new MemoryTransport(hub, `pub-${++n}`).openPublisher()
      opened.push(pub)
      return pub
    },
    // Every subscriber on the hub hears every publisher on it: `from` needs no wiring.
    openSubscriber: async (_from, options, maxMessageBytes) => {
      const transport = new MemoryTransport(hub, `sub-${++n}`, maxMessageBytes === undefined ? {} : { maxMessageBytes })
      const sub = await transport.openSubscriber(options)
      opened.push(sub)
      return sub
    },
    openRawSender: async () => ({
      endpoints: ['memory://raw'],
      waitForSubscriptions: async () => {},
      send: async (...frames) => hub.inject(...frames),
    }),
    close: async () => {
      await Promise.all(opened.splice(0).map((s) => s.close()))
    },
  }
})

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
    expect(() => hub.release(0)).toThrow(InvalidArgumentError)
    expect(() => hub.release(0)).toThrow('MemoryHub: expected a held index in [0, -1], got 0')
  })

  it('releasing to a closed subscriber reports false', async () => {
    const { hub, pub, bobSub } = await setup()
    hub.setGate(() => 'hold')
    await pub.send('t', 'm')
    await bobSub.close()
    const toBob = hub.held.findIndex((h) => h.to === 'bob')
    expect(hub.release(toBob)).toBe(false)
  })

  it('inject bypasses the gate, reports a malformed message to onDrop at once, and ignores an empty call', async () => {
    const hub = new MemoryHub()
    const drops: string[] = []
    const sub = await new MemoryTransport(hub, 'bob', { maxMessageBytes: 16 }).openSubscriber({
      prefixes: ['t'],
      onDrop: (r) => drops.push(r),
    })
    const bob = collect(sub[Symbol.asyncIterator]())
    hub.setGate(() => 'drop')
    hub.inject('t1')
    hub.inject('t3', Buffer.from([0xff]))
    hub.inject()
    expect(drops).toEqual(['frame_count', 'not_utf8']) // before anything was read
    hub.inject('t5', 'ok')
    expect(await drain(bob)).toEqual(['t5:ok'])
  })
})
