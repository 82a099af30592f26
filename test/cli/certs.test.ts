/**
 * `gilmsg certs` as a user runs it: the modes it writes (under umask 000 too), `issue --force`,
 * and the refusal of a CA key others can read, with the chmod that fixes it.
 */
import { X509Certificate } from 'node:crypto'
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runCli } from '../support/cli.js'

let base: string
let pki: string

function serialOf(path: string): string {
  return new X509Certificate(readFileSync(path)).serialNumber
}

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), 'gilmsg-cli-certs-'))
  pki = join(base, 'pki')
  // The children inherit the umask: 000 makes every default mode world-writable.
  const previous = process.umask(0)
  try {
    const init = await runCli(['certs', 'init', '--dir', pki])
    expect(init.code, init.stderr).toBe(0)
    const issue = await runCli(['certs', 'issue', 'alice', '--key', 'ec', '--dir', pki])
    expect(issue.code, issue.stderr).toBe(0)
  } finally {
    process.umask(previous)
  }
}, 30_000)

afterAll(() => {
  rmSync(base, { recursive: true, force: true })
})

describe('gilmsg certs', () => {
  it('creates the directory 0700 and the keys 0600 under umask 000', () => {
    expect(statSync(pki).mode & 0o777).toBe(0o700)
    expect(statSync(join(pki, 'ca.key')).mode & 0o777).toBe(0o600)
    expect(statSync(join(pki, 'alice.key')).mode & 0o777).toBe(0o600)
  })

  it('issue refuses to replace a certificate without --force, and replaces it with --force', async () => {
    const crt = join(pki, 'alice.crt')
    const before = serialOf(crt)
    const again = await runCli(['certs', 'issue', 'alice', '--key', 'ec', '--dir', pki])
    expect(again.code).toBe(2)
    expect(again.stderr).toContain(`${crt} already exists (use --force to replace it)`)
    expect(serialOf(crt)).toBe(before)

    const forced = await runCli(['certs', 'issue', 'alice', '--key', 'ec', '--cn', 'alice-2', '--dir', pki, '--force'])
    expect(forced.code, forced.stderr).toBe(0)
    expect(forced.stdout).toContain('CN=alice-2')
    expect(serialOf(crt)).not.toBe(before)
    expect(new X509Certificate(readFileSync(crt)).subject).toBe('CN=alice-2')
    expect(statSync(join(pki, 'alice.key')).mode & 0o777).toBe(0o600)
  })

  it('issue refuses a CA key group or others can read, and says which chmod fixes it', async () => {
    const caKey = join(pki, 'ca.key')
    chmodSync(caKey, 0o644)
    try {
      const r = await runCli(['certs', 'issue', 'bob', '--key', 'ec', '--dir', pki])
      expect(r.code).toBe(2)
      expect(r.stderr).toContain(`permissions 0644 for the CA key ${caKey} are too open`)
      expect(r.stderr).toContain(`chmod 600 ${caKey}`)
    } finally {
      chmodSync(caKey, 0o600)
    }
    const ok = await runCli(['certs', 'issue', 'bob', '--key', 'ec', '--dir', pki])
    expect(ok.code, ok.stderr).toBe(0)
  })
})
