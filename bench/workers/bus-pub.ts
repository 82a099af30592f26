/**
 * Bus throughput, sending side (case 3).
 *
 *   bus-pub --config FILE --kind gilmsg|raw
 *
 * Binds tcp://127.0.0.1:* and replies `ready {endpoint}`. On `go {count}` it
 * waits (bounded) until a subscriber's subscription arrived, then sends
 * `count` messages and replies `sent {ms, cpuMs}`.
 *
 * gilmsg: `Bus.publish` for every message (canonical JSON + signature + the
 * transport's send queue), `BATCH` publishes in flight.
 * raw: zeromq.js `XPublisher.send` of frames that gilmsg sealed beforehand
 * with the same certificate (identical topic and body bytes; sealing is not
 * timed), awaiting each send as the transport does.
 */
import { parseArgs } from 'node:util'
import { XPublisher } from 'zeromq'
import { busFromConfig, loadConfig, ZmqTransport } from '../../src/index.js'
import { APP_MODNAME } from '../lib/names.js'
import { cpuMs, reply, serve, type Command } from '../lib/worker.js'

const BATCH = 256
const DISTINCT_RAW_FRAMES = 1000
const SUBSCRIBER_WAIT_MS = 15_000

const { values } = parseArgs({ options: { config: { type: 'string' }, kind: { type: 'string' } } })
const config = loadConfig({ file: values.config })
const kind = values.kind === 'raw' ? 'raw' : 'gilmsg'
const bus = await busFromConfig(config, { transport: new ZmqTransport({ bind: ['tcp://127.0.0.1:*'], subscribeTo: [] }) })

// About 300 bytes of payload, as a typical fedmsg message.
function busPayload(n: number): Record<string, unknown> {
  return { n, agent: 'bench', name: 'gilmsg', version: '1.2.0', release: '1.fc40', owner: 'alice', tags: ['f40', 'candidate'], text: 'x'.repeat(120) }
}

let raw: XPublisher | undefined
let endpoint: string
if (kind === 'raw') {
  raw = new XPublisher()
  raw.sendHighWaterMark = 0
  raw.receiveTimeout = SUBSCRIBER_WAIT_MS
  await raw.bind('tcp://127.0.0.1:*')
  endpoint = raw.lastEndpoint ?? ''
} else {
  endpoint = (await bus.openPublisher())[0] ?? ''
}

async function go(c: Command): Promise<{ type: string; [k: string]: unknown }> {
  const count = Number(c['count'])
  const topic = bus.fullTopic('bus', APP_MODNAME)
  if (raw !== undefined) {
    const frames = Array.from({ length: Math.min(count, DISTINCT_RAW_FRAMES) }, (_, i) => bus.seal('bus', busPayload(i), { modname: APP_MODNAME }))
    const sub = await raw.receive()
    if (sub[0]?.[0] !== 1) throw new Error('expected a subscription message first')
    const cpu = process.cpuUsage()
    const t0 = performance.now()
    for (let i = 0; i < count; i++) {
      const f = frames[i % frames.length]!
      await raw.send([f.topic, f.body])
    }
    return { type: 'sent', ms: performance.now() - t0, cpuMs: cpuMs(cpu), bodyBytes: Buffer.byteLength(frames[0]!.body) }
  }
  if (!(await bus.waitForSubscribers(topic, { timeoutMs: SUBSCRIBER_WAIT_MS }))) throw new Error(`no subscriber within ${SUBSCRIBER_WAIT_MS} ms`)
  const cpu = process.cpuUsage()
  const t0 = performance.now()
  let bodyBytes = 0
  for (let i = 0; i < count; i += BATCH) {
    const batch: Promise<{ body: string }>[] = []
    for (let j = i; j < Math.min(count, i + BATCH); j++) batch.push(bus.publish('bus', busPayload(j), { modname: APP_MODNAME }))
    const sent = await Promise.all(batch)
    bodyBytes = Buffer.byteLength(sent[0]!.body)
  }
  return { type: 'sent', ms: performance.now() - t0, cpuMs: cpuMs(cpu), bodyBytes }
}

serve({ go }, { onExit: async () => void (raw?.close(), await bus.close()) })
reply({ type: 'ready', endpoint })
