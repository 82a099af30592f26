/**
 * Reading a CA's CRL with `node:crypto` only: a DER walk of the CertificateList
 * (RFC 5280 section 5.1), its signature checked with the CA's public key, and what the
 * verifier needs of it (dates, cRLNumber, revoked serials). Nothing is cached: a CRL is
 * checked every time it is loaded.
 */
import { createHash, verify as cryptoVerify } from 'node:crypto'
import type { KeyObject, X509Certificate } from 'node:crypto'
import { CertificateError, errorMessage } from '../errors.js'
import {
  childrenOf,
  contentOf,
  decodeOid,
  decodeTime,
  decodeUnsigned,
  encodingOf,
  expectTag,
  readRoot,
  Tag,
} from './der.js'
import type { DerElement } from './der.js'
import { pemToDer } from './pem.js'
import { canonicalSerial } from './x509-fields.js'

/** OID of the cRLNumber extension. */
export const OID_CRL_NUMBER = '2.5.29.20'
const OID_REASON_CODE = '2.5.29.21'
const DAY_MS = 24 * 60 * 60 * 1000

/** CRL extensions gilmsg knows; an unknown *critical* one makes the CRL refused (RFC 5280 5.2). */
const KNOWN_CRL_EXTENSIONS: ReadonlySet<string> = new Set([OID_CRL_NUMBER, '2.5.29.35' /* authorityKeyIdentifier */, '2.5.29.18' /* issuerAltName */])
const KNOWN_ENTRY_EXTENSIONS: ReadonlySet<string> = new Set([OID_REASON_CODE, '2.5.29.24' /* invalidityDate */, '2.5.29.23' /* holdInstructionCode */])
const EXTENSION_NAMES: Readonly<Record<string, string>> = {
  '2.5.29.27': 'deltaCRLIndicator (a delta CRL is not a complete list)',
  '2.5.29.28': 'issuingDistributionPoint (a partitioned CRL is not a complete list)',
  '2.5.29.29': 'certificateIssuer (indirect CRLs are not supported)',
}

type KeyFamily = 'rsa' | 'ec' | 'ed25519' | 'ed448'

/** CRL signature algorithms: OID -> digest for `crypto.verify` and the CA key type it needs. */
const SIGNATURE_ALGORITHMS: Readonly<Record<string, { readonly digest: string | null; readonly key: KeyFamily; readonly name: string }>> = {
  '1.2.840.113549.1.1.5': { digest: 'sha1', key: 'rsa', name: 'sha1WithRSAEncryption' },
  '1.2.840.113549.1.1.14': { digest: 'sha224', key: 'rsa', name: 'sha224WithRSAEncryption' },
  '1.2.840.113549.1.1.11': { digest: 'sha256', key: 'rsa', name: 'sha256WithRSAEncryption' },
  '1.2.840.113549.1.1.12': { digest: 'sha384', key: 'rsa', name: 'sha384WithRSAEncryption' },
  '1.2.840.113549.1.1.13': { digest: 'sha512', key: 'rsa', name: 'sha512WithRSAEncryption' },
  '1.2.840.10045.4.1': { digest: 'sha1', key: 'ec', name: 'ecdsa-with-SHA1' },
  '1.2.840.10045.4.3.1': { digest: 'sha224', key: 'ec', name: 'ecdsa-with-SHA224' },
  '1.2.840.10045.4.3.2': { digest: 'sha256', key: 'ec', name: 'ecdsa-with-SHA256' },
  '1.2.840.10045.4.3.3': { digest: 'sha384', key: 'ec', name: 'ecdsa-with-SHA384' },
  '1.2.840.10045.4.3.4': { digest: 'sha512', key: 'ec', name: 'ecdsa-with-SHA512' },
  '1.3.101.112': { digest: null, key: 'ed25519', name: 'Ed25519' },
  '1.3.101.113': { digest: null, key: 'ed448', name: 'Ed448' },
}

