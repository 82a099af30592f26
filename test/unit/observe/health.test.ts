/**
 * The health server and readiness checks: /readyz names what failed (a closed inbox), a
 * check that throws fails with its message, only GET/HEAD are served, close() is
 * idempotent; `parseHostPort` takes IP literals and localhost only; drop bursts and
 * publisher outcomes are logged once each, with fields.
 */
import { Writable } from 'node:stream'
import { Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import { parseConfig, parseHostPort } from '../../../src/config/config.js'
import { ConfigError } from '../../../src/errors.js'
import { MemoryInboxData, MemoryInboxStore } from '../../../src/inbox/memory.js'
import type { PublisherEvents } from '../../../src/reliable/publisher.js'
import { Emitter } from '../../../src/util/events.js'
import { Readiness, startHealthServer } from '../../../src/observe/health.js'
import { createServiceLogger } from '../../../src/observe/log.js'
import { DropBursts, logPublisherEvents } from '../../../src/observe/log-events.js'
import { FakeClock } from '../../support/fake-clock.js'

describe('startHealthServer', () => {
  it('answers /readyz 503 naming the failed check while a store is closed, 200 otherwise', async () => {
    const inbox = new MemoryInboxStore(new MemoryInboxData())
    const readiness = new Readiness()
    readiness.add('inbox', () => (inbox.get('', ''), undefined))
    readiness.add('odd', () => undefined)
    const server = await startHealthServer({ host: '127.0.0.1', port: 0, registry: new Registry(), readiness })
    try {
      expect(server.url).toBe(`http://127.0.0.1:${server.port}`)
      expect((await fetch(`${server.url}/readyz`)).status).toBe(200)
      await inbox.close()
      const res = await fetch(`${server.url}/readyz`)
      expect(res.status).toBe(503)
      expect(await res.json()).toEqual({ status: 'not ready', failed: { inbox: expect.stringMatching(/closed/) as unknown }, passed: ['odd'] })
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200)
      expect((await fetch(`${server.url}/metrics`, { method: 'HEAD' })).status).toBe(200)
      const del = await fetch(`${server.url}/healthz`, { method: 'DELETE' })
      expect([del.status, del.headers.get('allow')]).toEqual([405, 'GET, HEAD'])
      expect((await fetch(`${server.url}/`)).status).toBe(404)
    } finally {
      await server.close()
      await server.close()
    }
    await expect(fetch(`${server.url}/healthz`)).rejects.toThrow()
  })

  it('rejects with a TransportError naming the address it cannot listen on', async () => {
    const first = await startHealthServer({ host: '127.0.0.1', port: 0, registry: new Registry(), readiness: new Readiness() })
    try {
      await expect(startHealthServer({ host: '127.0.0.1', port: first.port, registry: new Registry(), readiness: new Readiness() })).rejects.toThrow(
        `cannot listen on 127.0.0.1:${first.port}: `,
      )
    } finally {
      await first.close()
    }
  })
})

describe('metrics_endpoint', () => {
  it('is HOST:PORT with an IP literal or localhost, port 0 to 65535; unset by default', () => {
    expect(parseHostPort('127.0.0.1:0')).toEqual({ host: '127.0.0.1', port: 0 })
    expect(parseHostPort('[::1]:9464')).toEqual({ host: '::1', port: 9464 })
    expect(parseHostPort('localhost:9464')).toEqual({ host: 'localhost', port: 9464 })
    for (const bad of ['example.org:9464', '127.0.0.1', '127.0.0.1:65536', '::1:9464', '[127.0.0.1]:1', '127.0.0.1:-1', ':9464']) expect(parseHostPort(bad)).toBeUndefined()
    expect(parseConfig({}).metrics_endpoint).toBeUndefined()
    expect(parseConfig({ metrics_endpoint: '0.0.0.0:9464' }).metrics_endpoint).toBe('0.0.0.0:9464')
    expect(() => parseConfig({ metrics_endpoint: 'metrics.example.org:9464' })).toThrow(ConfigError)
    expect(() => parseConfig({ metrics_endpoint: 9464 })).toThrow(/key "metrics_endpoint": expected HOST:PORT/)
  })
})

describe('service log events', () => {
  function capture(level: 'info' | 'debug' = 'info'): { lines: Record<string, unknown>[]; log: ReturnType<typeof createServiceLogger> } {
    const lines: Record<string, unknown>[] = []
    const destination = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString('utf8').split('\n')) if (l !== '') lines.push(JSON.parse(l) as Record<string, unknown>)
        done()
      },
    })
    return { lines, log: createServiceLogger({ name: 'unit', format: 'json', level, destination }) }
  }

  it('logs a burst of drops as one line per reason per interval, with a count and the first detail', async () => {
    const { lines, log } = capture()
    const clock = new FakeClock()
    const drops = new DropBursts(log, { clock, intervalMs: 1000 })
    for (let i = 0; i < 500; i++) drops.add('bad_signature', `from mallory ${i}`)
    drops.add('too_large', 'big')
    expect(lines).toEqual([])
    await clock.advance(1000)
    expect(lines.map((l) => [l['reason'], l['count'], l['sample'], l['level']])).toEqual([
      ['bad_signature', 500, 'from mallory 0', 40],
      ['too_large', 1, 'big', 40],
    ])
    drops.add('too_large', 'again')
    drops.close()
    expect(lines).toHaveLength(3)
    expect(lines[2]).toMatchObject({ reason: 'too_large', count: 1, msg: '1 message dropped: too_large (first: again)' })
  })

  it('at debug, also logs each drop with its detail', () => {
    const { lines, log } = capture('debug')
    const drops = new DropBursts(log, { clock: new FakeClock(), safe: (t) => t.replace(/\u001b/g, '\\u001b') })
    drops.add('topic_mismatch', 'evil\u001b[2J')
    expect(lines).toEqual([expect.objectContaining({ level: 20, reason: 'topic_mismatch', detail: 'evil\\u001b[2J', msg: 'dropped (topic_mismatch): evil\\u001b[2J' })])
  })

  it('logs each expiry and rejection once with msg_id, recipient(s) and reason', () => {
    const { lines, log } = capture()
    const publisher = new Emitter<PublisherEvents>()
    const stop = logPublisherEvents(publisher, log)
    publisher.emit('expired', { msgId: 'm1', acked: [{ cn: 'alice', at: 1, disposition: 'received' }], missing: ['bob'], rejected: [] })
    publisher.emit('rejected', { msgId: 'm2', recipient: 'carol', reason: 'disk full', ended: true })
    publisher.emit('rejected', { msgId: 'm4', recipient: 'dave', reason: 'busy', ended: false })
    stop()
    publisher.emit('rejected', { msgId: 'm3', recipient: 'carol', reason: 'again', ended: true })
    expect(lines).toEqual([
      expect.objectContaining({ level: 40, msg_id: 'm1', missing: ['bob'], acked: ['alice'], msg: 'm1 expired: no ACK from bob' }),
      expect.objectContaining({ level: 40, msg_id: 'm2', recipient: 'carol', reason: 'disk full', ended: true, msg: 'm2 rejected by carol: disk full' }),
      expect.objectContaining({
        level: 40,
        msg_id: 'm4',
        recipient: 'dave',
        reason: 'busy',
        ended: false,
        msg: 'm4 rejected by dave: busy (the quorum can still be reached: still pending for the others)',
      }),
    ])
  })
})
