import { InvalidArgumentError } from '../errors.js'
import type { InboxEntry } from './store.js'
import { checkTime } from '../util/options.js'

/* Argument checks shared by the InboxStore implementations. Internal to src/inbox. */

function checkOptionalString(what: string, value: unknown): void {
  if (value !== undefined && typeof value !== 'string') {
    throw new InvalidArgumentError(`${what}: expected a string or undefined, got ${typeof value}`)
  }
}

/** Throws an `InvalidArgumentError` naming the field unless `entry` is well-formed. */
export function checkInboxEntry(entry: InboxEntry): void {
  if (typeof entry.msgId !== 'string' || entry.msgId === '') {
    throw new InvalidArgumentError(`inbox entry msgId: expected a non-empty string, got ${JSON.stringify(entry.msgId)}`)
  }
  if (typeof entry.digest !== 'string' || entry.digest === '') {
    throw new InvalidArgumentError(`inbox entry ${entry.msgId}: digest: expected a non-empty string, got ${JSON.stringify(entry.digest)}`)
  }
  if (typeof entry.signer !== 'string') {
    throw new InvalidArgumentError(
      `inbox entry ${entry.msgId}: signer: expected a string (a CN, or '' when unvalidated), got ${JSON.stringify(entry.signer)}`,
    )
  }
  checkTime(`inbox entry ${entry.msgId}: receivedAt`, entry.receivedAt)
  checkOptionalString(`inbox entry ${entry.msgId}: ackTopic`, entry.ackTopic)
  checkOptionalString(`inbox entry ${entry.msgId}: ackBody`, entry.ackBody)
}

/** The key of an entry in a map: unambiguous whatever characters a CN holds. */
export function inboxKey(signer: string, msgId: string): string {
  return `${signer.length}:${signer}${msgId}`
}

/** Throws an `InvalidArgumentError` unless `signer` is a string and `msgId` a non-empty string. */
export function checkAttemptKey(signer: string, msgId: string): void {
  if (typeof signer !== 'string') throw InvalidArgumentError.format('attempt signer', "a string (a CN, or '' when unvalidated)", signer)
  if (typeof msgId !== 'string' || msgId === '') throw InvalidArgumentError.format('attempt msgId', 'a non-empty string', msgId)
}

/** Throws an `InvalidArgumentError` unless `before` is a finite number. */
export function checkPruneBefore(before: number): void {
  checkTime('prune(before)', before)
}