/** One revoked certificate as listed. */
export interface CrlEntry {
  /** The serial's INTEGER content bytes as lowercase hex, as written (sign byte included). */
  readonly serial: string
  readonly revocationDate: number
  /** CRLReason (RFC 5280 5.3.1), when the entry has one. */
  readonly reason?: number
}

/** Where a CRL stands in its CA's sequence of CRLs: what rollback protection compares. */
export interface CrlMark {
  /** The cRLNumber extension, when the CRL has one. */
  readonly crlNumber: bigint | undefined
  /** thisUpdate, ms since the epoch. */
  readonly thisUpdate: number
}

/** A CRL whose signature {@link readCaCrl} checked. */
export interface CheckedCrl extends CrlMark {
  readonly nextUpdate: number
  readonly entries: readonly CrlEntry[]
  /** Revoked serials, lowercase hex without leading zeros (see `canonicalSerial`). */
  readonly revoked: ReadonlySet<string>
  /** SHA-256 of the CRL DER, lowercase hex. */
  readonly sha256: string
}

/** How fresh a CRL is at some instant (for reports and a future `gilmsg check`). */
export interface CrlStatus extends CrlMark {
  readonly nextUpdate: number
  readonly revokedCount: number
  /** Past nextUpdate: the CA should have published a newer CRL by now. */
  readonly stale: boolean
  /** Days (fractional) until nextUpdate; negative once it has passed. */
  readonly daysUntilNextUpdate: number
}

interface ParsedCrl {
  readonly tbs: Buffer
  readonly tbsSignatureAlgorithm: Buffer
  readonly signatureAlgorithm: Buffer
  readonly signatureOid: string
  readonly signature: Buffer
  readonly issuer: Buffer
  readonly thisUpdate: number
  readonly nextUpdate: number | undefined
  readonly crlNumber: bigint | undefined
  readonly entries: readonly CrlEntry[]
}

interface Extension {
  readonly oid: string
  readonly critical: boolean
  readonly value: Buffer
}

function readExtensions(der: Buffer, list: DerElement, what: string): Extension[] {
  expectTag(list, Tag.Sequence, what)
  return childrenOf(der, list).map((ext) => {
    const [oid, second, third] = childrenOf(der, expectTag(ext, Tag.Sequence, `${what} entry`))
    const flag = second !== undefined && second.tag === Tag.Boolean ? second : undefined
    const valueEl = expectTag(flag === undefined ? second : third, Tag.OctetString, `${what} value`)
    return {
      oid: decodeOid(contentOf(der, expectTag(oid, Tag.Oid, `${what} OID`))),
      critical: flag !== undefined && contentOf(der, flag).some((b) => b !== 0),
      value: contentOf(der, valueEl),
    }
  })
}

function refuseUnknownCritical(extensions: readonly Extension[], known: ReadonlySet<string>, where: string): void {
  for (const ext of extensions) {
    if (ext.critical && !known.has(ext.oid)) {
      throw new CertificateError(`${where} has the critical extension ${EXTENSION_NAMES[ext.oid] ?? ext.oid}, which gilmsg does not support`)
    }
  }
}

function innerInteger(value: Buffer, what: string, tag: number = Tag.Integer): bigint {
  const el = readRoot(value)
  return decodeUnsigned(contentOf(value, expectTag(el, tag, what)), what)
}

function readEntry(der: Buffer, el: DerElement): CrlEntry {
  const [serialEl, dateEl, extsEl] = childrenOf(der, expectTag(el, Tag.Sequence, 'revoked certificate'))
  const serial = contentOf(der, expectTag(serialEl, Tag.Integer, 'revoked serial')).toString('hex')
  if (serial.length === 0) throw new CertificateError('invalid DER: empty revoked serial')
  if (dateEl === undefined) throw new CertificateError('invalid DER: revocationDate is missing')
  const revocationDate = decodeTime(der, dateEl, 'revocationDate')
  if (extsEl === undefined) return { serial, revocationDate }
  const extensions = readExtensions(der, extsEl, 'CRL entry extensions')
  refuseUnknownCritical(extensions, KNOWN_ENTRY_EXTENSIONS, `the entry for serial ${serial}`)
  const reasonExt = extensions.find((e) => e.oid === OID_REASON_CODE)
  if (reasonExt === undefined) return { serial, revocationDate }
  return { serial, revocationDate, reason: Number(innerInteger(reasonExt.value, 'reasonCode', Tag.Enumerated)) }
}

