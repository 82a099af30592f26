import { AckTimeoutError, DeliveryRejectedError, UsageError } from '../errors.js'
import { openGilmsg } from '../reliable/from-config.js'
import { DeliveryState, type RecipientStatus } from '../outbox/store.js'
import type { DeliveryReceipt } from '../reliable/publisher.js'
import { intOption, joinRecipients, numberOption, parse, recipientsOption } from './args.js'
import { cliConfig } from './config.js'
import { cliCrlOptions } from './crl-report.js'
import { ExitCode } from './exit-codes.js'
import { readPayloads } from './input.js'
import { untilInterrupted } from './signals.js'

const HELP = `Usage: gilmsg publish --recipients CN [CN ...] [--quorum K] [--ack-timeout SECONDS] [--topic T] [--modname M]
                      [--message M | stdin] [--json-input] [--json] [--config FILE] [--verbose]

Publishes one message (--message, or each stdin line) that the named recipients must
acknowledge, and waits until each of them returned a valid signed ACK for it.
  --recipients CN ...   certificate CNs that must acknowledge (space- or comma-separated)
  --quorum K            done once K of the recipients acknowledged (default: all); the others
                        stay pending in the outbox (gilmsg outbox show), resent by the next
                        publisher on it until they ACK or the ACK timeout passes; a rejection
                        fails the publish only once K can no longer be reached
  --ack-timeout S       seconds to wait for all ACKs (the quorum's; default 10)
  --topic T             default "log"; full topic <topic_prefix>.<environment>.<modname>.<T>
  --modname M           default "gilmsg"
  --json-input          the message text is JSON, published exactly (default: {"log": text})
  --json                print the delivery receipt(s) as JSON lines on stdout
  --verbose             say which config file was loaded (on stderr)
Exit codes: 0 every recipient (or the quorum) acknowledged; 3 ACK timeout (stderr names the
missing recipients, those who rejected it, and how many of K acked); 4 rejected: fewer than K
recipients acked or may still ACK (without --quorum: any rejection); 130 interrupted (SIGINT/SIGTERM: the message stays pending in the outbox);
2 usage or configuration error; 1 other.
Without --recipients it is a plain fire-and-forget publish (like gilmsg logger).
Short-lived publishers are fastest through a relay ("active": true, "relay_inbound").`

export async function run(argv: string[]): Promise<number> {
  const { values } = parse(joinRecipients(argv), {
    recipients: { type: 'string', short: 'r', multiple: true },
    'ack-timeout': { type: 'string' },
    quorum: { type: 'string' },
    message: { type: 'string', short: 'm' },
    'json-input': { type: 'boolean' },
    topic: { type: 'string', short: 't' },
    modname: { type: 'string' },
    json: { type: 'boolean' },
    verbose: { type: 'boolean', short: 'v' },
  })
  if (values.help) {
    process.stdout.write(HELP + '\n')
    return ExitCode.Ok
  }
  const recipients = recipientsOption(values.recipients)
  const quorum = values.quorum === undefined ? undefined : intOption(values.quorum, '--quorum', 1)
  if (quorum !== undefined && recipients.length === 0) throw new UsageError('--quorum: only with --recipients (a plain publish waits for no ACK)')
  if (quorum !== undefined && quorum > recipients.length) {
    throw UsageError.format('--quorum', `a whole number from 1 to ${recipients.length} (the number of --recipients)`, values.quorum)
  }
  const ackTimeout = numberOption(values['ack-timeout'], '--ack-timeout', 10) * 1000
  if (ackTimeout <= 0) throw new UsageError('--ack-timeout: expected a number of seconds > 0')
  const payloads = await readPayloads(values.message, values['json-input'] ?? false)
  const config = cliConfig(values)
  const g = await openGilmsg(config, { inbox: false, outbox: recipients.length > 0, ...cliCrlOptions('gilmsg publish', false) })
  const stopWaiting = new AbortController()
  try {
    const published = Promise.all(
      payloads.map((msg) =>
        g.publish(values.topic ?? 'log', msg, {
          recipients,
          ackTimeout,
          ...(quorum !== undefined ? { quorum } : {}),
          ...(values.modname !== undefined ? { modname: values.modname } : {}),
        }),
      ),
    )
    const receipts = await Promise.race([published, untilInterrupted(stopWaiting.signal).then((why) => ({ interrupted: why }))])
    if ('interrupted' in receipts) {
      published.catch(() => undefined)
      process.stderr.write(`gilmsg publish: interrupted (${receipts.interrupted}) before every recipient acknowledged; ` +
        'the message stays pending in the outbox, and the next gilmsg process on it resumes sending (see gilmsg outbox list)\n')
      return ExitCode.Interrupted
    }
    for (const r of receipts) report(r, g.outbox?.recipients(r.msgId) ?? [], values.json ?? false)
    return ExitCode.Ok
  } catch (e) {
    if (e instanceof AckTimeoutError) {
      process.stderr.write(`gilmsg publish: ACK timeout for ${e.msgId}: missing ${e.missing.join(', ')}` +
        (e.acked.length > 0 ? `; acked by ${e.acked.map((a) => a.cn).join(', ')}` : '') +
        (e.rejected.length > 0 ? `; rejected by ${e.rejected.map((r) => `${r.cn} (${r.reason})`).join(', ')}` : '') +
        (quorum !== undefined ? `; ${e.acked.length} of the ${e.quorum} needed` : '') + '\n')
      return ExitCode.AckTimeout
    }
    if (e instanceof DeliveryRejectedError) {
      process.stderr.write(`gilmsg publish: ${e.message}\n`)
      return ExitCode.Rejected
    }
    throw e
  } finally {
    stopWaiting.abort()
    await g.close()
  }
}

/** A receipt on stdout (--json) or stderr, with what the outbox says of the others (a quorum's: still pending, or rejected). */
function report(r: DeliveryReceipt, statuses: readonly RecipientStatus[], json: boolean): void {
  if (json) {
    process.stdout.write(JSON.stringify(r) + '\n')
  } else if (r.recipients.length > 0) {
    const acked = new Set(r.recipients.map((a) => a.cn))
    const pending = statuses.filter((s) => !acked.has(s.cn) && s.state === DeliveryState.Pending).map((s) => s.cn)
    const rejected = statuses.filter((s) => s.state === DeliveryState.Rejected).map((s) => `${s.cn} (${s.reason ?? 'no reason given'})`)
    process.stderr.write(
      `${r.msgId}: acknowledged by ${r.recipients.map((a) => `${a.cn} (${a.disposition})`).join(', ')}` +
        (rejected.length > 0 ? `; rejected by ${rejected.join(', ')}` : '') +
        (pending.length > 0 ? `; still pending in the outbox: ${pending.join(', ')}` : '') + '\n',
    )
  }
}
