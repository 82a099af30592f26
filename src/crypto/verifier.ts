/**
 * Validating signed envelopes as fedmsg does: certificate chained directly to one CA,
 * validity, CRL, signature, routing policy. An invalid message is a failed result; an
 * error that does not mean "this input is malformed" is a bug and propagates (see
 * `inputErrorMessage` in verifier-chain.ts).
 */
import { verify as cryptoVerify, X509Certificate } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { CertificateError, CrlRollbackError, describe, errorMessage, InvalidArgumentError } from '../errors.js'
import { digestFor, keyKind } from './algorithms.js'
import { pemToDer, unwrapBase64 } from './pem.js'
import { CRYPTO_MODES, InvalidReason } from './types.js'
import type { CryptoMode, SignedFields, Verifier, VerifyOptions, VerifyResult } from './types.js'
import { crlRollback, crlStatus, newestMark, readCaCrl } from './crl.js'
import type { CheckedCrl, CrlMark, CrlStatus } from './crl.js'
import { fail, fingerprintOf, inputErrorMessage, isInputError, loadCa, Lru, validateChain } from './verifier-chain.js'
import type { CacheEntry, CaState } from './verifier-chain.js'

/** Default number of validated certificates a verifier remembers. */
export const DEFAULT_CERT_CACHE_SIZE = 1000

/** A `certificate` field longer than this is validated on every message, never cached. */
const MAX_CACHED_FIELD_LENGTH = 64 * 1024
/** An unaccepted `crypto` value is quoted in the drop's detail up to this many characters. */
const MAX_QUOTED_MODE_LENGTH = 40

/** What {@link createVerifier} needs. */
export interface VerifierOptions {
  /** The single trusted CA (`ca_cert_location`); text around the first CERTIFICATE block is ignored. */
  readonly caPem: string
  /**
   * The CA's CRL (`crl_location`), PEM (`X509 CRL`, or `CRL` as `@peculiar/x509` labels it),
   * signed by the CA and with a nextUpdate. Without it nothing is considered revoked.
   */
  readonly crlPem?: string | undefined
  /**
   * The newest CRL already seen for this CA (e.g. remembered across restarts): a CRL
   * older than it (see `crlRollback`) is refused with {@link CrlRollbackError}, here
   * and by `reloadCrl`. Default: none.
   */
  readonly minimumCrl?: CrlMark | undefined
  /** fedmsg's `routing_policy`: exact topic -> CNs allowed to sign it. */
  readonly routingPolicy?: Readonly<Record<string, readonly string[]>> | undefined
  /** fedmsg's `routing_nitpicky`: deny topics absent from the policy. Default false. */
  readonly routingNitpicky?: boolean | undefined
  /** `crypto` values accepted. Default: every {@link CRYPTO_MODES} value. */
  readonly acceptModes?: readonly CryptoMode[] | undefined
  /** Milliseconds since the epoch; validity periods are checked against it. Default `Date.now`. */
  readonly clock?: (() => number) | undefined
  /** Validated certificates remembered (LRU). Default {@link DEFAULT_CERT_CACHE_SIZE}; 0 disables the cache. */
  readonly cacheSize?: number | undefined
}

/** Counters of a verifier's certificate cache. */
export interface CertCacheStats {
  readonly size: number
  readonly capacity: number
  readonly hits: number
  readonly misses: number
}

/** The verifier {@link createVerifier} returns. */
export interface X509Verifier extends Verifier {
  /**
   * Replaces the CRL (undefined removes it) and empties the certificate cache, once the new
   * CRL's signature has been checked; until then `verify` keeps using the previous CRL.
   * Reloads take effect in call order. Rejects, keeping the previous CRL, with
   * {@link CrlRollbackError} when the new CRL is older than one this verifier already
   * accepted (or than `minimumCrl`), with {@link CertificateError} when it is refused as by
   * {@link createVerifier}.
   */
  reloadCrl(crlPem: string | undefined): Promise<void>
  /** The CRL in use and how fresh it is now, or undefined without a CRL. */
  crlStatus(): CrlStatus | undefined
  /** The newest CRL this verifier accepted (or `minimumCrl`), or undefined: what a restart must not go below. */
  readonly crlMark: CrlMark | undefined
  /** SHA-256 (hex) of the CA certificate DER: identifies the CA whose CRLs `crlMark` orders. */
  readonly caFingerprint: string
  readonly cacheStats: CertCacheStats
}

