/**
 * Storage trouble through the public API (issue #5, section 4): the outbox locked by another
 * process, a full disk, a corrupt or truncated file, a read-only directory. Each must give a
 * clear error naming the file, `publish()` / `enqueue()` must reject instead of pretending,
 * and nothing already committed may be lost.
 *
 * The store-level behaviour (same-process lock, max_page_count on a bare store, a file that is
 * not a database) is in test/integration/outbox/faults.test.ts; this file goes through
 * `Gilmsg.open` / `openGilmsg` / the `gilmsg publish` CLI, with the lock held by another
 * process, delivery resumed once space is back, truncation at many points, and the read-only
 * cases run for real as user `nobody` when the tests run as root (root ignores permissions).
 *
 * A full disk is SQLite's `PRAGMA max_page_count` on the store's connection: a real
 * SQLITE_FULL without mounting anything.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createInterface } from 'node:readline'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { busFromConfig } from '../../src/bus/from-config.js'
import { parseConfig } from '../../src/config/config.js'
import { createTestPki, type TestPki } from '../support/pki.js'
import { ErrorCode, StoreError } from '../../src/errors.js'
import { SqliteInboxStore } from '../../src/inbox/sqlite.js'
import { SqliteOutboxStore } from '../../src/outbox/sqlite.js'
import type { Delivery } from '../../src/reliable/consumer.js'
import { openGilmsg } from '../../src/reliable/from-config.js'
import { Gilmsg } from '../../src/reliable/gilmsg.js'
import type { Relay } from '../../src/transport/relay.js'
import { runCli } from '../support/cli.js'
import { APP_MODNAME, APP_PREFIX, relayConfig, startLoopbackRelay, waitUntil, withTimeout, writeConfigFile } from '../support/reliable-net.js'

const require = createRequire(import.meta.url)
const BETTER_SQLITE3 = require.resolve('better-sqlite3')
const DIST_OUTBOX = fileURLToPath(new URL('../../dist/src/outbox/sqlite.js', import.meta.url))
const NOBODY = 65534
const isRoot = process.getuid?.() === 0
/** As root, the read-only cases run in a child process as `nobody`; this checks that it can. */
const asNobody = isRoot && spawnSync(process.execPath, ['-e', '0'], { uid: NOBODY, gid: NOBODY }).status === 0
const BUSY_MS = 300

let dir: string
let pki: TestPki
let net: { relay: Relay; inbound: string; outbound: string }
const children: ChildProcess[] = []
const closers: (() => Promise<unknown>)[] = []

function config(name: string, extra: Record<string, unknown> = {}): ReturnType<typeof parseConfig> {
  return parseConfig(relayConfig(pki, net, dir, name, extra), `${name} (test)`)
}

/** A publisher on `outboxPath` through the public API, with a short busy timeout. */
async function openPublisher(outboxPath: string): Promise<{ g: Gilmsg; store: SqliteOutboxStore }> {
  const store = SqliteOutboxStore.open(outboxPath, { busyTimeoutMs: BUSY_MS })
  const g = await Gilmsg.open({ bus: await busFromConfig(config('pub')), outbox: store, awaitSubscriberMs: 0 })
  closers.push(() => g.close())
  return { g, store }
}

/** A recipient app: gilmsg with an inbox, recording what is handed over. */
async function startRecipient(name: string): Promise<{ seen: Delivery[]; close(): Promise<void> }> {
  const g = await openGilmsg(config(name), { outbox: false })
  const sub = await g.subscribe(APP_PREFIX)
  const seen: Delivery[] = []
  const loop = (async () => {
    for await (const d of sub) seen.push(d)
  })()
  const close = async (): Promise<void> => {
    await sub.close()
    await withTimeout(loop, 5000, `${name}'s loop to end`)
    await g.close()
  }
  closers.push(close)
  return { seen, close }
}

