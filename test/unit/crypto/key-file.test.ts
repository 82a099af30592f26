/**
 * Private key files and certificate directories: OpenSSH's "too open" rule (the mode bits of
 * the key and of its directory, root included), and the modes `initCa` / `issueCert` write.
 */
import { chmodSync, copyFileSync, mkdirSync, statSync, symlinkSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestPki, type TestPki } from '../../support/pki.js'
import { initCa, issueCert, revokeCert } from '../../../src/crypto/certs.js'
import { readPrivateKeyFile } from '../../../src/crypto/key-file.js'
import { loadSigner } from '../../../src/crypto/signer.js'
import { CryptoMode } from '../../../src/crypto/types.js'
import { CertificateError, ErrorCode, KeyPermissionError } from '../../../src/errors.js'
import { tempDir } from './helpers.js'

let pki: TestPki
const dirs: string[] = []

async function scratch(tag: string): Promise<string> {
  const dir = await tempDir(`keyfile-${tag}`)
  dirs.push(dir)
  return dir
}

/** A copy of the leaf `alice` (cert 0644, key `keyMode`) in `dir`, itself chmod'ed to `dirMode`. */
function ssldir(dir: string, keyMode: number, dirMode = 0o700): string {
  mkdirSync(dir, { recursive: true })
  copyFileSync(join(pki.dir, 'alice.crt'), join(dir, 'alice.crt'))
  copyFileSync(join(pki.dir, 'alice.key'), join(dir, 'alice.key'))
  chmodSync(join(dir, 'alice.key'), keyMode)
  chmodSync(dir, dirMode)
  return dir
}

function load(dir: string): unknown {
  return loadSigner({ mode: CryptoMode.X509Sha256, ssldir: dir, certname: 'alice' })
}

function refusal(fn: () => unknown): KeyPermissionError {
  try {
    fn()
  } catch (e) {
    expect(e).toBeInstanceOf(KeyPermissionError)
    expect(e).toBeInstanceOf(CertificateError)
    expect((e as KeyPermissionError).code).toBe(ErrorCode.Certificate)
    return e as KeyPermissionError
  }
  throw new Error('expected a KeyPermissionError, nothing was thrown')
}

beforeAll(async () => {
  pki = await createTestPki(await scratch('pki'), [{ name: 'alice', key: 'ec' }])
})

afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })))
})

describe('loadSigner: the private key file', () => {
  it('accepts a key only its owner can access (0600, 0400)', async () => {
    const base = await scratch('ok')
    expect(load(ssldir(join(base, 'rw'), 0o600))).toMatchObject({ cn: 'alice' })
    expect(load(ssldir(join(base, 'ro'), 0o400))).toMatchObject({ cn: 'alice' })
    // A directory others can read and enter is fine: the key itself is 0600.
    expect(load(ssldir(join(base, 'open-dir'), 0o600, 0o755))).toMatchObject({ cn: 'alice' })
  })

  it('refuses a key group or others can read or write, naming the file, its mode and the chmod that fixes it', async () => {
    const base = await scratch('open')
    for (const mode of [0o644, 0o640, 0o604, 0o620, 0o602, 0o660, 0o666, 0o610]) {
      const dir = ssldir(join(base, mode.toString(8)), mode)
      const key = join(dir, 'alice.key')
      const e = refusal(() => load(dir))
      expect(e.path).toBe(key)
      expect(e.mode & 0o777).toBe(mode)
      expect(e.fix).toBe(`chmod 600 ${key}`)
      expect(e.message).toContain(`permissions 0${mode.toString(8)} for the private key ${key} are too open`)
      expect(e.message).toContain(`(fix: chmod 600 ${key})`)
      // The fix it names works.
      chmodSync(key, 0o600)
      expect(load(dir)).toMatchObject({ cn: 'alice' })
    }
  })

  it('refuses a key in a directory group or others can write, sticky bit or not', async () => {
    const base = await scratch('dir')
    for (const dirMode of [0o777, 0o1777, 0o770, 0o702, 0o720]) {
      const dir = ssldir(join(base, dirMode.toString(8)), 0o600, dirMode)
      const e = refusal(() => load(dir))
      expect(e.path).toBe(dir)
      expect(e.mode & 0o7777).toBe(dirMode)
      expect(e.fix).toBe(`chmod go-w ${dir}`)
      expect(e.message).toContain(`the directory ${dir} of the private key ${join(dir, 'alice.key')}`)
      chmodSync(dir, 0o755)
      expect(load(dir)).toMatchObject({ cn: 'alice' })
    }
  })

  it('checks the directory a symlinked key really lives in', async () => {
    const base = await scratch('link')
    const target = ssldir(join(base, 'shared'), 0o600, 0o777)
    const dir = join(base, 'ssl')
    mkdirSync(dir, { mode: 0o700 })
    copyFileSync(join(pki.dir, 'alice.crt'), join(dir, 'alice.crt'))
    symlinkSync(join(target, 'alice.key'), join(dir, 'alice.key'))
    expect(refusal(() => load(dir)).path).toBe(target)
  })

  it('quotes a path the shell would split in the chmod it suggests', async () => {
    const base = await scratch('space')
    const dir = ssldir(join(base, "my keys'"), 0o644)
    expect(refusal(() => load(dir)).fix).toBe(`chmod 600 '${base}/my keys'\\''/alice.key'`)
  })

  it('readPrivateKeyFile still names a missing file', async () => {
    const missing = join(await scratch('missing'), 'nope.key')
    expect(() => readPrivateKeyFile(missing)).toThrow(`cannot read the private key ${missing}: file not found`)
  })
})

describe('certificate tooling: modes written and the CA key loaded', () => {
  it('initCa creates the directory 0700 and the keys 0600 even under umask 000', async () => {
    const base = await scratch('umask')
    const previous = process.umask(0)
    try {
      const dir = join(base, 'a', 'pki')
      await initCa(dir)
      const leaf = await issueCert(dir, 'bob', { key: 'ec' })
      expect(statSync(dir).mode & 0o777).toBe(0o700)
      expect(statSync(join(dir, 'ca.key')).mode & 0o777).toBe(0o600)
      expect(statSync(leaf.keyPath).mode & 0o777).toBe(0o600)
      expect(statSync(leaf.certPath).mode & 0o777).toBe(0o644)
    } finally {
      process.umask(previous)
    }
  })

  it('initCa refuses an existing directory group or others can write', async () => {
    const dir = join(await scratch('shared-ca'), 'pki')
    mkdirSync(dir)
    chmodSync(dir, 0o1777)
    await expect(initCa(dir)).rejects.toThrow(KeyPermissionError)
    await expect(initCa(dir)).rejects.toThrow(`(fix: chmod go-w ${dir})`)
  })

  it('issueCert and revokeCert refuse a CA key group or others can read', async () => {
    const dir = join(await scratch('ca-open'), 'pki')
    await createTestPki(dir, [{ name: 'carol', key: 'ec' }])
    const caKey = join(dir, 'ca.key')
    chmodSync(caKey, 0o640)
    await expect(issueCert(dir, 'dave', { key: 'ec' })).rejects.toThrow(`permissions 0640 for the CA key ${caKey} are too open`)
    await expect(revokeCert(dir, 'carol')).rejects.toThrow(KeyPermissionError)
    chmodSync(caKey, 0o600)
    await expect(issueCert(dir, 'dave', { key: 'ec' })).resolves.toMatchObject({ cn: 'dave' })
  })
})