function iso(ms: number): string {
  return new Date(ms).toISOString()
}

/** The CRL checked against the CA and against rollback below `mark`. */
function loadCrl(crlPem: string, ca: CaState, mark: CrlMark | undefined): CheckedCrl {
  const crl = readCaCrl(crlPem, ca.cert)
  const rollback = crlRollback(mark, crl)
  if (rollback !== undefined && mark !== undefined) throw new CrlRollbackError(`the CRL is older than one already accepted for this CA: ${rollback}`, crl, mark)
  return crl
}

function checkOptions(opts: VerifierOptions): void {
  const { cacheSize, acceptModes, routingPolicy, clock } = opts
  if (cacheSize !== undefined && !(Number.isSafeInteger(cacheSize) && cacheSize >= 0)) {
    throw InvalidArgumentError.format('cacheSize', 'a non-negative integer', cacheSize)
  }
  for (const mode of acceptModes ?? []) {
    if (!CRYPTO_MODES.includes(mode)) {
      throw InvalidArgumentError.format('acceptModes', `values among ${CRYPTO_MODES.join(', ')}`, mode)
    }
  }
  for (const [topic, cns] of Object.entries(routingPolicy ?? {})) {
    if (!Array.isArray(cns) || !cns.every((cn) => typeof cn === 'string')) {
      throw InvalidArgumentError.format(`routingPolicy[${JSON.stringify(topic)}]`, 'a list of CNs', cns)
    }
  }
  if (clock !== undefined && typeof clock !== 'function') {
    throw InvalidArgumentError.format('clock', 'a function', clock)
  }
}

/** SHA-256 (lowercase hex) of the CA certificate DER in `caPem`, as `X509Verifier.caFingerprint`. Throws {@link CertificateError}. */
export function caFingerprint(caPem: string): string {
  return fingerprintOf(loadCa(caPem).cert)
}

/**
 * A {@link Verifier} trusting exactly one CA, in fedmsg's order of checks:
 * 1. `crypto` is a string among `acceptModes` (else `unsupported_crypto`; a non-string is `malformed`);
 * 2. `signature` and `certificate` are base64 strings, the certificate parses (`malformed`);
 * 3. the certificate is issued and signed directly by the CA (`unknown_ca`);
 * 4. the CA and the certificate are within their validity at `clock()` (`expired`, `not_yet_valid`);
 * 5. with a CRL: the CRL's thisUpdate has come (else `not_yet_valid`, for every message)
 *    and it does not list the certificate (`revoked`). A CRL past its nextUpdate (stale)
 *    is still enforced: the certificates it lists are known bad. `crlStatus()` tells
 *    whether it is stale, for the caller to report;
 * 6. the signature over `fields.canonical` verifies with the mode's algorithm (`bad_signature`;
 *    `unsupported_crypto` when the mode cannot use the certificate's key type);
 * 7. routing policy (`policy_denied`): with `signedBy`, the CN must be `signedBy`; otherwise a
 *    topic in `routingPolicy` must list the CN, and other topics pass unless `routingNitpicky`.
 *
 * Certificates that passed 2-3 are cached by their `certificate` field string (LRU), so a
 * repeated sender costs one signature verification; dates and the CRL are still checked
 * on every call. Certificates failing 2-3 are cached as failures. `topic_mismatch` is not
 * checked here. A successful result's `fingerprint` is the lowercase hex SHA-256 of the
 * certificate DER.
 *
 * The CRL's signature is checked with `node:crypto` whenever a CRL is loaded (nothing
 * about it is cached); `verify` is synchronous. Rejects with {@link CertificateError} when
 * the CA or CRL cannot be parsed, or the CRL is not signed by the CA or has no nextUpdate;
 * {@link CrlRollbackError} when the CRL is older than `minimumCrl`; {@link InvalidArgumentError}
 * for invalid options.
 */
