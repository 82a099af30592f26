/**
 * gilmsg's errors: one class per code, one code per meaning, and one formatter for the
 * "expected X, got Y" messages ({@link describe}, {@link InvalidArgumentError.format},
 * {@link ConfigError.format}).
 *
 * Which class for a bad value:
 * - {@link InvalidArgumentError} (`GILMSG_INVALID_ARGUMENT`): a caller of the library passed
 *   something it cannot accept: a function argument, a constructor or `open()` option (a
 *   programmatic option is an argument), or a call the object does not allow in its state.
 *   A bug in the calling code.
 * - {@link ConfigError} (`GILMSG_CONFIG`): the configuration (the config file, its keys, or
 *   what they combine into) is wrong or cannot do what was asked. The message names the key.
 * - {@link UsageError} (`GILMSG_USAGE`): the `gilmsg` command line cannot be understood
 *   (unknown flag, missing NAME). Only the CLI throws it; the person at the terminal fixes it.
 *
 * Every throw site uses the subclass (never `new GilmsgError(code, ...)`), so that
 * `instanceof` and `code` always agree.
 */

/**
 * Stable error codes. Every error gilmsg throws from public code is a
 * {@link GilmsgError} whose `code` is one of these strings, and an instance of
 * the subclass named beside it.
 */
export const ErrorCode = {
  /** {@link ConfigError} */
  Config: 'GILMSG_CONFIG',
  /** {@link UsageError} (CLI only) */
  Usage: 'GILMSG_USAGE',
  /** {@link InvalidArgumentError} */
  InvalidArgument: 'GILMSG_INVALID_ARGUMENT',
  /** {@link JsonError} */
  Json: 'GILMSG_JSON',
  /** {@link CertificateError} (and its {@link KeyPermissionError}, {@link CrlRollbackError}) */
  Certificate: 'GILMSG_CERTIFICATE',
  /** {@link SigningError} */
  Signing: 'GILMSG_SIGNING',
  /** {@link TransportError} */
  Transport: 'GILMSG_TRANSPORT',
  /** {@link ClosedError} */
  Closed: 'GILMSG_CLOSED',
  /** {@link AckTimeoutError} */
  AckTimeout: 'GILMSG_ACK_TIMEOUT',
  /** {@link DeliveryRejectedError} */
  DeliveryRejected: 'GILMSG_DELIVERY_REJECTED',
  /** {@link StoreError}: a storage failure of an outbox or inbox */
  Store: 'GILMSG_STORE',
  /** @deprecated Use {@link ErrorCode.Store} (the same value); to be removed in the next release. */
  Outbox: 'GILMSG_STORE',
  /** {@link AbortedError} */
  Aborted: 'GILMSG_ABORTED',
} as const
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode]

const PREVIEW_CHARS = 60

/**
 * How a value is shown after "got" in an "expected X, got Y" message: numbers,
 * booleans, `null` and `undefined` as written (`-1`, `NaN`, `true`), strings
 * quoted (`"10"`), bigints with `n`, arrays and plain objects as a short JSON
 * preview (`an array ["a",1]`), other objects by class (`an instance of Map`),
 * `a function`, `a symbol`. Never throws; at most about 80 characters.
 */
export function describe(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return preview(JSON.stringify(value))
    case 'bigint':
      return `${value}n`
    case 'function':
      return 'a function'
    case 'symbol':
      return 'a symbol'
    case 'object': {
      if (value === null) return 'null'
      if (Array.isArray(value)) return `an array ${jsonPreview(value) ?? `of length ${value.length}`}`
      const proto = Object.getPrototypeOf(value) as { constructor?: { name?: unknown } } | null
      if (proto === Object.prototype) return `an object ${jsonPreview(value) ?? ''}`.trimEnd()
      const name = proto?.constructor?.name
      return typeof name === 'string' && name !== '' ? `an instance of ${name}` : 'an object without a prototype'
    }
    default:
      return String(value)
  }
}

function jsonPreview(value: object): string | undefined {
  try {
    return preview(JSON.stringify(value))
  } catch {
    return undefined // a bigint or a cycle inside
  }
}

function preview(text: string): string {
  return text.length > PREVIEW_CHARS ? `${text.slice(0, PREVIEW_CHARS)}...` : text
}

/** The one "expected X, got Y" sentence: `<what>: expected <expected>, got <describe(got)>`. */
export function expectedGot(what: string, expected: string, got: unknown): string {
  return `${what}: expected ${expected}, got ${describe(got)}`
}

/** Base class of every error gilmsg throws. */
export class GilmsgError extends Error {
  override name = 'GilmsgError'
  readonly code: ErrorCode
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
  }
}

