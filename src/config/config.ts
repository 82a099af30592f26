import { isIP } from 'node:net'
import { dirname, isAbsolute, resolve } from 'node:path'
import { ConfigError } from '../errors.js'
import { CRYPTO_MODES, type CryptoMode } from '../crypto/types.js'
import * as D from './defaults.js'
import { FEDMSG_ONLY_KEYS, fedmsgOnlyPurpose } from './fedmsg-keys.js'
import { explicitLocation, findConfigFiles, isObject, readConfigFile, type ConfigLocation, type LoadConfigOptions } from './files.js'

export type { ConfigOrigin } from './trust.js'
export { findConfigFiles, locateConfig, type ConfigLocation, type LoadConfigOptions } from './files.js'

/**
 * The configuration, with fedmsg's key names. Every key is optional in the
 * file; {@link loadConfig} fills in the defaults from `defaults.ts`.
 */
export interface GilmsgConfig {
  /** Where this config came from: a file path, a directory given explicitly, the files read (comma-separated), or 'defaults'. */
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
  /** The CA certificate: a file, or an http(s) URL kept as written; unset: `<ssldir>/ca.crt`. */
  readonly ca_cert_location: string | undefined
  /** Where a CA certificate fetched from an http(s) `ca_cert_location` is kept. */
  readonly ca_cert_cache: string | undefined
  /** Seconds before a fetched CA certificate is fetched again; 0: never (fedmsg's default). */
  readonly ca_cert_cache_expiry: number
  /** The CRL: a file, watched and reloaded while running, or an http(s) URL kept as written; unset: `<ssldir>/crl.pem` if it exists (or once it appears). */
  readonly crl_location: string | undefined
  /** Where a CRL fetched from an http(s) `crl_location` is kept. */
  readonly crl_cache: string | undefined
  /** Seconds before a fetched CRL is fetched again (fedmsg's default: 3600). */
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
  /**
   * Where long-running commands serve `/metrics`, `/healthz` and `/readyz`: `HOST:PORT`, the
   * host an IP literal (IPv6 in brackets) or `localhost`, port 0 for any free one. Default unset: no server.
   */
  readonly metrics_endpoint: string | undefined
}

type Kind =
  | 'sync'
  | 'string'
  | 'boolean'
  | 'number'
  | 'integer'
  | 'limit'
  | 'rate'
  | 'strings'
  | 'endpoints'
  | 'map'
  | 'policy'
  | 'mode'
  | 'modes'
  | 'path'
  | 'location'
  | 'addrs'
  | 'hostport'

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
  ca_cert_cache: 'path',
  ca_cert_cache_expiry: 'number',
  crl_location: 'location',
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
  outbox_path: 'path',
  inbox_path: 'path',
  store_synchronous: 'sync',
  accept_legacy_acks: 'boolean',
  resend_rate: 'rate',
  metrics_endpoint: 'hostport',
}

/** The config keys gilmsg uses (fedmsg's keys for parts gilmsg does not have are in `fedmsg-keys.ts`). */
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
    ca_cert_cache: undefined,
    ca_cert_cache_expiry: D.DEFAULT_CA_CERT_CACHE_EXPIRY_SEC,
    crl_location: undefined,
    crl_cache: undefined,
    crl_cache_expiry: D.DEFAULT_CRL_CACHE_EXPIRY_SEC,
    routing_policy: {},
    routing_nitpicky: false,
    high_water_mark: D.DEFAULT_HIGH_WATER_MARK,
    zmq_linger: D.DEFAULT_LINGER_MS,
    zmq_reconnect_ivl: D.DEFAULT_RECONNECT_IVL_MS,
    zmq_reconnect_ivl_max: D.DEFAULT_RECONNECT_IVL_MAX_MS,
    zmq_tcp_keepalive: D.DEFAULT_TCP_KEEPALIVE,
    zmq_tcp_keepalive_cnt: D.DEFAULT_TCP_KEEPALIVE_CNT,
    zmq_tcp_keepalive_idle: D.DEFAULT_TCP_KEEPALIVE_IDLE_SEC,
    zmq_tcp_keepalive_intvl: D.DEFAULT_TCP_KEEPALIVE_INTVL_SEC,
    zmq_tcp_maxrt: undefined,
    zmq_connect_timeout: undefined,
    zmq_heartbeat_ivl: undefined,
    zmq_heartbeat_timeout: undefined,
    zmq_heartbeat_ttl: undefined,
    crypto_backend: D.DEFAULT_CRYPTO_BACKEND,
    crypto_validate_backends: [...D.DEFAULT_CRYPTO_VALIDATE_BACKENDS],
    max_message_bytes: D.DEFAULT_MAX_MESSAGE_BYTES,
    max_json_depth: D.DEFAULT_MAX_JSON_DEPTH,
    outbox_path: undefined,
    inbox_path: undefined,
    store_synchronous: 'FULL',
    accept_legacy_acks: false,
    resend_rate: D.DEFAULT_RESEND_RATE,
    metrics_endpoint: undefined,
  }
}