export async function createVerifier(opts: VerifierOptions): Promise<X509Verifier> {
  checkOptions(opts)
  const ca = loadCa(opts.caPem)
  const crl = opts.crlPem === undefined ? undefined : loadCrl(opts.crlPem, ca, opts.minimumCrl)
  return new CaVerifier(opts, ca, crl)
}

class CaVerifier implements X509Verifier {
  readonly #ca: CaState
  readonly #accept: ReadonlySet<string>
  readonly #policy: ReadonlyMap<string, ReadonlySet<string>>
  readonly #nitpicky: boolean
  readonly #clock: () => number
  readonly #cache: Lru<CacheEntry>
  #crl: CheckedCrl | undefined
  #mark: CrlMark | undefined
  readonly caFingerprint: string
  #hits = 0
  #misses = 0

  constructor(opts: VerifierOptions, ca: CaState, crl: CheckedCrl | undefined) {
    this.#ca = ca
    this.caFingerprint = fingerprintOf(ca.cert)
    this.#crl = crl
    this.#mark = crl === undefined ? opts.minimumCrl : newestMark(opts.minimumCrl, crl)
    this.#accept = new Set(opts.acceptModes ?? CRYPTO_MODES)
    this.#policy = new Map(Object.entries(opts.routingPolicy ?? {}).map(([topic, cns]) => [topic, new Set(cns)]))
    this.#nitpicky = opts.routingNitpicky ?? false
    this.#clock = opts.clock ?? Date.now
    this.#cache = new Lru(opts.cacheSize ?? DEFAULT_CERT_CACHE_SIZE)
  }

