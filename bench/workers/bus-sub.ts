/**
 * Bus throughput, receiving side (case 3).
 *
 *   bus-sub --config FILE --kind gilmsg|raw --connect ENDPOINT --count N [--idle-ms MS]
 *
 * Connects, subscribes to the application prefix and replies `ready`. Then
 * receives until N messages arrived (or none came for `idle-ms` after the
 * first) and replies `done {received, ms, ...}`, `ms` running from the first
 * message to the last.
 *
 * gilmsg: `Bus.subscribe`, so each message is parsed, canonicalised and its
 * signature and certificate validated. raw: zeromq.js `Subscriber.receive`.
 */
import { parseArgs } from 'node:util'
import { Subscriber } from 'zeromq'
import { busFromConfig, loadConfig, ZmqTransport } from '../../src/index.js'
import { APP_PREFIX } from '../lib/names.js'
import { cpuMs, reply, serve } from '../lib/worker.js'

const { values } = parseArgs({
  options: { config: { type: 'string' }, kind: { type: 'string' }, connect: { type: 'string' }, count: { type: 'string' }, 'idle-ms': { type: 'string' } },
})
const config = loadConfig({ file: values.config })
const count = Number(values.count)
const idleMs = Number(values['idle-ms'] ?? 5000)
const endpoint = values.connect ?? ''
let received = 0
let first = 0
let last = 0
let cpu = process.cpuUsage()

function mark(): void {
  last = performance.now()
  if (received++ === 0) {
    first = last
    cpu = process.cpuUsage()
  }
}

serve({}, { onExit: async () => undefined })

if (values.kind === 'raw') {
  const sub = new Subscriber()
  sub.receiveHighWaterMark = 0
  sub.connect(endpoint)
  sub.subscribe(APP_PREFIX)
  reply({ type: 'ready' })
  sub.receiveTimeout = 60_000
  try {
    while (received < count) {
      await sub.receive()
      mark()
      if (received === 1) sub.receiveTimeout = idleMs
    }
  } catch (e) {
    if ((e as { code?: string }).code !== 'EAGAIN') throw e
  }
  sub.close()
  reply({ type: 'done', received, ms: last - first, cpuMs: cpuMs(cpu) })
} else {
  const bus = await busFromConfig(config, { transport: new ZmqTransport({ subscribeTo: [endpoint] }), signer: undefined })
  const sub = await bus.subscribe(APP_PREFIX)
  reply({ type: 'ready' })
  const watchdog = setInterval(() => {
    if (received > 0 && performance.now() - last > idleMs) void sub.close()
  }, 100)
  const startWait = setTimeout(() => void sub.close(), 60_000)
  for await (const m of sub) {
    if (m.signer === undefined) continue
    if (received === 0) clearTimeout(startWait)
    mark()
    if (received >= count) break
  }
  clearInterval(watchdog)
  clearTimeout(startWait)
  const drops = bus.drops.snapshot()
  await bus.close()
  reply({ type: 'done', received, ms: last - first, cpuMs: cpuMs(cpu), drops })
}
