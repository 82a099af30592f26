/**
 * Case 2: signing and verifying per crypto mode, in this process.
 *
 * gilmsg sign: `Signer.sign(canonical)` (node:crypto sign with the key parsed
 * once, plus the wrapped base64 of the signature). Raw: `crypto.sign` of the
 * same bytes with the same KeyObject.
 * gilmsg verify: `Verifier.verify(fields)` with a warm certificate cache (base64
 * unwrap, cache lookup, CA and certificate dates, CRL, digest choice,
 * node:crypto verify, routing policy). Raw: `crypto.verify` of the same bytes
 * and signature with the certificate's public key.
 */
import { createPrivateKey, sign, verify, X509Certificate, type KeyObject } from 'node:crypto'
import { buildEnvelope, canonicalBytes, createSigner, createVerifier, unwrapBase64 } from '../../src/internal.js'
import { median } from '../lib/stats.js'
import { compareOps, opsPerSecond } from '../lib/timing.js'
import { line, type BenchCase, type BenchContext, type CaseResult } from '../lib/types.js'
import { APP_PREFIX, certname, ED25519_CERT } from '../lib/setup.js'
import { samplePayload } from './canonical.js'

/** The four signing set-ups: mode, certificate, and the digest node:crypto is given. */
export const CRYPTO_VARIANTS = [
  { id: 'x509.rsa2048', name: 'x509 (RSA-2048, SHA-1)', mode: 'x509', cert: certname('rsa', 'pub'), digest: 'sha1' },
  { id: 'x509_sha256.rsa2048', name: 'x509_sha256 (RSA-2048, SHA-256)', mode: 'x509_sha256', cert: certname('rsa', 'pub'), digest: 'sha256' },
  { id: 'x509_sha256.p256', name: 'x509_sha256 (ECDSA P-256)', mode: 'x509_sha256', cert: certname('ec', 'pub'), digest: 'sha256' },
  { id: 'x509_sha256.ed25519', name: 'x509_sha256 (Ed25519)', mode: 'x509_sha256', cert: ED25519_CERT, digest: null },
] as const

/** Calls per second of `once` (one core, this process): the median of `reps` runs of `ms` after a warm-up. */
function rawRate(once: () => void, ms: number, reps: number): { rate: number; runs: number[] } {
  opsPerSecond(once, Math.max(20, ms / 4), 4)
  const runs = Array.from({ length: reps }, () => opsPerSecond(once, ms, 4))
  return { rate: median(runs), runs }
}

/** Raw `crypto.sign` rate of `keyPem` over 700 bytes, as {@link rawRate}. */
export function rawSignRate(keyPem: string, digest: string | null, ms: number, reps: number): { rate: number; runs: number[] } {
  const key = createPrivateKey(keyPem)
  const data = Buffer.alloc(700, 'a')
  return rawRate(() => void sign(digest, data, key), ms, reps)
}

/** Raw `crypto.verify` rate of a signature by `keyPem` over 700 bytes, with `certPem`'s public key, as {@link rawRate}. */
export function rawVerifyRate(keyPem: string, certPem: string, digest: string | null, ms: number, reps: number): { rate: number; runs: number[] } {
  const data = Buffer.alloc(700, 'a')
  const signature = sign(digest, data, createPrivateKey(keyPem))
  const publicKey = new X509Certificate(certPem).publicKey
  return rawRate(() => {
    if (!verify(digest, data, publicKey, signature)) throw new Error('raw verify failed')
  }, ms, reps)
}

export const cryptoCase: BenchCase = {
  id: 'crypto',
  title: 'signing and verifying',
  async run(ctx: BenchContext): Promise<CaseResult[]> {
    const pki = await ctx.pki()
    const verifier = await createVerifier({ caPem: pki.caPem, crlPem: pki.crlPem })
    const ms = ctx.quick ? 30 : 500
    const reps = ctx.quick ? 1 : 3
    const out: CaseResult[] = []
    for (const v of CRYPTO_VARIANTS) {
      const leaf = pki.leaf(v.cert)
      const signer = createSigner({ mode: v.mode, keyPem: leaf.keyPem, certPem: leaf.certPem })
      const key: KeyObject = createPrivateKey(leaf.keyPem)
      const publicKey = new X509Certificate(leaf.certPem).publicKey
      const topic = `${APP_PREFIX}crypto`
      const env = buildEnvelope({ topic, msg: samplePayload(), i: 1, nowMs: Date.now(), username: 'bench' })
      env.set('crypto', v.mode)
      const canonical = canonicalBytes(env)
      const signatureField = signer.sign(canonical)
      const signature = unwrapBase64(signatureField)
      const fields = { crypto: v.mode, topic, canonical, signature: signatureField, certificate: signer.certificateField }
      const check = verifier.verify(fields)
      if (!check.ok) throw new Error(`${v.name}: the verifier refused a good signature: ${check.reason} ${check.detail}`)
      if (!verify(v.digest, canonical, publicKey, signature)) throw new Error(`${v.name}: raw verify failed`)

      ctx.progress(`crypto: ${v.name}: sign`)
      const s = compareOps(
        () => void signer.sign(canonical),
        () => void sign(v.digest, canonical, key),
        { ms, reps, batch: 4 },
      )
      ctx.progress(`crypto: ${v.name}: verify`)
      const r = compareOps(
        () => void verifier.verify(fields),
        () => void verify(v.digest, canonical, publicKey, signature),
        { ms, reps, batch: 8 },
      )
      out.push(
        line({
          id: `crypto.${v.id}.sign`,
          name: `${v.name}: Signer.sign vs crypto.sign`,
          figure: s.a,
          unit: 'signs/s',
          baseline: s.b,
          baselineUnit: 'signs/s',
          notes: `${canonical.length} B signed`,
          details: { mode: v.mode, digest: v.digest, bytes: canonical.length, runs: { gilmsg: s.aRuns, baseline: s.bRuns } },
        }),
        line({
          id: `crypto.${v.id}.verify`,
          name: `${v.name}: Verifier.verify (cached certificate) vs crypto.verify`,
          figure: r.a,
          unit: 'verifies/s',
          baseline: r.b,
          baselineUnit: 'verifies/s',
          details: { mode: v.mode, digest: v.digest, runs: { gilmsg: r.aRuns, baseline: r.bRuns } },
        }),
      )
    }
    return out
  },
}
