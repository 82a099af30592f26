/** Exit codes of every `gilmsg` command. */
export const ExitCode = {
  Ok: 0,
  /** Anything not covered below (I/O, transport, a bug). */
  Failure: 1,
  /** Bad command line or configuration. */
  Usage: 2,
  /** `publish`: not every required recipient acknowledged in time. */
  AckTimeout: 3,
  /** `publish`: a recipient rejected the message. */
  Rejected: 4,
  /** `publish`: interrupted (SIGINT/SIGTERM) before every recipient acknowledged; the message stays pending in the outbox. */
  Interrupted: 130,
} as const
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode]
