/**
 * Certificate tooling behind `gilmsg certs init|issue|revoke|crl`, writing fedmsg's ssldir
 * layout: `ca.crt`, `ca.key`, `crl.pem`, and `<name>.crt` / `<name>.key` per identity.
 * The CA key is RSA-2048 and signs with sha256WithRSAEncryption. Which library builds
 * what, and why: cert-build.ts; the files: ssldir.ts; the CRL: crl-issue.ts.
 */
import { X509Certificate } from 'node:crypto'
import { join } from 'node:path'
import { CertificateError, InvalidArgumentError } from '../errors.js'
import { forgeCnAttrs, forgeRsaCertificate, generateKey, peculiarCertificate, pkcs8Pem, type CertKeyType } from './cert-build.js'
import { writeCrl, type CrlOptions } from './crl-issue.js'
import { KEY_FILE_MODE } from './key-file.js'
import { derToPem } from './pem.js'
import { CA_CERT, CA_KEY, caIssued, CRL, exists, checkName, keyDirectory, loadCa, PUBLIC_FILE_MODE, randomSerial, serialHex, validity, writeAtomic } from './ssldir.js'

export { RSA_BITS, type CertKeyType } from './cert-build.js'
export { NOT_BEFORE_BACKDATE_MS } from './ssldir.js'
export { DEFAULT_CRL_DAYS, renewCrl, revokeCert, type CrlOptions, type CrlResult, type RevokeResult } from './crl-issue.js'

/** CN of a CA made by {@link initCa} without `cn`. */
export const DEFAULT_CA_CN = 'gilmsg CA'
/** Validity of a CA made by {@link initCa} without `days`. */
export const DEFAULT_CA_DAYS = 3650
/** Validity of a certificate made by {@link issueCert} without `days`. */
export const DEFAULT_CERT_DAYS = 365

/** Options of {@link initCa}. */
export interface InitCaOptions extends CrlOptions {
  /** Default {@link DEFAULT_CA_CN}. */
  readonly cn?: string
  /** Default {@link DEFAULT_CA_DAYS}. */
  readonly days?: number
  /** Default: now minus `NOT_BEFORE_BACKDATE_MS`. */
  readonly notBefore?: Date
  /** Default: notBefore + days. */
  readonly notAfter?: Date
  /** Replace an existing CA (and its CRL). Default false. */
  readonly force?: boolean
}

/** What {@link initCa} wrote. */
export interface CaResult {
  readonly caCertPath: string
  readonly caKeyPath: string
  readonly crlPath: string
  readonly cn: string
  /** Lowercase hex. */
  readonly serial: string
}

/** Options of {@link issueCert}. */
export interface IssueCertOptions {
  /** Subject CN, the identity on the bus. Default: the name. */
  readonly cn?: string
  /** Default `rsa`. */
  readonly key?: CertKeyType
  /** Default {@link DEFAULT_CERT_DAYS}. */
  readonly days?: number
  /** Default: now minus `NOT_BEFORE_BACKDATE_MS`. */
  readonly notBefore?: Date
  /** Default: notBefore + days. */
  readonly notAfter?: Date
  /** Replace an existing `<name>.crt` / `<name>.key`. Default false. */
  readonly force?: boolean
}

/** What {@link issueCert} wrote. */
export interface IssuedCert {
  readonly name: string
  readonly cn: string
  /** Lowercase hex, as in the CRL. */
  readonly serial: string
  readonly keyType: CertKeyType
  readonly certPath: string
  readonly keyPath: string
  readonly notBefore: Date
  readonly notAfter: Date
}

/**
 * Creates a CA in `dir` (created with mode 0700 if missing): `ca.key` (RSA-2048, PKCS#8,
 * mode 0600), `ca.crt` (self-signed, CA:true, keyCertSign + cRLSign) and `crl.pem` (empty
 * CRL, next update after `DEFAULT_CRL_DAYS`). Rejects with {@link CertificateError}
 * if `ca.crt` or `ca.key` exists, unless `force`, and with `KeyPermissionError` if an
 * existing `dir` is writable by group or others.
 */
