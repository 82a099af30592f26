import { busFromConfig } from '../bus/from-config.js'
import type { GilmsgConfig } from '../config/config.js'
import { SqliteOutboxStore } from '../outbox/sqlite.js'
import { storePath } from '../reliable/from-config.js'
import { Gilmsg } from '../reliable/gilmsg.js'
import { AgentListener, AgentRunningError, agentSocketPath } from './agent-socket.js'
import { parse } from './args.js'
import { cliConfig } from './config.js'
import { ExitCode } from './exit-codes.js'
import { openService, SERVICE_HELP, SERVICE_OPTIONS, type Service } from './service.js'
import { untilInterrupted } from './signals.js'

/** How often the agent checks whether another process wrote to the outbox (`PRAGMA data_version`): what finds a message whose wake-up was lost. */
export const AGENT_CHECK_MS = 2000

const HELP = `Usage: gilmsg agent [--config FILE] [--name NAME] [--verbose]
                    [--metrics HOST:PORT] [--log-format json|text] [--log-level LEVEL]

Delivers the guaranteed messages of one outbox (that of --name: outbox_path, or
<state dir>/gilmsg/<name>.outbox.db, the file "gilmsg publish" and "gilmsg enqueue" use):
resends what is pending in it at start, sends at once what "gilmsg enqueue" commits while it
runs, and keeps resending until every recipient acknowledged or the deadline passed.
One agent per outbox: it listens on <outbox>.agent.sock (mode 0600), where enqueue names
what it committed; a second agent on the same outbox is refused (exit 1). Should a wake-up
be lost (an enqueue killed between its commit and its notice), the agent finds the message
at its next check of the file (every ${AGENT_CHECK_MS / 1000} s) or at its next start.
  --verbose   say which config file was loaded, and log a line for every message
              delivered (--log-level debug)
${SERVICE_HELP}
Logs "ready: ..." once it listens and has resumed the outbox; every expiry and rejection is
logged (warn, with msg_id, recipient or missing, reason), errors too. /readyz checks its
socket, the outbox and the CRL. Runs until SIGINT/SIGTERM: then it stops taking notices,
stops resending, commits what it recorded, closes its sockets (within zmq_linger) and exits 0
(pending messages stay in the outbox for the next agent); a second signal meanwhile exits at
once (130 SIGINT, 143 SIGTERM).
Exit codes: 0 stopped by a signal; 1 another agent owns the outbox, or a failure;
2 usage or configuration error (e.g. an outbox path too long for its socket).`

export async function run(argv: string[]): Promise<number> {
  const { values } = parse(argv, { verbose: { type: 'boolean', short: 'v' }, ...SERVICE_OPTIONS })
  if (values.help) {
    process.stdout.write(HELP + '\n')
    return ExitCode.Ok
  }
  const config = cliConfig(values)
  const svc = openService('agent', values, config)
  try {
    return await agent(config, svc)
  } finally {
    await svc.close()
  }
}

async function agent(config: GilmsgConfig, svc: Service): Promise<number> {
  const log = svc.log
  let listening = false
  svc.readiness.add('sockets', () => (listening ? undefined : 'not listening for enqueue notices'))
  await svc.startHealth()
  const outboxPath = storePath(config, 'outbox')
  const socketPath = agentSocketPath(outboxPath)
  const bus = await busFromConfig(config, svc.busOptions)
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
    log.error({ socket: socketPath }, e.message)
    return ExitCode.Failure
  }
  listening = true
  const interrupted = untilInterrupted()
  try {
    g = await Gilmsg.open({ bus, outbox: store, acceptLegacyAcks: config.accept_legacy_acks, resendRate: config.resend_rate })
  } catch (e) {
    await listener.close()
    throw e
  }
  // Expiries, rejections and background errors are logged by the service (logPublisherEvents).
  svc.watchGilmsg(g)
  g.on('delivered', (r) => {
    if (log.isLevelEnabled('debug')) {
      log.debug(
        { msg_id: r.msgId, acked: r.recipients.map((a) => ({ recipient: a.cn, disposition: a.disposition })) },
        `delivered ${r.msgId} to ${r.recipients.map((a) => `${a.cn} (${a.disposition})`).join(', ')}`,
      )
    }
  })

  let version = store.dataVersion()
  const check = setInterval(() => {
    try {
      const now = store.dataVersion()
      if (now === version) return
      version = now
      void g?.publisher?.sendUnsent()
    } catch (e) {
      log.error({ reason: (e as Error).message }, `cannot check the outbox: ${(e as Error).message}`)
    }
  }, AGENT_CHECK_MS)
  const pendingAtStart = store.counts().pending
  log.info({ outbox: outboxPath, socket: socketPath, pending: pendingAtStart }, `ready: delivering from ${outboxPath} (${pendingAtStart} pending), woken on ${socketPath}`)

  const why = await interrupted
  svc.stopping()
  clearInterval(check)
  listening = false
  await listener.close()
  const pending = store.counts().pending
  await g.close()
  log.info({ signal: why, pending }, `stopped (${why}); ${pending} pending stay in the outbox`)
  return ExitCode.Ok
}
