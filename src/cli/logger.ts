import { cliConfig } from './config.js'
import { busFromConfig } from '../bus/from-config.js'
import { parse } from './args.js'
import { ExitCode } from './exit-codes.js'
import { readPayloads } from './input.js'

const HELP = `Usage: gilmsg logger [--config FILE] [--message M] [--json-input] [--topic T] [--modname M]

Publishes signed messages, like fedmsg-logger: --message M, or one message per stdin line.
  --message M     the message text (default: read lines from stdin)
  --json-input    the text is JSON: it becomes the payload exactly (1.0 stays a float)
                  (default: the payload is {"log": text})
  --topic T       topic (default "log"); the full topic is <topic_prefix>.<environment>.<modname>.<T>
  --modname M     default "logger"
The process binds endpoints[name], or with "active": true connects to relay_inbound (best for
short-lived publishers). It waits (bounded by --wait-ms, default 1000) for a subscriber to
join before sending, since PUB/SUB drops what is sent before anyone subscribed.`

export async function run(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    message: { type: 'string', short: 'm' },
    'json-input': { type: 'boolean' },
    topic: { type: 'string', short: 't' },
    modname: { type: 'string' },
  })
  if (values.help) {
    process.stdout.write(HELP + '\n')
    return ExitCode.Ok
  }
  const payloads = await readPayloads(values.message, values['json-input'] ?? false)
  const config = cliConfig(values)
  const bus = await busFromConfig(config, { verifier: undefined })
  try {
    await bus.openPublisher()
    for (const msg of payloads) {
      await bus.publish(values.topic ?? 'log', msg, { modname: values.modname ?? 'logger' })
    }
  } finally {
    await bus.close()
  }
  return ExitCode.Ok
}
