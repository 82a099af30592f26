/**
 * Whether a config file may be loaded. Anyone who can change the config can turn off
 * signature validation or point gilmsg at another CA, so:
 * - `./gilmsg.json`, picked up implicitly from the current directory, is refused when that
 *   directory is writable by group or others (sticky bit or not: /tmp is refused), when the
 *   file is writable by group or others, or when either is owned by someone other than the
 *   user or root (OpenSSH's rule for its own config files);
 * - a file of the system directory (`/etc/gilmsg.d/*.json`, read when neither `--config` nor
 *   `$GILMSG_CONFIG` is given) is refused on the same terms;
 * - a file named explicitly (`--config`, `$GILMSG_CONFIG`) is the operator's choice and is
 *   refused only when anyone on the host (others) can write it; so is a directory named
 *   explicitly (anyone could add a file to it), and each file in it.
 */
import { fstatSync, statSync, type Stats } from 'node:fs'
import { dirname } from 'node:path'
import { ConfigError } from '../errors.js'
import { GROUP_OTHER_WRITE, octalMode, OTHER_WRITE, POSIX_MODES, shellWord } from '../util/permissions.js'

/** How a config file was found: `--config`, `$GILMSG_CONFIG`, `./gilmsg.json`, the system directory. */
export type ConfigOrigin = 'option' | 'env' | 'cwd' | 'system'

/** Throws {@link ConfigError} when anyone on the host can write the config directory `dir` named explicitly. */
export function checkConfigDirTrust(dir: string, dirStat: Stats): void {
  if (!POSIX_MODES || (dirStat.mode & OTHER_WRITE) === 0) return
  throw new ConfigError(
    `config directory ${dir} is writable by anyone on this host (mode ${octalMode(dirStat.mode)}): they could add a file that turns off ` +
      `signature validation or trusts another CA; fix: chmod o-w ${shellWord(dir)}`,
  )
}

/** Throws {@link ConfigError} when the open config file `fd` at `path`, found as `origin`, may not be trusted (see the module doc). */
export function checkConfigTrust(path: string, fd: number, origin: ConfigOrigin, uid: number | undefined = process.getuid?.()): void {
  if (!POSIX_MODES) return
  const file = fstatSync(fd)
  if (origin === 'option' || origin === 'env') {
    if ((file.mode & OTHER_WRITE) !== 0) {
      throw new ConfigError(
        `config file ${path} is writable by anyone on this host (mode ${octalMode(file.mode)}): they could turn off signature validation or ` +
          `trust another CA; fix: chmod o-w ${shellWord(path)}`,
      )
    }
    return
  }
  const dir = dirname(path)
  const explicitly = `if you trust it, pass it explicitly: --config ${shellWord(path)} (or GILMSG_CONFIG=${shellWord(path)})`
  const refuse = (why: string): never => {
    throw new ConfigError(
      origin === 'cwd'
        ? `not loading ${path} found in the current directory: ${why}; ${explicitly}, or run gilmsg from another directory`
        : `not loading ${path} found in the system config directory: ${why}; ${explicitly}`,
    )
  }
  const owner = (st: Stats): boolean => uid === undefined || st.uid === uid || st.uid === 0
  const dirStat = statSync(dir)
  if ((dirStat.mode & GROUP_OTHER_WRITE) !== 0) {
    refuse(`the directory ${dir} is writable by group or others (mode ${octalMode(dirStat.mode)}), so someone else may have put it there`)
  }
  if (!owner(dirStat)) refuse(`the directory ${dir} belongs to uid ${dirStat.uid}, not to you (uid ${String(uid)}) or root`)
  if (!owner(file)) refuse(`it belongs to uid ${file.uid}, not to you (uid ${String(uid)}) or root`)
  if ((file.mode & GROUP_OTHER_WRITE) !== 0) {
    refuse(`it is writable by group or others (mode ${octalMode(file.mode)}), so they could change it (fix: chmod go-w ${shellWord(path)})`)
  }
}
