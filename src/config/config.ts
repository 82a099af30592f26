import { closeSync, existsSync, openSync, readFileSync } from 'node:fs'
import { dirname, isAbsolute, resolve } from 'node:path'
import { ConfigError, errorMessage } from '../errors.js'
import { CRYPTO_MODES, type CryptoMode } from '../crypto/types.js'
import * as D from './defaults.js'
import { checkConfigTrust, type ConfigOrigin } from './trust.js'

export type { ConfigOrigin } from './trust.js'

/**
 * The configuration, with fedmsg's key names. Every key is optional in the
 * file; {@link loadConfig} fills in the defaults from `defaults.ts`.
 */
export interface GilmsgConfig {
  /** Where this config came from (a file path, or 'defaults'). */
  readonly source: string
  readonly topic_prefix: string
  readonly environment: string
  /** name -> addresses. Subscribers connect to all of them; a publisher binds `endpoints[name]`. */
  readonly endpoints: Readonly<Record<string, readonly string[]>>
  /** A relay's inbound (SUB bind) addresses; publishers with `active: true` connect here. */
  readonly relay_inbound: readonly string[]
  readonly active: boolean
  /** This process's name: picks its `endpoints` entry and default cert. */
  readonly name: string | undefined
  readonly cert_prefix: string
  /** Maps `<cert_prefix>.<hostname>` (or a name) to a certname: the stem of `<ssldir>/<certname>.crt|.key`. */
  readonly certnames: Readonly<Record<string, string>>
  /** gilmsg extension: the certname to sign with, overriding the certnames lookup. */
  readonly certname: string | undefined
  readonly ssldir: string
  readonly sign_messages: boolean
  readonly validate_signatures: boolean
  /** The CA certificate, a file or an http(s) URL (fetched to `ca_cert_cache`); unset: `<ssldir>/ca.crt`. */
  readonly ca_cert_location: string | undefined
  /** The CRL file (or an http(s) URL, fetched to `crl_cache`), watched and reloaded while running; unset: `<ssldir>/crl.pem` if it exists (or once it appears). */
  readonly crl_location: string | undefined
  /** Where a CA fetched from an http(s) `ca_cert_location` is kept; unset: under the state directory. */
  readonly ca_cert_cache: string | undefined
  /** Seconds before a fetched CA is fetched again; 0 (default, as fedmsg): never once cached. */
  readonly ca_cert_cache_expiry: number
  /** Where a CRL fetched from an http(s) `crl_location` is kept; unset: under the state directory. */
  readonly crl_cache: string | undefined
  /** Seconds between fetches of an http(s) `crl_location`. Default 3600 (fedmsg's). */
  readonly crl_cache_expiry: number
  /** exact topic -> CNs allowed to sign it. */
  readonly routing_policy: Readonly<Record<string, readonly string[]>>
  readonly routing_nitpicky: boolean
  /** Messages queued per peer; `Infinity`: no limit (written `0` in the file, as fedmsg). */
  readonly high_water_mark: number
  readonly zmq_linger: number
  readonly zmq_reconnect_ivl: number
  readonly zmq_reconnect_ivl_max: number
  readonly zmq_tcp_keepalive: boolean
  readonly zmq_tcp_keepalive_cnt: number | undefined
  readonly zmq_tcp_keepalive_idle: number | undefined
  readonly zmq_tcp_keepalive_intvl: number | undefined
  /** ZMQ_TCP_MAXRT, ms: drop and re-make a connection stuck retransmitting this long. */
  readonly zmq_tcp_maxrt: number | undefined
  /** ZMQ_CONNECT_TIMEOUT, ms: abandon and retry a connection attempt not made by then. */
  readonly zmq_connect_timeout: number | undefined
  /** ZMTP heartbeats, ms: interval (enables them), timeout, time-to-live. */
  readonly zmq_heartbeat_ivl: number | undefined
  readonly zmq_heartbeat_timeout: number | undefined
  readonly zmq_heartbeat_ttl: number | undefined
  readonly crypto_backend: CryptoMode
  readonly crypto_validate_backends: readonly CryptoMode[]
  readonly max_message_bytes: number
  readonly max_json_depth: number
  /** Accepted for fedmsg compatibility and ignored: gilmsg never sleeps in place of a protocol. */
  readonly post_init_sleep: number | undefined
  /** The publisher's outbox (SQLite); default `<state dir>/gilmsg/<name>.outbox.db`. */
  readonly outbox_path: string | undefined
  /** The consumer's inbox (SQLite); default `<state dir>/gilmsg/<name>.inbox.db`. */
  readonly inbox_path: string | undefined
  /** `PRAGMA synchronous` of outbox and inbox: FULL (default, survives power loss), NORMAL, OFF. */
  readonly store_synchronous: 'FULL' | 'NORMAL' | 'OFF'
  /** Count ACKs without `ack_digest` (Python gilmsg 0.1.2 consumers). Default false. */
  readonly accept_legacy_acks: boolean
  /** Resends per second while no ACK comes back (each ACK pays for one more); `Infinity`: no limit (written `0` in the file). Default 200. */
  readonly resend_rate: number
}

