/**
 * The package as a user gets it: a copy of the working tree without `dist/`
 * (a clean clone) is packed with `npm pack` (its `prepack` builds), and the
 * tarball is installed into an empty directory. The installed package must
 * run `npx gilmsg --version`, `npx gilmsg demo` and `gilmsg bench`, import
 * from an ES module and type-check from a `.ts` file.
 *
 * Cost: the install is `npm ci --prefer-offline --ignore-scripts` against a
 * lock made from the repository's own (the same versions, so the npm cache
 * filled by the repository's install serves every tarball), and the one
 * native module without a prebuilt binary in its package (better-sqlite3,
 * ~75 s to compile) gets the repository's already-built addon copied in.
 * zeromq ships its prebuilt addons inside its package.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative, sep } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  name: string
  version: string
  license: string
  bin: Record<string, string>
  engines: Record<string, string>
  exports: Record<string, { types: string; default: string }>
  dependencies: Record<string, string>
}
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
/** Not part of a clean clone (or never packed). */
const NOT_COPIED = new Set(['node_modules', 'dist', '.git', '.gilmsg-tmp', join('bench', 'results')])
/** npm's own settings worth passing on; the rest of npm_* (a parent `npm test`'s prefix, lifecycle event...) must not leak into the child npm. */
const NPM_ENV_KEPT = new Set(['npm_config_cache', 'npm_config_userconfig', 'npm_config_registry'])

interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

let stage: string
let app: string
let env: NodeJS.ProcessEnv
let packed: { filename: string; files: { path: string; size: number }[]; size: number; unpackedSize: number; entryCount: number }

async function run(command: string, args: readonly string[], cwd: string, timeoutMs = 60_000): Promise<Run> {
  const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  const [code] = (await once(child, 'close')) as [number | null]
  clearTimeout(timer)
  return { code, stdout, stderr }
}

function ok(r: Run, what: string): Run {
  expect(r.code, `${what}\nstdout: ${r.stdout.slice(-3000)}\nstderr: ${r.stderr.slice(-3000)}`).toBe(0)
  return r
}

/** package-lock.json for an app depending only on the tarball: gilmsg's runtime tree, at the repository's locked versions. */
function appLock(tarball: string): object {
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> }
  const packages: Record<string, unknown> = {
    '': { name: 'gilmsg-pack-test', dependencies: { gilmsg: `file:${tarball}` } },
    'node_modules/gilmsg': {
      version: PKG.version,
      resolved: `file:${tarball}`,
      license: PKG.license,
      dependencies: PKG.dependencies,
      bin: PKG.bin,
      engines: PKG.engines,
    },
  }
  for (const [path, entry] of Object.entries(lock.packages)) if (path !== '' && entry.dev !== true) packages[path] = entry
  return { name: 'gilmsg-pack-test', lockfileVersion: 3, requires: true, packages }
}

beforeAll(async () => {
  stage = realpathSync(mkdtempSync(join(tmpdir(), 'gilmsg-pack-')))
  env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_') || NPM_ENV_KEPT.has(k.toLowerCase())))
  Object.assign(env, { GILMSG_CONFIG: '', XDG_STATE_HOME: join(stage, 'state') })

  const clone = join(stage, 'clone')
  cpSync(ROOT, clone, {
    recursive: true,
    filter: (src) => {
      const rel = relative(ROOT, src)
      return !NOT_COPIED.has(rel) && !rel.endsWith('.tgz') && !/^gilmsg-bench-.*\.json$/.test(rel) && !rel.split(sep).includes('node_modules')
    },
  })
  symlinkSync(realpathSync(join(ROOT, 'node_modules')), join(clone, 'node_modules'))
  const pack = ok(await run('npm', ['pack', '--json', '--silent', '--pack-destination', stage], clone, 90_000), 'npm pack')
  packed = (JSON.parse(pack.stdout) as (typeof packed)[])[0] as typeof packed

  app = join(stage, 'app')
  mkdirSync(app)
  copyFileSync(join(stage, packed.filename), join(app, packed.filename))
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'gilmsg-pack-test', private: true, type: 'module', dependencies: { gilmsg: `file:${packed.filename}` } }))
  writeFileSync(join(app, 'package-lock.json'), JSON.stringify(appLock(packed.filename)))
  ok(await run('npm', ['ci', '--prefer-offline', '--ignore-scripts', '--no-audit', '--no-fund'], app, 90_000), 'npm ci of the tarball')

  const sqlite = (dir: string): string => join(dir, 'node_modules', 'better-sqlite3')
  const version = (dir: string): string => (JSON.parse(readFileSync(join(sqlite(dir), 'package.json'), 'utf8')) as { version: string }).version
  expect(version(app), 'better-sqlite3 installed at the version the repository built').toBe(version(ROOT))
  const addon = join('build', 'Release', 'better_sqlite3.node')
  expect(existsSync(join(sqlite(ROOT), addon)), `the repository's ${join(sqlite(ROOT), addon)} (run npm ci first)`).toBe(true)
  mkdirSync(join(sqlite(app), 'build', 'Release'), { recursive: true })
  copyFileSync(join(sqlite(ROOT), addon), join(sqlite(app), addon))
}, 180_000)