/** Another process that opens `path` with better-sqlite3 and holds `BEGIN EXCLUSIVE` until killed. */
async function lockInAnotherProcess(path: string): Promise<ChildProcess> {
  const script = `
    const Database = require(${JSON.stringify(BETTER_SQLITE3)})
    const db = new Database(${JSON.stringify(path)})
    db.exec('BEGIN EXCLUSIVE')
    process.stdout.write('locked ' + db.pragma('journal_mode', { simple: true }) + '\\n')
    setInterval(() => {}, 1000)
  `
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] })
  children.push(child)
  let stderr = ''
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  const line = await withTimeout(
    new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout as NodeJS.ReadableStream }).once('line', resolve)
      child.once('exit', (code) => reject(new Error(`locker exited with ${code}: ${stderr}`)))
    }),
    10_000,
    'the other process to lock the file',
  )
  expect(line).toMatch(/^locked /)
  return child
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGKILL')
    await withTimeout(once(child, 'exit'), 5000, 'the locker to exit')
  }
}

/** What opening the outbox at `path` throws (undefined if it opened: then it is closed again). */
function openError(path: string, options?: { busyTimeoutMs: number }): unknown {
  try {
    void SqliteOutboxStore.open(path, options).close()
    return undefined
  } catch (e) {
    return e
  }
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  return p.then(
    () => {
      throw new Error('expected a rejection, got a resolution')
    },
    (e: unknown) => e as Error,
  )
}

function expectStorageError(e: unknown, path: string, what: RegExp): void {
  expect(e).toBeInstanceOf(StoreError)
  expect(e).toMatchObject({ code: ErrorCode.Store, store: 'outbox', path })
  expect((e as Error).message.startsWith(`outbox ${path}: `), (e as Error).message).toBe(true)
  expect((e as Error).message).toMatch(what)
}

async function committedIds(path: string): Promise<string[]> {
  const store = SqliteOutboxStore.open(path)
  try {
    return store.list().map((m) => m.msgId).sort()
  } finally {
    await store.close()
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gilmsg-storage-'))
  chmodSync(dir, 0o755) // the read-only cases run as nobody, who must be able to get in
  process.env['XDG_STATE_HOME'] = join(dir, 'state')
  pki = await createTestPki(join(dir, 'pki'), ['pub', 'alice'].map((name) => ({ name, key: 'ec' as const })))
  net = await startLoopbackRelay()
}, 30_000)

