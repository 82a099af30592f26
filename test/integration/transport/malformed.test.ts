import fc from 'fast-check'
import { Publisher } from 'zeromq'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { RawMessage, SubSocket } from '../../../src/transport/transport.js'
import { RECONNECT_GRACE_MS, ZmqTransport } from '../../../src/transport/zmq.js'
import { removeIpcFiles, take, takeThrough, TRANSPORTS, waitForJoin } from './helpers.js'

const MAX_MESSAGE_BYTES = 64

type Sent = { kind: 'good'; topic: string; body: string } | { kind: 'raw'; frames: Buffer[] }

/** The model: what the subscriber must do with `frames`, computed independently of the code under test. */
function expectedFate(frames: readonly Buffer[]): 'nothing' | 'frame_count' | 'too_large' | 'not_utf8' | 'deliver' {
  if (frames.length === 0) return 'nothing' // ZeroMQ cannot send a message with no frames
  if (frames.length !== 2) return 'frame_count'
  if (frames[0]!.length + frames[1]!.length > MAX_MESSAGE_BYTES) return 'too_large'
  const strict = new TextDecoder('utf-8', { fatal: true })
  try {
    strict.decode(frames[0])
    strict.decode(frames[1])
  } catch {
    return 'not_utf8'
  }
  return 'deliver'
}

// Every frame within the limit: a larger one costs the connection (libzmq refuses it), tested below.
const frame = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 20 }).map((s) => Buffer.from(s)),
  fc.uint8Array({ maxLength: 24 }).map((a) => Buffer.from(a)),
  fc.constantFrom(Buffer.from([0xc3, 0x28]), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from([0xf0, 0x9f, 0x98])),
  fc.integer({ min: MAX_MESSAGE_BYTES - 8, max: MAX_MESSAGE_BYTES }).map((n) => Buffer.alloc(n, 'o')),
)

const sent: fc.Arbitrary<Sent> = fc.oneof(
  fc.record({
    kind: fc.constant('good' as const),
    topic: fc.string({ unit: 'grapheme-ascii', maxLength: 12 }),
    body: fc.string({ unit: 'grapheme', maxLength: 12 }),
  }),
  fc.record({ kind: fc.constant('raw' as const), frames: fc.array(frame, { minLength: 0, maxLength: 4 }) }),
)

describe('ZmqTransport subscriber under malformed input', () => {
  let raw: Publisher
  let sub: SubSocket
  let messages: AsyncIterator<RawMessage, undefined>
  const drops = new Map<string, number>()

  beforeAll(async () => {
    raw = new Publisher({ linger: 0 })
    await raw.bind('tcp://127.0.0.1:*')
    const transport = new ZmqTransport({ subscribeTo: [raw.lastEndpoint!], maxMessageBytes: MAX_MESSAGE_BYTES })
    sub = await transport.openSubscriber({ onDrop: (reason) => drops.set(reason, (drops.get(reason) ?? 0) + 1) })
    messages = sub[Symbol.asyncIterator]()
    await waitForJoin((t, b) => raw.send([t, b]), messages)
  })

  afterAll(async () => {
    await sub?.close()
    raw?.close()
  })

  it('drops exactly the malformed messages, by reason, and delivers the rest in order', async () => {
    let run = 0
    await fc.assert(
      fc.asyncProperty(fc.array(sent, { maxLength: 25 }), async (items) => {
        drops.clear()
        const expectedDrops = new Map<string, number>()
        const expectedDelivered: { topic: string; body: Buffer }[] = []
        for (const item of items) {
          const frames = item.kind === 'good' ? [Buffer.from(item.topic), Buffer.from(item.body)] : item.frames
          const fate = expectedFate(frames)
          if (fate === 'deliver') expectedDelivered.push({ topic: frames[0]!.toString(), body: frames[1]! })
          else if (fate !== 'nothing') expectedDrops.set(fate, (expectedDrops.get(fate) ?? 0) + 1)
          await raw.send(frames)
        }
        // ZeroMQ keeps per-connection order: once the sentinel arrives, everything before it has.
        // Reading exactly through it keeps the next run clean even after a failure (so shrinking works).
        const sentinel = `\u0000sentinel.${run++}`
        await raw.send([sentinel, ''])
        const got = await takeThrough(messages, sentinel)
        expect(got.slice(0, -1).map((m) => ({ topic: m.topic, body: m.body }))).toEqual(expectedDelivered)
        expect(new Map([...drops].sort())).toEqual(new Map([...expectedDrops].sort()))
      }),
      { numRuns: 100 },
    )
    // Still alive after all of that.
    await raw.send(['after', 'ok'])
    expect((await take(messages, 1))[0]?.topic).toBe('after')
  })
})