type Kind = 'sync' | 'string' | 'boolean' | 'number' | 'integer' | 'limit' | 'rate' | 'strings' | 'endpoints' | 'map' | 'policy' | 'mode' | 'modes' | 'path' | 'location' | 'addrs'

const SCHEMA: Record<Exclude<keyof GilmsgConfig, 'source'>, Kind> = {
  topic_prefix: 'string',
  environment: 'string',
  endpoints: 'endpoints',
  relay_inbound: 'addrs',
  active: 'boolean',
  name: 'string',
  cert_prefix: 'string',
  certnames: 'map',
  certname: 'string',
  ssldir: 'path',
  sign_messages: 'boolean',
  validate_signatures: 'boolean',
  ca_cert_location: 'location',
  crl_location: 'location',
  ca_cert_cache: 'path',
  ca_cert_cache_expiry: 'number',
  crl_cache: 'path',
  crl_cache_expiry: 'number',
  routing_policy: 'policy',
  routing_nitpicky: 'boolean',
  high_water_mark: 'limit',
  zmq_linger: 'integer',
  zmq_reconnect_ivl: 'integer',
  zmq_reconnect_ivl_max: 'integer',
  zmq_tcp_keepalive: 'boolean',
  zmq_tcp_keepalive_cnt: 'integer',
  zmq_tcp_keepalive_idle: 'integer',
  zmq_tcp_keepalive_intvl: 'integer',
  zmq_tcp_maxrt: 'integer',
  zmq_connect_timeout: 'integer',
  zmq_heartbeat_ivl: 'integer',
  zmq_heartbeat_timeout: 'integer',
  zmq_heartbeat_ttl: 'integer',
  crypto_backend: 'mode',
  crypto_validate_backends: 'modes',
  max_message_bytes: 'integer',
  max_json_depth: 'integer',
  post_init_sleep: 'number',
  outbox_path: 'path',
  inbox_path: 'path',
  store_synchronous: 'sync',
  accept_legacy_acks: 'boolean',
  resend_rate: 'rate',
}

/** The valid config keys. */
export const CONFIG_KEYS: readonly string[] = Object.keys(SCHEMA)

/** The configuration used when no file is given: every default, no endpoints. */
export function defaultConfig(): GilmsgConfig {
  return {
    source: 'defaults',
    topic_prefix: D.DEFAULT_TOPIC_PREFIX,
    environment: D.DEFAULT_ENVIRONMENT,
    endpoints: {},
    relay_inbound: [],
    active: false,
    name: undefined,
    cert_prefix: D.DEFAULT_CERT_PREFIX,
    certnames: {},
    certname: undefined,
    ssldir: D.DEFAULT_SSLDIR,
    sign_messages: true,
    validate_signatures: true,
    ca_cert_location: undefined,
    crl_location: undefined,
    ca_cert_cache: undefined,
    ca_cert_cache_expiry: D.DEFAULT_CA_CERT_CACHE_EXPIRY,
    crl_cache: undefined,
    crl_cache_expiry: D.DEFAULT_CRL_CACHE_EXPIRY,
    routing_policy: {},
    routing_nitpicky: false,
    high_water_mark: D.DEFAULT_HIGH_WATER_MARK,
    zmq_linger: D.DEFAULT_LINGER_MS,
    zmq_reconnect_ivl: D.DEFAULT_RECONNECT_IVL_MS,
    zmq_reconnect_ivl_max: D.DEFAULT_RECONNECT_IVL_MAX_MS,
    zmq_tcp_keepalive: false,
    zmq_tcp_keepalive_cnt: undefined,
    zmq_tcp_keepalive_idle: undefined,
    zmq_tcp_keepalive_intvl: undefined,
    zmq_tcp_maxrt: undefined,
    zmq_connect_timeout: undefined,
    zmq_heartbeat_ivl: undefined,
    zmq_heartbeat_timeout: undefined,
    zmq_heartbeat_ttl: undefined,
    crypto_backend: D.DEFAULT_CRYPTO_BACKEND,
    crypto_validate_backends: [...D.DEFAULT_CRYPTO_VALIDATE_BACKENDS],
    max_message_bytes: D.DEFAULT_MAX_MESSAGE_BYTES,
    max_json_depth: D.DEFAULT_MAX_JSON_DEPTH,
    post_init_sleep: undefined,
    outbox_path: undefined,
    inbox_path: undefined,
    store_synchronous: 'FULL',
    accept_legacy_acks: false,
    resend_rate: D.DEFAULT_RESEND_RATE,
  }
}