afterAll(async () => {
  await Promise.allSettled(children.map((c) => kill(c)))
  for (const close of closers.reverse()) await close().catch(() => undefined)
  await net?.relay.close()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

describe('the outbox locked by another process', () => {
  it('publish and enqueue reject with a "locked" StoreError within the busy timeout; the committed messages survive and publishing works once the lock is gone', async () => {
    const path = join(dir, 'locked', 'pub.outbox.db')
    const { g, store } = await openPublisher(path)
    const backgroundErrors: string[] = []
    g.on('background:error', (e) => backgroundErrors.push(e.message))
    const before = await Promise.all([1, 2, 3].map((n) => g.enqueue('locked', { n }, { recipients: ['alice'], modname: APP_MODNAME })))

    const locker = await lockInAnotherProcess(path)
    let started = performance.now()
    const e1 = await rejection(g.publish('locked', { n: 4 }, { recipients: ['alice'], ackTimeout: 10_000, modname: APP_MODNAME }))
    const publishMs = performance.now() - started
    expectStorageError(e1, path, /database is locked by another connection \(SQLITE_BUSY after waiting 300 ms\).*another process/)
    expect(e1.message).toMatch(/nothing was written/)
    expect(publishMs, 'rejects after the busy timeout, not the ack timeout').toBeGreaterThanOrEqual(BUSY_MS - 20)
    expect(publishMs).toBeLessThan(3000)
    started = performance.now()
    const e2 = await rejection(g.enqueue('locked', { n: 5 }, { recipients: ['alice'], modname: APP_MODNAME }))
    expectStorageError(e2, path, /locked/)
    expect(performance.now() - started).toBeLessThan(3000)
    // A second opener fails the same way, naming the file.
    expectStorageError(openError(path, { busyTimeoutMs: BUSY_MS }), path, /locked by another connection/)

    await kill(locker)
    const after = await g.enqueue('locked', { n: 6 }, { recipients: ['alice'], modname: APP_MODNAME })
    expect(store.list().map((m) => m.msgId).sort()).toEqual([...before.map((b) => b.msgId), after.msgId].sort())
    await g.close()
    expect(await committedIds(path)).toEqual([...before.map((b) => b.msgId), after.msgId].sort())
    // Resends that ran into the lock were reported, not swallowed (or there were none in the window).
    for (const m of backgroundErrors) expect(m).toMatch(/locked/)
  }, 20_000)

  it('a file created and locked by another process (rollback journal, EXCLUSIVE): open fails with "locked", naming the path', async () => {
    const path = join(dir, 'locked-new', 'pub.outbox.db')
    mkdirSync(join(path, '..'), { recursive: true })
    const locker = await lockInAnotherProcess(path)
    const started = performance.now()
    expectStorageError(openError(path, { busyTimeoutMs: BUSY_MS }), path, /locked by another connection/)
    expect(performance.now() - started).toBeLessThan(3000)
    await kill(locker)
    const store = SqliteOutboxStore.open(path, { busyTimeoutMs: BUSY_MS })
    expect(store.counts().pending).toBe(0)
    await store.close()
  })

  it('`gilmsg publish` exits 1 with a message naming the file and saying it is locked (after the default 5 s busy timeout)', async () => {
    const outbox = join(dir, 'locked-cli', 'pub.outbox.db')
    await SqliteOutboxStore.open(outbox).close()
    const cfg = writeConfigFile(dir, 'locked-cli', relayConfig(pki, net, dir, 'pub', { outbox_path: outbox }))
    const locker = await lockInAnotherProcess(outbox)
    const r = await runCli(['publish', '--config', cfg, '--recipients', 'alice', '--ack-timeout', '2', '--message', 'hello'], {
      env: { XDG_STATE_HOME: join(dir, 'state'), GILMSG_CONFIG: '' },
      timeoutMs: 20_000,
    })
    await kill(locker)
    expect(r.code, r.stderr).toBe(1)
    expect(r.stderr).toContain(`gilmsg: outbox ${outbox}: database is locked by another connection (SQLITE_BUSY after waiting 5000 ms)`)
    expect(r.ms).toBeGreaterThanOrEqual(5000)
    expect(r.ms).toBeLessThan(15_000)
  }, 25_000)
})

describe('a full disk (SQLITE_FULL through max_page_count)', () => {
  it('publish and enqueue reject with "disk is full", commit nothing; earlier messages survive a reopen and are delivered once space is back', async () => {
    const path = join(dir, 'full', 'pub.outbox.db')
    const { g, store } = await openPublisher(path)
    // Committed while alice is away: they stay pending.
    const kept = await Promise.all([1, 2, 3, 4, 5].map((n) => g.enqueue('full', { n }, { recipients: ['alice'], modname: APP_MODNAME })))
    const db = store.database
    db.pragma(`max_page_count = ${String(db.pragma('page_count', { simple: true }))}`)

    const big = { pad: 'x'.repeat(200_000) }
    const started = performance.now()
    const e1 = await rejection(g.publish('full', big, { recipients: ['alice'], ackTimeout: 10_000, modname: APP_MODNAME }))
    expect(performance.now() - started, 'rejects at once, not at the ack timeout').toBeLessThan(2000)
    expectStorageError(e1, path, /disk is full \(SQLITE_FULL\).*nothing in this batch was committed/)
    expect((e1.cause as { code?: string }).code).toBe('SQLITE_FULL')
    const e2 = await rejection(g.enqueue('full', big, { recipients: ['alice'], modname: APP_MODNAME }))
    expectStorageError(e2, path, /disk is full/)
    expect(store.list().map((m) => m.msgId).sort()).toEqual(kept.map((k) => k.msgId).sort())
    expect(store.stats.failedBatches).toBeGreaterThanOrEqual(2)
    await g.close()

    // Space is back (a new connection has no max_page_count); alice comes; the publisher resumes.
    expect(await committedIds(path)).toEqual(kept.map((k) => k.msgId).sort())
    const alice = await startRecipient('alice')
    const { g: g2, store: store2 } = await openPublisher(path)
    await waitUntil(() => store2.counts().acked === kept.length, 15_000, 'the kept messages to be delivered', () => JSON.stringify(store2.counts()))
    await waitUntil(() => alice.seen.length >= kept.length, 5000, 'alice to get them')
    expect(alice.seen.map((d) => d.msgId).sort()).toEqual(kept.map((k) => k.msgId).sort())
    expect(alice.seen.map((d) => (d.msg as { n: number }).n).sort()).toEqual([1, 2, 3, 4, 5])
    // And a large message fits again.
    const receipt = await g2.publish('full', big, { recipients: ['alice'], ackTimeout: 10_000, modname: APP_MODNAME })
    expect(receipt.recipients.map((r) => r.cn)).toEqual(['alice'])
    await g2.close()
    await alice.close()
  }, 40_000)

  it('the outbox full when the ACKs come: each failed record is a background:error, the rows stay pending; a restarted publisher gets the stored ACKs again, the app gets each message once', async () => {
    const path = join(dir, 'full-acks', 'pub.outbox.db')
    const { g, store } = await openPublisher(path)
    const sent = await Promise.all(Array.from({ length: 20 }, (_, n) => g.enqueue('full-acks', { n }, { recipients: ['alice'], modname: APP_MODNAME })))
    const errors: Error[] = []
    g.on('background:error', (e) => errors.push(e))
    const db = store.database
    db.pragma(`max_page_count = ${String(db.pragma('page_count', { simple: true }))}`)
    // alice acknowledges all 20 (about 1 KB of signed ACK per row to record: more than the file's free space).
    const alice = await startRecipient('alice')
    await waitUntil(() => alice.seen.length === sent.length, 15_000, 'alice to get every message', () => `${alice.seen.length}`)
    await waitUntil(() => errors.length > 0, 10_000, 'a failed ACK record to be reported')
    expect(errors.map((e) => e.message).join('\n')).toMatch(/disk is full \(SQLITE_FULL\)/)
    const acked = store.counts().acked
    expect(acked, 'not every ACK could be recorded').toBeLessThan(sent.length)
    await g.close()

    // Space is back: the new publisher resumes the pending rows; alice answers their resends with her stored ACKs.
    const { g: g2, store: store2 } = await openPublisher(path)
    await waitUntil(() => store2.counts().acked === sent.length, 30_000, 'every message to be acked', () => JSON.stringify(store2.counts()))
    expect(store2.recipients(sent[0]?.msgId as string).map((r) => [r.cn, r.state, r.ackBody !== undefined])).toEqual([['alice', 'acked', true]])
    expect(alice.seen.map((d) => d.msgId).sort(), 'each handed to the app once').toEqual(sent.map((s) => s.msgId).sort())
    console.log(`outbox full: ${acked} of ${sent.length} ACKs recorded while full (${errors.length} background errors); the rest recorded after the restart, 0 handed over twice`)
    await g2.close()
    await alice.close()
  }, 60_000)

  it("a recipient's inbox full: no ACK is sent and nothing is handed over; once space is back every message is delivered, once to the app", async () => {
    const inboxPath = join(dir, 'full-inbox', 'alice.inbox.db')
    const aliceConfig = config('alice')
    const openAlice = async (full: boolean) => {
      const inbox = SqliteInboxStore.open(inboxPath)
      if (full) inbox.database.pragma(`max_page_count = ${String(inbox.database.pragma('page_count', { simple: true }))}`)
      const errors: string[] = []
      const g = await Gilmsg.open({ bus: await busFromConfig(aliceConfig), inbox, onConsumerError: (e) => errors.push(String(e)) })
      const sub = await g.subscribe(APP_PREFIX)
      const seen: string[] = []
      const loop = (async () => {
        for await (const d of sub) seen.push(d.msgId)
      })()
      const close = async (): Promise<void> => {
        await sub.close()
        await withTimeout(loop, 5000, "alice's loop to end")
        await g.close()
      }
      closers.push(close)
      return { g, seen, errors, close }
    }
    const full = await openAlice(true)
    const { g, store } = await openPublisher(join(dir, 'full-inbox', 'pub.outbox.db'))
    // Each inbox row holds its signed ACK (about 1 KB with the certificate): 20 cannot fit in the file's free space.
    const sent = await Promise.all(Array.from({ length: 20 }, (_, n) => g.enqueue('inbox-full', { n }, { recipients: ['alice'], modname: APP_MODNAME })))
    await waitUntil(() => (full.g.consumer?.stats.snapshot()['ack_failures'] ?? 0) > 0, 15_000, 'an ACK to fail on the full inbox')
    // Closed, alice acknowledges and hands over nothing more; wait until the publisher recorded every ACK she sent.
    await full.close()
    const acksSent = full.g.consumer?.stats.get('acks_sent') ?? 0
    await waitUntil(() => store.counts().acked === acksSent, 10_000, 'the ACKs alice sent to be recorded', () => `${JSON.stringify(store.counts())} of ${acksSent}`)
    // Handed over only what was acknowledged (committed to the inbox, then sent): never the others.
    const ackedWhileFull = store.list().filter((m) => m.state === 'acked').map((m) => m.msgId).sort()
    expect([...full.seen].sort()).toEqual(ackedWhileFull)
    expect(ackedWhileFull.length, 'some messages could not be acknowledged').toBeLessThan(sent.length)
    expect(full.errors.join('\n')).toMatch(/disk is full \(SQLITE_FULL\)/)
    const failures = full.g.consumer?.stats.snapshot()['ack_failures']

    // Space is back (a new connection has no max_page_count): the resends deliver the rest.
    const back = await openAlice(false)
    await waitUntil(() => store.counts().acked === sent.length, 30_000, 'every message to be acked', () => JSON.stringify(store.counts()))
    const handed = [...full.seen, ...back.seen]
    expect(handed.sort()).toEqual(sent.map((s) => s.msgId).sort())
    console.log(`inbox full: ${ackedWhileFull.length} of ${sent.length} acked and handed over while full (${failures} ACK failures); the rest after space was back, each handed over once`)
    await back.close()
    await g.close()
  }, 60_000)
})

describe('a corrupt or truncated outbox', () => {
  /** An outbox file with `n` committed messages, closed (checkpointed: no -wal beside it). */
  async function committedFile(name: string, n: number): Promise<{ path: string; bytes: Buffer; bodies: Map<string, string> }> {
    const path = join(dir, 'corrupt', `${name}.outbox.db`)
    const { g, store } = await openPublisher(path)
    await Promise.all(Array.from({ length: n }, (_, i) => g.enqueue('corrupt', { i, pad: 'p'.repeat(2000) }, { recipients: ['nobody-here'], modname: APP_MODNAME })))
    const bodies = new Map(store.list().map((m) => [m.msgId, m.body]))
    await g.close()
    return { path, bytes: readFileSync(path), bodies }
  }

  async function openFails(path: string, what: RegExp): Promise<void> {
    expectStorageError(openError(path), path, what)
    // Through the public API too: openGilmsg rejects with the same error (and leaves nothing open).
    const e2 = await rejection(openGilmsg(config('pub', { outbox_path: path }), { inbox: false }))
    expectStorageError(e2, path, what)
  }

  it('garbage bytes, or a SQLite header followed by garbage: a clear error at open naming the path; the file is left as it was', async () => {
    const garbage = join(dir, 'corrupt', 'garbage.outbox.db')
    mkdirSync(join(garbage, '..'), { recursive: true })
    const bytes = Buffer.from(Array.from({ length: 16384 }, (_, i) => (i * 7919 + 13) % 251))
    writeFileSync(garbage, bytes)
    await openFails(garbage, /not a SQLite database \(SQLITE_NOTADB\).*move it aside/)
    expect(readFileSync(garbage).equals(bytes), 'the damaged file is not overwritten').toBe(true)

    const { bytes: real } = await committedFile('header', 20)
    const headerOnly = join(dir, 'corrupt', 'header-then-garbage.outbox.db')
    writeFileSync(headerOnly, Buffer.concat([real.subarray(0, 100), bytes.subarray(0, real.length - 100)]))
    await openFails(headerOnly, /(database file is corrupt \(SQLITE_CORRUPT|not a SQLite database)/)

    const inbox = join(dir, 'corrupt', 'garbage.inbox.db')
    writeFileSync(inbox, bytes)
    expect(() => SqliteInboxStore.open(inbox)).toThrow(`inbox ${inbox}: not a SQLite database (SQLITE_NOTADB)`)
  })

  it('truncated to half: a clear error at open naming the path; `gilmsg publish` exits 1 saying so', async () => {
    const { path, bytes } = await committedFile('half', 60)
    const half = join(dir, 'corrupt', 'half-truncated.outbox.db')
    writeFileSync(half, bytes.subarray(0, Math.floor(bytes.length / 2)))
    await openFails(half, /database file is corrupt \(SQLITE_CORRUPT\).*restore it from a backup or move it aside/)
    expect(readFileSync(half).length).toBe(Math.floor(bytes.length / 2))
    // The original is intact.
    expect((await committedIds(path)).length).toBe(60)

    const cfg = writeConfigFile(dir, 'truncated-cli', relayConfig(pki, net, dir, 'pub', { outbox_path: half }))
    const r = await runCli(['publish', '--config', cfg, '--recipients', 'alice', '--ack-timeout', '2', '--message', 'hello'], {
      env: { XDG_STATE_HOME: join(dir, 'state'), GILMSG_CONFIG: '' },
    })
    expect(r.code, r.stderr).toBe(1)
    expect(r.stderr).toContain(`gilmsg: outbox ${half}: database file is corrupt (SQLITE_CORRUPT`)
  })

  /**
   * Truncates a copy of `bytes` at each cut; each copy must either fail at open (or at its
   * first read) with a clear error naming it, or read back every committed message intact.
   */
  async function truncationSweep(label: string, bytes: Buffer, bodies: Map<string, string>, cuts: readonly number[]): Promise<string[]> {
    const outcomes: string[] = []
    for (const cut of [...new Set(cuts)].sort((a, b) => a - b)) {
      const path = join(dir, 'corrupt', `${label}-cut-${cut}.outbox.db`)
      writeFileSync(path, bytes.subarray(0, cut))
      let store: SqliteOutboxStore
      try {
        store = SqliteOutboxStore.open(path)
      } catch (e) {
        expectStorageError(e, path, /(corrupt|not a SQLite database)/)
        outcomes.push(`${cut}: error`)
        continue
      }
      let read: ReturnType<SqliteOutboxStore['list']> | undefined
      try {
        read = store.list()
      } catch (e) {
        // Opened, then a read failed: that must be the same clear error.
        expectStorageError(e, path, /corrupt/)
        outcomes.push(`${cut}: error on read`)
      } finally {
        await store.close().catch(() => undefined)
      }
      if (read === undefined) continue
      if (cut <= 1) {
        // An empty file is a new, empty outbox; so is a 1-byte one: SQLite's unix VFS reports a
        // 1-byte file as empty (its work-around for the OS X msdos filesystem, unixFileSize()).
        expect(read).toEqual([])
        outcomes.push(`${cut}: empty outbox`)
        continue
      }
      expect(read.length, `cut at ${cut} of ${bytes.length} bytes: opened, but not every message is there`).toBe(bodies.size)
      for (const m of read) expect(m.body, `cut at ${cut} of ${bytes.length} bytes: opened, but ${m.msgId} is damaged`).toBe(bodies.get(m.msgId))
      outcomes.push(`${cut}: intact`)
    }
    return outcomes
  }

  it('truncated anywhere before its last page (many cut points): a clear error at open or first read, never silent garbage', async () => {
    const { bytes, bodies } = await committedFile('sweep', 60)
    const cuts = [0, 1, 16, 50, 99, 100, 101, 4095, 4096, 4097]
    for (let f = 0.05; f < 1; f += 0.05) cuts.push(Math.min(Math.floor(bytes.length * f), bytes.length - 4096))
    for (let back = 1; back <= 4; back++) cuts.push(bytes.length - back * 4096)
    const outcomes = await truncationSweep('sweep', bytes, bodies, cuts)
    console.log(`truncated outbox of ${bytes.length} bytes: ${outcomes.join(', ')}`)
    expect(outcomes.filter((o) => o.endsWith('intact'))).toEqual([])
  })

  // A cut inside the last page (a copy or a write cut short) would open without error, SQLite
  // reading the missing bytes as zeros (its integrity_check says "ok": pages carry no checksum),
  // and damaged bodies would be resent until the deadline. A WAL-mode database file is always a
  // whole number of pages, so the store refuses such a file at open.
  it('truncated inside its last page: refused at open', async () => {
    // A layout without randomness (fixed-size bodies), so that the last page holds a body's end.
    const path = join(dir, 'corrupt', 'last-page.outbox.db')
    const store = SqliteOutboxStore.open(path)
    for (let i = 0; i < 60; i++) {
      await store.add({ msgId: `m${i}`, topic: 't', body: `{"n":${i},"pad":"${'p'.repeat(2000)}"}`, digest: 'd', recipients: ['a'], createdAt: 1, deadline: 2e12, nextAttemptAt: 1 }).durable
    }
    const bodies = new Map(store.list().map((m) => [m.msgId, m.body]))
    await store.close()
    const bytes = readFileSync(path)
    await truncationSweep('last-page', bytes, bodies, [1, 10, 100, 1000].map((back) => bytes.length - back))
  })
})

describe('a read-only directory', () => {
  const why = asNobody ? ' (run as user nobody: the tests run as root, which ignores permissions)' : isRoot ? '' : ' (as this user)'
  it.skipIf(isRoot && !asNobody)(
    `a new outbox, an existing outbox, a read-only file: a clear error naming the path, nothing changed${why}${isRoot && !asNobody ? ' (skipped: root, and cannot switch to nobody)' : ''}`,
    async () => {
      const base = join(dir, 'readonly')
      const ro = join(base, 'ro')
      const rw = join(base, 'rw')
      mkdirSync(ro, { recursive: true })
      mkdirSync(rw, { recursive: true })
      const existing = join(ro, 'existing.outbox.db')
      const roFile = join(rw, 'readonly-file.outbox.db')
      for (const p of [existing, roFile]) {
        const s = SqliteOutboxStore.open(p)
        await s.add({ msgId: 'kept', topic: 't', body: 'b', digest: 'd', recipients: ['a'], createdAt: 1, deadline: 2e12, nextAttemptAt: 1 }).durable
        await s.close()
      }
      chmodSync(base, 0o755)
      chmodSync(ro, 0o555)
      chmodSync(existing, 0o666) // the file is writable; the directory (room for -wal, -shm) is not
      chmodSync(rw, 0o777)
      chmodSync(roFile, 0o444)
      const script = `
        const { SqliteOutboxStore } = await import(${JSON.stringify(DIST_OUTBOX)})
        const out = {}
        for (const [k, p] of Object.entries(${JSON.stringify({ newInRo: join(ro, 'new.outbox.db'), existing, roFile, newDir: join(ro, 'sub', 'x.outbox.db') })})) {
          try { const s = SqliteOutboxStore.open(p); out[k] = 'opened ' + JSON.stringify(s.counts()); await s.close() } catch (e) { out[k] = e.message }
        }
        process.stdout.write(JSON.stringify(out))
      `
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
        encoding: 'utf8',
        timeout: 15_000,
        ...(isRoot ? { uid: NOBODY, gid: NOBODY } : {}),
      })
      chmodSync(ro, 0o755)
      expect(r.status, r.stderr).toBe(0)
      const out = JSON.parse(r.stdout) as Record<string, string>
      expect(out['newInRo']).toBe(`outbox ${join(ro, 'new.outbox.db')}: cannot create the file (EACCES): check that the directory is writable by this user, or choose another path`)
      expect(out['newDir']).toMatch(new RegExp(`^outbox ${join(ro, 'sub', 'x.outbox.db')}: cannot create directory ${join(ro, 'sub')} \\(EACCES\\)`))
      expect(out['existing']).toMatch(new RegExp(`^outbox ${existing}: the file or its directory is read-only \\(SQLITE_READONLY`))
      // A read-only file in a writable directory: refused at open, naming the path (the hint
      // talks about the directory, though here it is the file that is read-only).
      expect(out['roFile']).toMatch(new RegExp(`^outbox ${roFile}: cannot create the file \\(EACCES\\)`))
      // Nothing committed was lost or changed.
      chmodSync(roFile, 0o644)
      expect(await committedIds(existing)).toEqual(['kept'])
      expect(await committedIds(roFile)).toEqual(['kept'])
    },
  )
})
