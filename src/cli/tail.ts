import { busFromConfig, whyCannotPublish } from '../bus/from-config.js'
import type { BusMessage } from '../bus/bus.js'
import type { GilmsgConfig } from '../config/config.js'
import { environmentPrefix } from '../envelope/topic.js'
import { ErrorCode, GilmsgError } from '../errors.js'
import { canonicalize } from '../json/canonical.js'
import { openGilmsg } from '../reliable/from-config.js'
import type { Gilmsg } from '../reliable/gilmsg.js'
import { isAckTopic } from '../reliable/protocol.js'
import { intOption, parse, type ParsedArgs } from './args.js'
import { cliConfig } from './config.js'
import { ExitCode } from './exit-codes.js'
import { openService, SERVICE_HELP, SERVICE_OPTIONS, type Service } from './service.js'
import { untilInterrupted } from './signals.js'
import { terminalSafe } from './terminal.js'

const HELP = `Usage: gilmsg tail [--config FILE] [--certname NAME] [--topic PREFIX] [--no-validate] [--no-ack]
                   [--ack-unvalidated] [--json] [--count N] [--stats] [--verbose]
                   [--acks] [--metrics HOST:PORT] [--log-format json|text] [--log-level LEVEL]

Prints one line per valid message on the bus: topic, signer CN and payload. Messages that
name this process's certificate CN as a required recipient are acknowledged (a signed ACK
bound to the message) and printed once, however often they are resent.
  --topic PREFIX   only topics starting with PREFIX (default: <topic_prefix>.<environment>.)
  --no-validate    accept unsigned and invalid messages (validate_signatures false); they are
                   not acknowledged unless --ack-unvalidated is given
  --no-ack         never acknowledge (no certificate or inbox needed)
  --ack-unvalidated  acknowledge even without validation (--no-validate or validate_signatures
                   false): this process's certificate then vouches for messages anyone could
                   have forged. The way to answer Python gilmsg 0.1.2 publishers, whose messages
                   cannot validate (they add gilmsg_version after signing)
  --acks           also print the ACKs that recipients send (topic <prefix>.<env>.gilmsg.ack);
                   hidden by default, and not counted by --count
  --json           one JSON object per line: topic, msg_id, signer, msg
  --count N        exit after N messages
  --stats          log the counters (acks, duplicates suppressed, ACKs hidden, drops) at exit
                   (a "stats" line with a "stats" object)
  --verbose        say which config file was loaded, and log every dropped message and its
                   reason (--log-level debug); drops are otherwise logged once per reason
                   every 10 s, with a count
${SERVICE_HELP}
stdout carries the messages only; everything else is logged on stderr.
Control characters (C0, DEL, C1) and Unicode direction overrides in topics, CNs and drop
details are printed as \\uXXXX escapes; payloads are ASCII JSON (as Python's json.dumps).
Acknowledging needs this process's certificate (<ssldir>/<certname>.crt and .key) and an inbox
(inbox_path, default <state dir>/gilmsg/<name>.inbox.db). Without a certificate it only prints.
Runs until interrupted (SIGINT/SIGTERM) or --count is reached, then stops reading, finishes the
ACKs in flight (signed, committed to the inbox, sent), closes its sockets (libzmq sends what it
holds for zmq_linger) and exits 0; a second signal meanwhile exits at once (130 SIGINT, 143 SIGTERM).`

const TAIL_OPTIONS = {
  topic: { type: 'string', short: 't' },
  'no-validate': { type: 'boolean' },
  'no-ack': { type: 'boolean' },
  'ack-unvalidated': { type: 'boolean' },
  json: { type: 'boolean' },
  count: { type: 'string', short: 'n' },
  stats: { type: 'boolean' },
  verbose: { type: 'boolean', short: 'v' },
  acks: { type: 'boolean' },
  ...SERVICE_OPTIONS,
} as const

