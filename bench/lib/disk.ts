import { closeSync, fdatasyncSync, openSync, rmSync, writeSync } from 'node:fs'
import { join } from 'node:path'

/**
 * Latencies (ms) of `count` fdatasyncs of a file in `dir`, each after an 8 KB
 * write (about what one small commit appends to a write-ahead log): what the
 * disk alone adds to a durable commit there. With `gapMs`, the thread sleeps
 * that long before each write, so that the syncs come as spaced as those of a
 * store that commits once per message, one message at a time (a disk idle
 * between syncs can answer more slowly than one kept busy).
 */
export function fdatasyncLatencies(dir: string, count: number, gapMs = 0): number[] {
  const sleeper = gapMs > 0 ? new Int32Array(new SharedArrayBuffer(4)) : undefined
  const path = join(dir, 'fdatasync.probe')
  const fd = openSync(path, 'w')
  const block = Buffer.alloc(8192, 0x61)
  const latencies: number[] = []
  try {
    for (let i = 0; i < count; i++) {
      if (sleeper !== undefined) Atomics.wait(sleeper, 0, 0, gapMs)
      writeSync(fd, block, 0, block.length, (i % 64) * block.length)
      const t = performance.now()
      fdatasyncSync(fd)
      latencies.push(performance.now() - t)
    }
  } finally {
    closeSync(fd)
    rmSync(path, { force: true })
  }
  return latencies
}