export interface LoadConfigOptions {
  /** An explicit file (`--config`); wins over `GILMSG_CONFIG` and `./gilmsg.json`. */
  readonly file?: string | undefined
  readonly env?: NodeJS.ProcessEnv
  readonly cwd?: string
  /** Keys that override the file (already in file form, e.g. from CLI flags). */
  readonly overrides?: Readonly<Record<string, unknown>>
}

/** The config file {@link loadConfig} reads: its absolute path and how it was found. */
export interface ConfigLocation {
  readonly path: string
  /** `option`: `options.file` (`--config`); `env`: `$GILMSG_CONFIG`; `cwd`: `./gilmsg.json`. */
  readonly origin: ConfigOrigin
}

/** Where {@link loadConfig} looks: `options.file`, else `$GILMSG_CONFIG`, else `./gilmsg.json` if it exists; undefined: none (the defaults). */
export function locateConfig(options: LoadConfigOptions = {}): ConfigLocation | undefined {
  const env = options.env ?? process.env
  const cwd = options.cwd ?? process.cwd()
  if (options.file !== undefined && options.file !== '') return { path: resolve(cwd, options.file), origin: 'option' }
  const fromEnv = options.file === undefined ? env['GILMSG_CONFIG'] : undefined
  if (fromEnv !== undefined && fromEnv !== '') return { path: resolve(cwd, fromEnv), origin: 'env' }
  const implicit = resolve(cwd, 'gilmsg.json')
  return existsSync(implicit) ? { path: implicit, origin: 'cwd' } : undefined
}

function readConfigFile({ path, origin }: ConfigLocation): string {
  let fd: number
  try {
    fd = openSync(path, 'r')
  } catch (e) {
    throw new ConfigError(`cannot read config file ${path}: ${errorMessage(e)}`, { cause: e })
  }
  try {
    checkConfigTrust(path, fd, origin)
    return readFileSync(fd, 'utf8')
  } catch (e) {
    if (e instanceof ConfigError) throw e
    throw new ConfigError(`cannot read config file ${path}: ${errorMessage(e)}`, { cause: e })
  } finally {
    closeSync(fd)
  }
}

/**
 * Finds ({@link locateConfig}) and loads the configuration, or the defaults when there is
 * no file. Throws {@link ConfigError} naming the file and key for anything it cannot
 * accept, and refuses a file others could have written: `./gilmsg.json` in a directory
 * group or others can write (such as /tmp), or that group or others can write, or that
 * belongs to another user (not root); a file given explicitly when anyone can write it.
 */
export function loadConfig(options: LoadConfigOptions = {}): GilmsgConfig {
  const cwd = options.cwd ?? process.cwd()
  const found = locateConfig(options)
  let raw: unknown = {}
  let source = 'defaults'
  let baseDir = cwd
  if (found !== undefined) {
    const path = found.path
    const text = readConfigFile(found)
    try {
      raw = JSON.parse(text)
    } catch (e) {
      throw new ConfigError(`config file ${path} is not valid JSON: ${(e as Error).message}`, { cause: e })
    }
    source = path
    baseDir = dirname(path)
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw ConfigError.format(`config ${source}`, 'a JSON object', raw)
  }
  return parseConfig({ ...(raw as Record<string, unknown>), ...options.overrides }, source, baseDir)
}

/** Validates a config object (file form) and fills in defaults. Relative paths resolve against `baseDir`. */
export function parseConfig(raw: Readonly<Record<string, unknown>>, source = 'config', baseDir = process.cwd()): GilmsgConfig {
  const out: Record<string, unknown> = { ...defaultConfig(), source }
  for (const [key, value] of Object.entries(raw)) {
    const kind = (SCHEMA as Record<string, Kind | undefined>)[key]
    if (kind === undefined) {
      const near = nearest(key, CONFIG_KEYS)
      throw new ConfigError(`${source}: unknown key "${key}"${near ? ` (did you mean "${near}"?)` : ''}`)
    }
    if (value === null || value === undefined) continue
    out[key] = check(key, kind, value, source, baseDir)
  }
  return out as unknown as GilmsgConfig
}

