/**
 * What operators watch, with real processes: a relay and `gilmsg tail` (a recipient) serve
 * /metrics, /healthz and /readyz on `--metrics 127.0.0.1:0`; a `gilmsg publish --recipients`
 * delivery moves their counters; /readyz says 503 (naming the check) with a stale CRL;
 * stderr is JSON lines, with one line per drop reason and a count.
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { renewCrl } from '../../src/crypto/crl-issue.js'
import { CliProcess, logLine, logRecord, runCli } from '../support/cli.js'
import { waitUntil } from '../support/reliable-net.js'

const procs = new Set<CliProcess>()
function start(args: string[]): CliProcess {
  const p = new CliProcess(args, env)
  procs.add(p)
  return p
}

let dir: string
let env: NodeJS.ProcessEnv
let relayMetrics: string
let config: string

function writeConfig(name: string, extra: Record<string, unknown>): string {
  const path = join(dir, `${name}.json`)
  const pki = join(dir, 'pki')
  writeFileSync(path, JSON.stringify({ ssldir: pki, ca_cert_location: join(pki, 'ca.crt'), crl_location: join(pki, 'crl.pem'), ...extra }), { mode: 0o600 })
  return path
}

/** The URL a service logged (`metrics_url`) once its health server listens. */
async function metricsUrl(p: CliProcess): Promise<string> {
  const record = logRecord(await p.waitFor(/"metrics_url":/, 'stderr'))
  return String(record?.['metrics_url'])
}

async function get(url: string, method = 'GET'): Promise<{ status: number; type: string | null; body: string }> {
  const res = await fetch(url, { method })
  return { status: res.status, type: res.headers.get('content-type'), body: await res.text() }
}

/** The value of `series` (name and labels exactly) in a /metrics text, or undefined. */
function value(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gilmsg-observe-'))
  env = { XDG_STATE_HOME: join(dir, 'state'), GILMSG_CONFIG: '' }
  expect((await runCli(['certs', 'init', '--dir', join(dir, 'pki')], { env })).code).toBe(0)
  for (const name of ['pub', 'alice']) expect((await runCli(['certs', 'issue', name, '--dir', join(dir, 'pki')], { env })).code).toBe(0)
  const relay = start(['relay', '--inbound', 'tcp://127.0.0.1:*', '--outbound', 'tcp://127.0.0.1:*', '--metrics', '127.0.0.1:0'])
  const inbound = (await relay.waitFor(/^inbound /, 'stdout')).split(' ')[1]
  const outbound = (await relay.waitFor(/^outbound /, 'stdout')).split(' ')[1]
  relayMetrics = await metricsUrl(relay)
  config = writeConfig('relay', { endpoints: { relay_outbound: [outbound] }, relay_inbound: [inbound], active: true })
}, 60_000)

afterAll(async () => {
  await Promise.all([...procs].map((p) => p.stop('SIGKILL')))
})

