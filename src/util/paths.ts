import { homedir } from 'node:os'
import { isAbsolute, join } from 'node:path'

/**
 * gilmsg's state directory: `$STATE_DIRECTORY` (set by systemd for a unit with
 * `StateDirectory=gilmsg`: `/var/lib/gilmsg`; the first of a colon-separated list), else
 * `$XDG_STATE_HOME/gilmsg`, else `~/.local/state/gilmsg`. A value that is not an absolute
 * path is ignored.
 */
export function stateDir(env: NodeJS.ProcessEnv = process.env): string {
  const systemd = env['STATE_DIRECTORY']?.split(':')[0]
  if (systemd !== undefined && isAbsolute(systemd)) return systemd
  const xdg = env['XDG_STATE_HOME']
  const home = env['HOME'] !== undefined && env['HOME'] !== '' ? env['HOME'] : homedir()
  const base = xdg !== undefined && isAbsolute(xdg) ? xdg : join(home, '.local', 'state')
  return join(base, 'gilmsg')
}