function check(key: string, kind: Kind, v: unknown, source: string, baseDir: string): unknown {
  const fail = (expected: string): never => {
    throw ConfigError.format(`${source}: key "${key}"`, expected, v)
  }
  switch (kind) {
    case 'string':
      return typeof v === 'string' ? v : fail('a string')
    case 'boolean':
      return typeof v === 'boolean' ? v : fail('true or false')
    case 'number':
      return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : fail('a number >= 0')
    case 'integer':
      return Number.isSafeInteger(v) && (v as number) >= 0 ? v : fail('an integer >= 0')
    // Config files write "no limit" as 0 (JSON has no Infinity); the API's is Infinity. Converted here only.
    case 'limit':
      return Number.isSafeInteger(v) && (v as number) >= 0 ? noLimitIfZero(v as number) : fail('an integer >= 0')
    case 'rate':
      return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? noLimitIfZero(v) : fail('a number >= 0')
    case 'strings':
      return isStrings(v) ? v : fail('a list of strings')
    case 'addrs':
      if (typeof v === 'string') return [checkAddr(key, v, source)]
      return isStrings(v) ? v.map((a) => checkAddr(key, a, source)) : fail('an address or a list of addresses')
    case 'endpoints': {
      if (!isObject(v)) return fail('an object mapping names to lists of addresses')
      const res: Record<string, string[]> = {}
      for (const [name, addrs] of Object.entries(v)) {
        if (typeof addrs === 'string') res[name] = [checkAddr(`${key}.${name}`, addrs, source)]
        else if (isStrings(addrs)) res[name] = addrs.map((a) => checkAddr(`${key}.${name}`, a, source))
        else throw ConfigError.format(`${source}: key "${key}.${name}"`, 'a list of addresses', addrs)
      }
      return res
    }
    case 'map': {
      if (!isObject(v) || !Object.values(v).every((x) => typeof x === 'string')) return fail('an object mapping names to strings')
      return v
    }
    case 'policy': {
      if (!isObject(v) || !Object.values(v).every(isStrings)) return fail('an object mapping topics to lists of certificate CNs')
      return v
    }
    case 'sync':
      return v === 'FULL' || v === 'NORMAL' || v === 'OFF' ? v : fail('"FULL", "NORMAL" or "OFF"')
    case 'mode':
      return CRYPTO_MODES.includes(v as CryptoMode) ? v : fail(`one of ${CRYPTO_MODES.map((m) => `"${m}"`).join(', ')}`)
    case 'modes':
      return isStrings(v) && v.length > 0 && v.every((m) => CRYPTO_MODES.includes(m as CryptoMode))
        ? v
        : fail(`a non-empty list of ${CRYPTO_MODES.map((m) => `"${m}"`).join(', ')}`)
    case 'location':
      if (typeof v === 'string' && /^https?:\/\/./i.test(v)) return v
      return check(key, 'path', v, source, baseDir)
    case 'path': {
      if (typeof v !== 'string' || v === '') return fail('a file path')
      if (/^[a-z][a-z0-9+.-]*:\/\//i.test(v)) {
        throw new ConfigError(`${source}: key "${key}": "${v}" is a URL; gilmsg reads certificates and CRLs only from local files (download it yourself and give its path)`)
      }
      return isAbsolute(v) ? v : resolve(baseDir, v)
    }
  }
}

const ADDRESS = /^(tcp|ipc|inproc|pgm|epgm):\/\/.+/

function checkAddr(key: string, addr: string, source: string): string {
  if (!ADDRESS.test(addr)) {
    throw ConfigError.format(`${source}: key "${key}"`, 'a ZeroMQ address like tcp://127.0.0.1:9940', addr)
  }
  return addr
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function isStrings(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'string')
}

function noLimitIfZero(v: number): number {
  return v === 0 ? Infinity : v
}

/** The candidate closest to `word` by edit distance, if it is close enough to be a likely typo. */
export function nearest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined
  let bestDist = Infinity
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase())
    if (d < bestDist) {
      bestDist = d
      best = c
    }
  }
  return bestDist <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const cur = [i]
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost)
    }
    prev = cur
  }
  return prev[b.length] ?? 0
}
