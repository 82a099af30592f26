import { cliConfig } from './config.js'
import { busFromConfig } from '../bus/from-config.js'
import { numberOption, parse } from './args.js'
import { ExitCode } from './exit-codes.js'
import { readPayloads } from './input.js'

const HELP = `Usage: gilmsg logger [--config FILE] [--message M] [--json-input] [--topic T] [--modname M] [--verbose]

Publishes signed messages, like fedmsg-logger: --message M, or one message per stdin line.
  --message M     the message text (default: read lines from stdin)
  --json-input    the text is JSON: it becomes the payload exactly (1.0 stays a float)
                  (default: the payload is {"log": text})
  --topic T       topic (default "log"); the full topic is <topic_prefix>.<environment>.<modname>.<T>
  --modname M     default "logger"
  --wait-ms N     wait up to N ms for a subscriber before publishing (default 1000; 0: don't wait)
  --verbose       say which config file was loaded (on stderr)
When relay_inbound is set, it connects to the relay ("active" is forced, as fedmsg-logger does:
best for short-lived publishers); otherwise it binds endpoints[name]. With --recipients CN ... it is "gilmsg publish" (as in Python gilmsg's
logger): it waits for their ACKs and exits 0, 3 (timeout) or 4 (rejected). Otherwise it is
fire-and-forget, as fedmsg: it waits (up to --wait-ms) for a first subscriber or the relay
to subscribe before sending, since PUB/SUB drops what is sent before anyone subscribed.`

/** How long `logger` waits for a first subscriber before it publishes anyway. */
export const DEFAULT_WAIT_MS = 1000

export async function run(argv: string[]): Promise<number> {
  if (argv.some((a) => a === '--recipients' || a === '-r' || a.startsWith('--recipients='))) {
    return (await import('./publish.js')).run(['--modname', 'logger', ...argv])
  }
  const { values } = parse(argv, {
    message: { type: 'string', short: 'm' },
    'json-input': { type: 'boolean' },
    topic: { type: 'string', short: 't' },
    modname: { type: 'string' },
    'wait-ms': { type: 'string' },
    verbose: { type: 'boolean', short: 'v' },
  })
  if (values.help) {
    process.stdout.write(HELP + '\n')
    return ExitCode.Ok
  }
  const payloads = await readPayloads(values.message, values['json-input'] ?? false)
  const loaded = cliConfig(values)
  // fedmsg-logger forces "active": a short-lived publisher reaches subscribers through the relay.
  const config = loaded.relay_inbound.length > 0 ? { ...loaded, active: true } : loaded
  const bus = await busFromConfig(config, { verifier: undefined })
  try {
    const modname = values.modname ?? 'logger'
    const topic = bus.fullTopic(values.topic ?? 'log', modname)
    const waitMs = numberOption(values['wait-ms'], '--wait-ms', DEFAULT_WAIT_MS)
    if (!(await bus.waitForSubscribers(topic, { timeoutMs: waitMs }))) {
      process.stderr.write(`logger: no subscriber for ${topic} after ${waitMs} ms; publishing anyway (PUB/SUB drops it if nobody listens)\n`)
    }
    for (const msg of payloads) await bus.publish(topic, msg)
  } finally {
    await bus.close()
  }
  return ExitCode.Ok
}