/** Walks a CertificateList without checking its signature. */
function parseCrl(der: Buffer): ParsedCrl {
  const [tbsEl, algEl, sigEl, extra] = childrenOf(der, expectTag(readRoot(der), Tag.Sequence, 'CertificateList'))
  if (extra !== undefined) throw new CertificateError('invalid DER: CertificateList has more than 3 fields')
  const tbsFields = childrenOf(der, expectTag(tbsEl, Tag.Sequence, 'tbsCertList'))
  const signatureValue = contentOf(der, expectTag(sigEl, Tag.BitString, 'signatureValue'))
  if (signatureValue[0] !== 0) throw new CertificateError('invalid DER: signatureValue has unused bits')
  const [algOidEl] = childrenOf(der, expectTag(algEl, Tag.Sequence, 'signatureAlgorithm'))

  let i = 0
  const version = tbsFields[0]?.tag === Tag.Integer ? decodeUnsigned(contentOf(der, tbsFields[i++] as DerElement), 'version') : undefined
  if (version !== undefined && version !== 1n) throw new CertificateError(`unsupported CRL version ${version + 1n} (expected 2)`)
  const tbsSignatureAlgorithm = encodingOf(der, expectTag(tbsFields[i++], Tag.Sequence, 'tbsCertList signature'))
  const issuer = encodingOf(der, expectTag(tbsFields[i++], Tag.Sequence, 'issuer'))
  const thisUpdateEl = tbsFields[i++]
  if (thisUpdateEl === undefined) throw new CertificateError('invalid DER: thisUpdate is missing')
  const thisUpdate = decodeTime(der, thisUpdateEl, 'thisUpdate')
  let nextUpdate: number | undefined
  const maybeNext = tbsFields[i]
  if (maybeNext !== undefined && (maybeNext.tag === Tag.UtcTime || maybeNext.tag === Tag.GeneralizedTime)) {
    nextUpdate = decodeTime(der, maybeNext, 'nextUpdate')
    i++
  }
  let entries: CrlEntry[] = []
  if (tbsFields[i]?.tag === Tag.Sequence) entries = childrenOf(der, tbsFields[i++] as DerElement).map((e) => readEntry(der, e))
  let crlNumber: bigint | undefined
  const extsEl = tbsFields[i]
  if (extsEl !== undefined) {
    expectTag(extsEl, Tag.Context0, 'crlExtensions')
    if (version === undefined) throw new CertificateError('invalid CRL: a version 1 CRL has extensions')
    const [list, more] = childrenOf(der, extsEl)
    if (list === undefined || more !== undefined) throw new CertificateError('invalid DER: crlExtensions must hold one SEQUENCE')
    const extensions = readExtensions(der, list, 'crlExtensions')
    refuseUnknownCritical(extensions, KNOWN_CRL_EXTENSIONS, 'the CRL')
    const numberExt = extensions.find((e) => e.oid === OID_CRL_NUMBER)
    if (numberExt !== undefined) crlNumber = innerInteger(numberExt.value, 'cRLNumber')
    i++
  }
  if (i !== tbsFields.length) throw new CertificateError('invalid DER: unexpected fields at the end of tbsCertList')
  return {
    tbs: encodingOf(der, tbsEl as DerElement),
    tbsSignatureAlgorithm,
    signatureAlgorithm: encodingOf(der, algEl as DerElement),
    signatureOid: decodeOid(contentOf(der, expectTag(algOidEl, Tag.Oid, 'signatureAlgorithm OID'))),
    signature: signatureValue.subarray(1),
    issuer,
    thisUpdate,
    nextUpdate,
    crlNumber,
    entries,
  }
}

