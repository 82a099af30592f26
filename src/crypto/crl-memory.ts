import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { CertificateError, errorMessage } from '../errors.js'
import { newestMark } from './crl.js'
import { writeCacheFile } from './remote.js'
import type { CrlMark } from './crl.js'

/**
 * Remembers, per CA, the newest CRL accepted so far (its {@link CrlMark}), so that a
 * restarted process refuses a CRL older than one it had already accepted. What is
 * remembered can only make gilmsg refuse more CRLs, never accept one, so it is trusted
 * as it is (whoever can write it can at worst stop gilmsg from starting).
 */
export interface CrlMemory {
  /** The remembered mark for the CA, or undefined. Throws {@link CertificateError} when the file is unreadable or corrupt. */
  read(caFingerprint: string): CrlMark | undefined
  /** Remembers the newest of `mark` and what is remembered. Throws {@link CertificateError} when it cannot write. */
  write(caFingerprint: string, mark: CrlMark): void
}

interface StoredMark {
  readonly crl_number: string | null
  readonly this_update: string
}

const FINGERPRINT = /^[0-9a-f]{64}$/
const DECIMAL = /^\d+$/

function decode(text: string): CrlMark {
  const v = JSON.parse(text) as Partial<StoredMark>
  const thisUpdate = typeof v.this_update === 'string' ? Date.parse(v.this_update) : NaN
  if (Number.isNaN(thisUpdate)) throw new Error(`expected "this_update" to be an ISO date, got ${JSON.stringify(v.this_update)}`)
  if (v.crl_number !== null && !(typeof v.crl_number === 'string' && DECIMAL.test(v.crl_number))) {
    throw new Error(`expected "crl_number" to be a decimal string or null, got ${JSON.stringify(v.crl_number)}`)
  }
  return { crlNumber: v.crl_number === null ? undefined : BigInt(v.crl_number), thisUpdate }
}

function encode(mark: CrlMark): string {
  const stored: StoredMark = { crl_number: mark.crlNumber === undefined ? null : mark.crlNumber.toString(), this_update: new Date(mark.thisUpdate).toISOString() }
  return JSON.stringify(stored) + '\n'
}

/** A {@link CrlMemory} of one small JSON file per CA (`<caFingerprint>.json`) in `dir`, created 0700. */
export function fileCrlMemory(dir: string): CrlMemory {
  const file = (fp: string): string => {
    if (!FINGERPRINT.test(fp)) throw new CertificateError(`expected a CA fingerprint of 64 hex digits, got ${JSON.stringify(fp)}`)
    return join(dir, `${fp}.json`)
  }
  const read = (fp: string): CrlMark | undefined => {
    const path = file(fp)
    let text: string
    try {
      text = readFileSync(path, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw new CertificateError(`cannot read the newest CRL remembered in ${path}: ${errorMessage(err)}`, { cause: err })
    }
    try {
      return decode(text)
    } catch (err) {
      throw new CertificateError(`${path} is corrupt (${errorMessage(err)}); delete it to forget the newest CRL seen for this CA`, { cause: err })
    }
  }
  return {
    read,
    write(fp, mark) {
      const path = file(fp)
      let known: CrlMark | undefined
      try {
        known = read(fp)
      } catch {
        known = undefined
      }
      const next = newestMark(known, mark)
      if (known !== undefined && next.crlNumber === known.crlNumber && next.thisUpdate === known.thisUpdate) return
      // Atomic, 0600, in a directory only its owner can write: as the CRL cache files.
      writeCacheFile(path, encode(next))
    },
  }
}
