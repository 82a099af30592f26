/**
 * Base64 and PEM helpers in fedmsg's exact formats.
 */
import { CertificateError } from '../errors.js'

const LINE = 76
const PEM_LINE = 64
const BASE64_BODY = /^[A-Za-z0-9+/]*$/
const WHITESPACE = /[ \t\r\n\f\v]+/g
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true })

/**
 * Base64 of `buf` with a `\n` after every 76 characters and a trailing `\n`, as Python's
 * `base64.encodebytes` (and fedmsg's `signature` / `certificate` fields). An empty buffer
 * gives the empty string.
 */
export function wrapBase64(buf: Buffer): string {
  const b64 = buf.toString('base64')
  let out = ''
  for (let i = 0; i < b64.length; i += LINE) {
    out += b64.slice(i, i + LINE) + '\n'
  }
  return out
}

/**
 * Decodes base64, ignoring ASCII whitespace anywhere. Strict otherwise: any other
 * character outside the standard alphabet, misplaced `=` or a length that is not a
 * multiple of 4 throws {@link CertificateError}.
 */
export function unwrapBase64(s: string): Buffer {
  const compact = s.replace(WHITESPACE, '')
  if (compact.length % 4 !== 0) {
    throw new CertificateError(`invalid base64: length ${compact.length} is not a multiple of 4`)
  }
  let body = compact
  if (body.endsWith('==')) body = body.slice(0, -2)
  else if (body.endsWith('=')) body = body.slice(0, -1)
  if (!BASE64_BODY.test(body)) {
    throw new CertificateError('invalid base64: unexpected character')
  }
  return Buffer.from(compact, 'base64')
}

/** The envelope's `certificate` field for a certificate PEM: {@link wrapBase64} of its text bytes. */
export function certificateField(pem: string): string {
  return wrapBase64(Buffer.from(pem, 'utf8'))
}

/**
 * The PEM text carried in a `certificate` field. Throws {@link CertificateError} when the
 * field is not base64 or does not decode to UTF-8 text.
 */
export function pemFromCertificateField(field: string): string {
  const bytes = unwrapBase64(field)
  try {
    return STRICT_UTF8.decode(bytes)
  } catch (err) {
    throw new CertificateError('certificate field does not decode to UTF-8 text', { cause: err })
  }
}

/**
 * The first `-----BEGIN <label>-----` ... `-----END <label>-----` block of `text`, from
 * the BEGIN line to the END line plus a trailing newline. Text around the block (for
 * instance an `openssl x509 -text` dump) is ignored. Throws {@link CertificateError} when
 * there is no complete block.
 */
export function extractPemBlock(text: string, label: string): string {
  const begin = `-----BEGIN ${label}-----`
  const end = `-----END ${label}-----`
  const start = text.indexOf(begin)
  if (start < 0) throw new CertificateError(`no "${begin}" block found`)
  const stop = text.indexOf(end, start + begin.length)
  if (stop < 0) throw new CertificateError(`"${begin}" block has no "${end}" line`)
  return text.slice(start, stop + end.length) + '\n'
}

/** The DER bytes of the first `label` PEM block of `text` (see {@link extractPemBlock}). */
export function pemToDer(text: string, label: string): Buffer {
  const block = extractPemBlock(text, label)
  const body = block.slice(`-----BEGIN ${label}-----`.length, block.lastIndexOf(`-----END ${label}-----`))
  const der = unwrapBase64(body)
  if (der.length === 0) throw new CertificateError(`empty "${label}" PEM block`)
  return der
}

/** PEM text for DER bytes: 64-column base64 between BEGIN/END lines, trailing newline (OpenSSL's layout). */
export function derToPem(der: Buffer, label: string): string {
  const b64 = der.toString('base64')
  let out = `-----BEGIN ${label}-----\n`
  for (let i = 0; i < b64.length; i += PEM_LINE) {
    out += b64.slice(i, i + PEM_LINE) + '\n'
  }
  return out + `-----END ${label}-----\n`
}
