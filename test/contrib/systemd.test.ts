/**
 * contrib/systemd: each unit passes `systemd-analyze verify` with no warning (where systemd
 * is installed; skipped saying why otherwise), has the settings operators rely on
 * (StateDirectory=gilmsg, Restart=on-failure, the hardening options; consume: KillMode=mixed
 * and its command from an EnvironmentFile), and its ExecStart names a command and flags the
 * built CLI accepts: `gilmsg <command> --help <the unit's flags>` must exit 0 (the parser is
 * strict: an unknown flag, or one missing its value, is a usage error), and every flag is one
 * the command's --help lists or every command takes.
 */
import { spawnSync } from 'node:child_process'
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { CLI } from '../support/cli.js'

const DIR = fileURLToPath(new URL('../../contrib/systemd/', import.meta.url))
const INSTALLED = '/usr/local/bin/gilmsg'
/** Every command takes these (src/cli/args.ts COMMON_OPTIONS); --help does not list them all. */
const COMMON_FLAGS = ['--config', '--name', '--certname', '--help']
/** What the units' variables stand for in the check of ExecStart (the EnvironmentFiles' examples). */
const EXAMPLE_ENV: Record<string, string> = {
  GILMSG_CONFIG: '/etc/gilmsg.d',
  GILMSG_RELAY_ARGS: '--metrics 127.0.0.1:9300',
  GILMSG_AGENT_ARGS: '--metrics 127.0.0.1:9310',
  ...Object.fromEntries(
    readFileSync(join(DIR, 'consume.env.example'), 'utf8')
      .split('\n')
      .filter((l) => /^[A-Z_]+=/.test(l))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  ),
}

const UNITS = ['gilmsg-relay.service', 'gilmsg-agent@.service', 'gilmsg-consume@.service'] as const
const COMMAND: Record<(typeof UNITS)[number], string> = {
  'gilmsg-relay.service': 'relay',
  'gilmsg-agent@.service': 'agent',
  'gilmsg-consume@.service': 'consume',
}

/** A unit file's settings: section -> key -> values (in order; a key may repeat). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>()
  let current: Map<string, string[]> | undefined
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue
    const section = /^\[(.+)\]$/.exec(line)
    if (section) {
      current = new Map()
      sections.set(section[1] as string, current)
      continue
    }
    const eq = line.indexOf('=')
    expect(current, `a setting outside a section: ${line}`).toBeDefined()
    const key = line.slice(0, eq)
    current?.set(key, [...(current.get(key) ?? []), line.slice(eq + 1)])
  }
  return sections
}

/** ExecStart's words with %i and $VAR / ${VAR} replaced as systemd would (unbraced: split on spaces). */
function execWords(execStart: string, instance: string): string[] {
  return execStart
    .replaceAll('%i', instance)
    .split(/\s+/)
    .flatMap((w) => {
      const bare = /^\$([A-Z_]+)$/.exec(w)
      if (bare) return (EXAMPLE_ENV[bare[1] as string] ?? '').split(/\s+/).filter((x) => x !== '')
      return [w.replace(/\$\{([A-Z_]+)\}/g, (_, v: string) => EXAMPLE_ENV[v] ?? '')]
    })
}

const scratch = mkdtempSync(join(tmpdir(), 'gilmsg-systemd-'))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

const analyze = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' })
const noSystemd = analyze.error !== undefined || analyze.status !== 0 ? `systemd-analyze is not available here (${analyze.error?.message ?? `exit ${analyze.status}`})` : undefined

