/**
 * Issuing the CA's CRL (`crl.pem`): `gilmsg certs revoke` and `gilmsg certs crl`, and the
 * first, empty CRL of `initCa`.
 */
import { X509Certificate } from 'node:crypto'
import { join } from 'node:path'
import { CertificateError, errorMessage } from '../errors.js'
import { signCrl, type CrlReason, type RevokedEntry } from './cert-build.js'
import { readCaCrl } from './crl.js'
import { derToPem, pemToDer } from './pem.js'
import { caIssued, checkDays, checkName, CRL, DAY_MS, exists, loadCa, NOT_BEFORE_BACKDATE_MS, PUBLIC_FILE_MODE, readText, serialHex, wholeSeconds, writeAtomic, type Ca } from './ssldir.js'
import { canonicalSerial } from './x509-fields.js'

/**
 * Days until a CRL's nextUpdate. Past it the CRL is stale: verifiers still enforce it but
 * report it on every start and reload, so re-sign it ({@link renewCrl}, `gilmsg certs crl`,
 * or any {@link revokeCert}) before then.
 */
export const DEFAULT_CRL_DAYS = 365

/** Options of CRL (re-)signing. */
export interface CrlOptions {
  /** nextUpdate = thisUpdate + crlDays. Default {@link DEFAULT_CRL_DAYS}. */
  readonly crlDays?: number
  /** Default: now minus {@link NOT_BEFORE_BACKDATE_MS}, so that hosts whose clock is slightly behind accept the new CRL. */
  readonly thisUpdate?: Date
  /** Overrides `crlDays`. */
  readonly nextUpdate?: Date
}

/** What {@link revokeCert} did. */
export interface RevokeResult {
  readonly name: string
  readonly serial: string
  readonly crlPath: string
  /** The serial was already in the CRL; the CRL was re-signed anyway. */
  readonly alreadyRevoked: boolean
}

/** What {@link renewCrl} wrote. */
export interface CrlResult {
  readonly crlPath: string
  readonly crlNumber: bigint
  readonly revokedCount: number
  readonly thisUpdate: Date
  readonly nextUpdate: Date
}

async function readCrlEntries(crlPath: string, ca: Ca): Promise<{ entries: RevokedEntry[]; number: bigint }> {
  if (!(await exists(crlPath))) return { entries: [], number: 0n }
  const crl = readCaCrl(await readText(crlPath, 'CRL'), ca.node, `the CRL ${crlPath}`)
  const entries = crl.entries.map((e) => ({
    serialNumber: e.serial,
    revocationDate: new Date(e.revocationDate),
    ...(e.reason !== undefined ? { reason: e.reason as CrlReason } : {}),
  }))
  return { entries, number: crl.crlNumber ?? 0n }
}

/** Signs and writes `crlPath` with these entries and cRLNumber `number`. */
export async function writeCrl(crlPath: string, ca: Ca, entries: readonly RevokedEntry[], number: bigint, opts: CrlOptions): Promise<CrlResult> {
  const thisUpdate = wholeSeconds(opts.thisUpdate ?? new Date(Date.now() - NOT_BEFORE_BACKDATE_MS))
  const nextUpdate = wholeSeconds(opts.nextUpdate ?? new Date(thisUpdate.getTime() + checkDays(opts.crlDays ?? DEFAULT_CRL_DAYS, 'crlDays') * DAY_MS))
  if (!(nextUpdate.getTime() > thisUpdate.getTime())) throw new CertificateError('the CRL nextUpdate must be after thisUpdate')
  const der = await signCrl(ca, ca.signingKey, { entries, number, thisUpdate, nextUpdate })
  await writeAtomic(crlPath, derToPem(der, 'X509 CRL'), PUBLIC_FILE_MODE)
  return { crlPath, crlNumber: number, revokedCount: entries.length, thisUpdate, nextUpdate }
}

/**
 * Adds the serial of `<name>.crt` to `crl.pem`, keeping earlier entries, and re-signs the
 * CRL (new thisUpdate/nextUpdate, cRLNumber + 1). Revoking twice is harmless
 * (`alreadyRevoked`). Rejects with {@link CertificateError} when the certificate is
 * missing or not issued by this CA, or the existing CRL is not the CA's.
 */
export async function revokeCert(dir: string, name: string, opts: CrlOptions = {}): Promise<RevokeResult> {
  checkName(name)
  const certPath = join(dir, `${name}.crt`)
  const crlPath = join(dir, CRL)
  const ca = await loadCa(dir)
  const pem = await readText(certPath, 'certificate')
  let cert: X509Certificate
  let serial: string
  let canonical: string
  try {
    cert = new X509Certificate(pemToDer(pem, 'CERTIFICATE'))
    serial = serialHex(cert)
    canonical = canonicalSerial(serial)
  } catch (err) {
    throw new CertificateError(`cannot parse ${certPath}: ${errorMessage(err)}`, { cause: err })
  }
  if (!caIssued(ca, cert)) throw new CertificateError(`${certPath} is not issued by the CA in ${dir}`)
  const { entries, number } = await readCrlEntries(crlPath, ca)
  const alreadyRevoked = entries.some((e) => canonicalSerial(e.serialNumber) === canonical)
  const next = alreadyRevoked ? entries : [...entries, { serialNumber: serial, revocationDate: wholeSeconds(new Date()) }]
  await writeCrl(crlPath, ca, next, number + 1n, opts)
  return { name, serial, crlPath, alreadyRevoked }
}

/**
 * Re-signs `crl.pem` with the same entries and a new validity (cRLNumber + 1): run it
 * before the CRL's nextUpdate, after which verifiers report the CRL as stale. Rejects with
 * {@link CertificateError} when the CA cannot be loaded or the existing CRL is not the CA's.
 */
export async function renewCrl(dir: string, opts: CrlOptions = {}): Promise<CrlResult> {
  const crlPath = join(dir, CRL)
  const ca = await loadCa(dir)
  const { entries, number } = await readCrlEntries(crlPath, ca)
  return writeCrl(crlPath, ca, entries, number + 1n, opts)
}
