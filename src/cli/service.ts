/**
 * What every long-running command (tail, relay, agent, consume) shares: a pino logger on
 * stderr, its metrics in its own registry, and the /metrics /healthz /readyz server
 * (`--metrics HOST:PORT` or `metrics_endpoint`). A command calls {@link openService} after
 * parsing its flags, passes {@link Service.busOptions} to the bus it opens, calls
 * `watch*` on what it runs, `startHealth()` once it is up, and `close()` last.
 */
import { Registry } from 'prom-client'
import { parseHostPort, HOST_PORT_EXPECTED, type GilmsgConfig } from '../config/config.js'
import type { CrlEvent } from '../crypto/crl-watch.js'
import type { ConnectionListener } from '../transport/transport.js'
import { UsageError } from '../errors.js'
import type { Bus } from '../bus/bus.js'
import type { X509Verifier } from '../crypto/verifier.js'
import type { Gilmsg } from '../reliable/gilmsg.js'
import type { Relay } from '../transport/relay.js'
import { createGilmsgMetrics, type GilmsgMetrics } from '../observe/metrics.js'
import { Readiness, startHealthServer, type HealthServer } from '../observe/health.js'
import { createServiceLogger, isLogFormat, isLogLevel, LOG_FORMATS, LOG_LEVELS, type Logger } from '../observe/log.js'
import { connectionLogger, crlEventLogger, DropBursts, logPublisherEvents } from '../observe/log-events.js'
import { terminalSafe } from './terminal.js'

/** The flags of every long-running command, for `parse`. */
export const SERVICE_OPTIONS = {
  metrics: { type: 'string' },
  'log-format': { type: 'string' },
  'log-level': { type: 'string' },
} as const

/** Their lines in a command's --help. */
export const SERVICE_HELP = `  --metrics HOST:PORT  serve /metrics (Prometheus), /healthz and /readyz over HTTP on HOST:PORT
                   (an IP address or localhost; port 0: any free port; the address is logged);
                   default: metrics_endpoint from the config, else no server
  --log-format json|text  log lines on stderr as JSON (the default) or as text (the default on a terminal)
  --log-level LEVEL  ${LOG_LEVELS.join(', ')} (default info; --verbose: debug)`

/** The parsed flags {@link openService} reads. */
export interface ServiceFlags {
  readonly metrics?: string | undefined
  readonly 'log-format'?: string | undefined
  readonly 'log-level'?: string | undefined
  readonly verbose?: boolean | undefined
}

/** A running command's logger, metrics and health server. */
export interface Service {
  readonly log: Logger
  readonly registry: Registry
  readonly metrics: GilmsgMetrics
  readonly readiness: Readiness
  /** Drops, logged in bursts (see `DropBursts`). */
  readonly drops: DropBursts
  /** For `busFromConfig` / `openGilmsg`: drops and CRL events to the log, SIGHUP reloads the CRL. */
  readonly busOptions: {
    readonly onDrop: (reason: string, detail: string) => void
    readonly onCrlEvent: (event: CrlEvent) => void
    readonly onConnection: ConnectionListener
    readonly crlReloadSignal: NodeJS.Signals
  }
  /** The health server once {@link startHealth} started it. */
  readonly health: HealthServer | undefined
  /** Metrics and readiness of a `Gilmsg` (its bus, publisher, consumer, stores, CRL) and logs of its publisher's outcomes. */
  watchGilmsg(g: Gilmsg): void
  /** Metrics and readiness (CRL) of a bus of a command without a `Gilmsg`. */
  watchBus(bus: Bus): void
  /** Metrics of a relay; readiness: its sockets are open. */
  watchRelay(relay: Relay): void
  /** Starts the health server if an endpoint is configured, and logs its address (`metrics_url`). Rejects with `TransportError` if it cannot listen. */
  startHealth(): Promise<void>
  /** Readiness fails from now on (`shutting down`): call it on the first signal. */
  stopping(): void
  /** Closes the health server, logs the drops counted since the last burst line. Idempotent. */
  close(): Promise<void>
}

/**
 * Sets up a command's service kit from its flags and config: throws `UsageError` for a
 * `--metrics`, `--log-format` or `--log-level` it cannot take. Starts nothing yet.
 */
export function openService(command: string, flags: ServiceFlags, config: GilmsgConfig): Service {
  const format = flags['log-format']
  if (format !== undefined && !isLogFormat(format)) throw UsageError.format('--log-format', LOG_FORMATS.join(' or '), format)
  const level = flags['log-level'] ?? (flags.verbose === true ? 'debug' : undefined)
  if (level !== undefined && !isLogLevel(level)) throw UsageError.format('--log-level', `one of ${LOG_LEVELS.join(', ')}`, level)
  const endpointText = flags.metrics ?? config.metrics_endpoint
  const endpoint = endpointText === undefined ? undefined : parseHostPort(endpointText)
  if (endpointText !== undefined && endpoint === undefined) throw UsageError.format('--metrics', HOST_PORT_EXPECTED, endpointText)

  const log = createServiceLogger({ name: command, format, level })
  const registry = new Registry()
  const metrics = createGilmsgMetrics({ registry })
  const readiness = new Readiness()
  const drops = new DropBursts(log, { safe: terminalSafe })
  const detach: (() => void)[] = []
  let health: HealthServer | undefined
  let shuttingDown = false
  let closing: Promise<void> | undefined
  readiness.add('running', () => (shuttingDown ? 'shutting down' : undefined))

  const watchCrl = (bus: Bus): void => {
    const verifier = bus.verifier as Partial<X509Verifier> | undefined
    if (typeof verifier?.crlStatus !== 'function') return
    const v = verifier as X509Verifier
    readiness.add('crl', () => {
      const s = v.crlStatus()
      return s?.stale === true ? `the CRL is stale: its nextUpdate ${new Date(s.nextUpdate).toISOString()} has passed` : undefined
    })
  }

  return {
    log,
    registry,
    metrics,
    readiness,
    drops,
    busOptions: {
      onDrop: (reason, detail) => drops.add(reason, detail),
      onCrlEvent: crlEventLogger(log),
      onConnection: connectionLogger(log),
      crlReloadSignal: 'SIGHUP',
    },
    get health() {
      return health
    },
    watchGilmsg(g) {
      detach.push(metrics.attachGilmsg(g))
      if (g.publisher !== undefined) detach.push(logPublisherEvents(g.publisher, log))
      watchCrl(g.bus)
      const { outbox, inbox } = g
      if (outbox !== undefined) readiness.add('outbox', () => (outbox.nextDueAt(), undefined))
      if (inbox !== undefined) readiness.add('inbox', () => (inbox.get('', ''), undefined))
    },
    watchBus(bus) {
      detach.push(metrics.attachBus(bus))
      watchCrl(bus)
    },
    watchRelay(relay) {
      detach.push(metrics.attachRelay(relay))
      let stopped = false
      void relay.closed.then(() => (stopped = true))
      readiness.add('sockets', () => (stopped ? 'the relay has stopped' : undefined))
    },
    async startHealth() {
      if (endpoint === undefined || health !== undefined) return
      health = await startHealthServer({ host: endpoint.host, port: endpoint.port, registry, readiness })
      log.info({ metrics_url: health.url }, `serving /metrics, /healthz and /readyz on ${health.url}`)
    },
    stopping() {
      shuttingDown = true
    },
    close() {
      closing ??= (async () => {
        shuttingDown = true
        await health?.close()
        for (const f of detach.splice(0)) f()
        drops.close()
      })()
      return closing
    },
  }
}
