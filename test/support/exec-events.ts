/**
 * The events test/fixtures/exec-cmd.mjs (the command `gilmsg consume --exec` runs in the
 * tests) appends to its log, one JSON object per line.
 */
import { existsSync, readFileSync } from 'node:fs'

export interface ExecEvent {
  /** `start`, `held`, `done`, `sigterm`. */
  readonly event: string
  /** GILMSG_MSG_ID. */
  readonly id: string
  /** GILMSG_ATTEMPT. */
  readonly attempt: number
  readonly pid: number
  /** The `gilmsg consume` process that ran it. */
  readonly ppid: number
  /** Date.now() when logged. */
  readonly t: number
  readonly [field: string]: unknown
}

/** Every event logged so far in `log` (none while the file does not exist). */
export function readExecEvents(log: string): ExecEvent[] {
  if (!existsSync(log)) return []
  return readFileSync(log, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as ExecEvent)
}
