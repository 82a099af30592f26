/**
 * Crashes (issue #5, section 1): a consumer process in manual-ACK mode SIGKILLed after its
 * application processed a message and before it acknowledged it gets the message again when
 * it restarts on the same inbox: at-least-once (spec/failure-model.md F4).
 *
 * Processes: alice runs test/fixtures/manual-consumer.mjs (the library's `ack: 'manual'`,
 * acknowledging after its work is done); each message is published by a `gilmsg publish
 * --recipients alice` process, as a shell script would; an in-process relay on loopback tcp.
 *
 * 1. Message A: alice processes and acknowledges it; its publish process exits 0.
 * 2. Message B: alice processes it (the fixture holds from the 2nd hand-over on) and is
 *    SIGKILLed before acknowledging; B's publish process keeps waiting (no ACK went out).
 * 3. alice restarts on the same inbox: the resend of B is handed to her application again,
 *    she acknowledges it, and B's publish process exits 0. A is never handed over again.
 */
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CliProcess } from '../support/cli.js'
import { APP_MODNAME, APP_PREFIX, type CliWorld, sleep, startCliWorld, withTimeout } from '../support/reliable-net.js'
import { ScriptProcess } from '../support/script-process.js'

const CONSUMER = fileURLToPath(new URL('../fixtures/manual-consumer.mjs', import.meta.url))

let dir: string
let env: NodeJS.ProcessEnv
let net: CliWorld['net']
let configs: Record<string, string> = {}
const consumers: ScriptProcess[] = []
const publishers: CliProcess[] = []

beforeAll(async () => {
  ;({ dir, env, net, configs } = await startCliWorld('gilmsg-manual-kill-', ['pub', 'alice']))
}, 30_000)

afterAll(async () => {
  await Promise.allSettled([...consumers.map((c) => c.kill('SIGKILL')), ...publishers.map((p) => p.stop('SIGKILL'))])
  await net?.relay.close()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

async function startAlice(label: string, holdFrom: number, extra: readonly string[] = []): Promise<ScriptProcess> {
  const c = new ScriptProcess(label, CONSUMER, [configs['alice'] as string, '--prefix', APP_PREFIX, '--hold-from', String(holdFrom), ...extra], env)
  consumers.push(c)
  await c.waitForLine(/^ready alice$/, 15_000)
  return c
}

function publish(message: string, extra: readonly string[] = []): CliProcess {
  const p = new CliProcess(
    ['publish', '--config', configs['pub'] as string, '--recipients', 'alice', '--ack-timeout', '60', '--modname', APP_MODNAME, '--topic', 'job', '--json', '--message', message, ...extra],
    env,
  )
  publishers.push(p)
  return p
}

/** The application's work, as the consumer printed it: [msg_id, payload] per hand-over. */
const processed = (c: ScriptProcess): [string, string][] =>
  c.stdoutLines.filter((l) => l.startsWith('processed ')).map((l) => {
    const [, , id, ...msg] = l.split(' ')
    return [id as string, msg.join(' ')]
  })

describe('manual ACK mode: a consumer SIGKILLed after processing, before acknowledging', () => {
  it('gets the message again after its restart and acknowledges it; the publisher waits until then', async () => {
    const first = await startAlice('alice (first life)', 2)

    // A: processed and acknowledged.
    const a = publish('A')
    expect(await withTimeout(a.exited, 30_000, 'publish A to exit'), a.stderrLines.join('\n')).toBe(0)
    const aId = (JSON.parse(a.stdoutLines.at(-1) as string) as { msgId: string }).msgId
    await first.waitFor((lines) => lines.includes(`acked ${aId}`), 'A acked', 5000)

    // B: processed, then the process dies before ack().
    const b = publish('B')
    await first.waitFor((lines) => lines.some((l) => l.startsWith('processed 2 ')), 'B processed', 30_000)
    await first.kill('SIGKILL')
    const [bId, bMsg] = processed(first)[1] as [string, string]
    expect(bMsg).toBe('{"log":"B"}')
    expect(first.stdoutLines.filter((l) => l.startsWith('acked ')), 'the first life acknowledged A only').toEqual([`acked ${aId}`])
    // No ACK for B exists: its publisher is still waiting, through at least one resend period.
    await sleep(1500)
    expect(b.child.exitCode, 'publish B must not succeed without an ACK').toBeNull()

    // Restart on the same inbox: B is handed over again (at least once) and acknowledged.
    const second = await startAlice('alice (second life)', 0)
    expect(await withTimeout(b.exited, 45_000, 'publish B to exit after the restart'), b.stderrLines.join('\n')).toBe(0)
    const receipt = JSON.parse(b.stdoutLines.at(-1) as string) as { msgId: string; recipients: { cn: string; disposition: string }[] }
    expect(receipt.msgId).toBe(bId)
    expect(receipt.recipients.map((r) => [r.cn, r.disposition])).toEqual([['alice', 'processed']])
    await second.waitFor((lines) => lines.includes(`acked ${bId}`), 'B acked by the second life', 5000)

    // The application saw A once and B twice (once per life); nothing else.
    const all = [...processed(first), ...processed(second)].map(([id]) => id)
    expect(all.filter((id) => id === aId)).toHaveLength(1)
    expect(all.filter((id) => id === bId)).toHaveLength(2)
    expect(all).toHaveLength(3)
    await second.kill('SIGTERM')
    console.log(
      `manual ACK kill: A ${aId} processed once; B ${bId} processed by the killed process, redelivered after the restart and acked (publish B exit 0)`,
    )
  }, 120_000)
})

describe('manual ACK mode: a consumer that refuses the message', () => {
  it('`gilmsg publish` exits 4 at once, naming the recipient and its reason; the consumer saw it once', async () => {
    const alice = await startAlice('alice (refusing)', 0, ['--reject-field', 'refuse'])
    const p = publish(JSON.stringify({ job: 'resize', refuse: 'disk quota exceeded' }), ['--json-input'])
    // Well before the 60 s ACK timeout: the rejection settles the publish (a timeout would exit 3).
    expect(await withTimeout(p.exited, 30_000, 'publish to exit'), p.stderrLines.join('\n')).toBe(4)
    expect(p.stderrLines.join('\n')).toMatch(/alice/)
    expect(p.stderrLines.join('\n')).toMatch(/disk quota exceeded/)
    await alice.waitForLine(/^rejected /, 5_000)
    expect(processed(alice).map(([, msg]) => JSON.parse(msg) as unknown)).toEqual([{ job: 'resize', refuse: 'disk quota exceeded' }])
    await alice.kill('SIGTERM')
  }, 60_000)
})
