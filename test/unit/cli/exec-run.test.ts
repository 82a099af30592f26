/**
 * One run of a `gilmsg consume --exec` command (src/cli/exec/run-command.ts) with real
 * processes: exit code, last stderr line, stdin and environment, spawn failures, and the
 * timeout's SIGTERM then SIGKILL reaching the whole process group; and how a run is judged.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { verdictOf } from '../../../src/cli/exec/outcome.js'
import { runCommand, type RunResult } from '../../../src/cli/exec/run-command.js'
import { waitUntil } from '../../support/reliable-net.js'

const dir = mkdtempSync(join(tmpdir(), 'gilmsg-exec-run-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const sh = (script: string, input = '', env: Record<string, string> = {}, timeoutMs = Infinity, graceMs = 200) =>
  runCommand({ argv: ['sh', '-c', script], shell: false }, { input, env, timeoutMs, graceMs }).result

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describe('runCommand', () => {
  it('reports the exit code and the last non-empty stderr line, trimmed', async () => {
    const r = await sh('echo first >&2; echo "  the reason  " >&2; echo >&2; exit 3')
    expect(r).toMatchObject({ code: 3, signal: null, timedOut: false, spawnError: undefined, lastStderrLine: 'the reason' })
  })

  it('gives the input on stdin and adds the environment; argv is not expanded without a shell', async () => {
    const script = 'read line; [ "$line" = "$EXPECTED" ] && [ "$1" = \'$HOME\' ]'
    const ok = await runCommand({ argv: ['sh', '-c', script, 'sh', '$HOME'], shell: false }, { input: 'hello\n', env: { EXPECTED: 'hello' }, timeoutMs: Infinity, graceMs: 0 }).result
    expect(ok.code).toBe(0)
    const wrong = await runCommand({ argv: ['sh', '-c', script, 'sh', '$HOME'], shell: false }, { input: 'other\n', env: { EXPECTED: 'hello' }, timeoutMs: Infinity, graceMs: 0 }).result
    expect(wrong.code).toBe(1)
    const shell = await runCommand({ argv: ['exit', '$((2+3))'], shell: true }, { input: '', env: {}, timeoutMs: Infinity, graceMs: 0 }).result
    expect(shell.code).toBe(5)
  })

  it('a command that cannot start is reported, not thrown', async () => {
    const r = await runCommand({ argv: [join(dir, 'no-such-command')], shell: false }, { input: 'x', env: {}, timeoutMs: Infinity, graceMs: 0 }).result
    expect(r.code).toBeNull()
    expect(r.spawnError).toMatch(/ENOENT/)
  })

  it('a timeout sends SIGTERM to the whole process group, then SIGKILL after the grace', async () => {
    const pidFile = join(dir, 'bg.pid')
    // The background child inherits the ignored SIGTERM: only the SIGKILL after the grace ends both.
    const r = await sh(`trap '' TERM; sleep 30 & echo $! > ${pidFile}; wait`, '', {}, 300, 300)
    expect(r).toMatchObject({ timedOut: true, signal: 'SIGKILL', code: null })
    expect(r.durationMs).toBeGreaterThanOrEqual(550)
    const bg = Number(readFileSync(pidFile, 'utf8'))
    await waitUntil(() => !alive(bg), 5000, `the background child ${bg} to be gone`)
  })

  it('kill() reaches the group at once', async () => {
    const run = runCommand({ argv: ['sh', '-c', 'sleep 30'], shell: false }, { input: '', env: {}, timeoutMs: Infinity, graceMs: 0 })
    run.kill('SIGKILL')
    expect((await run.result).signal).toBe('SIGKILL')
  })
})

describe('verdictOf', () => {
  const base: RunResult = { code: 0, signal: null, timedOut: false, spawnError: undefined, durationMs: 1, lastStderrLine: undefined }
  const codes = new Set([65, 70])
  it.each([
    [{}, { outcome: 'processed' }],
    [{ code: 65, lastStderrLine: 'bad input' }, { outcome: 'rejected', reason: 'bad input' }],
    [{ code: 70 }, { outcome: 'rejected', reason: 'exit code 70' }],
    [{ code: 1, lastStderrLine: 'oops' }, { outcome: 'failed', why: 'exit code 1: oops' }],
    [{ code: null, signal: 'SIGSEGV' as const }, { outcome: 'signal', why: 'killed by SIGSEGV' }],
    [{ code: null, signal: 'SIGKILL' as const, timedOut: true }, { outcome: 'timeout', why: 'timed out after 2 s' }],
    [{ code: null, spawnError: 'spawn x ENOENT' }, { outcome: 'failed', why: 'could not start: spawn x ENOENT' }],
  ])('%j -> %j', (over, expected) => {
    expect(verdictOf({ ...base, ...over }, codes, 2)).toEqual(expected)
  })
})
