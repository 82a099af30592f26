/**
 * `gilmsg consume --exec CMD` as a real process, answering `gilmsg publish` processes through
 * an in-process relay on loopback tcp. CMD is test/fixtures/exec-cmd.mjs, which logs what it
 * was given (stdin, environment, argv) to a file and acts on the payload.
 *   alice: defaults (in order; reject code 65; 5 attempts), with --metrics
 *   bob:   --timeout 3 --grace 0.5 --max-attempts 2
 *   carol: --concurrency 3
 *   dave:  --shell
 *   erin:  --max-attempts 1, SIGKILLed during its only attempt
 */
import { readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readExecEvents, type ExecEvent } from '../support/exec-events.js'
import { CliProcess, logLine, logRecord, runCli } from '../support/cli.js'
import { APP_MODNAME, APP_PREFIX, type CliWorld, startCliWorld, waitUntil } from '../support/reliable-net.js'

const CMD = fileURLToPath(new URL('../fixtures/exec-cmd.mjs', import.meta.url))
const NAMES = ['pub', 'alice', 'bob', 'carol', 'dave', 'erin'] as const

let dir: string
let env: NodeJS.ProcessEnv
let net: CliWorld['net']
let configs: Record<string, string> = {}
const running: CliProcess[] = []
/** Commands left running by a SIGKILLed consume (they hang), killed at the end. */
const orphans: number[] = []

beforeAll(async () => {
  ;({ dir, env, net, configs } = await startCliWorld('gilmsg-cli-consume-', NAMES))
}, 30_000)

afterAll(async () => {
  await Promise.allSettled(running.map((p) => p.stop('SIGKILL')))
  for (const pid of orphans) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // gone already
    }
  }
  await net?.relay.close()
  if (dir) rmSync(dir, { recursive: true, force: true })
})


/** Starts `gilmsg consume` as `name`; its CMD logs to `<dir>/<name>.log`. */
async function startConsume(name: string, flags: readonly string[], command: readonly string[] = [process.execPath, CMD]): Promise<{ p: CliProcess; events: () => ExecEvent[] }> {
  const log = join(dir, `${name}.log`)
  const p = new CliProcess(['consume', '--config', configs[name] as string, '--topic', APP_PREFIX, ...flags, '--exec', ...command], { ...env, EXEC_LOG: log })
  running.push(p)
  await p.waitFor(logLine('running '))
  const events = (): ExecEvent[] => readExecEvents(log)
  return { p, events }
}

function publish(to: string, msg: unknown) {
  return runCli(
    ['publish', '--config', configs['pub'] as string, '--recipients', to, '--ack-timeout', '30', '--modname', APP_MODNAME, '--topic', 'job', '--json-input', '--json', '--message', JSON.stringify(msg)],
    { env, timeoutMs: 40_000 },
  )
}

const msgIdOf = (stdout: string): string => (JSON.parse(stdout.trim()) as { msgId: string }).msgId

