/**
 * Where the configuration comes from: the files `loadConfig` reads (an explicit file or
 * directory, else `/etc/gilmsg.d/*.json` then `./gilmsg.json`) and the reading of one file
 * under the trust rule. What the keys mean is `config.ts`'s.
 */
import { closeSync, existsSync, openSync, readdirSync, readFileSync, statSync, type Stats } from 'node:fs'
import { join, resolve } from 'node:path'
import { ConfigError, errorMessage } from '../errors.js'
import * as D from './defaults.js'
import { checkConfigDirTrust, checkConfigTrust, type ConfigOrigin } from './trust.js'

export interface LoadConfigOptions {
  /** An explicit file or directory (`--config`); wins over `GILMSG_CONFIG` and the search order. */
  readonly file?: string | undefined
  readonly env?: NodeJS.ProcessEnv
  readonly cwd?: string
  /** Keys that override the files (already in file form, e.g. from CLI flags). */
  readonly overrides?: Readonly<Record<string, unknown>>
  /** The system directory searched first when neither `file` nor `$GILMSG_CONFIG` is given; default {@link D.DEFAULT_SYSTEM_CONFIG_DIR}. */
  readonly systemDir?: string
}

/** A config file {@link loadConfig} reads: its absolute path and how it was found. */
export interface ConfigLocation {
  readonly path: string
  /** `option`: `options.file` (`--config`); `env`: `$GILMSG_CONFIG`; `cwd`: `./gilmsg.json`; `system`: `/etc/gilmsg.d/*.json`. */
  readonly origin: ConfigOrigin
}

/**
 * The single place an explicit config names (`options.file`, else `$GILMSG_CONFIG`), else
 * `./gilmsg.json` if it exists; undefined: neither. {@link findConfigFiles} lists every file
 * read, including the directories' files and the system directory.
 */
export function locateConfig(options: LoadConfigOptions = {}): ConfigLocation | undefined {
  const cwd = options.cwd ?? process.cwd()
  const explicit = explicitLocation(options)
  if (explicit !== undefined) return explicit
  const implicit = resolve(cwd, D.IMPLICIT_CONFIG_FILE)
  return existsSync(implicit) ? { path: implicit, origin: 'cwd' } : undefined
}

/** `options.file`, else `$GILMSG_CONFIG`, as a location; undefined: neither. */
export function explicitLocation(options: LoadConfigOptions): ConfigLocation | undefined {
  const env = options.env ?? process.env
  const cwd = options.cwd ?? process.cwd()
  if (options.file !== undefined && options.file !== '') return { path: resolve(cwd, options.file), origin: 'option' }
  const fromEnv = options.file === undefined ? env['GILMSG_CONFIG'] : undefined
  if (fromEnv !== undefined && fromEnv !== '') return { path: resolve(cwd, fromEnv), origin: 'env' }
  return undefined
}

/**
 * The files {@link loadConfig} reads, in merge order. `--config` or `$GILMSG_CONFIG` names one
 * file, or a directory whose `*.json` files are read in name order (code point order, as
 * fedmsg sorts `fedmsg.d/*.py`; names starting with "." are skipped). Without either: every
 * `*.json` of the system directory (`/etc/gilmsg.d`), then `./gilmsg.json`, each if it exists.
 * Throws {@link ConfigError} when the explicit path cannot be read, is a directory others can
 * write, or is a directory without `*.json` files.
 */
export function findConfigFiles(options: LoadConfigOptions = {}): ConfigLocation[] {
  const explicit = explicitLocation(options)
  if (explicit !== undefined) {
    let st: Stats
    try {
      st = statSync(explicit.path)
    } catch (e) {
      throw new ConfigError(`cannot read config file ${explicit.path}: ${errorMessage(e)}`, { cause: e })
    }
    if (!st.isDirectory()) return [explicit]
    checkConfigDirTrust(explicit.path, st)
    const files = jsonFilesIn(explicit.path, explicit.origin)
    if (files.length === 0) throw new ConfigError(`config directory ${explicit.path} has no *.json file`)
    return files
  }
  const systemDir = options.systemDir ?? D.DEFAULT_SYSTEM_CONFIG_DIR
  const files = isDirectory(systemDir) ? jsonFilesIn(systemDir, 'system') : []
  const implicit = locateConfig({ ...options, file: '', env: {} })
  return implicit === undefined ? files : [...files, implicit]
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory()
  } catch {
    return false
  }
}

function jsonFilesIn(dir: string, origin: ConfigOrigin): ConfigLocation[] {
  let names: string[]
  try {
    names = readdirSync(dir)
  } catch (e) {
    throw new ConfigError(`cannot read config directory ${dir}: ${errorMessage(e)}`, { cause: e })
  }
  return names
    .filter((n) => n.endsWith('.json') && !n.startsWith('.'))
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    .map((n) => ({ path: join(dir, n), origin }))
}

/** Reads one config file under the trust rule (`trust.ts`); throws {@link ConfigError} naming it for anything wrong. */
export function readConfigFile({ path, origin }: ConfigLocation): Record<string, unknown> {
  let fd: number
  try {
    fd = openSync(path, 'r')
  } catch (e) {
    throw new ConfigError(`cannot read config file ${path}: ${errorMessage(e)}`, { cause: e })
  }
  let text: string
  try {
    checkConfigTrust(path, fd, origin)
    text = readFileSync(fd, 'utf8')
  } catch (e) {
    if (e instanceof ConfigError) throw e
    throw new ConfigError(`cannot read config file ${path}: ${errorMessage(e)}`, { cause: e })
  } finally {
    closeSync(fd)
  }
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (e) {
    throw new ConfigError(`config file ${path} is not valid JSON: ${(e as Error).message}`, { cause: e })
  }
  if (!isObject(raw)) throw ConfigError.format(`config ${path}`, 'a JSON object', raw)
  return raw
}

/** A JSON object (not null, not an array). */
export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}
