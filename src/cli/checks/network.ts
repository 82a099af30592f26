import { Publisher, Subscriber, type Socket } from 'zeromq'
import { whyCannotPublish } from '../../bus/from-config.js'
import type { GilmsgConfig } from '../../config/config.js'
import { errorMessage, TransportError } from '../../errors.js'
import { fail, ok, warn, type CheckResult } from './result.js'

/**
 * `endpoint`: whether this process could bind what it binds to publish (`endpoints[name]`,
 * unless `active`): each address is bound and closed at once. An address in use is a
 * warning (the service itself may be running), any other bind error a failure.
 */
export async function endpointChecks(config: GilmsgConfig, timeoutMs: number): Promise<CheckResult[]> {
  const name = 'endpoint'
  if (config.active) return [ok(name, `none bound: "active" is true, this process connects to relay_inbound`)]
  const cannot = whyCannotPublish(config)
  if (cannot !== undefined) return [warn(name, `this process cannot publish (nor acknowledge): ${cannot}`)]
  const addresses = config.endpoints[config.name ?? ''] ?? []
  return Promise.all(addresses.map((address) => bindable(name, address, timeoutMs)))
}

async function bindable(name: string, address: string, timeoutMs: number): Promise<CheckResult> {
  const sock = new Publisher({ linger: 0 })
  try {
    await withTimeout(sock.bind(address), timeoutMs, `binding took over ${timeoutMs} ms`)
    return ok(name, `${address} is bindable${address !== sock.lastEndpoint ? ` (${sock.lastEndpoint ?? '?'})` : ''}`)
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (code === 'EADDRINUSE') return warn(name, `${address} is in use: another process holds it (this service, already running?)`)
    return fail(name, `cannot bind ${address}: ${errorMessage(e)}`)
  } finally {
    sock.close()
  }
}

/**
 * `relay inbound` / `relay outbound`: a ZMTP handshake with each relay address within
 * `timeoutMs` (a PUB connecting to `relay_inbound`, a SUB to `endpoints.relay_outbound`);
 * libzmq never fails a connect, so the socket's `handshake` event is what proves a peer.
 * Nothing when no relay is configured.
 */
export async function relayChecks(config: GilmsgConfig, timeoutMs: number): Promise<CheckResult[]> {
  const inbound = config.relay_inbound.map((a) => handshake('relay inbound', a, new Publisher({ linger: 0 }), timeoutMs))
  const outbound = (config.endpoints['relay_outbound'] ?? []).map((a) => handshake('relay outbound', a, new Subscriber({ linger: 0 }), timeoutMs))
  return Promise.all([...inbound, ...outbound])
}

async function handshake(name: string, address: string, sock: Socket, timeoutMs: number): Promise<CheckResult> {
  const started = performance.now()
  let connected = false
  const shaken = (async () => {
    try {
      for (;;) {
        const event = await sock.events.receive()
        if (event.type === 'connect') connected = true
        if (event.type === 'handshake') return true
        if (event.type === 'end') return false
      }
    } catch {
      return false // the observer closed with its socket
    }
  })()
  try {
    sock.connect(address)
  } catch (e) {
    sock.close()
    return fail(name, `cannot connect to ${address}: ${errorMessage(e)}`)
  }
  let timer: NodeJS.Timeout | undefined
  const timedOut = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)))
  const reached = await Promise.race([shaken, timedOut])
  clearTimeout(timer)
  sock.close()
  if (reached) return ok(name, `${address}: ZMTP handshake in ${Math.round(performance.now() - started)} ms`)
  return fail(
    name,
    connected
      ? `${address}: a TCP connection but no ZMTP handshake within ${timeoutMs} ms (is it a relay?)`
      : `${address}: unreachable, no connection within ${timeoutMs} ms (is the relay running?)`,
  )
}

function withTimeout<T>(work: Promise<T>, ms: number, why: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new TransportError(why)), ms)))
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer))
}
