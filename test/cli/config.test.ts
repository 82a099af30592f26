/**
 * Which config file a command loads, as a user sees it: `--verbose` names it, and a
 * `./gilmsg.json` that others could have written (a world-writable current directory such
 * as /tmp) is refused with a message saying how to pass it explicitly.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CliProcess, runCli } from '../support/cli.js'

let base: string
let env: NodeJS.ProcessEnv
let shared: string

beforeAll(() => {
  base = mkdtempSync(join(tmpdir(), 'gilmsg-cli-config-'))
  env = { XDG_STATE_HOME: join(base, 'state'), GILMSG_CONFIG: '' }
  // A directory like /tmp: anyone can write it (the sticky bit does not help).
  shared = join(base, 'shared')
  mkdirSync(shared)
  writeFileSync(join(shared, 'gilmsg.json'), JSON.stringify({ name: 'planted', sign_messages: false }), { mode: 0o644 })
  chmodSync(shared, 0o1777)
})

afterAll(() => {
  rmSync(base, { recursive: true, force: true })
})

describe('./gilmsg.json in a directory others can write', () => {
  it('is refused by tail and outbox (exit 2), naming the file and the --config way to use it', async () => {
    const planted = join(shared, 'gilmsg.json')
    for (const args of [['tail', '--no-ack'], ['outbox', 'list']]) {
      const r = await runCli(args, { env, cwd: shared, timeoutMs: 10_000 })
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2)
      expect(r.stderr).toContain(`not loading ${planted} found in the current directory: the directory ${shared} is writable by group or others (mode 1777)`)
      expect(r.stderr).toContain(`--config ${planted}`)
    }
    // Passed explicitly, it is the operator's choice.
    const explicit = await runCli(['outbox', 'list', '--config', planted, '--verbose'], { env, cwd: shared })
    expect(explicit.code, explicit.stderr).toBe(0)
    expect(explicit.stderr).toContain(`gilmsg: config ${planted} (given with --config)`)
  })
})

describe('--verbose', () => {
  it('names the config file loaded and how it was found (tail, publish, outbox)', async () => {
    const own = join(base, 'own')
    mkdirSync(own, { mode: 0o700 })
    const path = join(own, 'gilmsg.json')
    writeFileSync(path, JSON.stringify({ name: 'mine', sign_messages: false, validate_signatures: false }), { mode: 0o600 })

    const implicit = await runCli(['outbox', 'list', '--verbose'], { env, cwd: own })
    expect(implicit.code, implicit.stderr).toBe(0)
    expect(implicit.stderr).toContain(`gilmsg: config ${path} (found in the current directory)`)
    const fromEnv = await runCli(['outbox', 'list', '-v'], { env: { ...env, GILMSG_CONFIG: path }, cwd: base })
    expect(fromEnv.stderr).toContain(`gilmsg: config ${path} (named by $GILMSG_CONFIG)`)
    const none = await runCli(['outbox', 'list', '--verbose', '--name', 'nobody'], { env, cwd: base })
    expect(none.stderr).toContain('gilmsg: no config file (no --config, no $GILMSG_CONFIG, no /etc/gilmsg.d/*.json, no ./gilmsg.json): using the defaults')
    // publish reports it before it fails for want of a way to publish.
    const publish = await runCli(['publish', '--config', path, '--verbose', '--message', 'x'], { env, cwd: base })
    expect(publish.code).toBe(2)
    expect(publish.stderr).toContain(`gilmsg: config ${path} (given with --config)`)

    const tail = new CliProcess(['tail', '--config', path, '--verbose', '--no-ack'], env)
    try {
      await tail.waitFor(new RegExp(`^gilmsg: config ${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(given with --config\\)$`))
    } finally {
      await tail.stop()
    }
    // Without --verbose, nothing is said.
    expect((await runCli(['outbox', 'list'], { env, cwd: own })).stderr).not.toContain('gilmsg: config')
  }, 30_000)
})
