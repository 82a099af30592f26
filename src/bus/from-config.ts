import { readFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { CertificateError, ConfigError, GilmsgError, InvalidArgumentError } from '../errors.js'
import type { GilmsgConfig } from '../config/config.js'
import { loadSigner } from '../crypto/signer.js'
import { caFingerprint, createVerifier, type X509Verifier } from '../crypto/verifier.js'
import { fileCrlMemory } from '../crypto/crl-memory.js'
import type { CrlMark } from '../crypto/crl.js'
import { crlFileIdentity, warnCrlEvent, watchCrl, type CrlEvent, type CrlWatcher } from '../crypto/crl-watch.js'
import { defaultCachePath, isRemoteLocation, loadRemoteCa, RemoteCrl } from '../crypto/remote.js'
import { stateDir } from '../util/paths.js'
import type { Signer, Verifier } from '../crypto/types.js'
import { ZmqTransport } from '../transport/zmq.js'
import { resolveSocketOptions, type ZmqSocketOptions } from '../transport/zmq-options.js'
import { bindAddressOf } from '../transport/zmq-connect.js'
import type { ConnectionListener, Transport } from '../transport/transport.js'
import { systemClock, type Clock } from '../util/clock.js'
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

/** The CRL file gilmsg uses when `crl_location` is not set (if it exists): `crl.pem` in `ssldir`, where `gilmsg certs` writes it. */
export const DEFAULT_CRL_FILE = 'crl.pem'

/** The CRL file the config names: `crl_location`, else `<ssldir>/crl.pem` (used only while it exists). */
export function crlPath(config: GilmsgConfig): { readonly path: string; readonly explicit: boolean } {
  return config.crl_location !== undefined ? { path: config.crl_location, explicit: true } : { path: join(config.ssldir, DEFAULT_CRL_FILE), explicit: false }
}

/**
 * The local file a CA or CRL location is read from: the location itself, or, for an
 * http(s) URL, its cache (`cache`, else the default under the state directory).
 */
export function localCopyOf(location: string, cache: string | undefined, kind: 'ca' | 'crl'): { readonly path: string; readonly remote: boolean } {
  if (!isRemoteLocation(location)) return { path: location, remote: false }
  return { path: cache ?? (kind === 'ca' ? defaultCaCachePath(location) : defaultCrlCachePath(location)), remote: true }
}

/** Where the newest CRL accepted per CA is remembered: `<state dir>/crl-seen/`. */
export function crlMemoryDir(): string {
  return join(stateDir(), 'crl-seen')
}

/** Options of {@link verifierFromConfig}. */
export interface VerifierFromConfigOptions {
  readonly clock?: Clock | undefined
  /** Receives what the CRL watcher reports. Default {@link warnCrlEvent} (process warnings for stale CRLs and errors). */
  readonly onCrlEvent?: ((event: CrlEvent) => void) | undefined
  /** A signal that reloads the CRL at once (the CLI passes `SIGHUP`). Default: none. */
  readonly crlReloadSignal?: NodeJS.Signals | undefined
  /** How often the CRL file is checked for a change (ms). Default `DEFAULT_CRL_POLL_MS`. */
  readonly crlPollMs?: number | undefined
  /** How long one fetch of a CA or CRL URL may take (ms). Default `DEFAULT_FETCH_TIMEOUT_MS` (10 s). */
  readonly fetchTimeoutMs?: number | undefined
}

/** A verifier made from a config, and the watch that keeps its CRL current (stop it with `crlWatcher.close()`). */
export interface ConfiguredVerifier {
  readonly verifier: X509Verifier
  readonly crlWatcher: CrlWatcher
}

/** Where a CA fetched from an http(s) `ca_cert_location` is cached when `ca_cert_cache` is unset: `<state dir>/ca-cache/<hash of the URL>.crt`. */
export function defaultCaCachePath(url: string): string {
  return defaultCachePath(join(stateDir(), 'ca-cache'), url, '.crt')
}

/** Where a CRL fetched from an http(s) `crl_location` is cached when `crl_cache` is unset: `<state dir>/crl-cache/<hash of the URL>.pem`. */
export function defaultCrlCachePath(url: string): string {
  return defaultCachePath(join(stateDir(), 'crl-cache'), url, '.pem')
}

/**
 * The verifier the config asks for, or undefined when `validate_signatures` is false.
 * Its CRL is `crl_location`, else `<ssldir>/crl.pem` when that exists; either way the
 * file is then watched and reloaded when it changes (or appears), see `watchCrl`. A CRL
 * older than the newest one already accepted for the CA, here or by an earlier process
 * (remembered in {@link crlMemoryDir}), is refused. Rejects with `CertificateError` when
 * the CA or an existing CRL cannot be read or is refused (`CrlRollbackError` for an older CRL).
 *
 * An http(s) `ca_cert_location` is fetched to `ca_cert_cache` (see `loadRemoteCa`: https
 * only, or http from a loopback host; the cached copy used while younger than
 * `ca_cert_cache_expiry` seconds, 0: always; the cached copy used, and reported as
 * `ca:error`, when a fetch fails). An http(s) `crl_location` is fetched to `crl_cache`,
 * which is then the CRL file watched: with a cached copy the process starts with it and
 * fetches in the background when it is older than `crl_cache_expiry`; without one, the
 * fetch is awaited (at most `fetchTimeoutMs`) and its failure rejects naming the URL.
 * While running it is fetched every `crl_cache_expiry` seconds; a CRL fetched replaces the
 * cached one only when the CA signed it and it is not older; a failure is reported as
 * `crl:error` and the CRL in use stays.
 */
export async function verifierFromConfig(config: GilmsgConfig, options: VerifierFromConfigOptions = {}): Promise<ConfiguredVerifier | undefined> {
  if (!config.validate_signatures) return undefined
  const clock = options.clock
  const onCrlEvent = options.onCrlEvent ?? warnCrlEvent
  const caLocation = config.ca_cert_location ?? join(config.ssldir, 'ca.crt')
  const caPem = isRemoteLocation(caLocation)
    ? await loadRemoteCa({
        url: caLocation,
        cachePath: config.ca_cert_cache ?? defaultCaCachePath(caLocation),
        expirySec: config.ca_cert_cache_expiry,
        timeoutMs: options.fetchTimeoutMs,
        clock,
        onStale: (error) => onCrlEvent({ type: 'ca:error', path: caLocation, error }),
      })
    : readPem(caLocation, 'ca_cert_location')
  const memory = fileCrlMemory(crlMemoryDir())
  let minimumCrl: CrlMark | undefined
  let crl: { readonly path: string; readonly explicit: boolean; readonly key?: string } = crlPath(config)
  try {
    minimumCrl = memory.read(caFingerprint(caPem))
  } catch (err) {
    if (!(err instanceof GilmsgError)) throw err
    onCrlEvent({ type: 'crl:error', path: crl.path, error: err })
  }
  let verifier: X509Verifier | undefined
  let crlWatcher: CrlWatcher | undefined
  let remote: RemoteCrl | undefined
  let firstFetchMs: number | undefined
  const url = config.crl_location
  if (url !== undefined && isRemoteLocation(url)) {
    const cachePath = config.crl_cache ?? defaultCrlCachePath(url)
    remote = new RemoteCrl({
      url,
      cachePath,
      caPem,
      expirySec: config.crl_cache_expiry,
      timeoutMs: options.fetchTimeoutMs,
      clock,
      newestAccepted: () => verifier?.crlMark ?? minimumCrl,
      onError: (error) => onCrlEvent({ type: 'crl:error', path: url, error }),
      onUpdated: () => void crlWatcher?.reload(),
    })
    const age = remote.cacheAgeMs()
    if (age === undefined) {
      try {
        await remote.fetchNow()
      } catch (err) {
        if (!(err instanceof GilmsgError)) throw err
        throw new CertificateError(`crl_location: no CRL is cached in ${cachePath} and none could be fetched: ${err.message}`, { cause: err })
      }
    } else {
      firstFetchMs = Math.max(0, config.crl_cache_expiry * 1000 - age)
    }
    crl = { path: cachePath, explicit: true, key: `crl_cache (the copy of ${url})` }
  }
  // The file's identity is taken before it is read, so that a change in between is reloaded.
  const identity = crlFileIdentity(crl.path)
  const crlPem =
    crl.explicit || identity !== undefined
      ? readPem(crl.path, crl.key ?? (crl.explicit ? 'crl_location' : `${DEFAULT_CRL_FILE} in ssldir (crl_location is unset)`))
      : undefined
  verifier = await createVerifier({
    caPem,
    crlPem,
    minimumCrl,
    routingPolicy: config.routing_policy,
    routingNitpicky: config.routing_nitpicky,
    acceptModes: config.crypto_validate_backends,
    ...(clock ? { clock: () => clock.now() } : {}),
  })
  const watcher = watchCrl({
    path: crl.path,
    verifier,
    onEvent: onCrlEvent,
    loadedIdentity: identity,
    memory,
    clock: clock ?? systemClock,
    intervalMs: options.crlPollMs,
    reloadSignal: options.crlReloadSignal,
  })
  crlWatcher = watcher
  if (remote === undefined) return { verifier, crlWatcher: watcher }
  const fetcher = remote
  fetcher.start(firstFetchMs)
  return {
    verifier,
    crlWatcher: {
      reload: () => watcher.reload(),
      close: () => {
        fetcher.close()
        watcher.close()
      },
      [Symbol.dispose]() {
        this.close()
      },
    },
  }
}

/** Every endpoint a subscriber connects to: all of `endpoints`' addresses, once each. */
export function subscribeEndpoints(config: GilmsgConfig): string[] {
  return [...new Set(Object.values(config.endpoints).flat())]
}

/** The config key of each ZeroMQ socket option, to name it in a {@link ConfigError}. */
const SOCKET_OPTION_KEYS: Readonly<Record<string, string>> = {
  highWaterMark: 'high_water_mark',
  lingerMs: 'zmq_linger',
  reconnectIvlMs: 'zmq_reconnect_ivl',
  reconnectIvlMaxMs: 'zmq_reconnect_ivl_max',
  maxMessageBytes: 'max_message_bytes',
  'tcpKeepalive.count': 'zmq_tcp_keepalive_cnt',
  'tcpKeepalive.idleSec': 'zmq_tcp_keepalive_idle',
  'tcpKeepalive.intervalSec': 'zmq_tcp_keepalive_intvl',
  tcpMaxRetransmitMs: 'zmq_tcp_maxrt',
  connectTimeoutMs: 'zmq_connect_timeout',
  'heartbeat.intervalMs': 'zmq_heartbeat_ivl',
  'heartbeat.timeoutMs': 'zmq_heartbeat_timeout',
  'heartbeat.ttlMs': 'zmq_heartbeat_ttl',
}

/**
 * The ZeroMQ socket options of the config (high-water mark, linger, reconnect, keepalive,
 * size limit). Throws {@link ConfigError} naming the key for a value the sockets cannot
 * take (e.g. `max_message_bytes` under 64), which the config parser's checks let through.
 */
export function socketOptionsFromConfig(config: GilmsgConfig): ZmqSocketOptions {
  const options = zmqOptions(config)
  try {
    resolveSocketOptions(options)
  } catch (e) {
    if (!(e instanceof InvalidArgumentError)) throw e
    const option = e.message.slice(0, e.message.indexOf(':'))
    const key = SOCKET_OPTION_KEYS[option]
    throw new ConfigError(`${config.source}: ${key === undefined ? e.message : `key "${key}"${e.message.slice(option.length)}`}`, { cause: e })
  }
  return options
}

function zmqOptions(config: GilmsgConfig): ZmqSocketOptions {
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

/** Where this process's publisher goes: it binds (all, or the first free of a list), it connects to a relay, or it cannot publish (why). */
type PublishTarget =
  | { readonly bind: readonly string[] }
  | { readonly bindFirstOf: readonly string[] }
  | { readonly connect: readonly string[] }
  | { readonly cannot: string }

function publishTarget(config: GilmsgConfig): PublishTarget {
  if (config.active) {
    return config.relay_inbound.length > 0 ? { connect: config.relay_inbound } : { cannot: `${config.source}: "active" is true but "relay_inbound" is not set` }
  }
  const bind = config.name === undefined ? undefined : config.endpoints[config.name]
  if (bind !== undefined) return { bindFirstOf: bind.map(bindAddressOf) }
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
 * the publisher goes: it binds every address given). A named publisher binds the
 * first address of `endpoints[name]` that no other process holds, its `tcp://` host
 * rewritten to `*` unless it is a loopback one (see `bindAddressOf`), as fedmsg
 * does, so that several processes of one service share one list; when none is free,
 * opening rejects with a `TransportError` naming each address tried. With
 * `active: true` it connects to `relay_inbound` instead; when neither is possible,
 * opening the publisher rejects with a `ConfigError` saying why (subscribing
 * still works).
 */
export function transportFromConfig(config: GilmsgConfig, overrides: { bind?: readonly string[] } = {}): Transport {
  const target: PublishTarget = overrides.bind !== undefined ? { bind: overrides.bind } : publishTarget(config)
  const zmq = new ZmqTransport({
    ...('bind' in target ? { bind: target.bind } : {}),
    ...('bindFirstOf' in target ? { bindFirstOf: target.bindFirstOf } : {}),
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
  /** Told of each connection of a subscription's socket made and ended (see `SubscriberOptions.onConnection`). */
  readonly onConnection?: ConnectionListener
  /** See {@link VerifierFromConfigOptions.onCrlEvent} (unused when `verifier` is given). */
  readonly onCrlEvent?: ((event: CrlEvent) => void) | undefined
  /** See {@link VerifierFromConfigOptions.crlReloadSignal}. */
  readonly crlReloadSignal?: NodeJS.Signals | undefined
  /** See {@link VerifierFromConfigOptions.crlPollMs}. */
  readonly crlPollMs?: number | undefined
  /** See {@link VerifierFromConfigOptions.fetchTimeoutMs}. */
  readonly fetchTimeoutMs?: number | undefined
}

/**
 * A {@link Bus} set up from a config; anything given in `options` replaces what the config
 * would make. A verifier made from the config keeps its CRL current while the bus is open
 * (see {@link verifierFromConfig}); `bus.close()` stops that.
 */
export async function busFromConfig(config: GilmsgConfig, options: OpenBusOptions = {}): Promise<Bus> {
  const configured =
    'verifier' in options
      ? undefined
      : await verifierFromConfig(config, {
          clock: options.clock,
          onCrlEvent: options.onCrlEvent,
          crlReloadSignal: options.crlReloadSignal,
          crlPollMs: options.crlPollMs,
          fetchTimeoutMs: options.fetchTimeoutMs,
        })
  try {
    return new Bus({
      transport: options.transport ?? transportFromConfig(config),
      signer: 'signer' in options ? options.signer : signerFromConfig(config),
      verifier: configured !== undefined ? configured.verifier : options.verifier,
      topic: { topicPrefix: config.topic_prefix, environment: config.environment },
      maxJsonDepth: config.max_json_depth,
      ...(options.clock ? { clock: options.clock } : {}),
      ...(options.onDrop ? { onDrop: options.onDrop } : {}),
      ...(options.onConnection ? { onConnection: options.onConnection } : {}),
      ...(configured ? { onClose: () => configured.crlWatcher.close() } : {}),
    })
  } catch (e) {
    configured?.crlWatcher.close()
    throw e
  }
}