describe('gilmsg tail and relay --metrics', () => {
  it('serve /metrics, /healthz and /readyz; a delivery moves the ACKs tail sent and the relay’s inbound connections', async () => {
    const alice = start(['tail', '--config', config, '--certname', 'alice', '--name', 'alice', '--metrics', '127.0.0.1:0'])
    await alice.waitFor(/acknowledging as alice/)
    const tailMetrics = await metricsUrl(alice)
    expect(tailMetrics).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)

    const before = await get(`${relayMetrics}/metrics`)
    expect(before.status).toBe(200)
    expect(before.type).toMatch(/^text\/plain; version=0\.0\.4/)
    const connectionsBefore = value(before.body, 'gilmsg_relay_inbound_connections_total') ?? NaN

    const published = await runCli(['publish', '--config', config, '--certname', 'pub', '--name', 'pub', '--recipients', 'alice', '--message', 'watch me'], { env })
    expect(published.code, published.stderr).toBe(0)

    const tailText = (await get(`${tailMetrics}/metrics`)).body
    expect(value(tailText, 'gilmsg_consumer_acks_sent_total{disposition="received"}')).toBe(1)
    expect(value(tailText, 'gilmsg_certificate_expiry_seconds')).toBeGreaterThan(86_400)
    expect(value(tailText, 'gilmsg_crl_next_update_seconds')).toBeGreaterThan(0)
    // The publisher connected to the relay (tail had already); the native relay counts no message.
    const relayText = (await get(`${relayMetrics}/metrics`)).body
    expect(value(relayText, 'gilmsg_relay_inbound_connections_total')).toBeGreaterThanOrEqual(connectionsBefore + 1)
    expect(relayText).not.toMatch(/gilmsg_relay_forwarded_total/)

    for (const base of [tailMetrics, relayMetrics]) {
      expect(await get(`${base}/healthz`)).toMatchObject({ status: 200 })
      const ready = await get(`${base}/readyz`)
      expect(ready.status, ready.body).toBe(200)
      expect(JSON.parse(ready.body)).toMatchObject({ status: 'ready' })
      expect((await get(`${base}/nope`)).status).toBe(404)
      expect((await get(`${base}/metrics`, 'POST')).status).toBe(405)
    }
    const ready = JSON.parse((await get(`${tailMetrics}/readyz`)).body) as { checks: string[] }
    expect(ready.checks.sort()).toEqual(['crl', 'inbox', 'running', 'sockets'])
    expect(await alice.stop('SIGTERM')).toBe(0)
    await expect(fetch(`${tailMetrics}/healthz`)).rejects.toThrow()
  }, 40_000)

  it('/readyz is 503 while the CRL is stale, and says so', async () => {
    const ssldir = join(dir, 'stale-pki')
    expect((await runCli(['certs', 'init', '--dir', ssldir], { env })).code).toBe(0)
    await renewCrl(ssldir, { thisUpdate: new Date(Date.now() - 3 * 86_400_000), nextUpdate: new Date(Date.now() - 2 * 86_400_000) })
    const staleConfig = writeConfig('stale', { ssldir, ca_cert_location: join(ssldir, 'ca.crt'), crl_location: join(ssldir, 'crl.pem'), endpoints: { relay_outbound: [] } })
    const tail = start(['tail', '--config', staleConfig, '--no-ack', '--metrics', '127.0.0.1:0'])
    const url = await metricsUrl(tail)
    await tail.waitFor(/listening/)
    const ready = await get(`${url}/readyz`)
    expect(ready.status).toBe(503)
    const body = JSON.parse(ready.body) as { status: string; failed: Record<string, string> }
    expect(body.status).toBe('not ready')
    expect(Object.keys(body.failed)).toEqual(['crl'])
    expect(body.failed['crl']).toMatch(/^the CRL is stale: its nextUpdate 20\d\d-.* has passed$/)
    expect(value((await get(`${url}/metrics`)).body, 'gilmsg_crl_next_update_seconds')).toBeLessThan(-86_400)
    expect((await get(`${url}/healthz`)).status).toBe(200)
    expect(logRecord(tail.stderrLines.find((l) => /is stale/.test(l)) ?? '')).toMatchObject({ level: 40, stale: true })
    expect(await tail.stop('SIGTERM')).toBe(0)
  }, 30_000)
})

