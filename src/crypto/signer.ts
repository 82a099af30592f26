/**
 * Signing envelopes with a certificate's private key (fedmsg's `x509` and gilmsg's
 * `x509_sha256` modes).
 */
import { createPrivateKey, createPublicKey, sign, X509Certificate } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { CertificateError, errorMessage, SigningError } from '../errors.js'
import { describeKey, digestFor, keyKind } from './algorithms.js'
import { readPrivateKeyFile } from './key-file.js'
import { certificateField, derToPem, pemToDer, wrapBase64 } from './pem.js'
import { CRYPTO_MODES } from './types.js'
import type { CryptoMode, Signer } from './types.js'
import { subjectCommonName } from './x509-fields.js'

/** What {@link createSigner} needs. */
export interface SignerOptions {
  readonly mode: CryptoMode
  /** Unencrypted private key PEM (PKCS#8, PKCS#1 or SEC1). */
  readonly keyPem: string
  /** The certificate; text around the first CERTIFICATE block (an `openssl -text` dump) is ignored. */
  readonly certPem: string
}

/** What {@link loadSigner} needs: fedmsg's ssldir layout. */
export interface LoadSignerOptions {
  readonly mode: CryptoMode
  /** Directory holding `<certname>.crt` and `<certname>.key`. */
  readonly ssldir: string
  readonly certname: string
}

function spki(key: KeyObject): Buffer {
  return key.export({ type: 'spki', format: 'der' })
}

/**
 * A {@link Signer} for a key and its certificate. The private key is parsed once.
 * The `certificate` field carries the certificate re-encoded as canonical PEM (as
 * fedmsg does), whatever surrounds it in `certPem`.
 *
 * Throws {@link CertificateError} when the key or certificate cannot be parsed, the
 * certificate subject has no CN, or the key is not the certificate's key; throws
 * {@link SigningError} when the mode is unknown or the key type is unsupported by the
 * mode (mode `x509` needs RSA; `x509_sha256` takes RSA, ECDSA P-256 or Ed25519).
 */
export function createSigner(options: SignerOptions): Signer {
  const { mode } = options
  if (!CRYPTO_MODES.includes(mode)) {
    throw new SigningError(`unknown crypto mode ${JSON.stringify(mode)}; expected one of ${CRYPTO_MODES.join(', ')}`)
  }

  let der: Buffer
  let cert: X509Certificate
  let cn: string | undefined
  try {
    der = pemToDer(options.certPem, 'CERTIFICATE')
    cert = new X509Certificate(der)
    if (!cert.raw.equals(der)) throw new CertificateError('trailing bytes or not DER')
    cn = subjectCommonName(cert)
  } catch (err) {
    throw new CertificateError(`cannot parse the signing certificate: ${errorMessage(err)}`, { cause: err })
  }
  if (cn === undefined) {
    throw new CertificateError(`the signing certificate (subject ${JSON.stringify(cert.subject)}) has no CN`)
  }

  let key: KeyObject
  try {
    key = createPrivateKey(options.keyPem)
  } catch (err) {
    throw new CertificateError(`cannot parse the private key: ${errorMessage(err)}`, { cause: err })
  }

  const choice = digestFor(mode, keyKind(key))
  if ('error' in choice) {
    throw new SigningError(`${choice.error} (got a ${describeKey(key)} key)`)
  }
  if (!spki(createPublicKey(key)).equals(spki(cert.publicKey))) {
    throw new CertificateError(`the private key does not match the certificate of ${JSON.stringify(cn)}`)
  }

  return new KeySigner(mode, cn, certificateField(derToPem(der, 'CERTIFICATE')), key, choice.digest)
}

/**
 * Reads `<ssldir>/<certname>.crt` and `<ssldir>/<certname>.key` (synchronously: this runs
 * once at start-up) and makes a signer ({@link createSigner}). Throws
 * {@link CertificateError} naming the file that cannot be read,
 * `KeyPermissionError` when group or others can read or write the key or write its
 * directory (see `readPrivateKeyFile`), and the errors of {@link createSigner} with both
 * paths appended to the message.
 */
export function loadSigner(options: LoadSignerOptions): Signer {
  const certPath = join(options.ssldir, `${options.certname}.crt`)
  const keyPath = join(options.ssldir, `${options.certname}.key`)
  const read = (path: string, what: string): string => {
    try {
      return readFileSync(path, 'utf8')
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      const why = code === 'ENOENT' ? 'file not found' : errorMessage(err)
      throw new CertificateError(`cannot read the ${what} ${path}: ${why}`, { cause: err })
    }
  }
  const certPem = read(certPath, 'certificate')
  const keyPem = readPrivateKeyFile(keyPath)
  try {
    return createSigner({ mode: options.mode, keyPem, certPem })
  } catch (err) {
    const where = `${errorMessage(err)} (${certPath}, ${keyPath})`
    if (err instanceof SigningError) throw new SigningError(where, { cause: err })
    throw new CertificateError(where, { cause: err })
  }
}

class KeySigner implements Signer {
  readonly mode: CryptoMode
  readonly cn: string
  readonly certificateField: string
  readonly #key: KeyObject
  readonly #digest: string | null
  /** RSA: signing costs about a millisecond, worth the thread-pool hop. */
  readonly #onThreadPool: boolean

  constructor(mode: CryptoMode, cn: string, field: string, key: KeyObject, digest: string | null) {
    this.mode = mode
    this.cn = cn
    this.certificateField = field
    this.#key = key
    this.#digest = digest
    this.#onThreadPool = keyKind(key) === 'rsa'
  }

  sign(canonical: Buffer): string {
    try {
      return wrapBase64(sign(this.#digest, canonical, this.#key))
    } catch (err) {
      throw new SigningError(`signing failed: ${errorMessage(err)}`, { cause: err })
    }
  }

  signAsync(canonical: Buffer): Promise<string> {
    if (!this.#onThreadPool) {
      try {
        return Promise.resolve(this.sign(canonical))
      } catch (err) {
        return Promise.reject(err)
      }
    }
    return new Promise((resolve, reject) => {
      try {
        sign(this.#digest, canonical, this.#key, (err, signature) => {
          if (err !== null) reject(new SigningError(`signing failed: ${err.message}`, { cause: err }))
          else resolve(wrapBase64(signature))
        })
      } catch (err) {
        reject(new SigningError(`signing failed: ${errorMessage(err)}`, { cause: err }))
      }
    })
  }
}
