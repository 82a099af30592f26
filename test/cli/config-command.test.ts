/**
 * `gilmsg config`, as fedmsg-config: the effective configuration as JSON (readable back with
 * --config), --query KEY, --json, and --check listing files read, fedmsg keys ignored and
 * problems (exit 2).
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runCli } from '../support/cli.js'

const STOCK = fileURLToPath(new URL('../fixtures/fedmsg-stock.json', import.meta.url))

let base: string
let env: NodeJS.ProcessEnv

beforeAll(() => {
  base = mkdtempSync(join(tmpdir(), 'gilmsg-cli-config-cmd-'))
  env = { XDG_STATE_HOME: join(base, 'state'), GILMSG_CONFIG: '' }
})

afterAll(() => {
  rmSync(base, { recursive: true, force: true })
})

function dirWith(name: string, files: Record<string, unknown>): string {
  const dir = join(base, name)
  mkdirSync(dir, { mode: 0o700 })
  for (const [file, content] of Object.entries(files)) writeFileSync(join(dir, file), JSON.stringify(content), { mode: 0o600 })
  return dir
}

describe('gilmsg config', () => {
  it('prints the effective configuration of the stock fedmsg config as JSON, which reads back to the same', async () => {
    const r = await runCli(['config', '--config', STOCK, '--name', 'me'], { env, cwd: base })
    expect(r.code, r.stderr).toBe(0)
    const c = JSON.parse(r.stdout) as Record<string, unknown>
    expect(c).toMatchObject({
      zmq_tcp_keepalive: true,
      zmq_tcp_keepalive_idle: 60,
      high_water_mark: 0,
      relay_inbound: ['tcp://127.0.0.1:2003'],
      ca_cert_location: 'http://127.0.0.1:8421/fedmsg/ca.crt',
      crl_location: 'http://127.0.0.1:8421/fedmsg/crl.pem',
      sign_messages: false,
      name: 'me',
      certname: null,
      outbox_path: join(base, 'state', 'gilmsg', 'me.outbox.db'),
    })
    expect(Object.keys(c)).toEqual(Object.keys(c).sort())
    expect(c).not.toHaveProperty('irc')
    expect(c).not.toHaveProperty('source')
    const again = join(base, 'effective.json')
    writeFileSync(again, r.stdout, { mode: 0o600 })
    const back = await runCli(['config', '--config', again], { env, cwd: base })
    expect(back.code, back.stderr).toBe(0)
    expect(back.stdout).toBe(r.stdout)
  })

  it('--query prints one key as fedmsg-config does (a string as is, a list one item a line), --json as JSON; exit 1 when unset or unknown', async () => {
    const q = (key: string, ...more: string[]) => runCli(['config', '--config', STOCK, '--query', key, ...more], { env, cwd: base })
    expect((await q('relay_inbound')).stdout).toBe('tcp://127.0.0.1:2003\n')
    expect((await q('endpoints.fedora-infrastructure')).stdout).toBe('tcp://127.0.0.1:9940\n')
    expect((await q('topic_prefix')).stdout).toBe('org.fedoraproject\n')
    expect((await q('crl_cache_expiry')).stdout).toBe('3600\n')
    expect((await q('endpoints', '--json')).stdout).toBe('{"fedora-infrastructure":["tcp://127.0.0.1:9940"],"relay_outbound":["tcp://127.0.0.1:4001"]}\n')
    expect((await q('name', '--json')).stdout).toBe('null\n')
    const unset = await q('name')
    expect([unset.code, unset.stderr]).toEqual([1, 'gilmsg: key "name" is not set\n'])
    const ignored = await q('irc')
    expect(ignored.code).toBe(1)
    expect(ignored.stderr).toMatch(/^gilmsg: "irc" is a fedmsg key gilmsg ignores \(fedmsg: fedmsg-irc/)
    const typo = await q('endpionts')
    expect([typo.code, typo.stderr]).toEqual([1, 'gilmsg: key "endpionts" does not exist in the config (did you mean "endpoints"?)\n'])
  })

  it('--check lists the files read, the fedmsg keys ignored with their use, and says ok (exit 0)', async () => {
    const r = await runCli(['config', '--config', STOCK, '--check'], { env, cwd: base })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toContain(`files read (in this order; a later file wins):\n  ${STOCK} (given with --config)\n`)
    expect(r.stdout).toContain('ignored (fedmsg keys for parts gilmsg does not have):\n')
    expect(r.stdout).toMatch(/^ {2}irc: fedmsg-irc, the IRC bot/m)
    expect(r.stdout).toMatch(/^ {2}zmq_strict: moksha hub/m)
    expect(r.stdout).toMatch(/^ {2}fedmsg\.consumers\.gateway\.port: .*fedmsg-gateway/m)
    expect(r.stdout.trimEnd().split('\n').at(-1)).toBe('ok: no problems')
  })

  it('--check on a directory ($GILMSG_CONFIG) lists each file, every problem, and exits 2; --json says the same', async () => {
    const dir = dirWith('bad', {
      '10-a.json': { environment: 'a', irc: [] },
      '20-b.json': { high_water_mark: 'lots', validate_signature: false },
    })
    const r = await runCli(['config', '--check'], { env: { ...env, GILMSG_CONFIG: dir }, cwd: base })
    expect(r.code).toBe(2)
    expect(r.stdout).toContain(`  ${join(dir, '10-a.json')} (named by $GILMSG_CONFIG)\n  ${join(dir, '20-b.json')} (named by $GILMSG_CONFIG)\n`)
    expect(r.stdout).toContain(`  irc: fedmsg-irc, the IRC bot: networks, channels and filters (${join(dir, '10-a.json')})\n`)
    expect(r.stdout).toContain(
      `problems (2):\n  ${join(dir, '20-b.json')}: unknown key "validate_signature" (did you mean "validate_signatures"?)\n` +
        `  ${join(dir, '20-b.json')}: key "high_water_mark": expected an integer >= 0, got "lots"\n`,
    )
    const j = await runCli(['config', '--check', '--json', '--config', dir], { env, cwd: base })
    expect(j.code).toBe(2)
    const report = JSON.parse(j.stdout) as { ok: boolean; files: { origin: string }[]; ignored: { key: string }[]; problems: string[] }
    expect(report.ok).toBe(false)
    expect(report.files.map((f) => f.origin)).toEqual(['option', 'option'])
    expect(report.ignored.map((i) => i.key)).toEqual(['irc'])
    expect(report.problems).toHaveLength(2)
    // Without --check the first problem is the error (exit 2), saying how many more there are.
    const plain = await runCli(['config', '--config', dir], { env, cwd: base })
    expect(plain.code).toBe(2)
    expect(plain.stderr).toContain('unknown key "validate_signature"')
    expect(plain.stderr).toContain('(and 1 more problem: "gilmsg config --check" lists them)')
  })

  it('--check refuses a directory anyone can write (exit 2)', async () => {
    const dir = dirWith('open', { 'a.json': { environment: 'a' } })
    chmodSync(dir, 0o777)
    const r = await runCli(['config', '--check', '--config', dir], { env, cwd: base })
    expect(r.code).toBe(2)
    expect(r.stdout).toContain(`config directory ${dir} is writable by anyone on this host (mode 0777)`)
  })
})