/** A key of fedmsg's configuration that gilmsg accepts and does not use. */
export interface IgnoredKey {
  readonly key: string
  /** The file that set it last. */
  readonly file: string
  /** What fedmsg uses it for. */
  readonly purpose: string
}

/** What {@link inspectConfig} found: the files read, the keys ignored, the problems, and the config when there is none. */
export interface ConfigReport {
  /** The effective configuration; undefined when there are problems. */
  readonly config: GilmsgConfig | undefined
  /** The files read, in the order they were merged (a later file's keys win). */
  readonly files: readonly ConfigLocation[]
  readonly ignored: readonly IgnoredKey[]
  /** Each problem as a {@link ConfigError} naming the file and key. */
  readonly problems: readonly ConfigError[]
}

/** One top-level key after merging: its value and the file (and directory) that set it last. */
interface Entry {
  value: unknown
  readonly source: string
  readonly baseDir: string
}

/** Merges `raw` into `into` as fedmsg merges its files: objects key by key, recursively; anything else replaced. */
function mergeInto(into: Map<string, Entry>, raw: Readonly<Record<string, unknown>>, source: string, baseDir: string): void {
  for (const [key, value] of Object.entries(raw)) {
    const before = into.get(key)?.value
    into.set(key, { value: isObject(before) && isObject(value) ? mergeObjects(before, value) : value, source, baseDir })
  }
}

function mergeObjects(a: Readonly<Record<string, unknown>>, b: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a }
  for (const [k, v] of Object.entries(b)) {
    const before = out[k]
    out[k] = isObject(before) && isObject(v) ? mergeObjects(before, v) : v
  }
  return out
}

/**
 * Finds ({@link findConfigFiles}), merges and checks the configuration without throwing for
 * what it finds wrong: every problem is listed (a file that cannot be read or trusted stops the
 * reading there). `gilmsg config --check` prints this.
 */
export function inspectConfig(options: LoadConfigOptions = {}): ConfigReport {
  const files: ConfigLocation[] = []
  const problems: ConfigError[] = []
  const entries = new Map<string, Entry>()
  const ignored = new Map<string, IgnoredKey>()
  const explicitDir = explicitLocation(options)
  let source = 'defaults'
  try {
    for (const location of findConfigFiles(options)) {
      const raw = readConfigFile(location)
      files.push(location)
      for (const key of Object.keys(raw)) {
        if (Object.hasOwn(SCHEMA, key)) continue
        const purpose = fedmsgOnlyPurpose(key)
        if (purpose !== undefined) {
          ignored.delete(key)
          ignored.set(key, { key, file: location.path, purpose })
          continue
        }
        const near = nearest(key, [...CONFIG_KEYS, ...Object.keys(FEDMSG_ONLY_KEYS)])
        problems.push(new ConfigError(`${location.path}: unknown key "${key}"${near ? ` (did you mean "${near}"?)` : ''}`))
      }
      mergeInto(entries, raw, location.path, dirname(location.path))
    }
    if (files.length === 1 && files[0] !== undefined) source = files[0].path
    else if (explicitDir !== undefined && files.length > 0) source = explicitDir.path
    else if (files.length > 1) source = files.map((f) => f.path).join(', ')
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e
    problems.push(e)
  }
  mergeInto(entries, options.overrides ?? {}, 'command line', options.cwd ?? process.cwd())
  const config = parseEntries(entries, source, problems)
  return { config: problems.length === 0 ? config : undefined, files, ignored: [...ignored.values()], problems }
}

/**
 * Finds ({@link findConfigFiles}) and loads the configuration, or the defaults when there is
 * no file; files are merged in order (objects such as `endpoints` key by key, as fedmsg merges
 * `fedmsg.d`). fedmsg's keys for parts gilmsg does not have are accepted and ignored (see
 * {@link inspectConfig}). Throws {@link ConfigError} naming the file and key for anything it
 * cannot accept (the first problem; it says how many more there are), and refuses a file others
 * could have written: `./gilmsg.json` or a file of `/etc/gilmsg.d` in a directory group or others
 * can write (such as /tmp), or that group or others can write, or that belongs to another user
 * (not root); a file or directory given explicitly when anyone can write it.
 */
