/**
 * The HTTP server of a long-running command (node:http, no framework): `GET /metrics`
 * (Prometheus text), `/healthz` (alive), `/readyz` (every readiness check passes).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Registry } from 'prom-client'
import { errorMessage, TransportError } from '../errors.js'

/** A readiness check: undefined when ready, else why not (a short sentence). It must not throw; if it does, the message is the reason. */
export type ReadinessCheck = () => string | undefined

/** The checks `/readyz` runs, by name (e.g. `sockets`, `inbox`, `crl`). */
export class Readiness {
  readonly #checks = new Map<string, ReadinessCheck>()

  /** Adds (or replaces) the check `name`; returns the function that removes it. */
  add(name: string, check: ReadinessCheck): () => void {
    this.#checks.set(name, check)
    return () => {
      if (this.#checks.get(name) === check) this.#checks.delete(name)
    }
  }

  /** Runs every check: `ready` when none failed; `failed` maps each failed check to its reason. */
  run(): { readonly ready: boolean; readonly failed: Record<string, string>; readonly passed: string[] } {
    const failed: Record<string, string> = {}
    const passed: string[] = []
    for (const [name, check] of this.#checks) {
      let why: string | undefined
      try {
        why = check()
      } catch (e) {
        why = errorMessage(e)
      }
      if (why === undefined) passed.push(name)
      else failed[name] = why
    }
    return { ready: Object.keys(failed).length === 0, failed, passed }
  }
}

export interface HealthServerOptions {
  /** An IP literal or `localhost`. */
  readonly host: string
  /** 0: any free port (read it back from `port`). */
  readonly port: number
  /** Served on `/metrics`. */
  readonly registry: Registry
  readonly readiness: Readiness
}

/** A running health server. */
export interface HealthServer {
  readonly host: string
  /** The bound port (the real one when 0 was asked). */
  readonly port: number
  /** `http://host:port` (IPv6 hosts in brackets). */
  readonly url: string
  /** Stops accepting connections, ends the idle ones, and resolves once closed. Idempotent. Never rejects. */
  close(): Promise<void>
}

const JSON_TYPE = 'application/json; charset=utf-8'

function reply(res: ServerResponse, status: number, type: string, body: string, head: boolean, extra: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', ...extra })
  res.end(head ? undefined : body)
}

async function handle(req: IncomingMessage, res: ServerResponse, o: HealthServerOptions): Promise<void> {
  const path = (req.url ?? '/').split('?', 1)[0]
  const known = path === '/metrics' || path === '/healthz' || path === '/readyz'
  if (!known) return reply(res, 404, JSON_TYPE, JSON.stringify({ error: `not found: ${path}; try /metrics, /healthz or /readyz` }) + '\n', false)
  const head = req.method === 'HEAD'
  if (req.method !== 'GET' && !head) {
    return reply(res, 405, JSON_TYPE, JSON.stringify({ error: `method ${req.method ?? ''} not allowed: GET or HEAD` }) + '\n', false, { allow: 'GET, HEAD' })
  }
  if (path === '/healthz') return reply(res, 200, JSON_TYPE, JSON.stringify({ status: 'ok', uptime_seconds: Math.round(process.uptime()) }) + '\n', head)
  if (path === '/readyz') {
    const { ready, failed, passed } = o.readiness.run()
    const body = ready ? { status: 'ready', checks: passed } : { status: 'not ready', failed, passed }
    return reply(res, ready ? 200 : 503, JSON_TYPE, JSON.stringify(body) + '\n', head)
  }
  let text: string
  try {
    text = await o.registry.metrics()
  } catch (e) {
    return reply(res, 500, JSON_TYPE, JSON.stringify({ error: `collecting metrics failed: ${errorMessage(e)}` }) + '\n', head)
  }
  reply(res, 200, o.registry.contentType, text, head)
}

/**
 * Starts the server on `host:port`. Resolves once listening; rejects with
 * `TransportError` "cannot listen on HOST:PORT: reason" (e.g. EADDRINUSE). The server
 * does not keep the process alive (it is unref'd): the command's own work does.
 * Only GET and HEAD are served (405 otherwise); paths other than the three are 404.
 */
export async function startHealthServer(options: HealthServerOptions): Promise<HealthServer> {
  const server: Server = createServer((req, res) => {
    handle(req, res, options).catch((e: unknown) => {
      if (!res.headersSent) reply(res, 500, JSON_TYPE, JSON.stringify({ error: errorMessage(e) }) + '\n', false)
      else res.destroy()
    })
  })
  server.keepAliveTimeout = 5000
  await new Promise<void>((resolve, reject) => {
    const onError = (e: Error): void => reject(new TransportError(`cannot listen on ${options.host}:${options.port}: ${errorMessage(e)}`, { cause: e }))
    server.once('error', onError)
    server.listen(options.port, options.host, () => {
      server.off('error', onError)
      resolve()
    })
  })
  server.unref()
  const address = server.address() as AddressInfo
  const host = address.address
  let closing: Promise<void> | undefined
  return {
    host,
    port: address.port,
    url: `http://${host.includes(':') ? `[${host}]` : host}:${address.port}`,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeIdleConnections()
      })
      return closing
    },
  }
}
