/**
 * Raw zeromq.js throughput, one way (case `relay`): no gilmsg code on the path.
 *
 *   flow --role pub [--connect A]     an XPUB bound on tcp://127.0.0.1:* (or connected to A, a
 *                                     relay's inbound); replies `ready {endpoint}`
 *   flow --role sub --connect B --count N
 *                                     a SUB connected to B, subscribed to `bench.flow`; replies
 *                                     `ready`, then `done {received, ms}` after N messages
 *
 * The publisher, on `go {count, size}`, waits for the subscription (through a relay it comes
 * upstream, so both legs are connected once it is there), then sends `count` messages of
 * `size` body bytes as fast as the socket takes them and replies `sent {ms}`. High-water
 * marks are off: nothing is dropped. Timed at the subscriber, first message to last.
 */
import { parseArgs } from 'node:util'
import { Subscriber, XPublisher } from 'zeromq'
import { reply, serve, type Command } from '../lib/worker.js'

const TOPIC = 'bench.flow'
const SUBSCRIBER_WAIT_MS = 15_000

const { values } = parseArgs({ options: { role: { type: 'string' }, connect: { type: 'string' }, count: { type: 'string' } } })

if (values.role === 'pub') {
  const pub = new XPublisher()
  pub.sendHighWaterMark = 0
  pub.receiveTimeout = SUBSCRIBER_WAIT_MS
  let endpoint = values.connect ?? ''
  if (values.connect !== undefined) pub.connect(values.connect)
  else {
    await pub.bind('tcp://127.0.0.1:*')
    endpoint = pub.lastEndpoint ?? ''
  }
  async function go(c: Command): Promise<{ type: string; ms: number }> {
    const count = Number(c['count'])
    const body = Buffer.alloc(Number(c['size']), 'x')
    const [subscription] = await pub.receive()
    if (subscription?.[0] !== 1) throw new Error('expected a subscription message first')
    const t0 = performance.now()
    for (let i = 0; i < count; i++) await pub.send([TOPIC, body])
    return { type: 'sent', ms: performance.now() - t0 }
  }
  serve({ go }, { onExit: async () => pub.close() })
  reply({ type: 'ready', endpoint })
} else {
  const sub = new Subscriber()
  sub.receiveHighWaterMark = 0
  sub.connect(values.connect ?? '')
  sub.subscribe(TOPIC)
  const count = Number(values.count)
  serve({}, { onExit: async () => sub.close() })
  reply({ type: 'ready' })
  let t0 = 0
  let received = 0
  while (received < count) {
    await sub.receive()
    if (received++ === 0) t0 = performance.now()
  }
  reply({ type: 'done', received, ms: performance.now() - t0 })
}
