/**
 * What a verifier checks once per certificate: the CA it trusts, a sender's certificate
 * parsed and chained directly to that CA, and the cache that remembers the outcome. Also
 * the line between an invalid message and a bug: only the errors that mean "this input is
 * malformed" become a failed result ({@link inputErrorMessage}); any other error is ours
 * and propagates.
 */
import { X509Certificate } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { CertificateError, errorMessage } from '../errors.js'
import { keyKind } from './algorithms.js'
import type { KeyKind } from './algorithms.js'
import { pemFromCertificateField, pemToDer } from './pem.js'
import { InvalidReason } from './types.js'
import type { VerifyResult } from './types.js'
import { canonicalSerial, certificateValidity, subjectCommonName } from './x509-fields.js'
import type { Validity } from './x509-fields.js'

export type VerifyFailure = Extract<VerifyResult, { ok: false }>

/** A certificate that chains to the CA, with what each message's checks need. */
export interface CachedCert {
  readonly ok: true
  readonly key: KeyObject
  readonly keyKind: KeyKind | undefined
  readonly cn: string
  readonly fingerprint: string
  readonly notBefore: number
  readonly notAfter: number
  readonly serial: string
}

export type CacheEntry = CachedCert | VerifyFailure

/** The trusted CA, parsed once. */
export interface CaState {
  readonly cert: X509Certificate
  readonly der: Buffer
  readonly subject: string
  readonly notBefore: number
  readonly notAfter: number
}

export function fail(reason: InvalidReason, detail: string): VerifyFailure {
  return { ok: false, reason, detail }
}

/**
 * True for an error that means the input is malformed: a {@link CertificateError} from
 * gilmsg's own parsers, or an OpenSSL / node:crypto refusal (`ERR_OSSL_*`, `ERR_CRYPTO_*`).
 * Any other error (a TypeError, a RangeError...) is a bug, not a bad message.
 */
export function isInputError(err: unknown): boolean {
  if (err instanceof CertificateError) return true
  const code = err instanceof Error ? (err as NodeJS.ErrnoException).code : undefined
  return typeof code === 'string' && (code.startsWith('ERR_OSSL_') || code.startsWith('ERR_CRYPTO_'))
}

/** The message of an input error (see {@link isInputError}); any other error is rethrown. */
export function inputErrorMessage(err: unknown): string {
  if (!isInputError(err)) throw err
  return errorMessage(err)
}

/** Lowercase hex SHA-256 of a certificate's DER. */
export function fingerprintOf(cert: X509Certificate): string {
  return cert.fingerprint256.replaceAll(':', '').toLowerCase()
}

/** Parses the CA certificate (the first CERTIFICATE block of `caPem`). Throws {@link CertificateError}. */
export function loadCa(caPem: string): CaState {
  try {
    const der = pemToDer(caPem, 'CERTIFICATE')
    const cert = new X509Certificate(der)
    if (!cert.raw.equals(der)) throw new CertificateError('trailing bytes or not DER')
    const { notBefore, notAfter } = certificateValidity(cert)
    return {
      cert,
      der,
      subject: cert.subject.replaceAll('\n', ', '),
      notBefore: notBefore.getTime(),
      notAfter: notAfter.getTime(),
    }
  } catch (err) {
    throw new CertificateError(`cannot parse the CA certificate: ${errorMessage(err)}`, { cause: err })
  }
}

/**
 * Parses an envelope's `certificate` field and checks that `ca` issued and signed it:
 * `malformed` when it cannot be parsed or has no CN, `unknown_ca` when it does not chain.
 * Dates and the CRL are each message's checks, not this one's.
 */
export function validateChain(field: string, ca: CaState): CacheEntry {
  let der: Buffer
  let cert: X509Certificate
  try {
    der = pemToDer(pemFromCertificateField(field), 'CERTIFICATE')
    cert = new X509Certificate(der)
  } catch (err) {
    return fail(InvalidReason.Malformed, `certificate: ${inputErrorMessage(err)}`)
  }
  if (!cert.raw.equals(der)) return fail(InvalidReason.Malformed, 'certificate: trailing bytes or not DER')
  let chained: boolean
  try {
    chained = cert.checkIssued(ca.cert) && cert.verify(ca.cert.publicKey)
  } catch (err) {
    if (!isInputError(err)) throw err
    chained = false
  }
  if (!chained) {
    return fail(InvalidReason.UnknownCa, `certificate (${cert.subject.replaceAll('\n', ', ')}) is not issued by the CA (${ca.subject})`)
  }
  let cn: string | undefined
  let validity: Validity
  let serial: string
  try {
    cn = subjectCommonName(cert)
    validity = certificateValidity(cert)
    serial = canonicalSerial(cert.serialNumber)
  } catch (err) {
    return fail(InvalidReason.Malformed, `certificate: ${inputErrorMessage(err)}`)
  }
  if (cn === undefined) return fail(InvalidReason.Malformed, 'certificate subject has no CN')
  let key: KeyObject
  try {
    key = cert.publicKey
  } catch (err) {
    return fail(InvalidReason.Malformed, `certificate: ${inputErrorMessage(err)}`)
  }
  return {
    ok: true,
    key,
    keyKind: keyKind(key),
    cn,
    fingerprint: fingerprintOf(cert),
    notBefore: validity.notBefore.getTime(),
    notAfter: validity.notAfter.getTime(),
    serial,
  }
}

/** A least-recently-used map; capacity 0 remembers nothing. */
export class Lru<V> {
  readonly capacity: number
  readonly #map = new Map<string, V>()

  constructor(capacity: number) {
    this.capacity = capacity
  }

  get size(): number {
    return this.#map.size
  }

  get(key: string): V | undefined {
    const value = this.#map.get(key)
    if (value !== undefined) {
      this.#map.delete(key)
      this.#map.set(key, value)
    }
    return value
  }

  set(key: string, value: V): void {
    if (this.capacity === 0) return
    if (this.#map.has(key)) {
      this.#map.delete(key)
    } else if (this.#map.size >= this.capacity) {
      const oldest = this.#map.keys().next()
      if (oldest.done !== true) this.#map.delete(oldest.value)
    }
    this.#map.set(key, value)
  }

  clear(): void {
    this.#map.clear()
  }
}
