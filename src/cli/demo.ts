import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { parseConfig } from '../config/config.js'
import { initCa, issueCert } from '../crypto/certs.js'
import { parseLogLine } from '../observe/log.js'
import { openGilmsg } from '../reliable/from-config.js'
import { startRelay } from '../transport/relay.js'
import { intOption, parse } from './args.js'
import { UsageError } from '../errors.js'
import { ExitCode } from './exit-codes.js'

const HELP = `Usage: gilmsg demo [--messages N] [--key rsa|ec] [--keep]

Runs gilmsg end to end on loopback with no configuration: creates a temporary CA and
certificates, starts a relay, two recipient processes ("gilmsg tail" as alice and bob) and a
publisher that sends N messages (default 300) which both must acknowledge. A third of the
way in it kills bob with SIGKILL and restarts it: the publisher keeps resending what bob
has not acknowledged, bob's inbox suppresses duplicates. Ends with a table per recipient.
  --key rsa|ec   certificate keys: rsa (default, fedmsg's "x509") or ec ("x509_sha256")
  --keep         keep the temporary directory (configs, certificates, outbox, inboxes)
Exit 0 only if every message was acknowledged by both recipients and no application saw a
message twice.`

const RECIPIENTS = ['alice', 'bob'] as const
type Recipient = (typeof RECIPIENTS)[number]
const CONCURRENCY = 32
const DOWNTIME_MS = 1500
const TOPIC_PREFIX = 'org.fedoraproject.demo.demo.'
const MAIN = fileURLToPath(new URL('./main.js', import.meta.url))

