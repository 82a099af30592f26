/**
 * A signal arriving while libzmq runs a bind or connect fails the call with
 * EINTR before it did anything (seen as "gilmsg: cannot connect ...:
 * Interrupted system call" from a `gilmsg publish` run under a profiler).
 * gilmsg tries such calls again. Here a child process connects and binds
 * thousands of sockets while the V8 profiler sends it SIGPROF every 20 us:
 * without the retry about 1 connect in 300 fails.
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'

const FIXTURE = fileURLToPath(new URL('../../fixtures/interrupted-sockets.mjs', import.meta.url))
const profiles = mkdtempSync(join(tmpdir(), 'gilmsg-eintr-'))
afterAll(() => rmSync(profiles, { recursive: true, force: true }))

describe('ZeroMQ calls interrupted by signals', () => {
  it('connects and binds all succeed while SIGPROF keeps interrupting the process', () => {
    const count = 3000
    const child = spawnSync(process.execPath, ['--cpu-prof', '--cpu-prof-dir', profiles, '--cpu-prof-interval', '20', FIXTURE, String(count)], {
      encoding: 'utf8',
      timeout: 60_000,
    })
    expect(child.status, child.stderr).toBe(0)
    const result = JSON.parse(child.stdout.trim().split('\n').pop() ?? '{}') as { connects: number; binds: number; failures: string[] }
    expect(result.failures).toEqual([])
    expect(result.connects).toBe(count)
    expect(result.binds).toBe(count / 4)
  }, 90_000)
})
