/**
 * Reading private keys with OpenSSH's rule: a key file that group or others can read or
 * write, or that sits in a directory group or others can write, is refused.
 */
import { closeSync, fstatSync, openSync, readFileSync, realpathSync, statSync } from 'node:fs'
import { dirname } from 'node:path'
import { CertificateError, errorMessage, KeyPermissionError } from '../errors.js'
import { GROUP_OTHER_ANY, GROUP_OTHER_WRITE, octalMode, POSIX_MODES, shellWord } from '../util/permissions.js'

/** Mode of the private key files gilmsg writes. */
export const KEY_FILE_MODE = 0o600
/** Mode of the certificate directories gilmsg creates. */
export const KEY_DIR_MODE = 0o700

/**
 * Throws {@link KeyPermissionError} when group or others can write `dir`, which holds (or
 * is to hold) private keys: they could replace a key. The sticky bit does not make it
 * safe. Only the mode bits are checked, whoever owns the directory, root included.
 */
export function checkKeyDirectory(dir: string, key?: string): void {
  if (!POSIX_MODES) return
  let mode: number
  try {
    mode = statSync(dir).mode
  } catch (err) {
    throw new CertificateError(`cannot check the directory ${dir}: ${errorMessage(err)}`, { cause: err })
  }
  if ((mode & GROUP_OTHER_WRITE) === 0) return
  const fix = `chmod go-w ${shellWord(dir)}`
  const what = key === undefined ? `the key directory ${dir}` : `the directory ${dir} of the private key ${key}`
  throw new KeyPermissionError(
    dir,
    mode,
    fix,
    `permissions ${octalMode(mode)} for ${what} are too open: group or others can write it, so they could replace the key (fix: ${fix})`,
  )
}

/**
 * Reads a private key file (synchronously: this runs once at start-up). Throws
 * {@link CertificateError} naming the file when it cannot be read, and
 * {@link KeyPermissionError} when group or others can read or write it, or can write the
 * directory it is in (also the directory a symlink to it points into). The rule applies
 * to root too, and only the mode bits are checked, not who owns the file. `what` names
 * the file in messages ("private key", "CA key").
 */
export function readPrivateKeyFile(path: string, what = 'private key'): string {
  let fd: number
  try {
    fd = openSync(path, 'r')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw new CertificateError(`cannot read the ${what} ${path}: ${code === 'ENOENT' ? 'file not found' : errorMessage(err)}`, { cause: err })
  }
  try {
    if (POSIX_MODES) {
      const mode = fstatSync(fd).mode
      if ((mode & GROUP_OTHER_ANY) !== 0) {
        const fix = `chmod 600 ${shellWord(path)}`
        throw new KeyPermissionError(
          path,
          mode,
          fix,
          `permissions ${octalMode(mode)} for the ${what} ${path} are too open: a private key must not be accessible by group or others (fix: ${fix})`,
        )
      }
      for (const dir of new Set([dirname(path), dirname(realpathSync(path))])) checkKeyDirectory(dir, path)
    }
    return readFileSync(fd, 'utf8')
  } catch (err) {
    if (err instanceof CertificateError) throw err
    throw new CertificateError(`cannot read the ${what} ${path}: ${errorMessage(err)}`, { cause: err })
  } finally {
    closeSync(fd)
  }
}