/** The subject Name of a certificate, as DER (tbsCertificate field 6, or 5 without a version). */
function subjectDer(cert: X509Certificate): Buffer {
  const der = cert.raw
  const [tbs] = childrenOf(der, readRoot(der))
  const fields = childrenOf(der, expectTag(tbs, Tag.Sequence, 'tbsCertificate'))
  const offset = fields[0]?.tag === Tag.Context0 ? 1 : 0
  return encodingOf(der, expectTag(fields[offset + 4], Tag.Sequence, 'subject'))
}

function stringValue(der: Buffer, el: DerElement): string {
  const bytes = contentOf(der, el)
  switch (el.tag) {
    case Tag.Utf8String:
    case Tag.PrintableString:
    case Tag.Ia5String:
      return bytes.toString('utf8')
    case Tag.T61String:
      return bytes.toString('latin1')
    case Tag.BmpString:
      return Buffer.from(bytes).swap16().toString('utf16le')
    default:
      return `#${encodingOf(der, el).toString('hex')}`
  }
}

/** A Name reduced for comparison: string types unified, case and inner spaces folded (RFC 5280 7.1, simplified). */
function normalisedName(der: Buffer): string {
  const root = readRoot(der)
  return childrenOf(der, root)
    .map((rdn) =>
      childrenOf(der, rdn)
        .map((atv) => {
          const [oid, value] = childrenOf(der, atv)
          const text = value === undefined ? '' : stringValue(der, value).trim().replace(/\s+/g, ' ').toLowerCase()
          return `${decodeOid(contentOf(der, expectTag(oid, Tag.Oid, 'attribute type')))}=${JSON.stringify(text)}`
        })
        .sort()
        .join('+'),
    )
    .join(',')
}

function sameName(a: Buffer, b: Buffer): boolean {
  if (a.equals(b)) return true
  try {
    return normalisedName(a) === normalisedName(b)
  } catch {
    return false
  }
}

function checkSignature(crl: ParsedCrl, caKey: KeyObject, what: string): void {
  const alg = SIGNATURE_ALGORITHMS[crl.signatureOid]
  if (alg === undefined) throw new CertificateError(`${what} is signed with an unsupported algorithm (OID ${crl.signatureOid})`)
  if (!crl.signatureAlgorithm.equals(crl.tbsSignatureAlgorithm)) {
    throw new CertificateError(`${what} names two different signature algorithms (RFC 5280 requires them equal)`)
  }
  if (caKey.asymmetricKeyType !== alg.key) {
    throw new CertificateError(`${what} is not signed by the CA (signed with ${alg.name}, the CA key is ${caKey.asymmetricKeyType ?? 'unknown'})`)
  }
  let ok: boolean
  try {
    ok = cryptoVerify(alg.digest, crl.tbs, caKey, crl.signature)
  } catch (err) {
    throw new CertificateError(`cannot check the signature of ${what}: ${errorMessage(err)}`, { cause: err })
  }
  if (!ok) throw new CertificateError(`${what} is not signed by the CA (its ${alg.name} signature does not verify with the CA key)`)
}

/** The DER of a CRL in PEM (`X509 CRL`, or `CRL` as `@peculiar/x509` labels it). */
export function crlDerFromPem(pem: string): Buffer {
  return pemToDer(pem, pem.includes('-----BEGIN X509 CRL-----') ? 'X509 CRL' : 'CRL')
}

/**
 * Parses a CRL (PEM, see {@link crlDerFromPem}) and checks that `ca` issued it: issuer
 * name, signature (RSA PKCS#1 v1.5 with SHA-1/224/256/384/512, ECDSA, Ed25519, Ed448),
 * a nextUpdate (RFC 5280 requires one), no critical extension gilmsg does not know (so
 * delta, partitioned and indirect CRLs are refused). Throws a {@link CertificateError}
 * naming `what` (e.g. the file).
 */