describe('service logs', () => {
  it('are JSON lines; a burst of drops is one line per reason with a count', async () => {
    const tail = start(['tail', '--config', config, '--no-ack', '--log-format', 'json'])
    await tail.waitFor(/listening/)
    // Unsigned messages: tail validates signatures, so it drops each one.
    const unsigned = writeConfig('unsigned', { ...JSON.parse((await runCli(['config', '--config', config], { env })).stdout), sign_messages: false })
    const lines = Array.from({ length: 5 }, (_, i) => `unsigned ${i}`).join('\n') + '\n'
    const sent = await runCli(['logger', '--config', unsigned], { env, input: lines })
    expect(sent.code, sent.stderr).toBe(0)
    // The relay forwards in order: once a signed message is printed, the unsigned ones before it were dropped.
    expect((await runCli(['logger', '--config', config, '--certname', 'pub', '--message', 'signed'], { env })).code).toBe(0)
    await tail.waitFor(/"log":"signed"/, 'stdout')
    expect(await tail.stop('SIGTERM')).toBe(0)

    const records = tail.stderrLines.map((l) => ({ line: l, record: logRecord(l) }))
    expect(records.filter((r) => r.record === undefined).map((r) => r.line)).toEqual([])
    const bursts = records.map((r) => r.record as Record<string, unknown>).filter((r) => r['count'] !== undefined)
    expect(bursts).toHaveLength(1)
    expect(bursts[0]).toMatchObject({ level: 40, name: 'tail', count: 5 })
    expect(typeof bursts[0]?.['reason']).toBe('string')
    expect(String(bursts[0]?.['msg'])).toMatch(/^5 messages dropped: /)
  }, 30_000)

  it('a relay that goes away and comes back is one "disconnected" and one "connected" line, with its address', async () => {
    const relayArgs = (outbound: string): string[] => ['relay', '--inbound', 'tcp://127.0.0.1:*', '--outbound', outbound]
    const first = start(relayArgs('tcp://127.0.0.1:*'))
    const outbound = (await first.waitFor(/^outbound /, 'stdout')).split(' ')[1] as string
    const own = writeConfig('restarted-relay', { endpoints: { relay_outbound: [outbound] } })
    const tail = start(['tail', '--config', own, '--no-ack', '--log-format', 'json'])
    await tail.waitFor(/listening/)
    await tail.waitFor(new RegExp(`"msg":"connected to ${outbound}"`))
    expect(await first.stop('SIGTERM')).toBe(0)
    const lost = logRecord(await tail.waitFor(/"msg":"disconnected from/))
    expect(lost).toMatchObject({ level: 40, name: 'tail', address: outbound, msg: `disconnected from ${outbound}: reconnecting` })
    const second = start(relayArgs(outbound))
    await second.waitFor(/^outbound /, 'stdout')
    const connected = (): number => tail.stderrLines.filter((l) => l.includes(`"msg":"connected to ${outbound}"`)).length
    await waitUntil(() => connected() === 2, 15_000, 'tail to connect again', () => tail.stderrLines.join('\n'))
    expect(await tail.stop('SIGTERM')).toBe(0)
    expect(await second.stop('SIGTERM')).toBe(0)
    expect(tail.stderrLines.filter((l) => /"msg":"(dis)?connected/.test(l))).toHaveLength(3)
  }, 40_000)

  it('--log-format text is readable lines; bad flags are usage errors (exit 2)', async () => {
    const tail = start(['tail', '--config', config, '--no-ack', '--log-format', 'text', '--count', '1'])
    const line = await tail.waitFor(/listening/)
    expect(logRecord(line)).toBeUndefined()
    expect(line).toMatch(/INFO.*\(tail\).*listening on org\.fedoraproject\.dev\./)
    expect((await runCli(['logger', '--config', config, '--certname', 'pub', '--message', 'one'], { env })).code).toBe(0)
    expect(await tail.exited).toBe(0)
    expect(tail.stdoutLines).toEqual(['org.fedoraproject.dev.logger.log pub {"log":"one"}'])

    for (const [flag, v, expected] of [
      ['--metrics', 'example.org:9', /--metrics: expected HOST:PORT with HOST an IP address/],
      ['--metrics', '127.0.0.1:70000', /--metrics: expected HOST:PORT/],
      ['--log-format', 'xml', /--log-format: expected json or text, got "xml"/],
      ['--log-level', 'loud', /--log-level: expected one of fatal, error, warn, info, debug, trace, silent, got "loud"/],
    ] as const) {
      const r = await runCli(['relay', '--inbound', 'tcp://127.0.0.1:*', '--outbound', 'tcp://127.0.0.1:*', flag, v], { env })
      expect(r.code, r.stderr).toBe(2)
      expect(r.stderr).toMatch(expected)
    }
  }, 30_000)
})

it('logLine matches a JSON record by the start of its message', () => {
  expect(logLine('stats (x)').test('{"level":30,"msg":"stats (x) y"}')).toBe(true)
  expect(logLine('stats').test('{"msg":"not stats"}')).toBe(false)
})
