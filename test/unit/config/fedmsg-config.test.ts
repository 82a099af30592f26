/**
 * fedmsg's configuration as it is: the stock `fedmsg-config` output loads (fedmsg-only keys
 * ignored and listed, Python's 0/1 and null), config directories merge in name order as
 * fedmsg merges fedmsg.d, the search order without --config, and the trust rules on each file.
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { defaultConfig, findConfigFiles, inspectConfig, loadConfig, parseConfig } from '../../../src/config/config.js'
import { socketOptionsFromConfig } from '../../../src/bus/from-config.js'
import { ConfigError } from '../../../src/errors.js'

const STOCK = fileURLToPath(new URL('../../fixtures/fedmsg-stock.json', import.meta.url))

function tempDir(mode = 0o700): string {
  const dir = join(mkdtempSync(join(tmpdir(), 'gilmsg-fedmsg-config-')), 'd')
  mkdirSync(dir, { mode })
  chmodSync(dir, mode)
  return dir
}

function write(dir: string, name: string, config: unknown, mode = 0o600): string {
  const path = join(dir, name)
  writeFileSync(path, typeof config === 'string' ? config : JSON.stringify(config), { mode })
  chmodSync(path, mode)
  return path
}

const EMPTY_SYSTEM = '/nonexistent/gilmsg.d'

describe("fedmsg's stock configuration (fedmsg-config output)", () => {
  it('loads: the keys gilmsg implements are honoured with Python values (keepalive 1, relay_inbound a string, hwm 0)', () => {
    const c = loadConfig({ file: STOCK, env: {} })
    expect(c.source).toBe(STOCK)
    expect(c.zmq_tcp_keepalive).toBe(true)
    expect([c.zmq_tcp_keepalive_cnt, c.zmq_tcp_keepalive_idle, c.zmq_tcp_keepalive_intvl]).toEqual([3, 60, 5])
    expect(c.relay_inbound).toEqual(['tcp://127.0.0.1:2003'])
    expect(c.endpoints).toEqual({ 'fedora-infrastructure': ['tcp://127.0.0.1:9940'], relay_outbound: ['tcp://127.0.0.1:4001'] })
    expect(c.high_water_mark).toBe(Infinity)
    expect([c.sign_messages, c.validate_signatures, c.active, c.routing_nitpicky]).toEqual([false, true, false, false])
    expect(c.crypto_validate_backends).toEqual(['x509'])
    expect(c.ca_cert_location).toBe('http://127.0.0.1:8421/fedmsg/ca.crt')
    expect(c.crl_location).toBe('http://127.0.0.1:8421/fedmsg/crl.pem')
    expect([c.ca_cert_cache, c.ca_cert_cache_expiry, c.crl_cache, c.crl_cache_expiry]).toEqual(['/var/run/fedmsg/ca.crt', 0, '/var/run/fedmsg/crl.pem', 3600])
    expect(c.routing_policy).toEqual({ 'org.fedoraproject.prod.announce.announcement': ['announce-lockbox.phx2.fedoraproject.org'] })
    expect(socketOptionsFromConfig(c).tcpKeepalive).toEqual({ enabled: true, count: 3, idleSec: 60, intervalSec: 5 })
  })

  it("lists the keys of fedmsg's other parts as ignored, saying what fedmsg uses each for", () => {
    const report = inspectConfig({ file: STOCK, env: {} })
    expect(report.problems).toEqual([])
    expect(report.files).toEqual([{ path: STOCK, origin: 'option' }])
    const ignored = Object.fromEntries(report.ignored.map((i) => [i.key, i.purpose]))
    expect(Object.keys(ignored).sort()).toEqual(
      [
        'fedmsg.consumers.gateway.high_water_mark',
        'fedmsg.consumers.gateway.port',
        'io_threads',
        'irc',
        'irc_color_lookup',
        'irc_default_color',
        'irc_method',
        'logging',
        'persistent_store',
        'post_init_sleep',
        'print_config',
        'timeout',
        'topic_prefix_re',
        'zmq_enabled',
        'zmq_strict',
      ].sort(),
    )
    expect(ignored['irc']).toMatch(/fedmsg-irc/)
    expect(ignored['fedmsg.consumers.gateway.port']).toMatch(/fedmsg-gateway/)
    expect(report.ignored.every((i) => i.file === STOCK)).toBe(true)
    // Every key of the stock file is either gilmsg's or listed as ignored.
    const stockKeys = Object.keys(JSON.parse(readFileSync(STOCK, 'utf8')) as object)
    expect(stockKeys.filter((k) => !(k in defaultConfig()) && !(k in ignored))).toEqual([])
  })

  it('still refuses a key neither fedmsg nor gilmsg knows, naming the file and the nearest key', () => {
    const dir = tempDir()
    const path = write(dir, 'a.json', { ...JSON.parse(readFileSync(STOCK, 'utf8')), validate_signature: false, irc_colour_lookup: {} })
    const report = inspectConfig({ file: path, env: {} })
    expect(report.config).toBeUndefined()
    expect(report.problems.map((p) => p.message)).toEqual([
      `${path}: unknown key "validate_signature" (did you mean "validate_signatures"?)`,
      `${path}: unknown key "irc_colour_lookup" (did you mean "irc_color_lookup"?)`,
    ])
    expect(() => loadConfig({ file: path, env: {} })).toThrow(
      new ConfigError(`${path}: unknown key "validate_signature" (did you mean "validate_signatures"?) (and 1 more problem: "gilmsg config --check" lists them)`),
    )
  })

  it('reads 0/1 as booleans, null as unset, and refuses other numbers', () => {
    const c = parseConfig({ sign_messages: 0, validate_signatures: 1, active: 1, zmq_tcp_keepalive: 0, ssldir: null, name: null })
    expect([c.sign_messages, c.validate_signatures, c.active, c.zmq_tcp_keepalive]).toEqual([false, true, true, false])
    expect(c.ssldir).toBe(defaultConfig().ssldir)
    expect(c.name).toBeUndefined()
    expect(socketOptionsFromConfig(c).tcpKeepalive).toBeUndefined()
    expect(() => parseConfig({ active: 2 }, 'f.json')).toThrow(new ConfigError('f.json: key "active": expected true, false, 0 or 1, got 2'))
  })

  it("refuses zmq_enabled false: such a configuration is for fedmsg's STOMP transport", () => {
    expect(() => parseConfig({ zmq_enabled: false }, 'f.json')).toThrow(/f\.json: key "zmq_enabled" is false: .*STOMP.*ZeroMQ only/)
    expect(() => parseConfig({ zmq_enabled: 0 })).toThrow(ConfigError)
    expect(parseConfig({ zmq_enabled: true, zmq_strict: true }).source).toBe('config')
  })

  it("has fedmsg's defaults: TCP keepalive on (3 probes, 60 s idle, 5 s apart), CRL refetched hourly, CA never", () => {
    const d = defaultConfig()
    expect([d.zmq_tcp_keepalive, d.zmq_tcp_keepalive_cnt, d.zmq_tcp_keepalive_idle, d.zmq_tcp_keepalive_intvl]).toEqual([true, 3, 60, 5])
    expect([d.zmq_linger, d.zmq_reconnect_ivl, d.zmq_reconnect_ivl_max, d.high_water_mark]).toEqual([1000, 100, 1000, Infinity])
    expect([d.crl_cache_expiry, d.ca_cert_cache_expiry, d.ca_cert_cache, d.crl_cache]).toEqual([3600, 0, undefined, undefined])
  })
})

describe('a config directory (--config DIR, $GILMSG_CONFIG=DIR)', () => {
  it('merges DIR/*.json in name order: a later file wins, objects merge key by key, null unsets, paths are relative to their own file', () => {
    const dir = tempDir()
    write(dir, '10-base.json', { environment: 'base', endpoints: { a: 'tcp://127.0.0.1:1' }, name: 'early', ssldir: 'pki' })
    write(dir, '20-relay.json', { endpoints: { relay_outbound: ['tcp://127.0.0.1:2'] }, relay_inbound: 'tcp://127.0.0.1:3' })
    write(dir, '9-last.json', { environment: 'last', name: null })
    write(dir, 'notes.txt', 'not json')
    write(dir, '.hidden.json', '{nope')
    mkdirSync(join(dir, 'sub'))
    write(join(dir, 'sub'), 'x.json', { environment: 'sub' })
    for (const options of [{ file: dir, env: {} }, { env: { GILMSG_CONFIG: dir } }]) {
      expect(findConfigFiles(options).map((f) => f.path)).toEqual(['10-base.json', '20-relay.json', '9-last.json'].map((n) => join(dir, n)))
      const c = loadConfig(options)
      expect(c.environment).toBe('last')
      expect(c.endpoints).toEqual({ a: ['tcp://127.0.0.1:1'], relay_outbound: ['tcp://127.0.0.1:2'] })
      expect(c.relay_inbound).toEqual(['tcp://127.0.0.1:3'])
      expect(c.name).toBeUndefined()
      expect(c.ssldir).toBe(join(dir, 'pki'))
      expect(c.source).toBe(dir)
    }
    expect(findConfigFiles({ file: dir, env: {} })[0]?.origin).toBe('option')
    expect(findConfigFiles({ env: { GILMSG_CONFIG: dir } })[0]?.origin).toBe('env')
  })

  it('names the file of a bad key, and says when the directory has no *.json file', () => {
    const dir = tempDir()
    write(dir, 'a.json', { environment: 'a' })
    const bad = write(dir, 'b.json', { high_water_mark: 'lots' })
    expect(() => loadConfig({ file: dir, env: {} })).toThrow(new ConfigError(`${bad}: key "high_water_mark": expected an integer >= 0, got "lots"`))
    const empty = tempDir()
    expect(() => loadConfig({ file: empty, env: {} })).toThrow(new ConfigError(`config directory ${empty} has no *.json file`))
  })

  it('is refused when anyone can write the directory (they could add a file), and so is a file in it anyone can write', () => {
    const open = tempDir(0o777)
    write(open, 'a.json', { environment: 'a' })
    expect(() => loadConfig({ file: open, env: {} })).toThrow(/^config directory .* is writable by anyone on this host \(mode 0777\): .*fix: chmod o-w /)
    const dir = tempDir()
    write(dir, 'a.json', { environment: 'a' })
    const planted = write(dir, 'b.json', { validate_signatures: false }, 0o666)
    expect(() => loadConfig({ file: dir, env: {} })).toThrow(`config file ${planted} is writable by anyone on this host (mode 0666)`)
    chmodSync(planted, 0o644)
    expect(loadConfig({ file: dir, env: {} }).validate_signatures).toBe(false)
  })
})

describe('the search order when neither --config nor $GILMSG_CONFIG is given', () => {
  it('reads the system directory (*.json in name order), then ./gilmsg.json, which wins', () => {
    const system = tempDir(0o755)
    write(system, 'b.json', { environment: 'system-b', topic_prefix: 'org.example' }, 0o644)
    write(system, 'a.json', { environment: 'system-a', name: 'sys' }, 0o644)
    const cwd = tempDir()
    expect(findConfigFiles({ env: {}, cwd, systemDir: system })).toEqual([
      { path: join(system, 'a.json'), origin: 'system' },
      { path: join(system, 'b.json'), origin: 'system' },
    ])
    expect(loadConfig({ env: {}, cwd, systemDir: system }).environment).toBe('system-b')
    write(cwd, 'gilmsg.json', { environment: 'cwd' })
    const c = loadConfig({ env: {}, cwd, systemDir: system })
    expect([c.environment, c.topic_prefix, c.name]).toEqual(['cwd', 'org.example', 'sys'])
    expect(findConfigFiles({ env: {}, cwd, systemDir: system }).at(-1)).toEqual({ path: join(cwd, 'gilmsg.json'), origin: 'cwd' })
    // A file or directory named explicitly replaces the whole search.
    const explicit = write(tempDir(), 'x.json', { environment: 'x' })
    expect(findConfigFiles({ file: explicit, env: {}, cwd, systemDir: system })).toEqual([{ path: explicit, origin: 'option' }])
    expect(loadConfig({ env: {}, cwd: tempDir(), systemDir: EMPTY_SYSTEM })).toEqual(defaultConfig())
  })

  it("refuses a system directory file that group or others can write, or in a directory they can write (OpenSSH's rule)", () => {
    const system = tempDir(0o755)
    const path = write(system, 'a.json', { validate_signatures: false }, 0o664)
    const cwd = tempDir()
    expect(() => loadConfig({ env: {}, cwd, systemDir: system })).toThrow(
      `not loading ${path} found in the system config directory: it is writable by group or others (mode 0664)`,
    )
    chmodSync(path, 0o644)
    expect(loadConfig({ env: {}, cwd, systemDir: system }).validate_signatures).toBe(false)
    chmodSync(system, 0o775)
    expect(() => loadConfig({ env: {}, cwd, systemDir: system })).toThrow(`the directory ${system} is writable by group or others (mode 0775)`)
  })

  it('lists what it read before the file it could not read, and the problem (inspectConfig)', () => {
    const system = tempDir(0o755)
    const good = write(system, 'a.json', { environment: 'a' }, 0o644)
    const bad = write(system, 'b.json', '{nope', 0o644)
    const report = inspectConfig({ env: {}, cwd: tempDir(), systemDir: system })
    expect(report.files).toEqual([{ path: good, origin: 'system' }])
    expect(report.problems.map((p) => p.message)).toEqual([expect.stringContaining(`config file ${bad} is not valid JSON`)])
    expect(report.config).toBeUndefined()
  })
})
