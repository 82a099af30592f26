/**
 * Which `node:crypto` algorithm a crypto mode uses for a key.
 */
import type { KeyObject } from 'node:crypto'
import { CryptoMode } from './types.js'

/** Key types gilmsg signs with. */
export type KeyKind = 'rsa' | 'ec-p256' | 'ed25519'

/** The gilmsg key kind of a key, or undefined for anything else (DSA, RSA-PSS, other curves, Ed448...). */
export function keyKind(key: KeyObject): KeyKind | undefined {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return 'rsa'
    case 'ed25519':
      return 'ed25519'
    case 'ec':
      return key.asymmetricKeyDetails?.namedCurve === 'prime256v1' ? 'ec-p256' : undefined
    default:
      return undefined
  }
}

/** Human name of a key's type, for error messages. */
export function describeKey(key: KeyObject): string {
  const type = key.asymmetricKeyType ?? key.type
  const curve = key.asymmetricKeyDetails?.namedCurve
  return curve === undefined ? type : `${type} (${curve})`
}

/** The digest to pass to `crypto.sign`/`crypto.verify` (`null` for Ed25519), or why the pair is unsupported. */
export type DigestChoice = { readonly digest: string | null } | { readonly error: string }

/** The message used when mode x509 meets a non-RSA key. */
export const X509_NEEDS_RSA = 'crypto_backend x509 (fedmsg) needs an RSA key; use x509_sha256 for EC/Ed25519'

/** The digest for signing in `mode` with a key of `kind` (see {@link DigestChoice}). */
export function digestFor(mode: string, kind: KeyKind | undefined): DigestChoice {
  if (mode === CryptoMode.X509) {
    return kind === 'rsa' ? { digest: 'sha1' } : { error: X509_NEEDS_RSA }
  }
  if (mode === CryptoMode.X509Sha256) {
    if (kind === undefined) return { error: 'crypto x509_sha256 needs an RSA, ECDSA P-256 or Ed25519 key' }
    return { digest: kind === 'ed25519' ? null : 'sha256' }
  }
  return { error: `unknown crypto mode ${JSON.stringify(mode)}` }
}