/**
 * The configuration (file, keys, or what they combine into) is wrong or cannot do
 * what was asked; the message says which key and what was expected.
 */
export class ConfigError extends GilmsgError {
  override name = 'ConfigError'
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.Config, message, options)
  }

  /** `<key>: expected <expected>, got <value>` (see {@link describe}). */
  static format(key: string, expected: string, got: unknown): ConfigError {
    return new ConfigError(expectedGot(key, expected, got))
  }
}

/**
 * A function was called with an argument or option it cannot accept, or in a
 * way the object does not allow (a second active iterator on a subscriber): a
 * bug in the caller. The message says what was expected and what was given.
 */
export class InvalidArgumentError extends GilmsgError {
  override name = 'InvalidArgumentError'
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.InvalidArgument, message, options)
  }

  /** `<name>: expected <expected>, got <value>` (see {@link describe}), e.g. `lingerMs: expected an integer >= -1, got "5"`. */
  static format(name: string, expected: string, got: unknown): InvalidArgumentError {
    return new InvalidArgumentError(expectedGot(name, expected, got))
  }
}

/** A `gilmsg` command line that cannot be understood (the CLI exits 2). Only the CLI throws it. */
export class UsageError extends GilmsgError {
  override name = 'UsageError'
  constructor(message: string) {
    super(ErrorCode.Usage, message)
  }

  /** `<flag>: expected <expected>, got <value>` (see {@link describe}), e.g. `--count: expected a whole number >= 1, got "x"`. */
  static format(flag: string, expected: string, got: unknown): UsageError {
    return new UsageError(expectedGot(flag, expected, got))
  }
}

/** Text that is not the JSON gilmsg accepts (fedmsg's dialect: Python's `json`). */
export class JsonError extends GilmsgError {
  override name = 'JsonError'
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.Json, message, options)
  }
}

/** A certificate or key could not be read, parsed or created. */
export class CertificateError extends GilmsgError {
  override name = 'CertificateError'
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.Certificate, message, options)
  }
}

/**
 * A private key file is readable or writable by group or others, or sits in a directory
 * group or others can write (OpenSSH's rule, applied to root too; only mode bits are
 * checked). `path` is the file or directory at fault, `mode` its `st_mode`, `fix` the
 * `chmod` command that makes it safe.
 */
export class KeyPermissionError extends CertificateError {
  override name = 'KeyPermissionError'
  constructor(
    readonly path: string,
    readonly mode: number,
    readonly fix: string,
    message: string,
  ) {
    super(message)
  }
}

/** Where a CRL stands among its CA's CRLs (its cRLNumber, else its thisUpdate in ms). */
export interface CrlPosition {
  readonly crlNumber: bigint | undefined
  readonly thisUpdate: number
}

/**
 * A CRL was refused because it is older than one already accepted for the same CA
 * (a lower cRLNumber, or an older thisUpdate): taking it would un-revoke certificates.
 * The newer CRL stays in use.
 */
export class CrlRollbackError extends CertificateError {
  override name = 'CrlRollbackError'
  constructor(
    message: string,
    readonly offered: CrlPosition,
    readonly inUse: CrlPosition,
  ) {
    super(message)
  }
}

/** Signing failed (bad key, unsupported key type for the crypto mode). */
export class SigningError extends GilmsgError {
  override name = 'SigningError'
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.Signing, message, options)
  }
}

/** A socket could not bind, connect or send. */
export class TransportError extends GilmsgError {
  override name = 'TransportError'
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.Transport, message, options)
  }
}

/** The object was closed before or during the call. The message is `<what> is closed` unless given. */
export class ClosedError extends GilmsgError {
  override name = 'ClosedError'
  constructor(what: string, message = `${what} is closed`) {
    super(ErrorCode.Closed, message)
  }
}

/** The caller's AbortSignal fired. `cause` is the signal's reason. */
export class AbortedError extends GilmsgError {
  override name = 'AbortedError'
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.Aborted, message, options)
  }
}

/** The stores gilmsg keeps: a publisher's outbox, a consumer's inbox. */
export type StoreKind = 'outbox' | 'inbox'

/**
 * A storage failure of an outbox or inbox (code `GILMSG_STORE`): its file
 * cannot be opened, is locked, full or damaged, a batch failed to commit, or
 * a write conflicts with what is stored (duplicate msgId). `store` says which
 * store, `path` its file (undefined for a memory store); the message names
 * them (`"inbox /path/x.db: ..."`) and says what to do; `cause` is the
 * underlying SQLite or file system error, if any.
 */
