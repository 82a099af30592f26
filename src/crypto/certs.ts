/**
 * Certificate tooling behind `gilmsg certs init|issue|revoke`, writing fedmsg's ssldir
 * layout: `ca.crt`, `ca.key`, `crl.pem`, and `<name>.crt` / `<name>.key` per identity.
 *
 * RSA certificates (the CA and RSA leaves, which Python fedmsg can use) are built with
 * node-forge; EC P-256 and Ed25519 leaves and the CRL with `@peculiar/x509`, which
 * node-forge cannot produce. Keys are generated and every signature is computed by
 * `node:crypto`. The CA key is RSA-2048 and signs with sha256WithRSAEncryption.
 */
import 'reflect-metadata'
import * as x509 from '@peculiar/x509'
import forge from 'node-forge'
import { constants, createPrivateKey, createPublicKey, generateKeyPair, privateEncrypt, randomBytes, webcrypto, X509Certificate } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { access, chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { CertificateError, errorMessage, InvalidArgumentError } from '../errors.js'
import { checkKeyDirectory, KEY_DIR_MODE, KEY_FILE_MODE, readPrivateKeyFile } from './key-file.js'
import { derToPem, pemToDer } from './pem.js'
import { canonicalSerial } from './x509-fields.js'
import { OID_CRL_NUMBER, readCaCrl } from './crl.js'

/** Key types `issueCert` can create. Only `rsa` works with Python fedmsg (crypto `x509`). */
export type CertKeyType = 'rsa' | 'ec' | 'ed25519'

/** CN of a CA made by {@link initCa} without `cn`. */
export const DEFAULT_CA_CN = 'gilmsg CA'
/** Validity of a CA made by {@link initCa} without `days`. */
export const DEFAULT_CA_DAYS = 3650
/** Validity of a certificate made by {@link issueCert} without `days`. */
export const DEFAULT_CERT_DAYS = 365
/**
 * Days until a CRL's nextUpdate. Past it the CRL is stale: verifiers still enforce it but
 * report it on every start and reload, so re-sign it ({@link renewCrl}, `gilmsg certs crl`,
 * or any {@link revokeCert}) before then.
 */
export const DEFAULT_CRL_DAYS = 365
/** Certificates and CRLs are valid from this long before their creation, to tolerate clock skew between hosts. */
export const NOT_BEFORE_BACKDATE_MS = 5 * 60 * 1000
/** RSA modulus size of every RSA key made here. */
export const RSA_BITS = 2048

const DAY_MS = 24 * 60 * 60 * 1000
const CA_CERT = 'ca.crt'
const CA_KEY = 'ca.key'
const CRL = 'crl.pem'
const NAME_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9._@+-]*$/
const SHA256_DIGEST_INFO = Buffer.from('3031300d060960864801650304020105000420', 'hex')
const RSA_SHA256: RsaHashedImportParams = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }
const subtle = webcrypto.subtle
const provider = webcrypto

type CryptoKey = webcrypto.CryptoKey
type RsaHashedImportParams = webcrypto.RsaHashedImportParams

/** Options of CRL (re-)signing. */
export interface CrlOptions {
  /** nextUpdate = thisUpdate + crlDays. Default {@link DEFAULT_CRL_DAYS}. */
  readonly crlDays?: number
  /** Default: now minus {@link NOT_BEFORE_BACKDATE_MS}, so that hosts whose clock is slightly behind accept the new CRL. */
  readonly thisUpdate?: Date
  /** Overrides `crlDays`. */
  readonly nextUpdate?: Date
}

/** Options of {@link initCa}. */
export interface InitCaOptions extends CrlOptions {
  /** Default {@link DEFAULT_CA_CN}. */
  readonly cn?: string
  /** Default {@link DEFAULT_CA_DAYS}. */
  readonly days?: number
  /** Default: now minus {@link NOT_BEFORE_BACKDATE_MS}. */
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
  /** Default: now minus {@link NOT_BEFORE_BACKDATE_MS}. */
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

interface Ca {
  readonly key: KeyObject
  readonly signingKey: CryptoKey
  readonly node: X509Certificate
  readonly peculiar: x509.X509Certificate
  readonly forge: forge.pki.Certificate
  readonly keyId: string | undefined
}

interface RevokedEntry {
  readonly serialNumber: string
  readonly revocationDate: Date
  readonly reason?: x509.X509CrlReason
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path)
    return true
  } catch {
    return false
  }
}

