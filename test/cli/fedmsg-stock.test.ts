/**
 * fedmsg's stock configuration, end to end: `relay`, `tail` and `logger` run with the JSON
 * that `fedmsg-config` prints on a stock install (test/fixtures/fedmsg-stock.json, copied
 * unchanged) as the first file of a fedmsg.d-like directory. A second file says only what a
 * site would add: this host's ssldir, the relay's actual loopback ports, and the CA and CRL
 * URLs pointed at a local HTTP server (the fixture's URLs, with the server's real port).
 * `logger` goes through the relay without `active`, as fedmsg-logger does.
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CliProcess, runCli } from '../support/cli.js'

const STOCK = fileURLToPath(new URL('../fixtures/fedmsg-stock.json', import.meta.url))

let base: string
let env: NodeJS.ProcessEnv
const procs: CliProcess[] = []
let http: Server
let httpPort: number
const served: string[] = []

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), 'gilmsg-fedmsg-stock-'))
  env = { XDG_STATE_HOME: join(base, 'state'), GILMSG_CONFIG: '' }
  const pki = join(base, 'pki')
  expect((await runCli(['certs', 'init', '--dir', pki], { env })).code).toBe(0)
  const issued = await runCli(['certs', 'issue', 'pub', '--dir', pki], { env })
  expect(issued.code, issued.stderr).toBe(0)
  // fedmsg's stock config fetches the CA and the CRL over http(s): serve this PKI's on loopback.
  const files: Record<string, string> = { '/fedmsg/ca.crt': join(pki, 'ca.crt'), '/fedmsg/crl.pem': join(pki, 'crl.pem') }
  http = createServer((req, res) => {
    const file = files[req.url ?? '']
    served.push(req.url ?? '')
    if (file === undefined) res.writeHead(404).end()
    else res.writeHead(200, { 'content-type': 'application/x-pem-file' }).end(readFileSync(file))
  })
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
  httpPort = (http.address() as { port: number }).port
}, 60_000)

afterAll(async () => {
  await Promise.all(procs.map((p) => p.stop('SIGKILL')))
  await new Promise<void>((resolve) => http.close(() => resolve()))
  rmSync(base, { recursive: true, force: true })
})

function start(args: string[]): CliProcess {
  const p = new CliProcess(args, env)
  procs.push(p)
  return p
}

describe("fedmsg's stock configuration", () => {
  it('runs relay, tail and logger: the CA and CRL fetched over http, a message signed with x509 (RSA, SHA-1) crosses the relay and is validated', async () => {
    const relay = start(['relay', '--config', STOCK, '--inbound', 'tcp://127.0.0.1:*', '--outbound', 'tcp://127.0.0.1:*'])
    const inbound = (await relay.waitFor(/^inbound /, 'stdout')).split(' ')[1]
    const outbound = (await relay.waitFor(/^outbound /, 'stdout')).split(' ')[1]

    const dir = join(base, 'gilmsg.d')
    mkdirSync(dir, { mode: 0o700 })
    copyFileSync(STOCK, join(dir, '00-fedmsg-stock.json'))
    const pki = join(base, 'pki')
    const site = {
      ssldir: pki,
      ca_cert_location: `http://127.0.0.1:${httpPort}/fedmsg/ca.crt`,
      crl_location: `http://127.0.0.1:${httpPort}/fedmsg/crl.pem`,
      // The stock caches are under /var/run/fedmsg: a test keeps its own (a CA cached there
      // would be used by every later run, as fedmsg's ca_cert_cache_expiry 0 says).
      ca_cert_cache: join(base, 'cache', 'ca.crt'),
      crl_cache: join(base, 'cache', 'crl.pem'),
      sign_messages: true,
      relay_inbound: inbound,
      endpoints: { relay_outbound: [outbound] },
    }
    writeFileSync(join(dir, '50-site.json'), JSON.stringify(site), { mode: 0o600 })

    const check = await runCli(['config', '--check', '--config', dir], { env })
    expect(check.code, check.stdout).toBe(0)
    expect(check.stdout).toContain(`  ${join(dir, '00-fedmsg-stock.json')} (given with --config)\n  ${join(dir, '50-site.json')} (given with --config)\n`)
    const endpoints = await runCli(['config', '--config', dir, '--query', 'endpoints', '--json'], { env })
    expect(JSON.parse(endpoints.stdout)).toEqual({ 'fedora-infrastructure': ['tcp://127.0.0.1:9940'], relay_outbound: [outbound] })

    const tail = start(['tail', '--config', dir, '--no-ack', '--count', '1'])
    await tail.waitFor(/listening/)
    const r = await runCli(['logger', '--config', dir, '--certname', 'pub', '--message', 'stock config'], { env })
    expect(r.code, r.stderr).toBe(0)
    expect(await tail.waitFor(/stock config/, 'stdout')).toBe('org.fedoraproject.dev.logger.log pub {"log":"stock config"}')
    expect(await tail.exited).toBe(0)
    // Both were fetched from the server, then cached where the site file says.
    expect(served).toContain('/fedmsg/ca.crt')
    expect(served).toContain('/fedmsg/crl.pem')
    expect(existsSync(join(base, 'cache', 'ca.crt')) && existsSync(join(base, 'cache', 'crl.pem'))).toBe(true)
  }, 30_000)
})
