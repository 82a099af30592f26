import { homedir } from 'node:os'
import { isAbsolute, join } from 'node:path'

/** gilmsg's state directory: `$XDG_STATE_HOME/gilmsg`, or `~/.local/state/gilmsg` when that is unset or not absolute. */
export function stateDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env['XDG_STATE_HOME']
  const home = env['HOME'] !== undefined && env['HOME'] !== '' ? env['HOME'] : homedir()
  const base = xdg !== undefined && isAbsolute(xdg) ? xdg : join(home, '.local', 'state')
  return join(base, 'gilmsg')
}
