import { execFileSync } from 'node:child_process'

/** True when the `openssl` command runs here (tests that cross-check with it skip without it; `.ci/run` installs it). */
export function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}
