/**
 * Many subscribers in one process (the scaling case): 30 recipients or
 * bystanders do not fit on 2 cores as 30 processes, so each host process
 * runs a share of them, every one with its own config, sockets and
 * (for `gilmsg`) certificate and SQLite inbox, exactly as a process of its own would.
 *
 *   host
 *
 * Commands:
 * - `add {configs, kind: gilmsg|bus, prefix}`: opens one subscriber per
 *   config: `gilmsg` is `openGilmsg(config, {outbox: false})` then
 *   `subscribe(prefix)` (acknowledging what names its CN, passing over ACK
 *   traffic, as an application runs it); `bus` is a plain `Bus.subscribe(prefix)`
 *   that validates every message and acknowledges nothing. Replies `added {count}`.
 * - `stats`: replies `stats {subscribers, delivered, ackDeliveries, acksSkipped, acksSent, drops}`
 *   summed over the subscribers (`ackDeliveries`: ACK messages handed to the application).
 * - `clear`: closes every subscriber. Replies `cleared`.
 */
import { busFromConfig, loadConfig, openGilmsg, type Bus, type Gilmsg } from '../../src/index.js'
import { isAckTopic } from '../../src/reliable/protocol.js'
import { reply, serve, type Command } from '../lib/worker.js'

interface Hosted {
  readonly g?: Gilmsg
  readonly bus: Bus
  readonly close: () => Promise<void>
  readonly loop: Promise<void>
}

let hosted: Hosted[] = []
let delivered = 0
let ackDeliveries = 0

function count(topic: string): void {
  delivered++
  if (isAckTopic(topic)) ackDeliveries++
}

async function open(file: string, kind: string, prefix: string): Promise<Hosted> {
  const config = loadConfig({ file })
  if (kind === 'gilmsg') {
    const g = await openGilmsg(config, { outbox: false })
    const sub = await g.subscribe(prefix)
    const loop = (async () => {
      for await (const d of sub) count(d.topic)
    })()
    return { g, bus: g.bus, loop, close: () => sub.close() }
  }
  if (kind !== 'bus') throw new Error(`add: kind: expected gilmsg or bus, got ${JSON.stringify(kind)}`)
  const bus = await busFromConfig(config, { signer: undefined })
  const sub = await bus.subscribe(prefix)
  const loop = (async () => {
    for await (const m of sub) count(m.topic)
  })()
  return { bus, loop, close: () => sub.close() }
}

async function add(c: Command) {
  const configs = c['configs'] as string[]
  const opened = await Promise.all(configs.map((file) => open(file, String(c['kind']), String(c['prefix']))))
  hosted.push(...opened)
  return { type: 'added', count: hosted.length }
}

function sum(pick: (h: Hosted) => number): number {
  return hosted.reduce((a, h) => a + pick(h), 0)
}

function stats() {
  const drops: Record<string, number> = {}
  for (const h of hosted) for (const [k, v] of Object.entries(h.bus.drops.snapshot())) drops[k] = (drops[k] ?? 0) + v
  return {
    type: 'stats',
    subscribers: hosted.length,
    delivered,
    ackDeliveries,
    acksSkipped: sum((h) => h.g?.consumer?.stats.get('acks_skipped') ?? 0),
    acksSent: sum((h) => h.g?.consumer?.stats.get('acks_sent') ?? 0),
    ackEnvelopes: sum((h) => h.g?.consumer?.stats.get('ack_envelopes') ?? 0),
    drops,
  }
}

async function clear() {
  const all = hosted
  hosted = []
  await Promise.all(
    all.map(async (h) => {
      await h.close()
      await h.loop
      await (h.g ? h.g.close() : h.bus.close())
    }),
  )
  return { type: 'cleared' }
}

serve({ add, stats, clear }, { onExit: async () => void (await clear()) })
reply({ type: 'ready' })