describe.each(TRANSPORTS)('ZmqTransport subscriber and a frame over maxMessageBytes, over $name', ({ bindAddress }) => {
  const LIMIT = 4096
  let raw: Publisher | undefined
  let sub: SubSocket | undefined

  afterEach(async () => {
    await sub?.close()
    raw?.close()
    removeIpcFiles()
  })

  async function open(): Promise<{ raw: Publisher; messages: AsyncIterator<RawMessage, undefined>; drops: [string, string | undefined][] }> {
    raw = new Publisher({ linger: 0 })
    await raw.bind(bindAddress())
    const drops: [string, string | undefined][] = []
    sub = await new ZmqTransport({ subscribeTo: [raw.lastEndpoint!], maxMessageBytes: LIMIT }).openSubscriber({ onDrop: (r, d) => drops.push([r, d]) })
    const messages = sub[Symbol.asyncIterator]()
    await waitForJoin((t, b) => raw!.send([t, b]), messages)
    return { raw, messages, drops }
  }

  /** Sends `topic` every 20 ms until a message arrives (the subscriber reconnects); resolves with that first message. */
  async function firstAfterReconnect(raw: Publisher, messages: AsyncIterator<RawMessage, undefined>, topic: string): Promise<RawMessage> {
    let got: RawMessage | undefined
    const next = messages.next().then((r) => (got = r.done === true ? undefined : r.value))
    const deadline = Date.now() + 10_000
    while (got === undefined && Date.now() < deadline) {
      await raw.send([topic, 'ok'])
      await Promise.race([next, new Promise((r) => setTimeout(r, 20))])
    }
    if (got === undefined) throw new Error(`no message within 10 s after the reconnect`)
    return got
  }

  it('a frame of exactly maxMessageBytes arrives; one byte more never does, is counted as frame_too_large, and the subscriber reconnects', async () => {
    const { raw, messages, drops } = await open()
    await raw.send(['', Buffer.alloc(LIMIT, 'a')])
    const [atLimit] = await take(messages, 1)
    expect(atLimit?.body.length).toBe(LIMIT)

    await raw.send(['', Buffer.alloc(LIMIT + 1, 'b')])
    const started = Date.now()
    while (drops.length === 0 && Date.now() - started < 5000) await new Promise((r) => setTimeout(r, 10))
    expect(drops).toEqual([['frame_too_large', `libzmq closed the connection to ${raw.lastEndpoint}: a frame over ${LIMIT} bytes (reconnecting)`]])
    expect(Date.now() - started).toBeGreaterThanOrEqual(RECONNECT_GRACE_MS - 50)

    // The first message after the drop is the next one sent: the oversized frame never reached the subscriber.
    const after = await firstAfterReconnect(raw, messages, 'after')
    expect(after.topic).toBe('after')
    expect(after.body.toString()).toBe('ok')
    expect(drops).toHaveLength(1)
  })

  it('a topic frame over maxMessageBytes is refused the same way', async () => {
    const { raw, messages, drops } = await open()
    await raw.send(['t'.repeat(LIMIT + 1), ''])
    const after = await firstAfterReconnect(raw, messages, 'after')
    expect(after.topic).toBe('after')
    expect(drops.map(([r]) => r)).toEqual(['frame_too_large'])
  })

  it('an exception thrown by onDrop for frame_too_large rejects the next read; the subscriber has connected again', async () => {
    raw = new Publisher({ linger: 0 })
    await raw.bind(bindAddress())
    const boom = new Error('listener failed')
    let thrown = 0
    sub = await new ZmqTransport({ subscribeTo: [raw.lastEndpoint!], maxMessageBytes: LIMIT }).openSubscriber({
      onDrop: (reason) => {
        if (reason === 'frame_too_large' && thrown++ === 0) throw boom
      },
    })
    const messages = sub[Symbol.asyncIterator]()
    await waitForJoin((t, b) => raw!.send([t, b]), messages)
    await raw.send(['', Buffer.alloc(LIMIT + 1)])
    const started = Date.now()
    while (thrown === 0 && Date.now() - started < 5000) await new Promise((r) => setTimeout(r, 10))
    await expect(messages.next()).rejects.toBe(boom)
    const after = await firstAfterReconnect(raw, messages, 'after')
    expect(after.topic).toBe('after')
  })

  it('a publisher that closes is not counted: libzmq reconnects by itself', async () => {
    const { raw: first, messages, drops } = await open()
    const endpoint = first.lastEndpoint!
    first.close()
    await new Promise((r) => setTimeout(r, RECONNECT_GRACE_MS + 200))
    raw = new Publisher({ linger: 0 })
    await raw.bind(endpoint)
    const after = await firstAfterReconnect(raw, messages, 'back')
    expect(after.topic).toBe('back')
    expect(drops).toEqual([])
  })
})
