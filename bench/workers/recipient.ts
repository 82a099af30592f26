/**
 * A required recipient (cases 4 and 5): gilmsg with an inbox, acknowledging
 * automatically what names its CN, as an application would run it.
 *
 *   recipient --config FILE --prefix TOPIC_PREFIX
 *
 * Replies `ready {cn}` once subscribed; `stats` replies with its counters.
 */
import { parseArgs } from 'node:util'
import { loadConfig, openGilmsg } from '../../src/index.js'
import { cpuMs, reply, serve } from '../lib/worker.js'

const { values } = parseArgs({ options: { config: { type: 'string' }, prefix: { type: 'string' } } })
const config = loadConfig({ file: values.config })
const g = await openGilmsg(config, { outbox: false })
const sub = await g.subscribe(values.prefix ?? '')
const cpu = process.cpuUsage()
let delivered = 0
const loop = (async () => {
  for await (const _ of sub) delivered++
})()

serve(
  {
    stats: () => ({
      type: 'stats',
      delivered,
      cpuMs: cpuMs(cpu),
      consumer: g.consumer?.stats.snapshot() ?? {},
      drops: g.bus.drops.snapshot(),
    }),
  },
  {
    onExit: async () => {
      await sub.close()
      await loop
      await g.close()
    },
  },
)
reply({ type: 'ready', cn: g.consumer?.cn ?? '' })
