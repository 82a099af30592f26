/**
 * A CRL from an http(s) URL with a real `gilmsg tail`: the CRL server on 127.0.0.1 is down
 * at start (no cached copy: the command fails naming the URL), then up (the CRL is fetched
 * and cached), then failing while tail runs (reported on stderr, the cached CRL kept).
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CliProcess, logRecord, runCli } from '../support/cli.js'

let dir: string
let env: NodeJS.ProcessEnv
let server: Server
let crlUrl: string
let status = 200
const procs = new Set<CliProcess>()

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gilmsg-cli-remote-'))
  env = { XDG_STATE_HOME: join(dir, 'state'), GILMSG_CONFIG: '' }
  expect((await runCli(['certs', 'init', '--dir', join(dir, 'pki')], { env })).code).toBe(0)
  server = createServer((_req, res) => {
    if (status !== 200) res.writeHead(status).end()
    else res.writeHead(200).end(readFileSync(join(dir, 'pki', 'crl.pem')))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  crlUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/crl.pem`
}, 60_000)

afterAll(async () => {
  await Promise.all([...procs].map((p) => p.stop('SIGKILL')))
  server.closeAllConnections()
  await new Promise<void>((resolve) => server.close(() => resolve()))
  await rm(dir, { recursive: true, force: true })
})

function writeConfig(crlLocation: string): string {
  const path = join(dir, 'remote.json')
  const config = {
    ssldir: join(dir, 'pki'),
    crl_location: crlLocation,
    crl_cache: join(dir, 'cache', 'crl.pem'),
    crl_cache_expiry: 1,
    endpoints: { nobody: [`ipc://${join(dir, 'nobody.sock')}`] },
  }
  writeFileSync(path, JSON.stringify(config), { mode: 0o600 })
  return path
}

describe('gilmsg tail with crl_location as a URL', () => {
  it('fails at start naming the URL when nothing is cached and the server is down', async () => {
    const down = createServer()
    await new Promise<void>((resolve) => down.listen(0, '127.0.0.1', resolve))
    const url = `http://127.0.0.1:${(down.address() as AddressInfo).port}/crl.pem`
    await new Promise<void>((resolve) => down.close(() => resolve()))
    const r = await runCli(['tail', '--config', writeConfig(url), '--no-ack'], { env })
    expect(r.code).not.toBe(0)
    expect(r.stderr).toContain(`no CRL is cached in ${join(dir, 'cache', 'crl.pem')} and none could be fetched: cannot fetch ${url}: fetch failed`)
  })

  it('fetches and caches it, then reports a failing refresh on stderr and keeps running', async () => {
    const tail = new CliProcess(['tail', '--config', writeConfig(crlUrl), '--no-ack'], env)
    procs.add(tail)
    await tail.waitFor(/listening/)
    expect(readFileSync(join(dir, 'cache', 'crl.pem'), 'utf8')).toBe(readFileSync(join(dir, 'pki', 'crl.pem'), 'utf8'))
    status = 503
    const line = await tail.waitFor(/HTTP 503/, 'stderr', 10_000)
    expect(logRecord(line)).toMatchObject({ level: 50, name: 'tail', path: crlUrl, reason: `cannot fetch ${crlUrl}: HTTP 503 Service Unavailable` })
    expect(logRecord(line)?.['msg']).toBe(`CRL ${crlUrl}: cannot fetch ${crlUrl}: HTTP 503 Service Unavailable; the CRL in use (if any) is kept`)
  })
})