export async function run(argv: string[]): Promise<number> {
  const { values } = parse(argv, TAIL_OPTIONS)
  if (values.help) {
    process.stdout.write(HELP + '\n')
    return ExitCode.Ok
  }
  const count = values.count === undefined ? Infinity : intOption(values.count, '--count', 1)
  const config = cliConfig(values, values['no-validate'] ? { validate_signatures: false } : {})
  const svc = openService('tail', values, config)
  try {
    return await tail(values, config, svc, count)
  } finally {
    await svc.close()
  }
}

type TailFlags = ParsedArgs<typeof TAIL_OPTIONS>['values']

async function tail(values: TailFlags, config: GilmsgConfig, svc: Service, count: number): Promise<number> {
  const log = svc.log
  const busOptions = svc.busOptions
  let subscribed = false
  svc.readiness.add('sockets', () => (subscribed ? undefined : 'not subscribed'))
  await svc.startHealth()
  const prefix = values.topic ?? environmentPrefix({ topicPrefix: config.topic_prefix, environment: config.environment })

  let g: Gilmsg | undefined
  const ackUnvalidated = values['ack-unvalidated'] ?? false
  const cannotAck = values['no-ack'] ? undefined : (whyCannotPublish(config) ?? whyUnvalidated(config, ackUnvalidated))
  if (cannotAck !== undefined) log.warn({ reason: cannotAck }, `not acknowledging: ${cannotAck}`)
  if (!values['no-ack'] && cannotAck === undefined) {
    try {
      g = await openGilmsg(config, { ...busOptions, outbox: false, inbox: true, ackUnvalidated })
    } catch (e) {
      if (!(e instanceof GilmsgError && (e.code === ErrorCode.Certificate || e.code === ErrorCode.Signing))) throw e
      log.warn({ reason: e.message, code: e.code }, `not acknowledging: ${e.message}`)
    }
  }
  const bus = g?.bus ?? (await busFromConfig(config, { ...busOptions, signer: undefined }))
  // ACK traffic is passed over before it is parsed or its signature checked: tail has no use for it.
  let hiddenAcks = 0
  const hideAck = (topic: string): boolean => {
    if (!isAckTopic(topic)) return false
    hiddenAcks++
    return true
  }
  const skip = values.acks ? {} : { skipTopic: hideAck }
  const sub = g ? await g.subscribe(prefix, { ...skip, acks: values.acks ?? false }) : await bus.subscribe(prefix, skip)
  if (g) svc.watchGilmsg(g)
  else svc.watchBus(bus)
  subscribed = true
  log.info(
    { topic: prefix, ...(g ? { acknowledging_as: g.consumer?.cn } : {}) },
    `listening on ${prefix || '(all topics)'}${g ? ` (acknowledging as ${g.consumer?.cn})` : ''}`,
  )
  const interrupted = untilInterrupted()
  void interrupted.then(() => {
    svc.stopping()
    subscribed = false
    return sub.close()
  })

  let seen = 0
  const iterable: AsyncIterable<BusMessage> = sub
  for await (const m of iterable) {
    const msgText = canonicalize(m.envelope.get('msg') ?? null)
    if (values.json) {
      const head = terminalSafe(JSON.stringify({ topic: m.topic, msg_id: m.msgId, signer: m.signer ?? null }))
      process.stdout.write(`${head.slice(0, -1)},"msg":${msgText}}\n`)
    } else {
      process.stdout.write(`${terminalSafe(m.topic)} ${terminalSafe(m.signer ?? '-')} ${msgText}\n`)
    }
    if (++seen >= count) break
  }
  svc.stopping()
  subscribed = false
  await (g ? g.close() : bus.close())
  if (values.stats || values.verbose) {
    const stats = { messages: seen, acks_hidden: hiddenAcks, ...(g?.consumer?.stats.snapshot() ?? {}), ...prefixKeys('dropped_', bus.drops.snapshot()) }
    log.info({ stats }, 'stats')
  }
  return ExitCode.Ok
}

function whyUnvalidated(config: GilmsgConfig, ackUnvalidated: boolean): string | undefined {
  if (config.validate_signatures || ackUnvalidated) return undefined
  return 'messages are not validated (--no-validate or validate_signatures false); pass --ack-unvalidated to acknowledge them anyway'
}

function prefixKeys(prefix: string, o: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [prefix + k, v]))
}
