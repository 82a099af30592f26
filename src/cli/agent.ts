import { busFromConfig } from '../bus/from-config.js'
import { SqliteOutboxStore } from '../outbox/sqlite.js'
import { storePath } from '../reliable/from-config.js'
import { Gilmsg } from '../reliable/gilmsg.js'
import { AgentListener, AgentRunningError, agentSocketPath } from './agent-socket.js'
import { parse } from './args.js'
import { cliConfig } from './config.js'
import { cliCrlOptions } from './crl-report.js'
import { ExitCode } from './exit-codes.js'
import { untilInterrupted } from './signals.js'

/** How often the agent checks whether another process wrote to the outbox (`PRAGMA data_version`): what finds a message whose wake-up was lost. */
export const AGENT_CHECK_MS = 2000

const HELP = `Usage: gilmsg agent [--config FILE] [--name NAME] [--verbose]

Delivers the guaranteed messages of one outbox (that of --name: outbox_path, or
<state dir>/gilmsg/<name>.outbox.db, the file "gilmsg publish" and "gilmsg enqueue" use):
resends what is pending in it at start, sends at once what "gilmsg enqueue" commits while it
runs, and keeps resending until every recipient acknowledged or the deadline passed.
One agent per outbox: it listens on <outbox>.agent.sock (mode 0600), where enqueue names
what it committed; a second agent on the same outbox is refused (exit 1). Should a wake-up
be lost (an enqueue killed between its commit and its notice), the agent finds the message
at its next check of the file (every ${AGENT_CHECK_MS / 1000} s) or at its next start.
  --verbose   say which config file was loaded, and print a line for every message
              delivered (stderr)
Prints "agent: ready ..." on stderr once it listens and has resumed the outbox; expiries,
rejections and errors are printed there too. Runs until SIGINT/SIGTERM: then it stops taking
notices, stops resending, commits what it recorded, closes its sockets and exits 0 (pending
messages stay in the outbox for the next agent); a second signal meanwhile exits at once
(130 SIGINT, 143 SIGTERM).
Exit codes: 0 stopped by a signal; 1 another agent owns the outbox, or a failure;
2 usage or configuration error (e.g. an outbox path too long for its socket).`

/** Where the agent says what happens: stderr lines for now, in one place so that a structured logger can take over. */
export interface AgentLog {
  info(line: string): void
  /** Only with --verbose. */
  detail(line: string): void
}

function stderrLog(verbose: boolean): AgentLog {
  const write = (line: string): void => void process.stderr.write(`agent: ${line}\n`)
  return { info: write, detail: verbose ? write : () => {} }
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parse(argv, { verbose: { type: 'boolean', short: 'v' } })
  if (values.help) {
    process.stdout.write(HELP + '\n')
    return ExitCode.Ok
  }
  const log = stderrLog(values.verbose ?? false)
  const config = cliConfig(values)
  const outboxPath = storePath(config, 'outbox')
  const socketPath = agentSocketPath(outboxPath)
  const bus = await busFromConfig(config, cliCrlOptions('agent', true))
  let store: SqliteOutboxStore
  try {
    store = SqliteOutboxStore.open(outboxPath, { synchronous: config.store_synchronous })
  } catch (e) {
    await bus.close()
    throw e
  }
  // Listening comes before the startup scan (Gilmsg.open sends what is unsent), so that nothing
  // committed in between goes unnoticed; a notice before the scan is covered by the scan itself.
  let g: Gilmsg | undefined
  let listener: AgentListener
  try {
    // Under the outbox's write lock: two agents starting at once cannot both take over a stale socket.
    listener = await store.exclusively(() => AgentListener.listen(socketPath, () => void g?.publisher?.sendUnsent()))
  } catch (e) {
    await Promise.all([store.close(), bus.close()])
    if (!(e instanceof AgentRunningError)) throw e
    process.stderr.write(`gilmsg agent: ${e.message}\n`)
    return ExitCode.Failure
  }
  const interrupted = untilInterrupted()
  try {
    g = await Gilmsg.open({ bus, outbox: store, acceptLegacyAcks: config.accept_legacy_acks, resendRate: config.resend_rate })
  } catch (e) {
    await listener.close()
    throw e
  }
  g.on('delivered', (r) => log.detail(`delivered ${r.msgId} to ${r.recipients.map((a) => `${a.cn} (${a.disposition})`).join(', ')}`))
  g.on('expired', (e) => log.info(`expired ${e.msgId}: missing ${e.missing.join(', ')}${e.acked.length > 0 ? `; acked by ${e.acked.map((a) => a.cn).join(', ')}` : ''}`))
  g.on('rejected', (e) => log.info(`rejected ${e.msgId} by ${e.recipient}: ${e.reason}`))
  g.on('background:error', (e) => log.info(`error: ${e.message}`))

  let version = store.dataVersion()
  const check = setInterval(() => {
    try {
      const now = store.dataVersion()
      if (now === version) return
      version = now
      void g?.publisher?.sendUnsent()
    } catch (e) {
      log.info(`error: cannot check the outbox: ${(e as Error).message}`)
    }
  }, AGENT_CHECK_MS)
  log.info(`ready: delivering from ${outboxPath} (${store.counts().pending} pending), woken on ${socketPath}`)

  const why = await interrupted
  clearInterval(check)
  await listener.close()
  const pending = store.counts().pending
  await g.close()
  log.info(`stopped (${why}); ${pending} pending stay in the outbox`)
  return ExitCode.Ok
}
