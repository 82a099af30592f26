/**
 * fedmsg's ssldir as `gilmsg certs` keeps it: file names, atomic writes with the right
 * modes, the key directory's permissions, and the CA loaded back from `ca.crt` / `ca.key`.
 * Also the dates and serials every issued certificate and CRL share.
 */
import { chmod, access, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { createPrivateKey, randomBytes, X509Certificate } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { join } from 'node:path'
import { CertificateError, errorMessage, InvalidArgumentError } from '../errors.js'
import { importCaSigningKey, parseCaCertificate, spkiDer, type CaCertificate, type CaSigningKey } from './cert-build.js'
import { checkKeyDirectory, KEY_DIR_MODE, readPrivateKeyFile } from './key-file.js'
import { derToPem, pemToDer } from './pem.js'

export const CA_CERT = 'ca.crt'
export const CA_KEY = 'ca.key'
export const CRL = 'crl.pem'
/** Mode of the certificates and the CRL (keys are `KEY_FILE_MODE`). */
export const PUBLIC_FILE_MODE = 0o644
const NAME_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9._@+-]*$/

export const DAY_MS = 24 * 60 * 60 * 1000
/** Certificates and CRLs are valid from this long before their creation, to tolerate clock skew between hosts. */
export const NOT_BEFORE_BACKDATE_MS = 5 * 60 * 1000

/** The CA of an ssldir, loaded and checked (its key matches its certificate). */
export interface Ca extends CaCertificate {
  readonly key: KeyObject
  readonly signingKey: CaSigningKey
  readonly node: X509Certificate
}

export async function exists(path: string): Promise<boolean> {
  try {
    await access(path)
    return true
  } catch {
    return false
  }
}

export async function readText(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw new CertificateError(`cannot read the ${what} ${path}: ${code === 'ENOENT' ? 'file not found' : errorMessage(err)}`, { cause: err })
  }
}

export async function writeAtomic(path: string, data: string, mode: number): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
  try {
    await writeFile(tmp, data, { mode, flag: 'wx' })
    await chmod(tmp, mode)
    await rename(tmp, path)
  } catch (err) {
    await rm(tmp, { force: true })
    throw new CertificateError(`cannot write ${path}: ${errorMessage(err)}`, { cause: err })
  }
}

export function checkDays(days: number, what: string): number {
  if (!(Number.isFinite(days) && days > 0)) throw InvalidArgumentError.format(what, 'a positive number of days', days)
  return days
}

export function wholeSeconds(date: Date): Date {
  return new Date(Math.floor(date.getTime() / 1000) * 1000)
}

export function validity(days: number, notBefore: Date | undefined, notAfter: Date | undefined): { notBefore: Date; notAfter: Date } {
  checkDays(days, 'days')
  const from = wholeSeconds(notBefore ?? new Date(Date.now() - NOT_BEFORE_BACKDATE_MS))
  const to = wholeSeconds(notAfter ?? new Date(from.getTime() + days * DAY_MS))
  if (Number.isNaN(from.getTime()) || Number.isNaN(to.getTime()) || to.getTime() <= from.getTime()) {
    throw new InvalidArgumentError(`invalid validity: notAfter (${String(to)}) must be after notBefore (${String(from)})`)
  }
  return { notBefore: from, notAfter: to }
}

export function randomSerial(): string {
  const bytes = randomBytes(16)
  bytes[0] = (bytes[0] as number) & 0x7f || 0x01
  return bytes.toString('hex')
}

export function checkName(name: string): void {
  if (!NAME_PATTERN.test(name) || name === 'ca') {
    throw new InvalidArgumentError(`invalid certificate name ${JSON.stringify(name)}: expected letters, digits and . _ @ + - (not "ca")`)
  }
}

/**
 * Creates `dir` with mode 0700 if it is missing; refuses an existing one that group or
 * others can write (`KeyPermissionError`), since it is to hold private keys.
 */
export async function keyDirectory(dir: string): Promise<void> {
  try {
    if ((await mkdir(dir, { recursive: true, mode: KEY_DIR_MODE })) !== undefined) {
      await chmod(dir, KEY_DIR_MODE)
      return
    }
  } catch (err) {
    throw new CertificateError(`cannot create the directory ${dir}: ${errorMessage(err)}`, { cause: err })
  }
  checkKeyDirectory(dir)
}

export async function loadCa(dir: string): Promise<Ca> {
  const certPath = join(dir, CA_CERT)
  const keyPath = join(dir, CA_KEY)
  const certPem = await readText(certPath, 'CA certificate')
  const keyPem = readPrivateKeyFile(keyPath, 'CA key')
  let key: KeyObject
  let node: X509Certificate
  let der: Buffer
  try {
    der = pemToDer(certPem, 'CERTIFICATE')
    node = new X509Certificate(der)
    key = createPrivateKey(keyPem)
  } catch (err) {
    throw new CertificateError(`cannot parse the CA in ${dir}: ${errorMessage(err)}`, { cause: err })
  }
  if (key.asymmetricKeyType !== 'rsa') throw new CertificateError(`the CA key ${keyPath} is not an RSA key (gilmsg CAs are RSA so that Python fedmsg can check them)`)
  if (!spkiDer(key).equals(node.publicKey.export({ type: 'spki', format: 'der' }))) {
    throw new CertificateError(`the CA key ${keyPath} does not match ${certPath}`)
  }
  return {
    key,
    signingKey: await importCaSigningKey(key),
    node,
    ...parseCaCertificate(der, derToPem(der, 'CERTIFICATE')),
  }
}

export function caIssued(ca: Ca, cert: X509Certificate): boolean {
  return cert.checkIssued(ca.node) && cert.verify(ca.node.publicKey)
}

// Serial as node prints it, lowercased: hex of the magnitude, whole bytes (as the CRL lists it).
export function serialHex(cert: X509Certificate): string {
  return cert.serialNumber.toLowerCase()
}
