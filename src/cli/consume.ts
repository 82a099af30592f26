import { whyCannotPublish } from '../bus/from-config.js'
import type { GilmsgConfig } from '../config/config.js'
import {
  DEFAULT_EXEC_CONCURRENCY,
  DEFAULT_EXEC_GRACE_SEC,
  DEFAULT_EXEC_MAX_ATTEMPTS,
  DEFAULT_EXEC_REJECT_CODES,
  DEFAULT_EXEC_TIMEOUT_SEC,
} from '../config/defaults.js'
import { environmentPrefix } from '../envelope/topic.js'
import { ConfigError, errorMessage, UsageError } from '../errors.js'
import type { Delivery } from '../reliable/consumer.js'
import { openGilmsg } from '../reliable/from-config.js'
import { intOption, numberOption, parse, type ParsedArgs } from './args.js'
import { cliConfig } from './config.js'
import { createExecMetrics, type ExecMetrics } from './exec/metrics.js'
import { ExecOutcome, gaveUpReason, verdictOf } from './exec/outcome.js'
import { runCommand, type CommandSpec, type Run } from './exec/run-command.js'
import { ExitCode } from './exit-codes.js'
import { openService, SERVICE_HELP, SERVICE_OPTIONS, type Service } from './service.js'
import { untilInterrupted } from './signals.js'

const HELP = `Usage: gilmsg consume [--config FILE] [--name NAME] [--certname NAME] [--topic PREFIX]
                      [--reject-codes N,N...] [--max-attempts N] [--timeout S] [--grace S]
                      [--concurrency N] [--shell] [--verbose]
                      [--metrics HOST:PORT] [--log-format json|text] [--log-level LEVEL]
                      --exec CMD [ARG ...]

Runs CMD for each guaranteed message that names this process's certificate CN as a required
recipient, and acknowledges it only after CMD's work: like fedmsg-trigger, with ACKs.
Everything after --exec is the command and its arguments (run without a shell unless --shell).
CMD gets the whole signed envelope as JSON on stdin, and GILMSG_MSG_ID, GILMSG_TOPIC,
GILMSG_SIGNER and GILMSG_ATTEMPT (1, 2, ...) in its environment; its stdout is gilmsg's stdout,
its stderr goes to gilmsg's stderr.
  exit 0               a "processed" ACK: the publisher's gilmsg publish exits 0
  exit in --reject-codes  a "rejected" ACK whose reason is CMD's last non-empty stderr line:
                       gilmsg publish exits 4 with it
  any other exit, a signal, --timeout   no ACK: the message stays pending at the publisher and
                       CMD runs again on its next resend (at least once), up to --max-attempts
                       attempts, after which the message is rejected with a reason saying so
  --topic PREFIX       only topics starting with PREFIX (default: <topic_prefix>.<environment>.)
  --reject-codes N,N   exit codes that reject the message (default ${DEFAULT_EXEC_REJECT_CODES.join(',')}, EX_DATAERR)
  --max-attempts N     attempts at a message, restarts included, before it is rejected (default ${DEFAULT_EXEC_MAX_ATTEMPTS})
  --timeout S          seconds CMD may run, then SIGTERM, SIGKILL after --grace (default ${DEFAULT_EXEC_TIMEOUT_SEC}: no limit)
  --grace S            seconds between SIGTERM and SIGKILL after a timeout; at shutdown, how long
                       a running CMD may finish before it is killed (default ${DEFAULT_EXEC_GRACE_SEC})
  --concurrency N      runs of CMD at once (default ${DEFAULT_EXEC_CONCURRENCY}: one at a time, in order of arrival)
  --shell              run CMD ARG ... joined by spaces with /bin/sh -c
  --verbose            say which config file was loaded; --log-level debug
${SERVICE_HELP}
Each attempt is counted in the inbox (inbox_path) before CMD starts, and the ACK is committed to
the inbox before it is sent: a message whose CMD exited 0 is never run again, one whose run was
cut short (gilmsg killed, the machine down) runs again after a restart. CMD is started in a process
group of its own; if gilmsg is SIGKILLed it does not kill it (systemd does: KillMode=mixed or control-group).
Runs until interrupted (SIGINT/SIGTERM): then takes no new message, lets running commands finish
for --grace seconds, kills those still running (no ACK: they run again later), sends the pending
ACKs and exits 0; a second signal exits at once (130 SIGINT, 143 SIGTERM).`

