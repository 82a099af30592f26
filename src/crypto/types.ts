/**
 * Signer / Verifier: the seam between envelopes and `node:crypto`. Both work on
 * canonical bytes; producing those bytes is the envelope layer's job.
 */

/** The envelope's `crypto` field values gilmsg understands. */
export const CryptoMode = {
  /** fedmsg's: RSA PKCS#1 v1.5 over SHA-1. Interoperates with Python fedmsg. */
  X509: 'x509',
  /** gilmsg-only: SHA-256; RSA PKCS#1 v1.5, ECDSA P-256 or Ed25519 by key type. */
  X509Sha256: 'x509_sha256',
} as const
export type CryptoMode = (typeof CryptoMode)[keyof typeof CryptoMode]

export const CRYPTO_MODES: readonly CryptoMode[] = [CryptoMode.X509, CryptoMode.X509Sha256]

/** Why a signed message failed validation. Stable strings, used as drop counters. */
export const InvalidReason = {
  BadSignature: 'bad_signature',
  UnknownCa: 'unknown_ca',
  Expired: 'expired',
  NotYetValid: 'not_yet_valid',
  Revoked: 'revoked',
  PolicyDenied: 'policy_denied',
  TopicMismatch: 'topic_mismatch',
  Malformed: 'malformed',
  UnsupportedCrypto: 'unsupported_crypto',
} as const
export type InvalidReason = (typeof InvalidReason)[keyof typeof InvalidReason]

export interface Signer {
  readonly mode: CryptoMode
  /** The subject CN of the signing certificate: the signer's identity on the bus. */
  readonly cn: string
  /** The envelope's `certificate` field: base64 of the PEM, wrapped at 76 with a trailing newline. */
  readonly certificateField: string
  /** The envelope's `signature` field for these canonical bytes (wrapped base64). */
  sign(canonical: Buffer): string
  /**
   * As `sign`, on libuv's thread pool when a signature costs enough CPU for
   * the hop to pay (RSA: about a millisecond, which the event loop then does
   * not spend); EC and Ed25519 keys (tens of microseconds) sign inline.
   */
  signAsync(canonical: Buffer): Promise<string>
}

/** What a verifier is asked to check: the fields of one envelope. */
export interface SignedFields {
  readonly crypto: unknown
  readonly topic: string
  readonly canonical: Buffer
  readonly signature: unknown
  readonly certificate: unknown
}

export type VerifyResult =
  | { readonly ok: true; readonly cn: string; readonly fingerprint: string }
  | { readonly ok: false; readonly reason: InvalidReason; readonly detail: string }

export interface VerifyOptions {
  /** Replace the routing policy with `{topic: [signedBy]}`, nitpicky (fedmsg's "signed by X"). */
  readonly signedBy?: string
}

export interface Verifier {
  /**
   * Every invalid input is a `{ ok: false, reason }`: nothing a message holds makes it
   * throw. It throws only on a bug of its own (e.g. a TypeError), which must surface.
   */
  verify(fields: SignedFields, options?: VerifyOptions): VerifyResult
}
