import { X509Certificate } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { crlMemoryDir, crlPath, localCopyOf, resolveCertname } from '../../bus/from-config.js'
import type { GilmsgConfig } from '../../config/config.js'
import { readCaCrl, crlRollback, crlStatus, type CheckedCrl } from '../../crypto/crl.js'
import { fileCrlMemory } from '../../crypto/crl-memory.js'
import { pemToDer } from '../../crypto/pem.js'
import { loadSigner } from '../../crypto/signer.js'
import { canonicalSerial, certificateValidity, subjectCommonName } from '../../crypto/x509-fields.js'
import { errorMessage } from '../../errors.js'
import { CERT_WARN_DAYS, CRL_WARN_DAYS, DAY_MS, fail, iso, ok, span, warn, type CheckResult } from './result.js'

interface Loaded<T> {
  readonly value?: T
  readonly error?: string
}

function readCert(path: string): Loaded<X509Certificate> {
  try {
    const der = pemToDer(readFileSync(path, 'utf8'), 'CERTIFICATE')
    return { value: new X509Certificate(der) }
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    return { error: code === 'ENOENT' ? `${path}: file not found` : `${path}: ${errorMessage(e)}` }
  }
}

/** The validity line of a certificate: fail outside its period, warn under {@link CERT_WARN_DAYS} days left. */
function expiry(name: string, what: string, cert: X509Certificate, now: number): CheckResult {
  const { notBefore, notAfter } = certificateValidity(cert)
  if (now < notBefore.getTime()) return fail(name, `${what} is not valid before ${iso(notBefore.getTime())} (check this host's clock)`)
  const left = notAfter.getTime() - now
  if (left < 0) return fail(name, `${what} expired at ${iso(notAfter.getTime())}, ${span(-left)} ago: every message it signs is refused`)
  const detail = `${what} expires ${iso(notAfter.getTime())}, in ${span(left)}`
  return left < CERT_WARN_DAYS * DAY_MS ? warn(name, `${detail} (under ${CERT_WARN_DAYS} days: renew it)`) : ok(name, detail)
}

/**
 * The certificate and key checks: the CA (`ca`, `ca expiry`), this process's signing
 * certificate (`cert chain`, `cert expiry`), its private key (`key`: permissions, matches
 * the certificate) and the CRL (`crl`: signature, rollback; `crl update`: age and nextUpdate).
 */
export function pkiChecks(config: GilmsgConfig, now: number): CheckResult[] {
  const out: CheckResult[] = []
  const caLocation = config.ca_cert_location ?? join(config.ssldir, 'ca.crt')
  const { path: caPath, remote: caRemote } = localCopyOf(caLocation, config.ca_cert_cache, 'ca')
  const ca = readCert(caPath)
  if (ca.value === undefined && caRemote && !existsSync(caPath)) {
    out.push(warn('ca', `${caLocation} is fetched when a gilmsg process starts, and is not cached yet (${caPath})`))
  } else if (ca.value !== undefined) {
    out.push(ok('ca', `${caPath}: ${ca.value.subject.replaceAll('\n', ', ')}`))
    out.push(expiry('ca expiry', 'the CA certificate', ca.value, now))
  } else if (config.validate_signatures) {
    out.push(fail('ca', `cannot read the CA certificate (ca_cert_location): ${ca.error ?? ''}`))
  } else {
    out.push(warn('ca', `validate_signatures is false and no CA is readable (${ca.error ?? ''}): messages are not validated`))
  }

  const crl = crlCheck(config, ca.value, now)
  out.push(...crl.results)

  if (!config.sign_messages) {
    out.push(warn('cert chain', 'sign_messages is false: this process signs nothing, and cannot acknowledge guaranteed messages'))
    return out
  }
  const certname = resolveCertname(config)
  const certPath = join(config.ssldir, `${certname}.crt`)
  const cert = readCert(certPath)
  if (cert.value === undefined) {
    out.push(fail('cert chain', `cannot read the signing certificate (certname "${certname}"): ${cert.error ?? ''}`))
  } else {
    out.push(chain(certPath, cert.value, ca.value, crl.crl))
    out.push(expiry('cert expiry', 'the signing certificate', cert.value, now))
  }
  try {
    const signer = loadSigner({ mode: config.crypto_backend, ssldir: config.ssldir, certname })
    out.push(ok('key', `${join(config.ssldir, `${certname}.key`)}: private, matches the certificate of ${signer.cn} (${config.crypto_backend})`))
  } catch (e) {
    out.push(fail('key', errorMessage(e)))
  }
  return out
}