describe('contrib/systemd units', () => {
  it('are the three units and the example EnvironmentFile, nothing else', () => {
    expect(readdirSync(DIR).sort()).toEqual(['consume.env.example', ...UNITS].sort())
  })

  it.each(UNITS)('%s: StateDirectory, restart policy, hardening, SIGTERM handling', (unit) => {
    const u = parseUnit(readFileSync(join(DIR, unit), 'utf8'))
    const service = u.get('Service') as Map<string, string[]>
    const one = (key: string): string | undefined => service.get(key)?.at(-1)
    expect(one('StateDirectory')).toBe('gilmsg')
    expect(one('Restart')).toBe('on-failure')
    expect(one('KillSignal')).toBe('SIGTERM')
    for (const [key, value] of [
      ['NoNewPrivileges', 'yes'],
      ['ProtectSystem', 'strict'],
      ['ProtectHome', 'yes'],
      ['PrivateTmp', 'yes'],
      ['PrivateDevices', 'yes'],
      ['RestrictSUIDSGID', 'yes'],
      ['CapabilityBoundingSet', ''],
    ] as const) {
      expect(one(key), `${unit}: ${key}`).toBe(value)
    }
    // Node's JIT needs writable and executable memory.
    expect(one('MemoryDenyWriteExecute')).toBeUndefined()
    expect(u.get('Install')?.get('WantedBy')).toEqual(['multi-user.target'])
    expect(one('ExecStart')?.startsWith(`${INSTALLED} ${COMMAND[unit]} `)).toBe(true)
    if (unit.includes('@')) expect(one('ExecStart')).toMatch(/ --name %i /)
    if (unit === 'gilmsg-consume@.service') {
      expect(one('KillMode')).toBe('mixed')
      expect(service.get('EnvironmentFile')).toContain('/etc/gilmsg/consume-%i.env')
      expect(one('ExecStart')).toMatch(/ --exec \$GILMSG_EXEC$/)
    }
  })

  it.for(UNITS)('%s: ExecStart names flags the CLI accepts', (unit, ctx) => {
    const execStart = parseUnit(readFileSync(join(DIR, unit), 'utf8')).get('Service')?.get('ExecStart')?.at(-1) ?? ''
    const [, command, ...flags] = execWords(execStart, 'test')
    const help = spawnSync(process.execPath, [CLI, command as string, '--help'], { encoding: 'utf8' })
    if (help.status === 2 && /unknown command/.test(help.stderr)) {
      ctx.skip(`"gilmsg ${command}" is not in this build (${help.stderr.split('\n')[0]})`)
      return
    }
    expect(help.status, help.stderr).toBe(0)
    const accepted = spawnSync(process.execPath, [CLI, command as string, '--help', ...flags], { encoding: 'utf8' })
    expect(accepted.status, `gilmsg ${command} --help ${flags.join(' ')}: ${accepted.stderr}`).toBe(0)
    // Up to --exec (whose value is the rest of the line: the consumer's own command).
    const own = flags.indexOf('--exec') < 0 ? flags : flags.slice(0, flags.indexOf('--exec') + 1)
    for (const flag of own.filter((w) => w.startsWith('--'))) {
      expect(COMMON_FLAGS.includes(flag) || help.stdout.includes(flag), `${unit}: ${flag} in "gilmsg ${command} --help"`).toBe(true)
    }
  })

  it('pass systemd-analyze verify without a warning', (ctx) => {
    if (noSystemd !== undefined) {
      ctx.skip(noSystemd)
      return
    }
    // The units as installed, with ExecStart pointing at an executable that exists here (verify checks it).
    const bin = join(scratch, 'gilmsg')
    writeFileSync(bin, `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`)
    chmodSync(bin, 0o755)
    for (const unit of UNITS) {
      writeFileSync(join(scratch, unit), readFileSync(join(DIR, unit), 'utf8').replaceAll(INSTALLED, bin))
    }
    // Templates are verified through an instance; systemd finds the template beside it.
    const names = UNITS.map((u) => join(scratch, u.replace('@.', '@test.')))
    const r = spawnSync('systemd-analyze', ['verify', '--man=no', ...names], { encoding: 'utf8', timeout: 60_000 })
    console.log(`systemd-analyze verify (${analyze.stdout.split('\n')[0]}): exit ${r.status}${r.stderr ? `\n${r.stderr}` : ''}`)
    expect(r.status, r.stderr).toBe(0)
    expect(r.stderr).toBe('')
  }, 90_000)
})
