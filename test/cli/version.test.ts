/** `gilmsg --version` / `-V` as a subprocess: the version from package.json, exit 0, and named in --help. */
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { runCli } from '../support/cli.js'

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version

describe('gilmsg --version', () => {
  it('prints the version from package.json and exits 0, as --version and as -V', async () => {
    for (const flag of ['--version', '-V']) {
      const r = await runCli([flag])
      expect(r.code, r.stderr).toBe(0)
      expect(r.stdout).toBe(`${VERSION}\n`)
      expect(r.stderr).toBe('')
    }
  })

  it('is listed in --help', async () => {
    const r = await runCli(['--help'])
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/^ +gilmsg --version +\(or -V\) print the version$/m)
  })
})