  get cacheStats(): CertCacheStats {
    return { size: this.#cache.size, capacity: this.#cache.capacity, hits: this.#hits, misses: this.#misses }
  }

  reloadCrl(crlPem: string | undefined): Promise<void> {
    try {
      const crl = crlPem === undefined ? undefined : loadCrl(crlPem, this.#ca, this.#mark)
      this.#crl = crl
      if (crl !== undefined) this.#mark = newestMark(this.#mark, crl)
      this.#cache.clear()
      return Promise.resolve()
    } catch (err) {
      return Promise.reject(err)
    }
  }

  crlStatus(): CrlStatus | undefined {
    return this.#crl === undefined ? undefined : crlStatus(this.#crl, this.#clock())
  }

  get crlMark(): CrlMark | undefined {
    return this.#mark
  }

  verify(fields: SignedFields, options?: VerifyOptions): VerifyResult {
    let read: SignedFields
    try {
      // Read once: a getter that throws is the input's fault, not ours.
      const { crypto, topic, canonical, signature, certificate } = fields
      read = { crypto, topic, canonical, signature, certificate }
    } catch (err) {
      return fail(InvalidReason.Malformed, `fields: ${typeof fields === 'object' && fields !== null ? errorMessage(err) : `${describe(fields)}, expected an object`}`)
    }
    try {
      return this.#verify(read, options)
    } catch (err) {
      return fail(InvalidReason.Malformed, `unexpected input: ${inputErrorMessage(err)}`)
    }
  }

  #verify(fields: SignedFields, options: VerifyOptions | undefined): VerifyResult {
    const mode: unknown = fields.crypto
    if (typeof mode !== 'string') return fail(InvalidReason.Malformed, `crypto is ${describe(mode)}, expected a string`)
    if (!this.#accept.has(mode)) {
      const quoted = JSON.stringify(mode.slice(0, MAX_QUOTED_MODE_LENGTH))
      return fail(InvalidReason.UnsupportedCrypto, `crypto ${quoted} is not accepted (accepted: ${[...this.#accept].join(', ')})`)
    }
    const { signature: signatureField, certificate: certificateField, canonical } = fields
    if (typeof signatureField !== 'string') return fail(InvalidReason.Malformed, `signature is ${describe(signatureField)}, expected a string`)
    if (typeof certificateField !== 'string') return fail(InvalidReason.Malformed, `certificate is ${describe(certificateField)}, expected a string`)
    if (!Buffer.isBuffer(canonical)) return fail(InvalidReason.Malformed, 'canonical bytes missing')
    let signature: Buffer
    try {
      signature = unwrapBase64(signatureField)
    } catch (err) {
      return fail(InvalidReason.Malformed, `signature: ${inputErrorMessage(err)}`)
    }
    if (signature.length === 0) return fail(InvalidReason.Malformed, 'signature is empty')

    const cert = this.#certificate(certificateField)
    if (!cert.ok) return cert

    const now = this.#clock()
    const ca = this.#ca
    if (now < ca.notBefore) return fail(InvalidReason.NotYetValid, `CA certificate (${ca.subject}) is not valid before ${iso(ca.notBefore)}`)
    if (now > ca.notAfter) return fail(InvalidReason.Expired, `CA certificate (${ca.subject}) expired at ${iso(ca.notAfter)}`)
    if (now < cert.notBefore) return fail(InvalidReason.NotYetValid, `certificate of ${cert.cn} is not valid before ${iso(cert.notBefore)}`)
    if (now > cert.notAfter) return fail(InvalidReason.Expired, `certificate of ${cert.cn} expired at ${iso(cert.notAfter)}`)
    const crl = this.#crl
    if (crl !== undefined) {
      if (now < crl.thisUpdate) return fail(InvalidReason.NotYetValid, `CRL is not valid before ${iso(crl.thisUpdate)}`)
      if (crl.revoked.has(cert.serial)) return fail(InvalidReason.Revoked, `certificate of ${cert.cn} (serial ${cert.serial}) is revoked`)
    }

    const choice = digestFor(mode, cert.keyKind)
    if ('error' in choice) return fail(InvalidReason.UnsupportedCrypto, `${choice.error} (certificate of ${cert.cn})`)
    let valid: boolean
    try {
      valid = cryptoVerify(choice.digest, canonical, cert.key, signature)
    } catch (err) {
      if (!isInputError(err)) throw err
      valid = false
    }
    if (!valid) return fail(InvalidReason.BadSignature, `signature does not verify with the certificate of ${cert.cn}`)

    const denied = this.#policyDenial(fields.topic, cert.cn, options?.signedBy)
    if (denied !== undefined) return fail(InvalidReason.PolicyDenied, denied)
    return { ok: true, cn: cert.cn, fingerprint: cert.fingerprint }
  }

  #policyDenial(topic: unknown, cn: string, signedBy: string | undefined): string | undefined {
    if (signedBy !== undefined) {
      return cn === signedBy ? undefined : `signed by ${JSON.stringify(cn)}, expected ${JSON.stringify(signedBy)}`
    }
    const allowed = typeof topic === 'string' ? this.#policy.get(topic) : undefined
    if (allowed !== undefined) {
      return allowed.has(cn) ? undefined : `${JSON.stringify(cn)} may not sign topic ${JSON.stringify(topic)}`
    }
    return this.#nitpicky ? `topic ${JSON.stringify(topic)} is not in the routing policy (routing_nitpicky)` : undefined
  }

  #certificate(field: string): CacheEntry {
    const cached = this.#cache.get(field)
    if (cached !== undefined) {
      this.#hits++
      return cached
    }
    this.#misses++
    const entry = validateChain(field, this.#ca)
    if (field.length <= MAX_CACHED_FIELD_LENGTH) this.#cache.set(field, entry)
    return entry
  }
}

/**
 * Checks one signature with a certificate's public key only (no chain, dates, CRL or
 * policy): true when `signatureField` (wrapped base64) is `mode`'s signature of
 * `canonical`. False for a bad signature, bad base64 or a key type the mode cannot use.
 * Throws {@link CertificateError} when the certificate cannot be parsed.
 */
export function verifySignatureWithCert(mode: CryptoMode, certPem: string, canonical: Buffer, signatureField: string): boolean {
  let key: KeyObject
  try {
    key = new X509Certificate(pemToDer(certPem, 'CERTIFICATE')).publicKey
  } catch (err) {
    throw new CertificateError(`cannot parse the certificate: ${errorMessage(err)}`, { cause: err })
  }
  const choice = digestFor(mode, keyKind(key))
  if ('error' in choice) return false
  try {
    return cryptoVerify(choice.digest, canonical, key, unwrapBase64(signatureField))
  } catch (err) {
    if (!isInputError(err)) throw err
    return false
  }
}
