/**
 * Raw zeromq.js PUB/SUB round trip (the baseline of case 4's one-at-a-time
 * latency): two processes, no gilmsg code on the path.
 *
 *   pingpong --role pong --bind            binds a SUB and a PUB on tcp://127.0.0.1:*,
 *                                          replies `ready {in, out}`
 *   pingpong --role pong --in A --out B    connects its SUB to B and its PUB to A (a relay)
 *   pingpong --role ping --in A --out B --size BYTES
 *                                          PUB connects to A, SUB to B
 *
 * pong echoes every `bench.ping` message as `bench.pong` with the same body.
 * ping, on `go {count}`, first pings every 50 ms until a pong comes back (the
 * slow joiner), drains stray pongs, then sends one ping at a time and times
 * each until its pong arrives. Replies `rtt {samples}` (ms).
 */
import { parseArgs } from 'node:util'
import { Publisher, Subscriber } from 'zeromq'
import { reply, serve, type Command } from '../lib/worker.js'

const PING = 'bench.ping'
const PONG = 'bench.pong'

const { values } = parseArgs({
  options: { role: { type: 'string' }, bind: { type: 'boolean' }, in: { type: 'string' }, out: { type: 'string' }, size: { type: 'string' } },
})

const pub = new Publisher()
const sub = new Subscriber()
pub.sendHighWaterMark = 0
sub.receiveHighWaterMark = 0

function isTimeout(e: unknown): boolean {
  return (e as { code?: string }).code === 'EAGAIN'
}

if (values.role === 'pong') {
  let inAddr = values.in ?? ''
  let outAddr = values.out ?? ''
  if (values.bind) {
    await sub.bind('tcp://127.0.0.1:*')
    await pub.bind('tcp://127.0.0.1:*')
    inAddr = sub.lastEndpoint ?? ''
    outAddr = pub.lastEndpoint ?? ''
  } else {
    sub.connect(outAddr)
    pub.connect(inAddr)
  }
  sub.subscribe(PING)
  serve({}, { onExit: async () => void (sub.close(), pub.close()) })
  reply({ type: 'ready', in: inAddr, out: outAddr })
  try {
    for (;;) {
      const [, body] = await sub.receive()
      await pub.send([PONG, body as Buffer])
    }
  } catch (e) {
    if (!sub.closed) throw e
  }
} else {
  pub.connect(values.in ?? '')
  sub.connect(values.out ?? '')
  sub.subscribe(PONG)
  const body = Buffer.alloc(Number(values.size ?? 1000), 'x')

  async function go(c: Command) {
    const count = Number(c['count'])
    const deadline = performance.now() + 15_000
    sub.receiveTimeout = 50
    let joined = false
    while (!joined) {
      if (performance.now() > deadline) throw new Error('no pong within 15 s')
      await pub.send([PING, body])
      try {
        await sub.receive()
        joined = true
      } catch (e) {
        if (!isTimeout(e)) throw e
      }
    }
    sub.receiveTimeout = 200
    for (;;) {
      try {
        await sub.receive()
      } catch (e) {
        if (isTimeout(e)) break
        throw e
      }
    }
    sub.receiveTimeout = 5000
    const samples: number[] = []
    for (let i = 0; i < count; i++) {
      const t0 = performance.now()
      await pub.send([PING, body])
      await sub.receive()
      samples.push(performance.now() - t0)
    }
    return { type: 'rtt', samples }
  }

  serve({ go }, { onExit: async () => void (sub.close(), pub.close()) })
  reply({ type: 'ready' })
}
