import { cliConfig } from './config.js'
import { busFromConfig } from '../bus/from-config.js'
import { canonicalize } from '../json/canonical.js'
import { environmentPrefix } from '../envelope/topic.js'
import { intOption, parse } from './args.js'
import { ExitCode } from './exit-codes.js'
import { untilInterrupted } from './signals.js'

const HELP = `Usage: gilmsg tail [--config FILE] [--topic PREFIX] [--no-validate] [--json] [--count N] [--verbose]

Prints one line per valid message on the bus: topic, signer CN and payload.
  --topic PREFIX   only topics starting with PREFIX (default: <topic_prefix>.<environment>.)
  --no-validate    accept unsigned and invalid messages (validate_signatures false)
  --json           one JSON object per line: topic, msg_id, signer, msg
  --count N        exit after N messages
  --verbose        report every dropped message and its reason on stderr
Runs until interrupted (SIGINT/SIGTERM) or --count is reached; prints the drop counts on exit with --verbose.`

export async function run(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    topic: { type: 'string', short: 't' },
    'no-validate': { type: 'boolean' },
    json: { type: 'boolean' },
    count: { type: 'string', short: 'n' },
    verbose: { type: 'boolean', short: 'v' },
  })
  if (values.help) {
    process.stdout.write(HELP + '\n')
    return ExitCode.Ok
  }
  const count = values.count === undefined ? Infinity : intOption(values.count, '--count', 1)
  const config = cliConfig(values, values['no-validate'] ? { validate_signatures: false } : {})
  const bus = await busFromConfig(config, {
    signer: undefined,
    ...(values.verbose ? { onDrop: (reason: string, detail: string) => process.stderr.write(`tail: dropped (${reason}): ${detail}\n`) } : {}),
  })
  const prefix = values.topic ?? environmentPrefix({ topicPrefix: config.topic_prefix, environment: config.environment })
  const sub = await bus.subscribe(prefix)
  if (values.verbose) {
    process.stderr.write(`tail: listening on ${prefix || '(all topics)'}\n`)
  }
  void untilInterrupted().then(() => sub.close())
  let seen = 0
  for await (const m of sub) {
    const msgText = canonicalize(m.envelope.get('msg') ?? null)
    if (values.json) {
      const head = JSON.stringify({ topic: m.topic, msg_id: m.msgId, signer: m.signer ?? null })
      process.stdout.write(`${head.slice(0, -1)},"msg":${msgText}}\n`)
    } else {
      process.stdout.write(`${m.topic} ${m.signer ?? '-'} ${msgText}\n`)
    }
    if (++seen >= count) break
  }
  await bus.close()
  if (values.verbose) process.stderr.write(`tail: ${seen} messages, dropped ${JSON.stringify(bus.drops.snapshot())}\n`)
  return ExitCode.Ok
}