const CONSUME_OPTIONS = {
  topic: { type: 'string', short: 't' },
  'reject-codes': { type: 'string' },
  'max-attempts': { type: 'string' },
  timeout: { type: 'string' },
  grace: { type: 'string' },
  concurrency: { type: 'string' },
  shell: { type: 'boolean' },
  verbose: { type: 'boolean', short: 'v' },
  ...SERVICE_OPTIONS,
} as const

type ConsumeFlags = ParsedArgs<typeof CONSUME_OPTIONS>['values']

/** What `consume` was told to do, from its flags. */
interface ExecSettings {
  readonly command: CommandSpec
  readonly rejectCodes: ReadonlySet<number>
  readonly maxAttempts: number
  readonly timeoutSec: number
  readonly graceMs: number
  readonly concurrency: number
}

export async function run(argv: string[]): Promise<number> {
  const at = argv.indexOf('--exec')
  const own = at === -1 ? argv : argv.slice(0, at)
  const { values } = parse(own, CONSUME_OPTIONS)
  if (values.help) {
    process.stdout.write(HELP + '\n')
    return ExitCode.Ok
  }
  const commandArgv = at === -1 ? [] : argv.slice(at + 1)
  if (commandArgv.length === 0 || commandArgv[0] === '') {
    throw new UsageError('--exec: expected the command to run after it (gilmsg consume [options] --exec CMD [ARG ...])')
  }
  const settings = execSettings(values, commandArgv)
  const config = cliConfig(values)
  const svc = openService('consume', values, config)
  try {
    return await consume(values, config, svc, settings)
  } finally {
    await svc.close()
  }
}

function execSettings(values: ConsumeFlags, argv: readonly string[]): ExecSettings {
  const timeoutSec = numberOption(values.timeout, '--timeout', DEFAULT_EXEC_TIMEOUT_SEC)
  return {
    command: { argv, shell: values.shell ?? false },
    rejectCodes: rejectCodes(values['reject-codes']),
    maxAttempts: intOption(values['max-attempts'], '--max-attempts', DEFAULT_EXEC_MAX_ATTEMPTS),
    timeoutSec,
    graceMs: numberOption(values.grace, '--grace', DEFAULT_EXEC_GRACE_SEC) * 1000,
    concurrency: intOption(values.concurrency, '--concurrency', DEFAULT_EXEC_CONCURRENCY),
  }
}

function rejectCodes(text: string | undefined): ReadonlySet<number> {
  if (text === undefined) return new Set(DEFAULT_EXEC_REJECT_CODES)
  const parts = text.split(',').map((p) => p.trim())
  const codes = parts.map(Number)
  if (parts.some((p) => p === '') || codes.some((c) => !Number.isInteger(c) || c < 1 || c > 255)) {
    throw UsageError.format('--reject-codes', 'exit codes 1-255 separated by commas', text)
  }
  return new Set(codes)
}

