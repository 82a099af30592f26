/**
 * Building certificates and CRLs: the part of `gilmsg certs` that needs X.509 libraries.
 * Why each library:
 * - `node:crypto` generates every key and computes every signature (RSA PKCS#1 v1.5 with
 *   its DigestInfo, ECDSA, Ed25519); it parses and checks certificates but cannot create
 *   certificates or CRLs.
 * - node-forge encodes RSA certificates (the CA and RSA leaves, the ones Python fedmsg can
 *   use): it lays out the TBSCertificate and the final DER; the signature over the
 *   TBSCertificate is `node:crypto`'s, so no forge key object is ever made.
 * - `@peculiar/x509` encodes what node-forge cannot: EC P-256 and Ed25519 leaves, and CRLs.
 *   It signs through WebCrypto (`node:crypto`'s `webcrypto`), and needs `reflect-metadata`
 *   loaded first.
 */
import 'reflect-metadata'
import * as x509 from '@peculiar/x509'
import forge from 'node-forge'
import { createPublicKey, generateKeyPair, sign, webcrypto } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { CertificateError } from '../errors.js'
import { OID_CRL_NUMBER } from './crl.js'

/** Key types `issueCert` can create. Only `rsa` works with Python fedmsg (crypto `x509`). */
export type CertKeyType = 'rsa' | 'ec' | 'ed25519'

/** RSA modulus size of every RSA key made here. */
export const RSA_BITS = 2048

/** How the CA signs certificates and CRLs: sha256WithRSAEncryption. */
const RSA_SHA256: webcrypto.RsaHashedImportParams = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }
/** sha256WithRSAEncryption (RFC 4055). */
const OID_SHA256_WITH_RSA = '1.2.840.113549.1.1.11'
const subtle = webcrypto.subtle
const provider = webcrypto

/** The CA key as WebCrypto wants it for `@peculiar/x509`. */
export type CaSigningKey = webcrypto.CryptoKey

/** A CA certificate as each library sees it. */
export interface CaCertificate {
  readonly peculiar: x509.X509Certificate
  readonly forge: forge.pki.Certificate
  /** Its subjectKeyIdentifier (hex), if it has one. */
  readonly keyId: string | undefined
}

/** A CRL entry's reasonCode (RFC 5280 CRLReason). */
export type CrlReason = x509.X509CrlReason

/** One entry of a CRL. */
export interface RevokedEntry {
  readonly serialNumber: string
  readonly revocationDate: Date
  readonly reason?: CrlReason
}

export function generateKey(type: CertKeyType): Promise<KeyObject> {
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

export function pkcs8Pem(key: KeyObject): string {
  return key.export({ type: 'pkcs8', format: 'pem' }).toString()
}

export function spkiDer(key: KeyObject): Buffer {
  return createPublicKey(key).export({ type: 'spki', format: 'der' })
}

export async function importCaSigningKey(key: KeyObject): Promise<CaSigningKey> {
  return subtle.importKey('pkcs8', key.export({ type: 'pkcs8', format: 'der' }), RSA_SHA256, false, ['sign'])
}

/** The CA certificate `der` parsed by `@peculiar/x509` and node-forge. */
export function parseCaCertificate(der: Buffer, pem: string): CaCertificate {
  const peculiar = new x509.X509Certificate(der)
  return {
    peculiar,
    forge: forge.pki.certificateFromPem(pem),
    keyId: peculiar.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId,
  }
}

export function forgeCnAttrs(cn: string): forge.pki.CertificateField[] {
  // A UTF8String CN: @types/node-forge declares valueTagClass as an asn1.Class, though node-forge reads a tag (asn1.Type).
  return [{ shortName: 'CN', value: cn, valueTagClass: forge.asn1.Type.UTF8 as unknown as forge.asn1.Class }]
}

export interface ForgeCertParams {
  readonly serial: string
  readonly subject: forge.pki.CertificateField[]
  readonly issuer: forge.pki.CertificateField[]
  readonly notBefore: Date
  readonly notAfter: Date
  readonly publicKey: KeyObject
  readonly extensions: unknown[]
  /** The issuer's RSA key: signs the TBSCertificate with sha256WithRSAEncryption. */
  readonly signWith: KeyObject
}

function toDer(value: forge.asn1.Asn1): Buffer {
  return Buffer.from(forge.asn1.toDer(value).getBytes(), 'binary')
}

/** An RSA certificate laid out by node-forge and signed by `node:crypto`; its DER. */
export function forgeRsaCertificate(p: ForgeCertParams): Buffer {
  const cert = forge.pki.createCertificate()
  cert.serialNumber = p.serial
  cert.validity.notBefore = p.notBefore
  cert.validity.notAfter = p.notAfter
  cert.setSubject(p.subject)
  cert.setIssuer(p.issuer)
  cert.publicKey = forge.pki.publicKeyFromPem(createPublicKey(p.publicKey).export({ type: 'spki', format: 'pem' }).toString())
  cert.setExtensions(p.extensions)
  cert.signatureOid = cert.siginfo.algorithmOid = OID_SHA256_WITH_RSA
  // Encoded without a signature first, only to take its TBSCertificate (the first element).
  const unsigned = forge.pki.certificateToAsn1(cert).value
  const tbs = Array.isArray(unsigned) ? unsigned[0] : undefined
  if (tbs === undefined) throw new CertificateError('internal error: node-forge produced no TBSCertificate')
  cert.tbsCertificate = tbs
  cert.signature = sign('sha256', toDer(tbs), p.signWith).toString('binary')
  return toDer(forge.pki.certificateToAsn1(cert))
}

/** An EC P-256 or Ed25519 leaf made by `@peculiar/x509`, signed by the CA; its DER. */
export async function peculiarCertificate(
  ca: CaCertificate,
  signingKey: CaSigningKey,
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
      signingKey,
      signingAlgorithm: RSA_SHA256,
      extensions,
    },
    provider,
  )
  return Buffer.from(cert.rawData)
}

// cRLNumber extension value: a DER INTEGER, encoded by node-forge.
function encodeCrlNumber(value: bigint): Buffer {
  const bytes = new forge.jsbn.BigInteger(value.toString(16), 16).toByteArray().map((b) => b & 0xff)
  return toDer(forge.asn1.create(forge.asn1.Class.UNIVERSAL, forge.asn1.Type.INTEGER, false, Buffer.from(bytes).toString('binary')))
}

/** What a CRL says, besides its issuer. */
export interface CrlContent {
  readonly entries: readonly RevokedEntry[]
  readonly number: bigint
  readonly thisUpdate: Date
  readonly nextUpdate: Date
}

/** A CRL made by `@peculiar/x509` and signed by the CA (cRLNumber, and authorityKeyIdentifier when the CA has a key id); its DER. */
export async function signCrl(ca: CaCertificate, signingKey: CaSigningKey, c: CrlContent): Promise<Buffer> {
  const extensions: x509.Extension[] = [new x509.Extension(OID_CRL_NUMBER, false, encodeCrlNumber(c.number))]
  if (ca.keyId !== undefined) extensions.push(new x509.AuthorityKeyIdentifierExtension(ca.keyId))
  const crl = await x509.X509CrlGenerator.create(
    {
      issuer: ca.peculiar.subjectName,
      thisUpdate: c.thisUpdate,
      nextUpdate: c.nextUpdate,
      entries: c.entries.map((e) => ({ ...e })),
      extensions,
      signingAlgorithm: RSA_SHA256,
      signingKey,
    },
    provider,
  )
  return Buffer.from(crl.rawData)
}
