import { ErrorCode, GilmsgError } from '../errors.js'
import { ExitCode } from './exit-codes.js'

/** Prints an error the way a person can act on it and returns the exit code it maps to. */
export function reportError(err: unknown): ExitCode {
  if (err instanceof GilmsgError) {
    process.stderr.write(`gilmsg: ${err.message}\n`)
    switch (err.code) {
      case ErrorCode.Usage:
      case ErrorCode.Config:
      case ErrorCode.InvalidArgument:
      case ErrorCode.Certificate:
        return ExitCode.Usage
      case ErrorCode.AckTimeout:
        return ExitCode.AckTimeout
      case ErrorCode.DeliveryRejected:
        return ExitCode.Rejected
      default:
        return ExitCode.Failure
    }
  }
  process.stderr.write(`gilmsg: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
  return ExitCode.Failure
}