async function consume(values: ConsumeFlags, config: GilmsgConfig, svc: Service, settings: ExecSettings): Promise<number> {
  const log = svc.log
  const cannot = whyCannotPublish(config)
  if (cannot !== undefined) throw new ConfigError(`consume acknowledges what CMD did, and cannot: ${cannot}`)
  if (!config.validate_signatures) throw new ConfigError('consume acknowledges only validated messages: validate_signatures is false')
  const metrics = createExecMetrics(svc.registry)
  let subscribed = false
  svc.readiness.add('sockets', () => (subscribed ? undefined : 'not subscribed'))
  const g = await openGilmsg(config, {
    ...svc.busOptions,
    outbox: false,
    inbox: true,
    onConsumerError: (e) => log.error({ reason: errorMessage(e) }, `could not acknowledge a message: ${errorMessage(e)}`),
  })
  const prefix = values.topic ?? environmentPrefix({ topicPrefix: config.topic_prefix, environment: config.environment })
  const sub = await g.subscribe(prefix, { ack: 'manual' })
  svc.watchGilmsg(g)
  subscribed = true
  await svc.startHealth()
  log.info({ topic: prefix, acknowledging_as: g.consumer?.cn, command: settings.command.argv }, `running ${settings.command.argv.join(' ')} for each message to ${g.consumer?.cn} on ${prefix || '(all topics)'}`)

  const runs = new Set<Run>()
  let stopping = false
  void untilInterrupted().then(() => {
    stopping = true
    subscribed = false
    svc.stopping()
    log.info({ running: runs.size }, `stopping: no new messages; ${runs.size} running command(s) get ${settings.graceMs / 1000} s to finish`)
    const timer = setTimeout(() => {
      for (const r of runs) r.kill('SIGKILL')
    }, settings.graceMs)
    timer.unref()
    return sub.close()
  })

  const exec = new Executor(settings, metrics, svc, runs, () => stopping)
  const working = new Set<Promise<void>>()
  for await (const d of sub) {
    if (!d.requiresAck) continue
    while (working.size >= settings.concurrency) await Promise.race(working)
    if (stopping) {
      d.release()
      continue
    }
    const w: Promise<void> = exec.handle(d).finally(() => working.delete(w))
    working.add(w)
  }
  await Promise.all(working)
  await g.close()
  return ExitCode.Ok
}

/** Runs CMD for one message at a time and settles it: ACK, reject, or release for a retry. */
class Executor {
  constructor(
    readonly settings: ExecSettings,
    readonly metrics: ExecMetrics,
    readonly svc: Service,
    readonly runs: Set<Run>,
    readonly stopping: () => boolean,
  ) {}

  async handle(d: Delivery): Promise<void> {
    const log = this.svc.log
    const { maxAttempts, timeoutSec } = this.settings
    const fields = { msg_id: d.msgId, topic: d.topic, signer: d.signer ?? '' }
    try {
      log.debug(fields, `handling ${d.msgId}`)
      const attempt = await d.startAttempt()
      log.debug({ ...fields, attempt }, `attempt ${attempt} at ${d.msgId}`)
      if (attempt > maxAttempts) {
        const reason = gaveUpReason(maxAttempts, 'it did not finish: gilmsg stopped or crashed while it ran')
        await d.reject(reason)
        this.metrics.gaveUp()
        log.warn({ ...fields, attempt, reason }, `rejected ${d.msgId}: ${reason}`)
        return
      }
      const run = runCommand(this.settings.command, {
        input: d.body,
        env: { GILMSG_MSG_ID: d.msgId, GILMSG_TOPIC: d.topic, GILMSG_SIGNER: d.signer ?? '', GILMSG_ATTEMPT: String(attempt) },
        timeoutMs: timeoutSec > 0 ? timeoutSec * 1000 : Infinity,
        graceMs: this.settings.graceMs,
      })
      this.runs.add(run)
      const r = await run.result.finally(() => this.runs.delete(run))
      const verdict = verdictOf(r, this.settings.rejectCodes, timeoutSec)
      this.metrics.run(verdict.outcome, r.durationMs / 1000)
      const done = { ...fields, attempt, exit_code: r.code, signal: r.signal, duration_ms: Math.round(r.durationMs), outcome: verdict.outcome }
      switch (verdict.outcome) {
        case ExecOutcome.Processed:
          await d.ack()
          log.info(done, `processed ${d.msgId}`)
          return
        case ExecOutcome.Rejected:
          await d.reject(verdict.reason)
          log.info({ ...done, reason: verdict.reason }, `rejected ${d.msgId}: ${verdict.reason}`)
          return
        default:
          if (attempt >= maxAttempts && !this.stopping()) {
            const reason = gaveUpReason(maxAttempts, verdict.why)
            await d.reject(reason)
            this.metrics.gaveUp()
            log.warn({ ...done, reason }, `rejected ${d.msgId}: ${reason}`)
            return
          }
          d.release()
          log.warn({ ...done, reason: verdict.why }, `attempt ${attempt} at ${d.msgId} failed (${verdict.why}): it runs again on the next resend`)
      }
    } catch (e) {
      d.release()
      log.error({ ...fields, reason: errorMessage(e) }, `could not handle ${d.msgId}: ${errorMessage(e)}`)
    }
  }
}