interface RecipientProcess {
  child: ChildProcess
  delivered: Map<string, number>
  stats: Record<string, number>
  exited: Promise<void>
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parse(argv, { messages: { type: 'string', short: 'n' }, key: { type: 'string' }, keep: { type: 'boolean' } })
  if (values.help) {
    process.stdout.write(HELP + '\n')
    return ExitCode.Ok
  }
  const total = intOption(values.messages, '--messages', 300)
  const key = values.key ?? 'rsa'
  if (key !== 'rsa' && key !== 'ec') throw UsageError.format('--key', 'rsa or ec', key)
  const dir = mkdtempSync(join(tmpdir(), 'gilmsg-demo-'))
  const say = (line: string): void => void process.stderr.write(line + '\n')
  const started = Date.now()
  const children = new Set<ChildProcess>()
  const relay = await startRelay({ inbound: ['tcp://127.0.0.1:*'], outbound: ['tcp://127.0.0.1:*'] })
  try {
    say(`demo: working in ${dir}`)
    const pki = join(dir, 'pki')
    await initCa(pki)
    for (const name of ['publisher', ...RECIPIENTS]) await issueCert(pki, name, { key })
    say(`demo: CA and certificates for publisher, alice, bob (${key === 'rsa' ? 'RSA-2048, x509' : 'P-256, x509_sha256'})`)
    say(`demo: relay ${relay.endpoints.inbound.join(',')} -> ${relay.endpoints.outbound.join(',')}`)
    const base = {
      environment: 'demo',
      endpoints: { relay_outbound: relay.endpoints.outbound },
      relay_inbound: relay.endpoints.inbound,
      active: true,
      ssldir: pki,
      ca_cert_location: join(pki, 'ca.crt'),
      crl_location: join(pki, 'crl.pem'),
      crypto_backend: key === 'rsa' ? 'x509' : 'x509_sha256',
    }
    for (const name of RECIPIENTS) {
      writeFileSync(join(dir, `${name}.json`), JSON.stringify({ ...base, name, certname: name, inbox_path: join(dir, `${name}.inbox.db`) }, null, 2), { mode: 0o600 })
    }

    const live = new Map<Recipient, RecipientProcess>()
    const delivered = new Map<Recipient, Map<string, number>>(RECIPIENTS.map((r) => [r, new Map()]))
    const consumerStats = new Map<Recipient, Record<string, number>>(RECIPIENTS.map((r) => [r, {}]))
    const startRecipient = async (name: Recipient): Promise<RecipientProcess> => {
      const child = spawn(process.execPath, [MAIN, 'tail', '--config', join(dir, `${name}.json`), '--topic', TOPIC_PREFIX, '--json', '--stats'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      children.add(child)
      const proc: RecipientProcess = {
        child,
        delivered: delivered.get(name) as Map<string, number>,
        stats: consumerStats.get(name) as Record<string, number>,
        exited: new Promise((resolve) => child.once('exit', () => resolve())),
      }
      void proc.exited.then(() => children.delete(child))
      createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
        const id = (JSON.parse(line) as { msg_id: string }).msg_id
        proc.delivered.set(id, (proc.delivered.get(id) ?? 0) + 1)
      })
      const ready = new Promise<void>((resolve, reject) => {
        child.once('exit', (code) => reject(new Error(`recipient ${name} exited with ${code} before it was ready`)))
        // tail logs one JSON object per line on stderr (its default off a terminal).
        createInterface({ input: child.stderr as NodeJS.ReadableStream }).on('line', (line) => {
          const entry = parseLogLine(line)
          if (entry?.msg?.startsWith('listening on')) resolve()
          else if (entry?.msg === 'stats' && entry.stats) {
            for (const [k, v] of Object.entries(entry.stats)) proc.stats[k] = (proc.stats[k] ?? 0) + v
          } else say(`[${name}] ${entry?.msg ?? line}`)
        })
      })
      await ready
      live.set(name, proc)
      return proc
    }
    await Promise.all(RECIPIENTS.map(startRecipient))
    say('demo: recipients alice and bob are listening')

    const config = parseConfig({ ...base, name: 'publisher', certname: 'publisher', outbox_path: join(dir, 'publisher.outbox.db') }, 'demo')
    const g = await openGilmsg(config, { inbox: false })
    const latencies = new Map<Recipient, number[]>(RECIPIENTS.map((r) => [r, []]))
    let acked = 0
    let failed = 0
    let next = 0
    let killed = false
    const showProgress = (): void => {
      const line = `demo: ${acked}/${total} acknowledged by both, ${g.publisher?.resends ?? 0} resends`
      if (process.stderr.isTTY) process.stderr.write(`\r${line}   `)
      else say(line)
    }
    const ticker = setInterval(showProgress, process.stderr.isTTY ? 100 : 1000)
    const crash = async (): Promise<void> => {
      const bob = live.get('bob')
      if (bob === undefined) return
      say(`\ndemo: killing bob (SIGKILL) after ${acked} messages; restarting it in ${DOWNTIME_MS} ms`)
      bob.child.kill('SIGKILL')
      await bob.exited
      live.delete('bob')
      await new Promise((r) => setTimeout(r, DOWNTIME_MS))
      await startRecipient('bob')
      say('\ndemo: bob is back; resends bring it what it missed')
    }
    let crashDone: Promise<void> = Promise.resolve()
    const worker = async (): Promise<void> => {
      while (next < total) {
        const n = next++
        const t0 = Date.now()
        try {
          const receipt = await g.publish('tick', { n, of: total }, { recipients: [...RECIPIENTS], ackTimeout: 10_000, modname: 'demo' })
          for (const r of receipt.recipients) latencies.get(r.cn as Recipient)?.push(r.at - t0)
          acked++
        } catch (e) {
          failed++
          say(`\ndemo: message ${n}: ${(e as Error).message}`)
        }
        if (!killed && acked >= Math.floor(total / 3)) {
          killed = true
          crashDone = crash()
        }
      }
    }
    await Promise.all(Array.from({ length: CONCURRENCY }, worker))
    await crashDone
    clearInterval(ticker)
    showProgress()
    if (process.stderr.isTTY) process.stderr.write('\n')
    const resendsTo = g.publisher?.resendsTo.snapshot() ?? {}
    await g.close()
    for (const p of live.values()) p.child.kill('SIGTERM')
    await Promise.all([...live.values()].map((p) => p.exited))

    const rows = RECIPIENTS.map((name) => {
      const lat = (latencies.get(name) ?? []).sort((a, b) => a - b)
      const seen = delivered.get(name) as Map<string, number>
      const twice = [...seen.values()].filter((c) => c > 1).length
      return { name, acked: lat.length, resends: resendsTo[name] ?? 0, dups: consumerStats.get(name)?.['duplicates_suppressed'] ?? 0, app: seen.size, twice, p50: percentile(lat, 50), p99: percentile(lat, 99) }
    })
    const out: string[] = [
      '',
      `recipient  acked  resends  duplicates suppressed  app deliveries  seen twice  ACK p50   ACK p99`,
      ...rows.map(
        (r) =>
          `${r.name.padEnd(9)}  ${String(r.acked).padStart(5)}  ${String(r.resends).padStart(7)}  ${String(r.dups).padStart(21)}  ${String(r.app).padStart(14)}  ${String(r.twice).padStart(10)}  ${`${r.p50} ms`.padStart(7)}  ${`${r.p99} ms`.padStart(8)}`,
      ),
      '',
      `${acked}/${total} messages acknowledged by both in ${((Date.now() - started) / 1000).toFixed(1)} s; ${failed} failed.`,
    ]
    process.stdout.write(out.join('\n') + '\n')
    const ok = acked === total && failed === 0 && rows.every((r) => r.twice === 0)
    if (!ok) say('demo: FAILED: not every message was acknowledged exactly once by both recipients')
    return ok ? ExitCode.Ok : ExitCode.Failure
  } finally {
    for (const c of children) c.kill('SIGKILL')
    await relay.close()
    if (values.keep) say(`demo: kept ${dir}`)
    else rmSync(dir, { recursive: true, force: true })
  }
}
