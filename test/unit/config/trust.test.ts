/**
 * Which config files loadConfig trusts: `./gilmsg.json` only from a directory and in a file
 * nobody else can write (OpenSSH's rule); an explicit file unless anyone can write it.
 */
import { chmodSync, chownSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { loadConfig, locateConfig } from '../../../src/config/config.js'
import { ConfigError } from '../../../src/errors.js'

const ROOT = process.getuid?.() === 0

/** A directory (mode `dirMode`) holding gilmsg.json (mode `fileMode`, environment "cwd"). */
function cwdWithConfig(dirMode: number, fileMode = 0o644): string {
  const dir = join(mkdtempSync(join(tmpdir(), 'gilmsg-trust-')), 'cwd')
  mkdirSync(dir)
  writeFileSync(join(dir, 'gilmsg.json'), JSON.stringify({ environment: 'cwd' }))
  chmodSync(join(dir, 'gilmsg.json'), fileMode)
  chmodSync(dir, dirMode)
  return dir
}

function refusal(fn: () => unknown): string {
  try {
    fn()
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError)
    return (e as Error).message
  }
  throw new Error('expected a ConfigError, nothing was thrown')
}

describe('./gilmsg.json picked up implicitly', () => {
  it('is loaded from a directory and a file only the user can write', () => {
    for (const [dirMode, fileMode] of [
      [0o700, 0o600],
      [0o755, 0o644],
      [0o755, 0o444],
    ] as const) {
      const cwd = cwdWithConfig(dirMode, fileMode)
      expect(loadConfig({ cwd, env: {} }).environment).toBe('cwd')
      expect(locateConfig({ cwd, env: {} })).toEqual({ path: join(cwd, 'gilmsg.json'), origin: 'cwd' })
    }
  })

  it('is refused in a directory group or others can write (/tmp-like, sticky bit or not), saying how to pass it explicitly', () => {
    for (const dirMode of [0o777, 0o1777, 0o775, 0o757]) {
      const cwd = cwdWithConfig(dirMode)
      const path = join(cwd, 'gilmsg.json')
      const message = refusal(() => loadConfig({ cwd, env: {} }))
      expect(message).toContain(`not loading ${path} found in the current directory: the directory ${cwd} is writable by group or others (mode ${dirMode.toString(8).padStart(4, '0')})`)
      expect(message).toContain(`pass it explicitly: --config ${path} (or GILMSG_CONFIG=${path})`)
      // Passed explicitly it is the operator's choice.
      expect(loadConfig({ cwd, env: {}, file: path }).environment).toBe('cwd')
      expect(loadConfig({ cwd, env: { GILMSG_CONFIG: path } }).environment).toBe('cwd')
    }
  })

  it('is refused when group or others can write the file', () => {
    for (const fileMode of [0o664, 0o646, 0o666]) {
      const cwd = cwdWithConfig(0o700, fileMode)
      const path = join(cwd, 'gilmsg.json')
      const message = refusal(() => loadConfig({ cwd, env: {} }))
      expect(message).toContain(`it is writable by group or others (mode 0${fileMode.toString(8)})`)
      expect(message).toContain(`fix: chmod go-w ${path}`)
    }
  })

  it.skipIf(!ROOT)('is refused when the file or its directory belongs to another user (not root)', () => {
    const cwd = cwdWithConfig(0o755)
    chownSync(join(cwd, 'gilmsg.json'), 4242, 4242)
    expect(refusal(() => loadConfig({ cwd, env: {} }))).toContain('it belongs to uid 4242, not to you (uid 0) or root')
    chownSync(join(cwd, 'gilmsg.json'), 0, 0)
    chownSync(cwd, 4242, 4242)
    expect(refusal(() => loadConfig({ cwd, env: {} }))).toContain(`the directory ${cwd} belongs to uid 4242`)
  })
})

describe('a config file given explicitly', () => {
  it('is refused only when anyone on the host can write it', () => {
    const cwd = cwdWithConfig(0o700)
    const path = join(cwd, 'explicit.json')
    writeFileSync(path, JSON.stringify({ environment: 'explicit' }))
    for (const mode of [0o600, 0o644, 0o664]) {
      chmodSync(path, mode)
      expect(loadConfig({ file: path, env: {} }).environment).toBe('explicit')
    }
    for (const mode of [0o666, 0o646]) {
      chmodSync(path, mode)
      for (const options of [{ file: path, env: {} }, { env: { GILMSG_CONFIG: path } }]) {
        const message = refusal(() => loadConfig(options))
        expect(message).toContain(`config file ${path} is writable by anyone on this host (mode 0${mode.toString(8)})`)
        expect(message).toContain(`fix: chmod o-w ${path}`)
      }
    }
  })

  it('says how it was found', () => {
    expect(locateConfig({ file: 'a.json', env: { GILMSG_CONFIG: 'b.json' }, cwd: '/x' })).toEqual({ path: '/x/a.json', origin: 'option' })
    expect(locateConfig({ env: { GILMSG_CONFIG: 'b.json' }, cwd: '/x' })).toEqual({ path: '/x/b.json', origin: 'env' })
    expect(locateConfig({ env: {}, cwd: mkdtempSync(join(tmpdir(), 'gilmsg-trust-empty-')) })).toBeUndefined()
  })
})