describe('gilmsg consume --exec', () => {
  it('exit 0 -> processed (publish exits 0); stdin, env and argv as documented; reject code -> publish exits 4 with the reason; failures retried, then rejected', async () => {
    const { p, events } = await startConsume('alice', ['--metrics', '127.0.0.1:0'], [process.execPath, CMD, 'two words', '$HOME'])

    const ok = await publish('alice', { n: 1 })
    expect(ok.code, ok.stderr).toBe(0)
    const id = msgIdOf(ok.stdout)
    const start = events().find((e) => e.id === id && e.event === 'start')
    expect(start).toMatchObject({ attempt: 1, topic: `${APP_PREFIX}job`, signer: 'pub', stdin_msg_id: id, stdin_signed: true, argv: ['two words', '$HOME'] })
    expect(events().filter((e) => e.id === id).map((e) => e.event)).toEqual(['start', 'done'])
    const processed = logRecord(await p.waitFor(logLine(`processed ${id}`)))
    expect(processed).toMatchObject({ msg_id: id, attempt: 1, exit_code: 0, outcome: 'processed' })
    expect(typeof processed?.['duration_ms']).toBe('number')

    const refused = await publish('alice', { reject: 'the reason: field x is missing' })
    expect(refused.code, refused.stderr).toBe(4)
    expect(refused.stderr).toContain('the reason: field x is missing')
    expect(refused.stderr).not.toContain('checking')

    const flaky = await publish('alice', { fail_until: 3 })
    expect(flaky.code, flaky.stderr).toBe(0)
    const flakyId = msgIdOf(flaky.stdout)
    expect(events().filter((e) => e.id === flakyId && e.event === 'start').map((e) => e.attempt)).toEqual([1, 2, 3])

    const broken = await publish('alice', { fail: 1 })
    expect(broken.code, broken.stderr).toBe(4)
    expect(broken.stderr).toContain('gave up after 5 attempts (last: exit code 1: temporary failure)')

    // In order, one at a time (--concurrency 1): two slow jobs published together do not overlap.
    const [a, b] = await Promise.all([publish('alice', { sleep_ms: 300 }), publish('alice', { sleep_ms: 300 })])
    expect([a.code, b.code]).toEqual([0, 0])
    const slow = events().filter((e) => e.id === msgIdOf(a.stdout) || e.id === msgIdOf(b.stdout))
    expect(slow.map((e) => e.event)).toEqual(['start', 'done', 'start', 'done'])

    const url = logRecord(await p.waitFor(logLine('serving /metrics')))?.['metrics_url'] as string
    const metrics = await (await fetch(`${url}/metrics`)).text()
    expect(metrics).toMatch(/gilmsg_exec_runs_total\{outcome="processed"\} 4\b/)
    expect(metrics).toMatch(/gilmsg_exec_runs_total\{outcome="rejected"\} 1\b/)
    expect(metrics).toMatch(/gilmsg_exec_runs_total\{outcome="failed"\} 7\b/)
    expect(metrics).toMatch(/gilmsg_exec_gave_up_total 1\b/)
    expect(metrics).toMatch(/gilmsg_exec_duration_seconds_count\{outcome="processed"\} 4\b/)
    expect(metrics).toMatch(/gilmsg_consumer_acks_sent_total\{disposition="processed"\} 4\b/)

    expect(await p.stop('SIGTERM')).toBe(0)
  }, 60_000)

  it('--timeout: SIGTERM, SIGKILL after --grace, no ACK; rejected after --max-attempts', async () => {
    // 3 s: CMD (a Node script) must have started and installed its SIGTERM handler by then, even on a loaded machine.
    const { p, events } = await startConsume('bob', ['--timeout', '3', '--grace', '0.5', '--max-attempts', '2'])
    const r = await publish('bob', { hang: true, ignore_term: true })
    expect(r.code, r.stderr).toBe(4)
    expect(r.stderr).toContain('gave up after 2 attempts (last: timed out after 3 s)')
    const mine = events()
    expect(mine.filter((e) => e.event === 'start').map((e) => e.attempt)).toEqual([1, 2])
    expect(mine.filter((e) => e.event === 'sigterm')).toHaveLength(2)
    expect(mine.some((e) => e.event === 'done')).toBe(false)
    const first = logRecord(await p.waitFor(/"outcome":"timeout"/))
    expect(first?.['signal']).toBe('SIGKILL')
    expect(first?.['duration_ms']).toBeGreaterThanOrEqual(3400)
    expect(await p.stop('SIGTERM')).toBe(0)
  }, 40_000)

  it('--concurrency 3 runs three messages at once', async () => {
    const { p, events } = await startConsume('carol', ['--concurrency', '3'])
    const rs = await Promise.all([1, 2, 3].map((n) => publish('carol', { n, sleep_ms: 3000 })))
    expect(rs.map((r) => r.code)).toEqual([0, 0, 0])
    const e = events()
    const firstDone = Math.min(...e.filter((x) => x.event === 'done').map((x) => x.t))
    expect(e.filter((x) => x.event === 'start' && x.t < firstDone)).toHaveLength(3)
    expect(await p.stop('SIGTERM')).toBe(0)
  }, 40_000)

  it('--shell runs the command with /bin/sh', async () => {
    const out = join(dir, 'dave.out')
    const { p } = await startConsume('dave', ['--shell'], [`printf '%s %s\\n' "$GILMSG_MSG_ID" "$GILMSG_ATTEMPT" >>`, out])
    const r = await publish('dave', { n: 1 })
    expect(r.code, r.stderr).toBe(0)
    expect(readFileSync(out, 'utf8')).toBe(`${msgIdOf(r.stdout)} 1\n`)
    expect(await p.stop('SIGTERM')).toBe(0)
  }, 30_000)

  it('SIGTERM while CMD runs: it gets --grace to finish, then is killed without an ACK; it runs again after a restart', async () => {
    const { p, events } = await startConsume('bob', ['--grace', '0.2'])
    const seen = events().length
    const pending = publish('bob', { sleep_ms: 2500 })
    await waitUntil(() => events().slice(seen).some((e) => e.event === 'start'), 15_000, 'the slow job to start')
    expect(await p.stop('SIGTERM')).toBe(0)
    await p.waitFor(/"signal":"SIGKILL".*"outcome":"signal"/)
    await startConsume('bob', [])
    const r = await pending
    expect(r.code, r.stderr).toBe(0)
    const id = msgIdOf(r.stdout)
    expect(events().filter((e) => e.id === id).map((e) => [e.event, e.attempt])).toEqual([
      ['start', 1],
      ['start', 2],
      ['done', 2],
    ])
  }, 40_000)

  it('an attempt cut short by a crash counts: with --max-attempts 1, the restarted consume rejects the message without running it', async () => {
    const { p, events } = await startConsume('erin', ['--max-attempts', '1'])
    const pending = publish('erin', { hang: true })
    await waitUntil(() => events().some((e) => e.event === 'start'), 15_000, 'the job to start')
    orphans.push(...events().map((e) => e['pid'] as number))
    await p.stop('SIGKILL')
    const again = await startConsume('erin', ['--max-attempts', '1'])
    const r = await pending
    expect(r.code, r.stderr + again.p.stderrLines.join('\n')).toBe(4)
    expect(r.stderr).toContain('gave up after 1 attempt (last: it did not finish: gilmsg stopped or crashed while it ran)')
    expect(events().filter((e) => e.event === 'start')).toHaveLength(1)
  }, 40_000)

  it('usage errors exit 2', async () => {
    for (const args of [
      [],
      ['--exec'],
      ['--reject-codes', 'x', '--exec', 'true'],
      ['--reject-codes', '0', '--exec', 'true'],
      ['--concurrency', '0', '--exec', 'true'],
      ['--max-attempts', '1.5', '--exec', 'true'],
      ['--timeout', '-1', '--exec', 'true'],
      ['--bogus', '--exec', 'true'],
    ]) {
      const r = await runCli(['consume', '--config', configs['alice'] as string, ...args], { env })
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2)
      expect(r.stderr).toMatch(/^gilmsg: /)
    }
  }, 30_000)
})
