/**
 * Certificate fields as gilmsg needs them, read from `node:crypto`'s X509Certificate
 * (OpenSSL does the ASN.1): the subject CN, validity dates, a canonical serial.
 */
import type { X509Certificate } from 'node:crypto'
import { CertificateError } from '../errors.js'

const MONTHS: Readonly<Record<string, number>> = {
  Jan: 0, Feb: 1, Mar: 2, Apr: 3, May: 4, Jun: 5, Jul: 6, Aug: 7, Sep: 8, Oct: 9, Nov: 10, Dec: 11,
}
// OpenSSL's ASN1_TIME_print: "Jan  1 00:00:00 2040 GMT", optionally with fractional seconds.
const OPENSSL_TIME = /^([A-Z][a-z]{2}) +(\d{1,2}) (\d{2}):(\d{2}):(\d{2})(?:\.\d+)? (\d{1,4}) GMT$/
const HEX_PAIR = /^[0-9A-Fa-f]{2}$/
const HEX = /^[0-9a-f]+$/

/**
 * A serial number (hex, any case, any zero padding) as lowercase hex without leading
 * zeros (`'0'` for zero), so that `X509Certificate.serialNumber` (`'0ABC'`) and
 * `@peculiar/x509` serials (`'0abc'`, or with a `00` sign byte) compare equal.
 * Throws {@link CertificateError} for anything but hex digits.
 */
export function canonicalSerial(hex: string): string {
  const lower = hex.toLowerCase()
  if (!HEX.test(lower)) throw new CertificateError(`invalid serial number ${JSON.stringify(hex)}`)
  return lower.replace(/^0+/, '') || '0'
}

/**
 * The value of the first `attribute` (short name, e.g. `CN`) in a distinguished name as
 * `X509Certificate.subject` / `.issuer` print it: one RDN per line, multi-valued RDNs
 * joined by ` + `, values escaped as RFC 2253 (`\,` `\+` `\\` ... and a leading `\#` or
 * `\ `) plus `\XX` hex for control characters; other text, UTF-8 included, is printed as is.
 */
export function distinguishedNameAttribute(dn: string, attribute: string): string | undefined {
  for (const line of dn.split('\n')) {
    let i = 0
    while (i < line.length) {
      const eq = line.indexOf('=', i)
      if (eq < 0) break
      const type = line.slice(i, eq)
      let value = ''
      let j = eq + 1
      while (j < line.length) {
        const ch = line[j] as string
        if (ch === '\\') {
          const hex = line.slice(j + 1, j + 3)
          if (HEX_PAIR.test(hex)) {
            value += String.fromCharCode(parseInt(hex, 16))
            j += 3
          } else {
            value += line[j + 1] ?? ''
            j += 2
          }
        } else if (line.startsWith(' + ', j)) {
          break
        } else {
          value += ch
          j++
        }
      }
      if (type === attribute) return value
      i = j + 3
    }
  }
  return undefined
}

/**
 * The first commonName of the certificate's subject, in RDN order (the one fedmsg reads),
 * or undefined when the subject has none. Read from OpenSSL's printed subject (see
 * {@link distinguishedNameAttribute}); legacy string types come out as OpenSSL converts
 * them to UTF-8 (T61String as Latin-1).
 */
export function subjectCommonName(cert: X509Certificate): string | undefined {
  return distinguishedNameAttribute(cert.subject, 'CN')
}

/** Parses a date as `X509Certificate.validFrom` / `.validTo` print it; throws {@link CertificateError}. */
export function parseOpensslTime(text: string): Date {
  const m = OPENSSL_TIME.exec(text)
  const month = m === null ? undefined : MONTHS[m[1] as string]
  if (m === null || month === undefined) throw new CertificateError(`unexpected certificate time ${JSON.stringify(text)}`)
  const [day, hour, minute, second, year] = [m[2], m[3], m[4], m[5], m[6]].map(Number) as [number, number, number, number, number]
  const date = new Date(0)
  date.setUTCFullYear(year, month, day)
  date.setUTCHours(hour, minute, second, 0)
  if (date.getUTCDate() !== day) throw new CertificateError(`unexpected certificate time ${JSON.stringify(text)}`)
  return date
}

/** A certificate's validity period (whole seconds, as certificates carry it). */
export interface Validity {
  readonly notBefore: Date
  readonly notAfter: Date
}

/** notBefore / notAfter of a certificate. Throws {@link CertificateError} if node prints them unexpectedly. */
export function certificateValidity(cert: X509Certificate): Validity {
  return { notBefore: parseOpensslTime(cert.validFrom), notAfter: parseOpensslTime(cert.validTo) }
}
