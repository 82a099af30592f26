/** File-mode checks shared by private keys and config files (OpenSSH's "too open" rule). */

/** Mode bits that let group or others write. */
export const GROUP_OTHER_WRITE = 0o022
/** Mode bits that let group or others read, write or execute. */
export const GROUP_OTHER_ANY = 0o077
/** Mode bit that lets others write. */
export const OTHER_WRITE = 0o002

/** Whether this platform has POSIX permission bits to check (not on Windows). */
export const POSIX_MODES = process.platform !== 'win32'

/** The permission bits of `mode` as `stat -c %a` prints them with a leading digit: `0644`, `1777`. */
export function octalMode(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0')
}

/** `path` as a shell word, quoted only when it needs to be: `/etc/pki/x.key`, `'/tmp/my key'`. */
export function shellWord(path: string): string {
  const word = path.startsWith('-') ? `./${path}` : path
  return /^[A-Za-z0-9_/.,:@%+=-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`
}
