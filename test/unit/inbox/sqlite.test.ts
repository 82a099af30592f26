import { statSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { SqliteInboxStore } from '../../../src/inbox/sqlite.js'
import type { SqliteStoreOptions } from '../../../src/outbox/sqlite.js'
import { tempDir } from '../outbox/helpers.js'
import { describeInboxConformance, newEntry } from './conformance.js'

const tmp = tempDir('inbox')
afterAll(() => tmp.remove())

let files = 0
function newPath(): string {
  files += 1
  return join(tmp.dir, `store-${files}`, 'test.inbox.db')
}

function sqliteUnderTest(options: SqliteStoreOptions) {
  return async () => {
    const path = newPath()
    return { store: SqliteInboxStore.open(path, options), reopen: async () => SqliteInboxStore.open(path, options) }
  }
}

describeInboxConformance('sqlite (synchronous FULL, default batches)', sqliteUnderTest({}))
describeInboxConformance('sqlite (synchronous NORMAL, batches of at most 3)', sqliteUnderTest({ synchronous: 'NORMAL', maxBatchOps: 3 }))

describe('SqliteInboxStore', () => {
  it('commits 1,000 concurrent puts in a few transactions (group commit)', async () => {
    const store = SqliteInboxStore.open(newPath())
    try {
      await Promise.all(Array.from({ length: 1000 }, () => store.put(newEntry())))
      expect(store.stats).toMatchObject({ ops: 1000, failedBatches: 0, largestBatch: 512 })
      expect(store.stats.commits).toBeLessThanOrEqual(3)
    } finally {
      await store.close()
    }
  })

  it('creates its own file (0600) in WAL mode with the inbox schema', async () => {
    const path = newPath()
    const store = SqliteInboxStore.open(path)
    try {
      expect(statSync(path).mode & 0o777).toBe(0o600)
      const db = store.database
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal')
      expect(db.pragma('synchronous', { simple: true })).toBe(2)
      expect(db.pragma('user_version', { simple: true })).toBe(1)
      expect(db.prepare(`SELECT name FROM sqlite_schema WHERE type IN ('table', 'index') AND name LIKE 'inbox%' ORDER BY name`).pluck().all()).toEqual([
        'inbox',
        'inbox_received',
      ])
      expect(
        db
          .prepare(`EXPLAIN QUERY PLAN DELETE FROM inbox WHERE received_at < 5`)
          .all()
          .map((r) => (r as { detail: string }).detail)
          .join(' '),
      ).toMatch(/inbox_received/)
    } finally {
      await store.close()
    }
  })
})