async function readText(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw new CertificateError(`cannot read the ${what} ${path}: ${code === 'ENOENT' ? 'file not found' : errorMessage(err)}`, { cause: err })
  }
}

async function writeAtomic(path: string, data: string, mode: number): Promise<void> {
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

function checkDays(days: number, what: string): number {
  if (!(Number.isFinite(days) && days > 0)) throw InvalidArgumentError.format(what, 'a positive number of days', days)
  return days
}

function wholeSeconds(date: Date): Date {
  return new Date(Math.floor(date.getTime() / 1000) * 1000)
}

function validity(days: number, notBefore: Date | undefined, notAfter: Date | undefined): { notBefore: Date; notAfter: Date } {
  checkDays(days, 'days')
  const from = wholeSeconds(notBefore ?? new Date(Date.now() - NOT_BEFORE_BACKDATE_MS))
  const to = wholeSeconds(notAfter ?? new Date(from.getTime() + days * DAY_MS))
  if (Number.isNaN(from.getTime()) || Number.isNaN(to.getTime()) || to.getTime() <= from.getTime()) {
    throw new InvalidArgumentError(`invalid validity: notAfter (${String(to)}) must be after notBefore (${String(from)})`)
  }
  return { notBefore: from, notAfter: to }
}

function randomSerial(): string {
  const bytes = randomBytes(16)
  bytes[0] = (bytes[0] as number) & 0x7f || 0x01
  return bytes.toString('hex')
}

function generateKey(type: CertKeyType): Promise<KeyObject> {
  return new Promise((resolve, reject) => {
    const done = (err: Error | null, _publicKey: KeyObject, privateKey: KeyObject): void => {
      if (err !== null) reject(new CertificateError(`cannot generate a ${type} key: ${err.message}`, { cause: err }))
      else resolve(privateKey)
    }
    if (type === 'rsa') generateKeyPair('rsa', { modulusLength: RSA_BITS }, done)
    else if (type === 'ec') generateKeyPair('ec', { namedCurve: 'prime256v1' }, done)
    else generateKeyPair('ed25519', {}, done)
  })
}

function pkcs8Pem(key: KeyObject): string {
  return key.export({ type: 'pkcs8', format: 'pem' }).toString()
}

function spkiDer(key: KeyObject): Buffer {
  return createPublicKey(key).export({ type: 'spki', format: 'der' })
}

function forgeSigningKey(key: KeyObject): forge.pki.rsa.PrivateKey {
  const signer = {
    sign(md: forge.md.MessageDigest): forge.Bytes {
      if (md.algorithm !== 'sha256') throw new CertificateError(`unexpected certificate digest ${md.algorithm}`)
      const digestInfo = Buffer.concat([SHA256_DIGEST_INFO, Buffer.from(md.digest().getBytes(), 'binary')])
      return privateEncrypt({ key, padding: constants.RSA_PKCS1_PADDING }, digestInfo).toString('binary')
    },
  }
  return signer as unknown as forge.pki.rsa.PrivateKey
}

function forgeCnAttrs(cn: string): forge.pki.CertificateField[] {
  return [{ shortName: 'CN', value: cn, valueTagClass: forge.asn1.Type.UTF8 as unknown as forge.asn1.Class }]
}

interface ForgeCertParams {
  readonly serial: string
  readonly subject: forge.pki.CertificateField[]
  readonly issuer: forge.pki.CertificateField[]
  readonly notBefore: Date
  readonly notAfter: Date
  readonly publicKey: KeyObject
  readonly extensions: unknown[]
  readonly signWith: KeyObject
}

function forgeRsaCertificate(p: ForgeCertParams): Buffer {
  const cert = forge.pki.createCertificate()
  cert.serialNumber = p.serial
  cert.validity.notBefore = p.notBefore
  cert.validity.notAfter = p.notAfter
  cert.setSubject(p.subject)
  cert.setIssuer(p.issuer)
  cert.publicKey = forge.pki.publicKeyFromPem(createPublicKey(p.publicKey).export({ type: 'spki', format: 'pem' }).toString())
  cert.setExtensions(p.extensions)
  cert.sign(forgeSigningKey(p.signWith), forge.md.sha256.create())
  return pemToDer(forge.pki.certificateToPem(cert), 'CERTIFICATE')
}

async function importCaSigningKey(key: KeyObject): Promise<CryptoKey> {
  return subtle.importKey('pkcs8', key.export({ type: 'pkcs8', format: 'der' }), RSA_SHA256, false, ['sign'])
}

async function loadCa(dir: string): Promise<Ca> {
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
  const peculiar = new x509.X509Certificate(der)
  return {
    key,
    signingKey: await importCaSigningKey(key),
    node,
    peculiar,
    forge: forge.pki.certificateFromPem(derToPem(der, 'CERTIFICATE')),
    keyId: peculiar.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId,
  }
}

function caIssued(ca: Ca, cert: X509Certificate): boolean {
  return cert.checkIssued(ca.node) && cert.verify(ca.node.publicKey)
}

// Serial as node prints it, lowercased: hex of the magnitude, whole bytes (as the CRL lists it).
function serialHex(cert: X509Certificate): string {
  return cert.serialNumber.toLowerCase()
}

// cRLNumber extension value: a DER INTEGER, encoded by node-forge.
function encodeCrlNumber(value: bigint): Buffer {
  const bytes = new forge.jsbn.BigInteger(value.toString(16), 16).toByteArray().map((b) => b & 0xff)
  const integer = forge.asn1.create(forge.asn1.Class.UNIVERSAL, forge.asn1.Type.INTEGER, false, Buffer.from(bytes).toString('binary'))
  return Buffer.from(forge.asn1.toDer(integer).getBytes(), 'binary')
}

async function readCrlEntries(crlPath: string, ca: Ca): Promise<{ entries: RevokedEntry[]; number: bigint }> {
  if (!(await exists(crlPath))) return { entries: [], number: 0n }
  const crl = readCaCrl(await readText(crlPath, 'CRL'), ca.node, `the CRL ${crlPath}`)
  const entries = crl.entries.map((e) => ({
    serialNumber: e.serial,
    revocationDate: new Date(e.revocationDate),
    ...(e.reason !== undefined ? { reason: e.reason as x509.X509CrlReason } : {}),
  }))
  return { entries, number: crl.crlNumber ?? 0n }
}

async function writeCrl(crlPath: string, ca: Ca, entries: readonly RevokedEntry[], number: bigint, opts: CrlOptions): Promise<CrlResult> {
  const thisUpdate = wholeSeconds(opts.thisUpdate ?? new Date(Date.now() - NOT_BEFORE_BACKDATE_MS))
  const nextUpdate = wholeSeconds(opts.nextUpdate ?? new Date(thisUpdate.getTime() + checkDays(opts.crlDays ?? DEFAULT_CRL_DAYS, 'crlDays') * DAY_MS))
  if (!(nextUpdate.getTime() > thisUpdate.getTime())) throw new CertificateError('the CRL nextUpdate must be after thisUpdate')
  const extensions: x509.Extension[] = [new x509.Extension(OID_CRL_NUMBER, false, encodeCrlNumber(number))]
  if (ca.keyId !== undefined) extensions.push(new x509.AuthorityKeyIdentifierExtension(ca.keyId))
  const crl = await x509.X509CrlGenerator.create(
    {
      issuer: ca.peculiar.subjectName,
      thisUpdate,
      nextUpdate,
      entries: entries.map((e) => ({ ...e })),
      extensions,
      signingAlgorithm: RSA_SHA256,
      signingKey: ca.signingKey,
    },
    provider,
  )
  await writeAtomic(crlPath, derToPem(Buffer.from(crl.rawData), 'X509 CRL'), 0o644)
  return { crlPath, crlNumber: number, revokedCount: entries.length, thisUpdate, nextUpdate }
}

function checkName(name: string): void {
  if (!NAME_PATTERN.test(name) || name === 'ca') {
    throw new InvalidArgumentError(`invalid certificate name ${JSON.stringify(name)}: expected letters, digits and . _ @ + - (not "ca")`)
  }
}

/**
 * Creates `dir` with mode 0700 if it is missing; refuses an existing one that group or
 * others can write (`KeyPermissionError`), since it is to hold private keys.
 */
async function keyDirectory(dir: string): Promise<void> {
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

/**
 * Creates a CA in `dir` (created with mode 0700 if missing): `ca.key` (RSA-2048, PKCS#8,
 * mode 0600), `ca.crt` (self-signed, CA:true, keyCertSign + cRLSign) and `crl.pem` (empty
 * CRL, next update after {@link DEFAULT_CRL_DAYS}). Rejects with {@link CertificateError}
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
  await writeAtomic(caCertPath, derToPem(der, 'CERTIFICATE'), 0o644)
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
      : await peculiarCertificate(ca, key, keyType, cn, serial, notBefore, notAfter)
  const made = new X509Certificate(der)
  if (!caIssued(ca, made)) throw new CertificateError(`internal error: the certificate made for ${name} does not verify with the CA`)
  await writeAtomic(keyPath, pkcs8Pem(key), KEY_FILE_MODE)
  await writeAtomic(certPath, derToPem(der, 'CERTIFICATE'), 0o644)
  return { name, cn, serial: serialHex(made), keyType, certPath, keyPath, notBefore, notAfter }
}

async function peculiarCertificate(
  ca: Ca,
  key: KeyObject,
  keyType: 'ec' | 'ed25519',
  cn: string,
  serial: string,
  notBefore: Date,
  notAfter: Date,
): Promise<Buffer> {
  const algorithm = keyType === 'ec' ? { name: 'ECDSA', namedCurve: 'P-256' } : { name: 'Ed25519' }
  const publicKey = await subtle.importKey('spki', spkiDer(key), algorithm, true, ['verify'])
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    await x509.SubjectKeyIdentifierExtension.create(publicKey, false, provider),
  ]
  if (ca.keyId !== undefined) extensions.push(new x509.AuthorityKeyIdentifierExtension(ca.keyId))
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: serial,
      subject: new x509.Name([{ CN: [{ utf8String: cn }] }]),
      issuer: ca.peculiar.subjectName,
      notBefore,
      notAfter,
      publicKey,
      signingKey: ca.signingKey,
      signingAlgorithm: RSA_SHA256,
      extensions,
    },
    provider,
  )
  return Buffer.from(cert.rawData)
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

/** One leaf of {@link createTestPki}. */
export interface TestPkiLeafSpec extends IssueCertOptions {
  readonly name: string
}

/** A leaf made by {@link createTestPki}, with its PEM texts. */
export interface TestPkiLeaf extends IssuedCert {
  readonly certPem: string
  readonly keyPem: string
}

/** What {@link createTestPki} made. */
export interface TestPki {
  readonly dir: string
  readonly caCertPath: string
  readonly caKeyPath: string
  readonly crlPath: string
  readonly caPem: string
  /** The CRL as written by {@link initCa}, before any revocation. */
  readonly crlPem: string
  readonly leaves: ReadonlyMap<string, TestPkiLeaf>
  /** The leaf called `name`; throws if there is none. */
  leaf(name: string): TestPkiLeaf
}

/**
 * For tests: a CA in `dir` (see {@link initCa}; `ca` options pass through) and the given
 * leaves, issued concurrently. RSA keys cost about 50-100 ms each to generate.
 */
export async function createTestPki(dir: string, leaves: readonly TestPkiLeafSpec[], ca: InitCaOptions = {}): Promise<TestPki> {
  const made = await initCa(dir, ca)
  const issued = await Promise.all(
    leaves.map(async ({ name, ...opts }) => {
      const cert = await issueCert(dir, name, opts)
      const [certPem, keyPem] = await Promise.all([readFile(cert.certPath, 'utf8'), readFile(cert.keyPath, 'utf8')])
      return { ...cert, certPem, keyPem }
    }),
  )
  const map = new Map(issued.map((leaf) => [leaf.name, leaf]))
  return {
    dir,
    caCertPath: made.caCertPath,
    caKeyPath: made.caKeyPath,
    crlPath: made.crlPath,
    caPem: await readFile(made.caCertPath, 'utf8'),
    crlPem: await readFile(made.crlPath, 'utf8'),
    leaves: map,
    leaf(name: string): TestPkiLeaf {
      const leaf = map.get(name)
      if (leaf === undefined) throw new CertificateError(`no test leaf named ${JSON.stringify(name)}`)
      return leaf
    },
  }
}
