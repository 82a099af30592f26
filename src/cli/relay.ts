import { cliConfig } from './config.js'
import { ConfigError } from '../errors.js'
import { socketOptionsFromConfig } from '../bus/from-config.js'
import { startRelay } from '../transport/relay.js'
import { parse } from './args.js'
import { ExitCode } from './exit-codes.js'
import { untilInterrupted } from './signals.js'
import { openService, SERVICE_HELP, SERVICE_OPTIONS } from './service.js'

const HELP = `Usage: gilmsg relay [--config FILE] [--inbound ADDR] [--outbound ADDR] [--stats] [--verbose]
                    [--metrics HOST:PORT] [--log-format json|text] [--log-level LEVEL]

Forwards every message published to the inbound addresses (SUB, bound) to the outbound
addresses (PUB, bound), byte for byte, as fedmsg-relay. Short-lived publishers connect to
the inbound side ("active": true); subscribers list the outbound side in "endpoints".
  --inbound ADDR    default: relay_inbound from the config
  --outbound ADDR   default: endpoints.relay_outbound from the config
  --stats           log the counters (forwarded, drops, inbound disconnects) at exit
  --verbose         say which config file was loaded; also log every dropped message and every
                    inbound connection that ended (--log-level debug; a publisher that sends a
                    frame over max_message_bytes is disconnected by libzmq: that shows only as
                    an ended connection); drops are otherwise logged once per reason every 10 s
${SERVICE_HELP}
Prints "inbound <addr>" and "outbound <addr>" lines on stdout once bound (real ports for :*), then
runs until SIGINT/SIGTERM: then it stops forwarding, closes its sockets and exits 0; a second
signal meanwhile exits at once (130 SIGINT, 143 SIGTERM).`

export async function run(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    inbound: { type: 'string', multiple: true },
    outbound: { type: 'string', multiple: true },
    stats: { type: 'boolean' },
    verbose: { type: 'boolean', short: 'v' },
    ...SERVICE_OPTIONS,
  })
  if (values.help) {
    process.stdout.write(HELP + '\n')
    return ExitCode.Ok
  }
  const config = cliConfig(values)
  const inbound = values.inbound ?? config.relay_inbound
  const outbound = values.outbound ?? config.endpoints['relay_outbound'] ?? []
  if (inbound.length === 0) throw new ConfigError(`${config.source}: the relay needs "relay_inbound" (or --inbound)`)
  if (outbound.length === 0) throw new ConfigError(`${config.source}: the relay needs "endpoints": {"relay_outbound": [...]} (or --outbound)`)
  const svc = openService('relay', values, config)
  try {
    const log = svc.log
    await svc.startHealth()
    const relay = await startRelay({
      inbound,
      outbound,
      ...socketOptionsFromConfig(config),
      onDrop: (reason) => svc.drops.add(reason),
      onInboundDisconnect: (address) => {
        if (log.isLevelEnabled('debug')) {
          log.debug({ address }, `inbound connection closed on ${address} (the publisher left, or sent a frame over ${config.max_message_bytes} bytes)`)
        }
      },
    })
    svc.watchRelay(relay)
    for (const a of relay.endpoints.inbound) process.stdout.write(`inbound ${a}\n`)
    for (const a of relay.endpoints.outbound) process.stdout.write(`outbound ${a}\n`)
    await untilInterrupted()
    svc.stopping()
    await relay.close()
    log.info({ forwarded: relay.forwarded }, `forwarded ${relay.forwarded} messages`)
    if (values.stats || values.verbose) {
      const dropped = Object.fromEntries(Object.entries(relay.dropped).map(([reason, n]) => [`dropped_${reason}`, n]))
      log.info({ stats: { forwarded: relay.forwarded, ...dropped, inbound_disconnects: relay.inboundDisconnects } }, 'stats')
    }
    return ExitCode.Ok
  } finally {
    await svc.close()
  }
}