function chain(path: string, cert: X509Certificate, ca: X509Certificate | undefined, crl: CheckedCrl | undefined): CheckResult {
  const cn = subjectCommonName(cert)
  const who = `${path}: CN=${cn ?? '(none)'}, serial ${canonicalSerial(cert.serialNumber)}`
  if (cn === undefined) return fail('cert chain', `${who}: the subject has no CN`)
  if (ca === undefined) return fail('cert chain', `${who}: no CA to check it against`)
  let chained: boolean
  try {
    chained = cert.checkIssued(ca) && cert.verify(ca.publicKey)
  } catch {
    chained = false
  }
  if (!chained) return fail('cert chain', `${who} is not issued by the CA (${ca.subject.replaceAll('\n', ', ')}): every message it signs is refused`)
  if (crl?.revoked.has(canonicalSerial(cert.serialNumber))) return fail('cert chain', `${who} is revoked by the CRL: every message it signs is refused`)
  return ok('cert chain', `${who}, issued by the CA${crl !== undefined ? ', not revoked' : ''}`)
}

function crlCheck(config: GilmsgConfig, ca: X509Certificate | undefined, now: number): { results: CheckResult[]; crl?: CheckedCrl } {
  const { path: location, explicit } = crlPath(config)
  const { path, remote } = localCopyOf(location, config.crl_cache, 'crl')
  if (remote && !existsSync(path)) {
    return { results: [warn('crl', `${location} is fetched when a gilmsg process starts, and is not cached yet (${path})`)] }
  }
  if (!explicit && !existsSync(path)) {
    return { results: [warn('crl', `no CRL (crl_location is unset and ${path} does not exist): no certificate is considered revoked`)] }
  }
  if (!config.validate_signatures && !existsSync(path)) return { results: [warn('crl', `validate_signatures is false; ${path} does not exist`)] }
  if (ca === undefined) return { results: [fail('crl', `${path}: no CA to check its signature against`)] }
  let crl: CheckedCrl
  try {
    crl = readCaCrl(readFileSync(path, 'utf8'), ca, path)
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    return { results: [fail('crl', code === 'ENOENT' ? `${path} (crl_location): file not found` : errorMessage(e))] }
  }
  const number = crl.crlNumber === undefined ? 'no cRLNumber' : `cRLNumber ${crl.crlNumber}`
  let verdict = ok('crl', `${path}: signed by the CA, ${number}, ${crl.revoked.size} revoked`)
  try {
    const seen = fileCrlMemory(crlMemoryDir()).read(ca.fingerprint256.replaceAll(':', '').toLowerCase())
    const rollback = crlRollback(seen, crl)
    if (rollback !== undefined) verdict = fail('crl', `${path} is older than a CRL already accepted for this CA (${rollback}): gilmsg refuses it`)
  } catch (e) {
    verdict = warn('crl', `${verdict.detail}; cannot compare it with the newest CRL seen: ${errorMessage(e)}`)
  }
  return { results: [verdict, freshness(path, crl, now)], crl }
}

function freshness(path: string, crl: CheckedCrl, now: number): CheckResult {
  const name = 'crl update'
  const s = crlStatus(crl, now)
  if (now < crl.thisUpdate) return fail(name, `${path} is not valid before ${iso(crl.thisUpdate)}: every message is refused until then (check this host's clock)`)
  const age = `issued ${span(now - crl.thisUpdate)} ago`
  if (s.stale) {
    return fail(
      name,
      `${path} is stale: its nextUpdate ${iso(crl.nextUpdate)} passed ${span(now - crl.nextUpdate)} ago (${age}); ` +
        'later revocations are unknown: re-sign it (gilmsg certs crl --dir DIR) and install it here',
    )
  }
  const left = crl.nextUpdate - now
  const detail = `${age}, next update ${iso(crl.nextUpdate)}, in ${span(left)}`
  const warnMs = Math.min(CRL_WARN_DAYS * DAY_MS, (crl.nextUpdate - crl.thisUpdate) / 4)
  return left < warnMs ? warn(name, `${detail}: re-sign it soon (gilmsg certs crl --dir DIR)`) : ok(name, detail)
}