export function readCaCrl(pem: string, ca: X509Certificate, what = 'the CRL'): CheckedCrl {
  let der: Buffer
  let crl: ParsedCrl
  try {
    der = crlDerFromPem(pem)
    crl = parseCrl(der)
  } catch (err) {
    throw new CertificateError(`cannot parse ${what}: ${errorMessage(err)}`, { cause: err })
  }
  let issuerMatches: boolean
  try {
    issuerMatches = sameName(crl.issuer, subjectDer(ca))
  } catch (err) {
    throw new CertificateError(`cannot read the CA certificate's subject: ${errorMessage(err)}`, { cause: err })
  }
  const caName = ca.subject.replaceAll('\n', ', ')
  if (!issuerMatches) throw new CertificateError(`${what} is not signed by the CA (${caName}): its issuer is another name`)
  checkSignature(crl, ca.publicKey, what)
  if (crl.nextUpdate === undefined) throw new CertificateError(`${what} has no nextUpdate`)
  let revoked: Set<string>
  try {
    revoked = new Set(crl.entries.map((e) => canonicalSerial(e.serial)))
  } catch (err) {
    throw new CertificateError(`cannot read ${what}: ${errorMessage(err)}`, { cause: err })
  }
  return {
    thisUpdate: crl.thisUpdate,
    nextUpdate: crl.nextUpdate,
    crlNumber: crl.crlNumber,
    entries: crl.entries,
    revoked,
    sha256: createHash('sha256').update(der).digest('hex'),
  }
}

/**
 * Why `offered` would roll revocation back from `inUse` (the newest CRL already
 * accepted), or undefined when it may replace it. With a cRLNumber on both, a lower
 * number is a rollback, and so is the same number with an older thisUpdate; when
 * either has no cRLNumber, an older thisUpdate is. An equal CRL is not a rollback.
 */
export function crlRollback(inUse: CrlMark | undefined, offered: CrlMark): string | undefined {
  if (inUse === undefined) return undefined
  const olderDate = offered.thisUpdate < inUse.thisUpdate
  const dates = `thisUpdate ${new Date(offered.thisUpdate).toISOString()} is older than ${new Date(inUse.thisUpdate).toISOString()}`
  if (offered.crlNumber !== undefined && inUse.crlNumber !== undefined) {
    if (offered.crlNumber < inUse.crlNumber) return `its cRLNumber ${offered.crlNumber} is lower than ${inUse.crlNumber}, already in use`
    if (offered.crlNumber === inUse.crlNumber && olderDate) return `its cRLNumber is the same (${offered.crlNumber}) and its ${dates}`
    return undefined
  }
  return olderDate ? `its ${dates} (of the CRL already in use)` : undefined
}

/** The newer of two marks, field by field (what rollback protection remembers). */
export function newestMark(a: CrlMark | undefined, b: CrlMark): CrlMark {
  if (a === undefined) return { crlNumber: b.crlNumber, thisUpdate: b.thisUpdate }
  const crlNumber = a.crlNumber === undefined ? b.crlNumber : b.crlNumber === undefined || a.crlNumber > b.crlNumber ? a.crlNumber : b.crlNumber
  return { crlNumber, thisUpdate: Math.max(a.thisUpdate, b.thisUpdate) }
}

/** How fresh `crl` is at `now` (ms since the epoch). */
export function crlStatus(crl: CheckedCrl, now: number): CrlStatus {
  return {
    crlNumber: crl.crlNumber,
    thisUpdate: crl.thisUpdate,
    nextUpdate: crl.nextUpdate,
    revokedCount: crl.revoked.size,
    stale: now > crl.nextUpdate,
    daysUntilNextUpdate: (crl.nextUpdate - now) / DAY_MS,
  }
}