export class StoreError extends GilmsgError {
  override name = 'StoreError'
  readonly store: StoreKind
  readonly path: string | undefined
  constructor(store: StoreKind, message: string, options?: { readonly path?: string | undefined; readonly cause?: unknown }) {
    super(ErrorCode.Store, message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.store = store
    this.path = options?.path
  }
}

/**
 * @deprecated Use {@link StoreError}: `OutboxError` is the same class (an
 * inbox's errors are instances of it too), kept for one release.
 */
export const OutboxError = StoreError
/** @deprecated Use {@link StoreError}. */
export type OutboxError = StoreError

/** Per-recipient detail in delivery errors and receipts. */
export interface RecipientAck {
  readonly cn: string
  /** ms since the epoch when the ACK was accepted. */
  readonly at: number
  readonly disposition: string
}

/** A recipient's rejection: its CN and the reason its ACK gave. */
export interface RecipientRejection {
  readonly cn: string
  readonly reason: string
}

function rejectionList(rejected: readonly RecipientRejection[]): string {
  return rejected.map((r) => `${r.cn} (${r.reason})`).join(', ')
}

/**
 * `publish()` gave up: not every required recipient (or fewer than its
 * `quorum`) acknowledged before `ackTimeout`. `acked`, `missing` (no ACK at
 * all) and `rejected` (a `rejected` ACK, which a quorum below the number of
 * recipients outlives) partition the recipients exactly; `quorum` is how many
 * ACKs were needed.
 */
export class AckTimeoutError extends GilmsgError {
  override name = 'AckTimeoutError'
  constructor(
    readonly msgId: string,
    readonly acked: readonly RecipientAck[],
    readonly missing: readonly string[],
    readonly elapsedMs: number,
    /** How many ACKs the publish needed (its `quorum`); every recipient's unless told otherwise. */
    readonly quorum: number = acked.length + missing.length,
    /** Recipients that rejected the message while the quorum could still be reached (empty without a quorum). */
    readonly rejected: readonly RecipientRejection[] = [],
  ) {
    const all = acked.length + missing.length + rejected.length
    super(
      ErrorCode.AckTimeout,
      `no ACK from ${missing.join(', ')} for ${msgId} after ${elapsedMs} ms` +
        (acked.length > 0 ? ` (acked by ${acked.map((a) => a.cn).join(', ')})` : '') +
        (rejected.length > 0 ? ` (rejected by ${rejectionList(rejected)})` : '') +
        (quorum < all ? `: ${acked.length} of the ${quorum} needed` : ''),
    )
  }
}

/** What a {@link DeliveryRejectedError} knows besides the recipient whose rejection ended the message. */
export interface DeliveryRejectedDetails {
  /** Every rejection counted, in the order of the recipients (the last one ended the message). Default: that one. */
  readonly rejections?: readonly RecipientRejection[]
  /** The ACKs counted before the message ended (never enough for the quorum). Default none. */
  readonly acked?: readonly RecipientAck[]
  /** How many ACKs the publish needed. Default: every recipient's. */
  readonly quorum?: number
  /** How many recipients the message has. Default: acked + rejections. */
  readonly recipients?: number
}

/**
 * Required recipients rejected the message (manual ACK mode's
 * `delivery.reject(reason)`) so that the quorum can no longer be reached:
 * fewer than `quorum` recipients acked or may still ACK. Without a quorum
 * (every recipient needed) the first rejection does it. `recipient` and
 * `reason` are those of the rejection that did it; `rejections` lists every
 * rejection, `acked` the ACKs counted before.
 */
export class DeliveryRejectedError extends GilmsgError {
  override name = 'DeliveryRejectedError'
  readonly rejections: readonly RecipientRejection[]
  readonly acked: readonly RecipientAck[]
  readonly quorum: number
  readonly recipients: number
  constructor(
    readonly msgId: string,
    readonly recipient: string,
    readonly reason: string,
    details: DeliveryRejectedDetails = {},
  ) {
    const rejections = details.rejections ?? [{ cn: recipient, reason }]
    const acked = details.acked ?? []
    const recipients = details.recipients ?? acked.length + rejections.length
    const quorum = details.quorum ?? recipients
    super(
      ErrorCode.DeliveryRejected,
      `${recipient} rejected ${msgId}: ${reason}` +
        (quorum < recipients
          ? `; the quorum of ${quorum} of ${recipients} can no longer be reached (rejected by ${rejectionList(rejections)}` +
            (acked.length > 0 ? `; acked by ${acked.map((a) => a.cn).join(', ')}` : '') +
            ')'
          : ''),
    )
    this.rejections = rejections
    this.acked = acked
    this.quorum = quorum
    this.recipients = recipients
  }
}

/** The message of a thrown value, whatever was thrown. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
