import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { StoreError } from '../../../src/errors.js'
import { WalSync, type FdatasyncFn } from '../../../src/sqlite/wal-sync.js'
import { tempDir } from './helpers.js'

const tmp = tempDir('wal-sync')
afterAll(() => tmp.remove())

/** An fdatasync the test completes by hand, recording each call. */
function manualFdatasync(): { fn: FdatasyncFn; calls: ((error: NodeJS.ErrnoException | null) => void)[] } {
  const calls: ((error: NodeJS.ErrnoException | null) => void)[] = []
  return { calls, fn: (_fd, cb) => void calls.push(cb) }
}

describe('WalSync', () => {
  it('syncs a real WAL file, and close() closes it', async () => {
    const path = join(tmp.dir, 'real.db')
    writeFileSync(`${path}-wal`, 'x')
    const s = WalSync.open({ store: 'outbox', path })
    await s.sync()
    await s.sync()
    expect(s.syncs).toBe(2)
    await s.close()
    await expect(s.sync()).rejects.toThrow(/closed/)
  })

  it('names the file when the WAL cannot be opened', () => {
    const path = join(tmp.dir, 'missing', 'x.db')
    expect(() => WalSync.open({ store: 'inbox', path })).toThrow(/^inbox .*x\.db: cannot open the write-ahead log .*x\.db-wal to sync it \(ENOENT\)/)
    expect(() => WalSync.open({ store: 'inbox', path })).toThrow(expect.objectContaining({ store: 'inbox', path }))
  })

  it('one fdatasync in flight; calls made meanwhile share the next one, which starts after it', async () => {
    const { fn, calls } = manualFdatasync()
    const s = new WalSync(-1, { store: 'outbox', path: 't' }, fn)
    const done: string[] = []
    const first = s.sync().then(() => done.push('first'))
    const second = s.sync().then(() => done.push('second'))
    const third = s.sync().then(() => done.push('third'))
    expect(calls).toHaveLength(1)
    calls[0]?.(null)
    await first
    await new Promise((r) => setImmediate(r))
    expect(calls).toHaveLength(2) // the second and third share one sync that began after the first returned
    expect(done).toEqual(['first'])
    calls[1]?.(null)
    await Promise.all([second, third])
    expect(done).toEqual(['first', 'second', 'third'])
    expect(s.syncs).toBe(2)
  })

  it('a failed fdatasync breaks it: that sync, the queued one and every later one reject with a clear error', async () => {
    const { fn, calls } = manualFdatasync()
    const s = new WalSync(-1, { store: 'outbox', path: 't' }, fn)
    const first = s.sync()
    const queued = s.sync()
    calls[0]?.(Object.assign(new Error('input/output error'), { code: 'EIO' }))
    await expect(first).rejects.toThrow(/outbox t: a commit could not be made durable \(fdatasync of the write-ahead log failed: EIO\)/)
    await expect(queued).rejects.toBeInstanceOf(StoreError)
    await expect(s.sync()).rejects.toThrow(/EIO/)
    expect(calls).toHaveLength(1)
  })
})
