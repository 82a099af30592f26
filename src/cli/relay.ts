import { cliConfig } from './config.js'
import { ConfigError, UsageError } from '../errors.js'
import { socketOptionsFromConfig } from '../bus/from-config.js'
import { startRelay, type RelayMode } from '../transport/relay.js'
import { DEFAULT_RELAY_MODE, RELAY_MODES } from '../util/defaults.js'
import { parse } from './args.js'
import { ExitCode } from './exit-codes.js'
import { untilInterrupted } from './signals.js'
import { openService, SERVICE_HELP, SERVICE_OPTIONS } from './service.js'

const HELP = `Usage: gilmsg relay [--config FILE] [--inbound ADDR] [--outbound ADDR] [--mode native|js] [--stats] [--verbose]
                    [--metrics HOST:PORT] [--log-format json|text] [--log-level LEVEL]

Forwards every message published to the inbound addresses (XSUB, bound) to the outbound
addresses (XPUB, bound), byte for byte, as fedmsg-relay, and the subscriptions of the
subscribers back to the publishers. Short-lived publishers connect to the inbound side
("active": true); subscribers list the outbound side in "endpoints".
  --inbound ADDR    default: relay_inbound from the config
  --outbound ADDR   default: endpoints.relay_outbound from the config
  --mode MODE       native (default): libzmq's proxy forwards on a thread of its own, checking only
                    the frame size (max_message_bytes) and counting only connections;
                    js: a JavaScript loop that also drops and counts malformed messages (slower)
  --stats           log the counters at exit (inbound connects and disconnects; with --mode js
                    also forwarded and drops)
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
    mode: { type: 'string' },
    verbose: { type: 'boolean', short: 'v' },
    ...SERVICE_OPTIONS,
  })
  if (values.help) {
    process.stdout.write(HELP + '\n')
    return ExitCode.Ok
  }
  const mode = values.mode ?? DEFAULT_RELAY_MODE
  if (!(RELAY_MODES as readonly string[]).includes(mode)) throw UsageError.format('--mode', RELAY_MODES.join(' or '), mode)
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
      mode: mode as RelayMode,
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
    const counts = { inbound_connects: relay.inboundConnects, inbound_disconnects: relay.inboundDisconnects }
    if (relay.forwarded === undefined) {
      log.info({ mode: relay.mode, ...counts }, `stopped (${relay.mode} mode: messages are not counted)`)
    } else {
      log.info({ forwarded: relay.forwarded }, `forwarded ${relay.forwarded} messages`)
    }
    if (values.stats || values.verbose) {
      const dropped = Object.fromEntries(Object.entries(relay.dropped ?? {}).map(([reason, n]) => [`dropped_${reason}`, n]))
      const forwarded = relay.forwarded === undefined ? {} : { forwarded: relay.forwarded }
      log.info({ stats: { ...forwarded, ...dropped, ...counts } }, 'stats')
    }
    return ExitCode.Ok
  } finally {
    await svc.close()
  }
}
