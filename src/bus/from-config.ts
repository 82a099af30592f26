import { readFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { CertificateError, ConfigError } from '../errors.js'
import type { GilmsgConfig } from '../config/config.js'
import { loadSigner } from '../crypto/signer.js'
import { createVerifier } from '../crypto/verifier.js'
import { fileCrlCache } from '../crypto/crl-cache.js'
import { stateDir } from '../util/paths.js'
import type { Signer, Verifier } from '../crypto/types.js'
import { ZmqTransport, type ZmqSocketOptions } from '../transport/zmq.js'
import type { Transport } from '../transport/transport.js'
import type { Clock } from '../util/clock.js'
import { Bus } from './bus.js'

/**
 * The certname this process signs with: `certname`, else
 * `certnames["<cert_prefix>.<short hostname>"]`, else `certnames[name]`,
 * else `cert_prefix` (as fedmsg's ssldir layout expects).
 */
export function resolveCertname(config: GilmsgConfig): string {
  if (config.certname !== undefined) return config.certname
  const host = hostname().split('.')[0] ?? ''
  return (
    config.certnames[`${config.cert_prefix}.${host}`] ??
    (config.name !== undefined ? config.certnames[config.name] : undefined) ??
    config.cert_prefix
  )
}

/** The signer the config asks for, or undefined when `sign_messages` is false. */
export function signerFromConfig(config: GilmsgConfig): Signer | undefined {
  if (!config.sign_messages) return undefined
  return loadSigner({ mode: config.crypto_backend, ssldir: config.ssldir, certname: resolveCertname(config) })
}

function readPem(path: string, key: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch (e) {
    throw new CertificateError(`cannot read ${key} ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e })
  }
}

/** The verifier the config asks for, or undefined when `validate_signatures` is false. */
export async function verifierFromConfig(config: GilmsgConfig, clock?: Clock): Promise<Verifier | undefined> {
  if (!config.validate_signatures) return undefined
  const caPath = config.ca_cert_location ?? join(config.ssldir, 'ca.crt')
  const caPem = readPem(caPath, 'ca_cert_location')
  const crlPem = config.crl_location === undefined ? undefined : readPem(config.crl_location, 'crl_location')
  return createVerifier({
    caPem,
    crlPem,
    routingPolicy: config.routing_policy,
    routingNitpicky: config.routing_nitpicky,
    acceptModes: config.crypto_validate_backends,
    crlCache: fileCrlCache(join(stateDir(), 'crl-cache')),
    ...(clock ? { clock: () => clock.now() } : {}),
  })
}

/** Every endpoint a subscriber connects to: all of `endpoints`' addresses, once each. */
export function subscribeEndpoints(config: GilmsgConfig): string[] {
  return [...new Set(Object.values(config.endpoints).flat())]
}

/** The ZeroMQ socket options of the config (high-water mark, linger, reconnect, keepalive, size limit). */
export function socketOptionsFromConfig(config: GilmsgConfig): ZmqSocketOptions {
  return {
    highWaterMark: config.high_water_mark,
    lingerMs: config.zmq_linger,
    reconnectIvlMs: config.zmq_reconnect_ivl,
    reconnectIvlMaxMs: config.zmq_reconnect_ivl_max,
    maxMessageBytes: config.max_message_bytes,
    ...(config.zmq_tcp_keepalive
      ? {
          tcpKeepalive: {
            enabled: true,
            ...(config.zmq_tcp_keepalive_cnt !== undefined ? { count: config.zmq_tcp_keepalive_cnt } : {}),
            ...(config.zmq_tcp_keepalive_idle !== undefined ? { idleSec: config.zmq_tcp_keepalive_idle } : {}),
            ...(config.zmq_tcp_keepalive_intvl !== undefined ? { intervalSec: config.zmq_tcp_keepalive_intvl } : {}),
          },
        }
      : {}),
    ...(config.zmq_tcp_maxrt !== undefined && config.zmq_tcp_maxrt > 0 ? { tcpMaxRetransmitMs: config.zmq_tcp_maxrt } : {}),
    ...(config.zmq_connect_timeout !== undefined && config.zmq_connect_timeout > 0 ? { connectTimeoutMs: config.zmq_connect_timeout } : {}),
    ...(config.zmq_heartbeat_ivl !== undefined && config.zmq_heartbeat_ivl > 0
      ? {
          heartbeat: {
            intervalMs: config.zmq_heartbeat_ivl,
            ...(config.zmq_heartbeat_timeout !== undefined ? { timeoutMs: config.zmq_heartbeat_timeout } : {}),
            ...(config.zmq_heartbeat_ttl !== undefined ? { ttlMs: config.zmq_heartbeat_ttl } : {}),
          },
        }
      : {}),
  }
}

/** Where this process's publisher goes: it binds, it connects to a relay, or it cannot publish (why). */
type PublishTarget = { readonly bind: readonly string[] } | { readonly connect: readonly string[] } | { readonly cannot: string }

function publishTarget(config: GilmsgConfig): PublishTarget {
  if (config.active) {
    return config.relay_inbound.length > 0 ? { connect: config.relay_inbound } : { cannot: `${config.source}: "active" is true but "relay_inbound" is not set` }
  }
  const bind = config.name === undefined ? undefined : config.endpoints[config.name]
  if (bind !== undefined) return { bind }
  return {
    cannot:
      `${config.source}: nowhere to publish: ` +
      (config.name === undefined ? 'no "name" is set' : `"endpoints" has no entry "${config.name}"`) +
      ' (give this process an endpoint with "name" and "endpoints", or connect to a relay with "active": true and "relay_inbound")',
  }
}

/**
 * Why this process cannot publish (and so cannot send ACKs) with this config,
 * or undefined when it can: it needs `endpoints[name]` to bind, or
 * `active: true` and `relay_inbound` to connect to.
 */
export function whyCannotPublish(config: GilmsgConfig): string | undefined {
  const target = publishTarget(config)
  return 'cannot' in target ? target.cannot : undefined
}

/**
 * The ZeroMQ transport the config describes (`overrides.bind` replaces where
 * the publisher goes). A publisher binds `endpoints[name]`, or with
 * `active: true` connects to `relay_inbound`; when neither is possible,
 * opening the publisher rejects with a `ConfigError` saying why (subscribing
 * still works).
 */
export function transportFromConfig(config: GilmsgConfig, overrides: { bind?: readonly string[] } = {}): Transport {
  const target: PublishTarget = overrides.bind !== undefined ? { bind: overrides.bind } : publishTarget(config)
  const zmq = new ZmqTransport({
    ...('bind' in target ? { bind: target.bind } : {}),
    ...('connect' in target ? { connect: target.connect } : {}),
    subscribeTo: subscribeEndpoints(config),
    ...socketOptionsFromConfig(config),
  })
  if (!('cannot' in target)) return zmq
  const cannot = target.cannot
  return {
    openPublisher: () => Promise.reject(new ConfigError(cannot)),
    openSubscriber: (options) => zmq.openSubscriber(options),
  }
}

export interface OpenBusOptions {
  readonly transport?: Transport
  readonly signer?: Signer | undefined
  readonly verifier?: Verifier | undefined
  readonly clock?: Clock
  readonly onDrop?: (reason: string, detail: string) => void
}

/** A {@link Bus} set up from a config; anything given in `options` replaces what the config would make. */
export async function busFromConfig(config: GilmsgConfig, options: OpenBusOptions = {}): Promise<Bus> {
  return new Bus({
    transport: options.transport ?? transportFromConfig(config),
    signer: 'signer' in options ? options.signer : signerFromConfig(config),
    verifier: 'verifier' in options ? options.verifier : await verifierFromConfig(config, options.clock),
    topic: { topicPrefix: config.topic_prefix, environment: config.environment },
    maxJsonDepth: config.max_json_depth,
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.onDrop ? { onDrop: options.onDrop } : {}),
  })
}
