import { existsSync } from 'node:fs'
import type { GilmsgConfig } from '../../config/config.js'
import { errorMessage } from '../../errors.js'
import { inspectInbox } from '../../inbox/sqlite.js'
import { inspectOutbox } from '../../outbox/sqlite.js'
import { DELIVERY_STATES } from '../../outbox/store.js'
import { storePath } from '../../reliable/from-config.js'
import { fail, ok, warn, type CheckResult } from './result.js'

type Inspection = { readonly schemaVersion: number; readonly latestVersion: number; readonly problems: readonly string[] }

/**
 * `outbox` and `inbox`: each file, when it exists, opened read-only (never created or
 * migrated): `PRAGMA quick_check`, schema version, and what it holds (messages per state,
 * pending first; messages remembered). A missing file is a warning ("none yet").
 */
export function storeChecks(config: GilmsgConfig, timeoutMs: number): CheckResult[] {
  return [
    check('outbox', storePath(config, 'outbox'), () => {
      const r = inspectOutbox(storePath(config, 'outbox'), timeoutMs)
      const c = r.details
      return { r, counts: c && DELIVERY_STATES.map((s) => `${c[s]} ${s}`).join(', ') }
    }),
    check('inbox', storePath(config, 'inbox'), () => {
      const r = inspectInbox(storePath(config, 'inbox'), timeoutMs)
      return { r, counts: r.details && `${r.details.messages} messages remembered` }
    }),
  ]
}

function check(name: 'outbox' | 'inbox', path: string, inspect: () => { r: Inspection; counts: string | undefined }): CheckResult {
  if (!existsSync(path)) return warn(name, `${path}: none yet (created when first needed)`)
  let found: { r: Inspection; counts: string | undefined }
  try {
    found = inspect()
  } catch (e) {
    return fail(name, errorMessage(e))
  }
  const { r, counts } = found
  if (r.problems.length > 0) {
    return fail(name, `${path}: integrity check failed: ${r.problems.slice(0, 3).join('; ')}: restore it from a backup or move it aside`)
  }
  if (r.schemaVersion > r.latestVersion) {
    return fail(name, `${path}: schema version ${r.schemaVersion} is newer than this gilmsg supports (${r.latestVersion}): upgrade gilmsg`)
  }
  if (r.schemaVersion < r.latestVersion) {
    return warn(name, `${path}: schema version ${r.schemaVersion}, upgraded to ${r.latestVersion} when gilmsg next opens it`)
  }
  return ok(name, `${path}: integrity ok, schema ${r.schemaVersion}, ${counts ?? ''}`)
}
