import { randomUUID } from 'node:crypto'
import { rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { RawMessage } from '../../../src/transport/transport.js'

export const PROBE_PREFIX = '__probe'

/** The transports every ZeroMQ test runs over. Each call gives a fresh bind address. */
export const TRANSPORTS = [
  { name: 'tcp', bindAddress: (): string => 'tcp://127.0.0.1:*' },
  { name: 'ipc', bindAddress: (): string => `ipc://${ipcPath()}` },
] as const

const ipcPaths: string[] = []

function ipcPath(): string {
  const path = join(tmpdir(), `gilmsg-test-${process.pid}-${randomUUID()}.sock`)
  ipcPaths.push(path)
  return path
}

/** Removes the ipc socket files made by {@link TRANSPORTS} (libzmq normally does it on close). */
export function removeIpcFiles(): void {
  for (const path of ipcPaths.splice(0)) rmSync(path, { force: true })
}

/**
 * Waits for the slow joiner. A subscriber misses whatever is published before
 * its connection and subscription reach the publisher, and nothing tells the
 * publisher when that happened. So: publish a probe every 10 ms until the
 * subscriber sees one (bounded by `deadlineMs`), then publish an end marker
 * and read up to it. Per-connection ordering puts every probe before the
 * marker, so the iterator is clean afterwards. The subscriber must be
 * subscribed to a prefix of `probeTopic` (default {@link PROBE_PREFIX}) and
 * have nothing else unread.
 */
export async function waitForJoin(
  send: (topic: string, body: string) => Promise<void>,
  it: AsyncIterator<RawMessage, undefined>,
  probeTopic = PROBE_PREFIX,
  deadlineMs = 5000,
): Promise<void> {
  const probeEnd = `${probeTopic}.end`
  let joined = false
  let failure: unknown
  const started = Date.now()
  const probing = (async () => {
    while (!joined) {
      if (Date.now() - started > deadlineMs) {
        failure = new Error(`slow joiner: no probe arrived within ${deadlineMs} ms`)
        return
      }
      await send(probeTopic, 'probe')
      await new Promise((r) => setTimeout(r, 10))
    }
  })()
  const first = await Promise.race([it.next(), probing.then(() => undefined)])
  if (first === undefined) throw failure
  joined = true
  await probing
  if (first.done === true) throw new Error('subscriber closed while waiting for the slow joiner')
  if (first.value.topic !== probeTopic) throw new Error(`unexpected message ${first.value.topic} while probing`)
  await send(probeEnd, 'end')
  for (;;) {
    const r = await it.next()
    if (r.done === true) throw new Error('subscriber closed while draining probes')
    if (r.value.topic === probeEnd) return
    if (r.value.topic !== probeTopic) throw new Error(`unexpected message ${r.value.topic} while draining probes`)
  }
}

/** Reads `n` messages, failing after `timeoutMs`. */
export async function take(it: AsyncIterator<RawMessage, undefined>, n: number, timeoutMs = 10_000): Promise<RawMessage[]> {
  const out: RawMessage[] = []
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms with ${out.length}/${n} messages`)), timeoutMs)
  })
  try {
    while (out.length < n) {
      const r = await Promise.race([it.next(), timeout])
      if (r.done === true) throw new Error(`iteration ended after ${out.length}/${n} messages`)
      out.push(r.value)
    }
  } finally {
    clearTimeout(timer)
  }
  return out
}

/** Reads messages up to and including the first one with topic `last`, failing after `timeoutMs`. */
export async function takeThrough(
  it: AsyncIterator<RawMessage, undefined>,
  last: string,
  timeoutMs = 5000,
): Promise<RawMessage[]> {
  const out: RawMessage[] = []
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${last}`)), timeoutMs)
  })
  try {
    for (;;) {
      const r = await Promise.race([it.next(), timeout])
      if (r.done === true) throw new Error(`iteration ended before ${last}`)
      out.push(r.value)
      if (r.value.topic === last) return out
    }
  } finally {
    clearTimeout(timer)
  }
}
