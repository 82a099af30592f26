/**
 * `gilmsg tail` must not let a message rewrite the operator's terminal: a raw ZeroMQ PUB
 * sends a topic full of escape sequences, C1 controls and bidi overrides, and a frame 0
 * that does not match it (a drop whose detail quotes both). Text output, `--json` output and
 * the `--verbose` drop lines on stderr carry them only as `\uXXXX` escapes.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Publisher } from 'zeromq'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CLI, logRecord } from '../support/cli.js'

/** Everything a terminal may act on, newline excepted (it ends each line). */
const UNSAFE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/
const HOSTILE = 'org.test.it.\u001b]0;pwned\u0007\u001b[2J\u001b[H\r\b\u007f\u009b31m\u0085\u202eevil\u2066x\u2069\u2028end'

interface Tail {
  readonly child: ChildProcess
  stdout: string
  stderr: string
}

let dir: string
let raw: Publisher
const tails: Tail[] = []

function startTail(args: string[], config: string): Tail {
  const child = spawn(process.execPath, [CLI, 'tail', '--config', config, '--no-validate', '--no-ack', '--topic', '', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, GILMSG_CONFIG: '', XDG_STATE_HOME: join(dir, 'state') },
  })
  const tail: Tail = { child, stdout: '', stderr: '' }
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (tail.stdout += d))
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (tail.stderr += d))
  tails.push(tail)
  return tail
}

function envelope(topic: string, n: number): string {
  return JSON.stringify({ topic, msg_id: `2026-${n}`, i: n, timestamp: 1_700_000_000, username: 'mallory', msg: { n } })
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gilmsg-tail-terminal-'))
  raw = new Publisher({ linger: 0 })
  await raw.bind('tcp://127.0.0.1:*')
}, 30_000)

afterAll(() => {
  for (const t of tails) t.child.kill('SIGKILL')
  raw.close()
  rmSync(dir, { recursive: true, force: true })
})

describe('gilmsg tail and a hostile topic', () => {
  it('escapes control characters and bidi overrides in text, --json and drop details', async () => {
    const config = join(dir, 'tail.json')
    writeFileSync(config, JSON.stringify({ topic_prefix: 'org.test', environment: 'it', endpoints: { mallory: [raw.lastEndpoint] } }), { mode: 0o600 })
    const text = startTail(['--verbose'], config)
    const json = startTail(['--json'], config)
    // The slow joiner: send until both have printed the message and the drop was reported.
    const until = Date.now() + 15_000
    for (let n = 0; !(text.stdout.includes('evil') && json.stdout.includes('evil') && text.stderr.includes('topic_mismatch')); n++) {
      if (Date.now() > until) throw new Error(`tail printed nothing in time\ntext stdout: ${text.stdout}\ntext stderr: ${text.stderr}\njson stdout: ${json.stdout}`)
      await raw.send([HOSTILE, envelope(HOSTILE, n)])
      await raw.send([`${HOSTILE}.frame0`, envelope(HOSTILE, n)])
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    for (const [what, out] of [
      ['text stdout', text.stdout],
      ['text stderr', text.stderr],
      ['json stdout', json.stdout],
    ] as const) {
      expect(UNSAFE.exec(out), `${what}: ${JSON.stringify(out)}`).toBeNull()
    }
    const escaped = 'org.test.it.\\u001b]0;pwned\\u0007\\u001b[2J\\u001b[H\\u000d\\u0008\\u007f\\u009b31m\\u0085\\u202eevil\\u2066x\\u2069\\u2028end'
    const [topic, signer, msg] = (text.stdout.split('\n')[0] as string).split(' ')
    expect([topic, signer]).toEqual([escaped, '-'])
    expect(msg).toMatch(/^\{"n":\d+\}$/)
    // --verbose logs each drop (JSON lines on a pipe), its detail escaped as on a terminal.
    const drop = text.stderr
      .split('\n')
      .map(logRecord)
      .find((r) => r?.['reason'] === 'topic_mismatch' && r['detail'] !== undefined)
    expect(drop?.['msg']).toBe(`dropped (topic_mismatch): frame 0 "${escaped}.frame0" is not the signed topic "${escaped}"`)
    // --json stays JSON, with the topic exactly as sent.
    const first = JSON.parse(json.stdout.split('\n')[0] as string) as { topic: string; msg_id: string; signer: null; msg: unknown }
    expect(first.topic).toBe(HOSTILE)
    expect(first.signer).toBeNull()
  }, 30_000)
})