afterAll(() => {
  if (stage !== undefined) rmSync(stage, { recursive: true, force: true })
})

describe('npm pack', () => {
  it('builds what it ships: the bin and every export target, the systemd units, no source maps, no test vectors, a LICENSE', () => {
    const paths = packed.files.map((f) => f.path)
    const targets = [...Object.values(PKG.bin), ...Object.values(PKG.exports).flatMap((e) => [e.types, e.default])].map((p) => p.replace(/^\.\//, ''))
    const units = ['contrib/systemd/gilmsg-relay.service', 'contrib/systemd/gilmsg-agent@.service', 'contrib/systemd/gilmsg-consume@.service', 'contrib/systemd/consume.env.example']
    for (const t of [...targets, ...units, 'dist/bench/main.js', 'LICENSE', 'README.md', 'package.json']) expect(paths, t).toContain(t)
    expect(paths.filter((p) => p.endsWith('.map'))).toEqual([])
    expect(paths.filter((p) => !/^(dist\/(src|bench)\/.*\.(js|d\.ts)|spec\/[^/]+\.md|spec\/schemas\/[^/]+\.json|contrib\/systemd\/[^/]+\.(service|env\.example)|LICENSE|README\.md|package\.json)$/.test(p))).toEqual([])
    expect(readFileSync(join(app, 'node_modules', 'gilmsg', 'LICENSE'), 'utf8')).toMatch(/^MIT License\n\nCopyright \(c\) 2026 the gilmsg authors\n/)
  })
})

describe('the installed package', () => {
  it('npx gilmsg --version and -V print the version from package.json', async () => {
    for (const flag of ['--version', '-V']) {
      const r = ok(await run('npx', ['--no', '--', 'gilmsg', flag], app), `npx gilmsg ${flag}`)
      expect(r.stdout).toBe(`${PKG.version}\n`)
    }
  })

  it('npx gilmsg demo delivers every message to both recipients', async () => {
    const r = ok(await run('npx', ['--no', '--', 'gilmsg', 'demo', '--messages', '6'], app), 'npx gilmsg demo')
    expect(r.stdout).toMatch(/6\/6 messages acknowledged by both in [\d.]+ s; 0 failed/)
  }, 90_000)

  it('gilmsg bench writes its results into the current directory, not into the package', async () => {
    ok(await run('npx', ['--no', '--', 'gilmsg', 'bench', '--quick', '--only', 'canonical'], app), 'npx gilmsg bench')
    const results = readdirSync(app).filter((f) => /^gilmsg-bench-.*\.json$/.test(f))
    expect(results).toHaveLength(1)
    const report = JSON.parse(readFileSync(join(app, results[0] as string), 'utf8')) as { quick: boolean; cases: { id: string }[] }
    expect(report.quick).toBe(true)
    expect(report.cases.map((c) => c.id)).toContain('canonical')
    expect(existsSync(join(app, 'node_modules', 'gilmsg', 'bench'))).toBe(false)
  }, 90_000)

  it('imports from an ES module, resolving to the installed files', async () => {
    writeFileSync(
      join(app, 'check.mjs'),
      `import { openGilmsg, parseConfig, GilmsgError } from 'gilmsg'
import { canonicalize } from 'gilmsg/internal'
console.log(JSON.stringify({
  resolved: import.meta.resolve('gilmsg'),
  openGilmsg: typeof openGilmsg,
  internal: typeof canonicalize,
  name: parseConfig({ name: 'checker' }, 'check.mjs').name,
  error: new GilmsgError('GILMSG_USAGE', 'x') instanceof Error,
}))
`,
    )
    const r = ok(await run(process.execPath, ['check.mjs'], app), 'node check.mjs')
    expect(JSON.parse(r.stdout)).toEqual({
      resolved: pathToFileURL(join(app, 'node_modules', 'gilmsg', 'dist', 'src', 'index.js')).href,
      openGilmsg: 'function',
      internal: 'function',
      name: 'checker',
      error: true,
    })
  })

  it('type-checks a .ts file against the installed types (strict, without skipLibCheck)', async () => {
    writeFileSync(
      join(app, 'check.ts'),
      `import { openGilmsg, parseConfig, GilmsgError, type GilmsgConfig, type DeliveryReceipt } from 'gilmsg'
import type { Transport } from 'gilmsg'

export const config: GilmsgConfig = parseConfig({ name: 'checker' }, 'check.ts')
export const opened: Promise<{ close(): Promise<void> }> = openGilmsg(config)
export const isError: boolean = new Error() instanceof GilmsgError
export type Acks = DeliveryReceipt['recipients']
export type T = Transport
// @ts-expect-error a number is not a config: fails if the types were missing (any)
void openGilmsg(42)
`,
    )
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', strict: true, noEmit: true, skipLibCheck: false, types: ['node'] },
        files: ['check.ts'],
      }),
    )
    ok(await run(process.execPath, [TSC, '-p', 'tsconfig.json'], app), 'tsc --noEmit check.ts')
  }, 90_000)
})
