import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { defaultConfig, loadConfig, nearest, parseConfig } from '../../../src/config/config.js'
import { ConfigError } from '../../../src/errors.js'
import { socketOptionsFromConfig } from '../../../src/bus/from-config.js'
import { DEFAULT_HIGH_WATER_MARK, DEFAULT_TOPIC_PREFIX } from '../../../src/config/defaults.js'

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'gilmsg-config-'))
}

describe('parseConfig', () => {
  it('fills every default', () => {
    const c = parseConfig({})
    expect(c.topic_prefix).toBe(DEFAULT_TOPIC_PREFIX)
    expect(c.high_water_mark).toBe(DEFAULT_HIGH_WATER_MARK)
    expect(c.crypto_backend).toBe('x509')
    expect(c.crypto_validate_backends).toEqual(['x509', 'x509_sha256'])
  })

  it('accepts fedmsg key names', () => {
    const c = parseConfig({
      endpoints: { 'pub.host': ['tcp://127.0.0.1:9940'], relay_outbound: 'tcp://127.0.0.1:9941' },
      relay_inbound: 'tcp://127.0.0.1:9942',
      active: true,
      routing_policy: { 'org.fedoraproject.dev.x.y': ['a', 'b'] },
      routing_nitpicky: true,
      high_water_mark: 10,
      zmq_linger: 0,
    })
    expect(c.endpoints['relay_outbound']).toEqual(['tcp://127.0.0.1:9941'])
    expect(c.relay_inbound).toEqual(['tcp://127.0.0.1:9942'])
    expect(c.routing_policy['org.fedoraproject.dev.x.y']).toEqual(['a', 'b'])
  })

  it('reads "no limit" written 0 (high_water_mark, resend_rate) as the API\'s Infinity, and passes it on', () => {
    expect(DEFAULT_HIGH_WATER_MARK).toBe(Infinity)
    const unlimited = parseConfig({ high_water_mark: 0, resend_rate: 0 })
    expect(unlimited.high_water_mark).toBe(Infinity)
    expect(unlimited.resend_rate).toBe(Infinity)
    expect(socketOptionsFromConfig(unlimited).highWaterMark).toBe(Infinity)
    const limited = parseConfig({ high_water_mark: 10, resend_rate: 2.5 })
    expect(limited.high_water_mark).toBe(10)
    expect(limited.resend_rate).toBe(2.5)
    expect(() => parseConfig({ resend_rate: -1 })).toThrow(/"resend_rate": expected a number >= 0, got -1/)
  })

  it('names the config key when a value passes the parser but not the sockets (ConfigError, not InvalidArgumentError)', () => {
    expect(() => socketOptionsFromConfig(parseConfig({ max_message_bytes: 32 }))).toThrow(ConfigError)
    expect(() => socketOptionsFromConfig(parseConfig({ max_message_bytes: 32 }, 'f.json'))).toThrow(
      new ConfigError('f.json: key "max_message_bytes": expected an integer >= 64, got 32'),
    )
    expect(() => socketOptionsFromConfig(parseConfig({ zmq_heartbeat_ivl: 100, zmq_heartbeat_ttl: 50 }, 'f.json'))).toThrow(
      /^f\.json: key "zmq_heartbeat_ttl": expected an integer in \[100, 6553500\], got 50$/,
    )
  })

  it('maps the retransmission limit and ZMTP heartbeat keys to socket options (0 or absent: off)', () => {
    const c = parseConfig({ zmq_tcp_maxrt: 2000, zmq_connect_timeout: 500, zmq_heartbeat_ivl: 250, zmq_heartbeat_timeout: 750, zmq_heartbeat_ttl: 1500 })
    expect(socketOptionsFromConfig(c)).toMatchObject({ tcpMaxRetransmitMs: 2000, connectTimeoutMs: 500, heartbeat: { intervalMs: 250, timeoutMs: 750, ttlMs: 1500 } })
    const off = socketOptionsFromConfig(parseConfig({ zmq_tcp_maxrt: 0, zmq_heartbeat_timeout: 750 }))
    expect(off.tcpMaxRetransmitMs).toBeUndefined()
    expect(off.heartbeat).toBeUndefined()
    expect(() => parseConfig({ zmq_heartbeat_ivl: -1 })).toThrow(/"zmq_heartbeat_ivl": expected an integer >= 0, got -1/)
  })

  it('names the nearest valid key for an unknown one', () => {
    expect(() => parseConfig({ endpionts: {} }, 'f.json')).toThrow(/unknown key "endpionts" \(did you mean "endpoints"\?\)/)
    expect(() => parseConfig({ zzzzzzzzzz: 1 })).toThrow(ConfigError)
    expect(() => parseConfig({ zzzzzzzzzz: 1 })).not.toThrow(/did you mean/)
  })

  it('says what was expected and what was given', () => {
    expect(() => parseConfig({ high_water_mark: '10' })).toThrow(/"high_water_mark": expected an integer >= 0, got "10"/)
    expect(() => parseConfig({ active: 'yes' })).toThrow(/"active": expected true, false, 0 or 1, got "yes"/)
    expect(() => parseConfig({ crypto_backend: 'gpg' })).toThrow(/expected one of "x509", "x509_sha256", got "gpg"/)
    expect(() => parseConfig({ endpoints: { a: 'localhost:99' } })).toThrow(/"endpoints.a": expected a ZeroMQ address/)
  })

  it('keeps an http(s) CA or CRL location as written, refuses other URLs, and any URL where a local path is expected', () => {
    const c = parseConfig({ ca_cert_location: 'https://example.invalid/ca.crt', crl_location: 'http://127.0.0.1:8421/crl.pem' }, 'f.json', '/etc/gilmsg')
    expect(c.ca_cert_location).toBe('https://example.invalid/ca.crt')
    expect(c.crl_location).toBe('http://127.0.0.1:8421/crl.pem')
    expect(() => parseConfig({ crl_location: 'ftp://example.invalid/crl.pem' }, 'f.json')).toThrow(
      new ConfigError('f.json: key "crl_location": expected a file path or an http(s) URL, got "ftp://example.invalid/crl.pem"'),
    )
    expect(() => parseConfig({ crl_cache: 'https://example.invalid/crl.pem' })).toThrow(/"crl_cache": expected a local file path, got "https:/)
    expect(() => parseConfig({ ssldir: 'file:///etc/pki' })).toThrow(/"ssldir": expected a local file path/)
    const c2 = parseConfig({ crl_cache: 'c/crl.pem', crl_cache_expiry: 60 }, 'x', '/var/lib')
    expect([c2.crl_cache, c2.crl_cache_expiry, c2.ca_cert_cache, c2.ca_cert_cache_expiry]).toEqual(['/var/lib/c/crl.pem', 60, undefined, 0])
    expect(parseConfig({}).crl_cache_expiry).toBe(3600)
  })

  it('resolves relative paths against the config file directory', () => {
    const c = parseConfig({ ssldir: 'pki', ca_cert_location: 'pki/ca.crt' }, 'x', '/etc/gilmsg')
    expect(c.ssldir).toBe('/etc/gilmsg/pki')
    expect(c.ca_cert_location).toBe('/etc/gilmsg/pki/ca.crt')
  })
})

describe('loadConfig', () => {
  it('prefers --config, then GILMSG_CONFIG, then ./gilmsg.json, then defaults', () => {
    const dir = tempDir()
    writeFileSync(join(dir, 'a.json'), JSON.stringify({ environment: 'a' }), { mode: 0o600 })
    writeFileSync(join(dir, 'b.json'), JSON.stringify({ environment: 'b' }), { mode: 0o600 })
    writeFileSync(join(dir, 'gilmsg.json'), JSON.stringify({ environment: 'cwd' }), { mode: 0o600 })
    expect(loadConfig({ file: 'a.json', env: { GILMSG_CONFIG: 'b.json' }, cwd: dir }).environment).toBe('a')
    expect(loadConfig({ env: { GILMSG_CONFIG: join(dir, 'b.json') }, cwd: dir }).environment).toBe('b')
    expect(loadConfig({ env: {}, cwd: dir }).environment).toBe('cwd')
    expect(loadConfig({ env: {}, cwd: tempDir() })).toEqual(defaultConfig())
  })

  it('names the file it cannot read or parse', () => {
    const dir = tempDir()
    expect(() => loadConfig({ file: join(dir, 'missing.json') })).toThrow(/cannot read config file .*missing\.json/)
    writeFileSync(join(dir, 'bad.json'), '{nope', { mode: 0o600 })
    expect(() => loadConfig({ file: join(dir, 'bad.json') })).toThrow(/bad\.json is not valid JSON/)
    writeFileSync(join(dir, 'list.json'), '[]', { mode: 0o600 })
    expect(() => loadConfig({ file: join(dir, 'list.json') })).toThrow(/expected a JSON object/)
  })

  it('applies overrides on top of the file', () => {
    const dir = tempDir()
    writeFileSync(join(dir, 'gilmsg.json'), JSON.stringify({ validate_signatures: true }), { mode: 0o600 })
    expect(loadConfig({ cwd: dir, env: {}, overrides: { validate_signatures: false } }).validate_signatures).toBe(false)
  })
})

describe('nearest', () => {
  it('finds typos, not unrelated words', () => {
    expect(nearest('ssl_dir', ['ssldir', 'name'])).toBe('ssldir')
    expect(nearest('completely_different', ['ssldir', 'name'])).toBeUndefined()
  })
})

describe('whyCannotPublish', () => {
  it('says what is missing for a process to publish (and so to acknowledge)', async () => {
    const { whyCannotPublish } = await import('../../../src/bus/from-config.js')
    expect(whyCannotPublish(parseConfig({}))).toMatch(/no "name" is set/)
    expect(whyCannotPublish(parseConfig({ name: 'x', endpoints: { y: ['tcp://127.0.0.1:1'] } }))).toMatch(/"endpoints" has no entry "x"/)
    expect(whyCannotPublish(parseConfig({ active: true }))).toMatch(/"relay_inbound" is not set/)
    expect(whyCannotPublish(parseConfig({ name: 'x', endpoints: { x: ['tcp://127.0.0.1:1'] } }))).toBeUndefined()
    expect(whyCannotPublish(parseConfig({ active: true, relay_inbound: 'tcp://127.0.0.1:1' }))).toBeUndefined()
  })
})
