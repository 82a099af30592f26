import { ErrorCode, GilmsgError } from '../errors.js'

/**
 * A storage failure of an outbox or inbox (code `GILMSG_OUTBOX`): the file
 * cannot be opened, is locked, full or damaged, a batch failed to commit, or
 * a write conflicts with what is stored (duplicate msgId). The message names
 * the file and says what to do; `cause` is the underlying SQLite error, if any.
 */
export class OutboxError extends GilmsgError {
  override name = 'OutboxError'
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.Outbox, message, options)
  }
}