export async function initCa(dir: string, opts: InitCaOptions = {}): Promise<CaResult> {
  const caCertPath = join(dir, CA_CERT)
  const caKeyPath = join(dir, CA_KEY)
  const crlPath = join(dir, CRL)
  if (opts.force !== true) {
    for (const path of [caCertPath, caKeyPath]) {
      if (await exists(path)) throw new CertificateError(`${path} already exists; refusing to replace the CA (use --force to replace it)`)
    }
  }
  const cn = opts.cn ?? DEFAULT_CA_CN
  if (cn.length === 0) throw new InvalidArgumentError('the CA CN must not be empty')
  const { notBefore, notAfter } = validity(opts.days ?? DEFAULT_CA_DAYS, opts.notBefore, opts.notAfter)
  await keyDirectory(dir)
  const key = await generateKey('rsa')
  const serial = randomSerial()
  const der = forgeRsaCertificate({
    serial,
    subject: forgeCnAttrs(cn),
    issuer: forgeCnAttrs(cn),
    notBefore,
    notAfter,
    publicKey: key,
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
      { name: 'subjectKeyIdentifier' },
      { name: 'authorityKeyIdentifier', keyIdentifier: true },
    ],
    signWith: key,
  })
  await writeAtomic(caKeyPath, pkcs8Pem(key), KEY_FILE_MODE)
  await writeAtomic(caCertPath, derToPem(der, 'CERTIFICATE'), PUBLIC_FILE_MODE)
  const ca = await loadCa(dir)
  await writeCrl(crlPath, ca, [], 1n, opts)
  return { caCertPath, caKeyPath, crlPath, cn, serial }
}

/**
 * Issues `<name>.crt` and `<name>.key` (PKCS#8, mode 0600) in `dir`, signed by the CA
 * there: CA:false, keyUsage digitalSignature, a random 16-byte serial. Rejects with
 * {@link CertificateError} when the name is not a plain file stem, the CA cannot be
 * loaded (`KeyPermissionError` when group or others can read `ca.key` or write `dir`), or
 * the files exist (unless `force`, which replaces them; the old certificate stays valid
 * until revoked).
 */
export async function issueCert(dir: string, name: string, opts: IssueCertOptions = {}): Promise<IssuedCert> {
  checkName(name)
  const keyType = opts.key ?? 'rsa'
  if (!['rsa', 'ec', 'ed25519'].includes(keyType)) throw InvalidArgumentError.format('key', 'rsa, ec or ed25519', keyType)
  const cn = opts.cn ?? name
  if (cn.length === 0) throw new InvalidArgumentError('the CN must not be empty')
  const certPath = join(dir, `${name}.crt`)
  const keyPath = join(dir, `${name}.key`)
  if (opts.force !== true) {
    for (const path of [certPath, keyPath]) {
      if (await exists(path)) throw new CertificateError(`${path} already exists (use --force to replace it)`)
    }
  }
  const { notBefore, notAfter } = validity(opts.days ?? DEFAULT_CERT_DAYS, opts.notBefore, opts.notAfter)
  const [ca, key] = await Promise.all([loadCa(dir), generateKey(keyType)])
  const serial = randomSerial()
  const der =
    keyType === 'rsa'
      ? forgeRsaCertificate({
          serial,
          subject: forgeCnAttrs(cn),
          issuer: ca.forge.subject.attributes,
          notBefore,
          notAfter,
          publicKey: key,
          extensions: [
            { name: 'basicConstraints', cA: false, critical: true },
            { name: 'keyUsage', digitalSignature: true, critical: true },
            { name: 'subjectKeyIdentifier' },
            ...(ca.keyId !== undefined ? [{ name: 'authorityKeyIdentifier', keyIdentifier: Buffer.from(ca.keyId, 'hex').toString('binary') }] : []),
          ],
          signWith: ca.key,
        })
      : await peculiarCertificate(ca, ca.signingKey, key, keyType, cn, serial, notBefore, notAfter)
  const made = new X509Certificate(der)
  if (!caIssued(ca, made)) throw new CertificateError(`internal error: the certificate made for ${name} does not verify with the CA`)
  await writeAtomic(keyPath, pkcs8Pem(key), KEY_FILE_MODE)
  await writeAtomic(certPath, derToPem(der, 'CERTIFICATE'), PUBLIC_FILE_MODE)
  return { name, cn, serial: serialHex(made), keyType, certPath, keyPath, notBefore, notAfter }
}
