import type * as X509 from '@peculiar/x509'
import { webcrypto } from 'node:crypto'
import { CertificateError, errorMessage } from '../errors.js'
import { pemToDer } from './pem.js'

/** A CRL that {@link readCaCrl} accepted: it always has a nextUpdate. */
export type CaCrl = X509.X509Crl & { readonly nextUpdate: Date }

/**
 * Parses a CRL (PEM labelled `X509 CRL`, or `CRL` as `@peculiar/x509` writes
 * it) and checks that `ca` issued it: issuer name, signature, and a
 * nextUpdate (RFC 5280 requires one; `@peculiar/x509` also loses the entries
 * of a CRL without it). `x509` is the `@peculiar/x509` module, passed in so
 * that the verifier can keep loading it lazily. Throws a `CertificateError`
 * naming `what` (e.g. the file).
 */
export async function readCaCrl(x509: typeof X509, pem: string, ca: X509.X509Certificate, what = 'the CRL'): Promise<CaCrl> {
  let crl: X509.X509Crl
  try {
    crl = new x509.X509Crl(pemToDer(pem, pem.includes('-----BEGIN X509 CRL-----') ? 'X509 CRL' : 'CRL'))
  } catch (err) {
    throw new CertificateError(`cannot parse ${what}: ${errorMessage(err)}`, { cause: err })
  }
  const caName = ca.subjectName.toString()
  let signed: boolean
  try {
    // A PublicKey (not the certificate) makes @peculiar/x509 use the CRL's own hash.
    signed = crl.issuerName.toString() === caName && (await crl.verify({ publicKey: ca.publicKey }, webcrypto))
  } catch (err) {
    throw new CertificateError(`cannot check the signature of ${what}: ${errorMessage(err)}`, { cause: err })
  }
  if (!signed) throw new CertificateError(`${what} is not signed by the CA (${caName}; its issuer is ${crl.issuer})`)
  if (crl.nextUpdate === undefined) throw new CertificateError(`${what} has no nextUpdate`)
  return crl as CaCrl
}