export function loadConfig(options: LoadConfigOptions = {}): GilmsgConfig {
  const report = inspectConfig(options)
  const [first] = report.problems
  if (first !== undefined) {
    if (report.problems.length === 1) throw first
    const more = report.problems.length - 1
    throw new ConfigError(`${first.message} (and ${more} more problem${more === 1 ? '' : 's'}: "gilmsg config --check" lists them)`, { cause: first })
  }
  return report.config as GilmsgConfig
}

/**
 * Validates a config object (file form) and fills in defaults. Relative paths resolve against
 * `baseDir`; fedmsg's keys for parts gilmsg does not have are ignored. Throws
 * {@link ConfigError} for the first key it cannot accept.
 */
export function parseConfig(raw: Readonly<Record<string, unknown>>, source = 'config', baseDir = process.cwd()): GilmsgConfig {
  const entries = new Map<string, Entry>()
  const problems: ConfigError[] = []
  for (const [key, value] of Object.entries(raw)) {
    if (Object.hasOwn(SCHEMA, key) || fedmsgOnlyPurpose(key) !== undefined) entries.set(key, { value, source, baseDir })
    else {
      const near = nearest(key, [...CONFIG_KEYS, ...Object.keys(FEDMSG_ONLY_KEYS)])
      throw new ConfigError(`${source}: unknown key "${key}"${near ? ` (did you mean "${near}"?)` : ''}`)
    }
  }
  const config = parseEntries(entries, source, problems)
  if (problems[0] !== undefined) throw problems[0]
  return config
}

function parseEntries(entries: ReadonlyMap<string, Entry>, source: string, problems: ConfigError[]): GilmsgConfig {
  const out: Record<string, unknown> = { ...defaultConfig(), source }
  for (const [key, { value, source: file, baseDir }] of entries) {
    if (key === 'zmq_enabled' && (value === false || value === 0)) {
      problems.push(new ConfigError(`${file}: key "zmq_enabled" is ${String(value)}: this configuration is for fedmsg's STOMP transport; gilmsg speaks ZeroMQ only`))
    }
    const kind = (SCHEMA as Record<string, Kind | undefined>)[key]
    if (kind === undefined || value === null || value === undefined) continue
    try {
      out[key] = check(key, kind, value, file, baseDir)
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e
      problems.push(e)
    }
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
    // Python writes booleans as 0/1 in some stock fedmsg files (zmq_tcp_keepalive=1).
    case 'boolean':
      return typeof v === 'boolean' ? v : v === 0 || v === 1 ? v === 1 : fail('true, false, 0 or 1')
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
      if (typeof v === 'string' && HTTP_URL.test(v)) return v
      if (typeof v !== 'string' || v === '' || URL_SCHEME.test(v)) return fail('a file path or an http(s) URL')
      return isAbsolute(v) ? v : resolve(baseDir, v)
    case 'path':
      if (typeof v !== 'string' || v === '' || URL_SCHEME.test(v)) return fail('a local file path')
      return isAbsolute(v) ? v : resolve(baseDir, v)
    case 'hostport':
      if (typeof v !== 'string' || parseHostPort(v) === undefined) return fail(HOST_PORT_EXPECTED)
      return v
  }
}

/** What a `HOST:PORT` (`metrics_endpoint`, `--metrics`) must look like, for "expected X, got Y" messages. */
export const HOST_PORT_EXPECTED = 'HOST:PORT with HOST an IP address ([...] for IPv6) or localhost, PORT 0 to 65535 (e.g. 127.0.0.1:9464)'

/**
 * Splits `HOST:PORT` (see {@link GilmsgConfig.metrics_endpoint}): undefined unless the host
 * is an IP literal (IPv6 in brackets) or `localhost` and the port an integer from 0 to 65535.
 * Host names other than localhost are refused: what a health server listens on must not
 * depend on DNS.
 */
export function parseHostPort(value: string): { readonly host: string; readonly port: number } | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value)
  if (m === null) return undefined
  const port = Number(m[3])
  if (port > 65535) return undefined
  if (m[1] !== undefined) return isIP(m[1]) === 6 ? { host: m[1], port } : undefined
  const host = m[2] as string
  return host === 'localhost' || isIP(host) === 4 ? { host, port } : undefined
}

const ADDRESS = /^(tcp|ipc|inproc|pgm|epgm):\/\/.+/
const HTTP_URL = /^https?:\/\/[^/\s]+/i
const URL_SCHEME = /^[a-z][a-z0-9+.-]*:\/\//i

function checkAddr(key: string, addr: string, source: string): string {
  if (!ADDRESS.test(addr)) {
    throw ConfigError.format(`${source}: key "${key}"`, 'a ZeroMQ address like tcp://127.0.0.1:9940', addr)
  }
  return addr
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
