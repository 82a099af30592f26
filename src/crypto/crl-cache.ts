import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { CrlCache, CrlSummary } from './verifier.js'

/**
 * A {@link CrlCache} of small JSON files in `dir` (created 0700), one per
 * checked CRL. Only the process's own user can write there; whoever can write
 * there could equally edit the outbox, so it is trusted like it.
 */
export function fileCrlCache(dir: string): CrlCache {
  const file = (key: string): string => join(dir, `${key}.json`)
  return {
    get(key) {
      let text: string
      try {
        text = readFileSync(file(key), 'utf8')
      } catch {
        return undefined
      }
      const v = JSON.parse(text) as Partial<CrlSummary>
      if (typeof v.thisUpdate !== 'number' || typeof v.nextUpdate !== 'number' || !Array.isArray(v.revoked)) return undefined
      if (!v.revoked.every((s) => typeof s === 'string')) return undefined
      return { thisUpdate: v.thisUpdate, nextUpdate: v.nextUpdate, revoked: v.revoked }
    },
    set(key, summary) {
      mkdirSync(dir, { recursive: true, mode: 0o700 })
      const tmp = `${file(key)}.${process.pid}.tmp`
      writeFileSync(tmp, JSON.stringify(summary), { mode: 0o600 })
      renameSync(tmp, file(key))
    },
  }
}
