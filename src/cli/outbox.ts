import { envelopeInt } from '../envelope/envelope.js'
import { parseJson } from '../json/parse.js'
import type { JsonObject } from '../json/value.js'
import { SqliteOutboxStore } from '../outbox/sqlite.js'
import { DELIVERY_STATES, DeliveryState, type OutboxMessage } from '../outbox/store.js'
import { storePath } from '../reliable/from-config.js'
import { MAX_DEADLINE_MS, MAX_MESSAGE_AGE_MS, resendableUntil } from '../reliable/protocol.js'
import { DEFAULT_DEADLINE_MS } from '../reliable/publisher.js'
import { intOption, numberOption, parse } from './args.js'
import { DeliveryRejectedError, UsageError } from '../errors.js'
import { cliConfig } from './config.js'
import { ExitCode } from './exit-codes.js'

/** How often `outbox wait` looks at the file (a read of `PRAGMA data_version`, and of the message when it changed). */
export const WAIT_POLL_MS = 200

const HELP = `Usage:
  gilmsg outbox list [--state pending|acked|expired|rejected] [--limit N] [--json]
  gilmsg outbox show MSG_ID [--json]       who acknowledged what, when, with which certificate
  gilmsg outbox retry MSG_ID [--deadline D] make an expired message pending again (default 24h);
                                            a running publisher on this outbox resends it; resends
                                            end 5 days after it was signed (consumers refuse older)
  gilmsg outbox purge --older-than D        delete finished (not pending) messages older than D
  gilmsg outbox wait MSG_ID [--timeout S]   wait for a message's outcome (one given to gilmsg enqueue):
                                            exit 0 every recipient acknowledged, 3 --timeout passed or
                                            the message expired (stderr names who is missing), 4 a
                                            recipient rejected it (stderr gives the reason), 1 no such
                                            message. Default: wait until it is acked, rejected or past
                                            its deadline. Reads the file every ${WAIT_POLL_MS} ms: an agent need not run
Options: --config FILE, --name NAME (which outbox: outbox_path or <state dir>/gilmsg/<name>.outbox.db),
         --outbox PATH (a file directly), --verbose (say which config file was loaded, on stderr).
Durations: 30s, 15m, 12h, 7d or milliseconds.`

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** Parses `30s`, `15m`, `12h`, `7d`, `250ms` or a bare number of ms. */
export function parseDuration(text: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim())
  if (m === null) throw UsageError.format(what, 'a duration like 30s, 15m, 12h or 7d', text)
  return Number(m[1]) * (UNITS[m[2] ?? 'ms'] ?? 1)
}

function iso(ms: number | undefined): string {
  return ms === undefined ? '-' : new Date(ms).toISOString()
}

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      state: { type: 'string' },
      limit: { type: 'string' },
      json: { type: 'boolean' },
      deadline: { type: 'string' },
      'older-than': { type: 'string' },
      timeout: { type: 'string' },
      outbox: { type: 'string' },
      verbose: { type: 'boolean', short: 'v' },
    },
    true,
  )
  const [action, msgId, ...extra] = positionals
  if (values.help || action === undefined) {
    process.stdout.write(HELP + '\n')
    return values.help ? ExitCode.Ok : ExitCode.Usage
  }
  if (extra.length > 0) throw new UsageError(`outbox ${action}: unexpected argument "${extra[0]}"`)
  const path = values.outbox ?? storePath(cliConfig(values), 'outbox')
  const store = SqliteOutboxStore.open(path)
  try {
    switch (action) {
      case 'list': {
        const state = values.state
        if (state !== undefined && !(DELIVERY_STATES as readonly string[]).includes(state)) {
          throw UsageError.format('--state', `one of ${DELIVERY_STATES.join(', ')}`, state)
        }
        const rows = store.list({
          ...(state !== undefined ? { state: state as DeliveryState } : {}),
          limit: intOption(values.limit, '--limit', 100),
        })
        if (values.json) {
          for (const m of rows) process.stdout.write(JSON.stringify(summary(m, store.recipients(m.msgId))) + '\n')
        } else {
          process.stdout.write(`${'MSG_ID'.padEnd(41)} ${'STATE'.padEnd(8)} ${'ATTEMPTS'.padStart(8)}  ${'CREATED'.padEnd(24)} TOPIC / MISSING\n`)
          for (const m of rows) {
            const missing = store.recipients(m.msgId).filter((r) => r.state !== 'acked').map((r) => r.cn)
            process.stdout.write(
              `${m.msgId.padEnd(41)} ${m.state.padEnd(8)} ${String(m.attempts).padStart(8)}  ${iso(m.createdAt).padEnd(24)} ${m.topic}` +
                (missing.length > 0 ? `  missing: ${missing.join(', ')}` : '') +
                '\n',
            )
          }
          const c = store.counts()
          process.stdout.write(`(${DELIVERY_STATES.map((s) => `${c[s]} ${s}`).join(', ')})\n`)
        }
        return ExitCode.Ok
      }
      case 'show': {
        if (msgId === undefined) throw new UsageError('outbox show: MSG_ID is required')
        const m = store.get(msgId)
        if (m === undefined) {
          process.stderr.write(`gilmsg outbox: no message ${msgId} in ${path}\n`)
          return ExitCode.Failure
        }
        const recipients = store.recipients(msgId)
        if (values.json) {
          process.stdout.write(JSON.stringify({ ...summary(m, recipients), body: m.body, recipients }, null, 2) + '\n')
          return ExitCode.Ok
        }
        process.stdout.write(
          [
            `msg_id    ${m.msgId}`,
            `topic     ${m.topic}`,
            `state     ${m.state}`,
            `digest    ${m.digest}`,
            `created   ${iso(m.createdAt)}`,
            `deadline  ${iso(m.deadline)}`,
            `finished  ${iso(m.finishedAt)}`,
            `attempts  ${m.attempts}`,
            ...(m.quorum < recipients.length ? [`quorum    ${quorumLine(m, recipients)}`] : []),
            'recipients:',
            ...recipients.map(
              (r) =>
                `  ${r.cn}: ${r.state}${r.disposition ? ` (${r.disposition}${r.reason ? `: ${r.reason}` : ''})` : ''} at ${iso(r.at)}` +
                (r.ackFingerprint ? `\n    signed by certificate sha256:${r.ackFingerprint}` : ''),
            ),
          ].join('\n') + '\n',
        )
        return ExitCode.Ok
      }
      case 'retry': {
        if (msgId === undefined) throw new UsageError('outbox retry: MSG_ID is required')
        const now = Date.now()
        const m = store.get(msgId)
        let deadline = now + (values.deadline !== undefined ? parseDuration(values.deadline, '--deadline') : DEFAULT_DEADLINE_MS)
        if (m?.state === DeliveryState.Expired) {
          // A resend is the same signed bytes, timestamp included: past its window every consumer refuses it as stale.
          const signedAt = signedAtMs(m)
          const until = resendableUntil(signedAt)
          if (now >= until) {
            process.stderr.write(
              `gilmsg outbox: ${msgId} can no longer be resent: it was signed at ${iso(signedAt)}, consumers refuse a guaranteed message ` +
                `signed more than ${MAX_MESSAGE_AGE_MS / 86_400_000} days ago, and its resends had to end by ${iso(until)} ` +
                `(${MAX_DEADLINE_MS / 86_400_000} days after signing). Publish it again as a new message ` +
                `(gilmsg outbox show ${msgId} --json prints its body).\n`,
            )
            return ExitCode.Failure
          }
          if (values.deadline === undefined) deadline = Math.min(deadline, until)
          if (deadline > until) {
            throw new UsageError(
              `--deadline: expected at most ${Math.floor((until - now) / 60_000)}m for ${msgId} (its resends must end by ${iso(until)}, ` +
                `${MAX_DEADLINE_MS / 86_400_000} days after it was signed), got "${values.deadline ?? ''}"`,
            )
          }
        }
        if (!(await store.retry(msgId, now, deadline))) {
          process.stderr.write(`gilmsg outbox: ${msgId} is not expired (${store.get(msgId)?.state ?? 'unknown'}); nothing to retry\n`)
          return ExitCode.Failure
        }
        process.stdout.write(`${msgId} is pending again until ${iso(deadline)}\n`)
        return ExitCode.Ok
      }
      case 'purge': {
        if (values['older-than'] === undefined) throw new UsageError('outbox purge: --older-than D is required')
        const n = await store.purge(Date.now() - parseDuration(values['older-than'], '--older-than'))
        process.stdout.write(`purged ${n} finished messages\n`)
        return ExitCode.Ok
      }
      case 'wait': {
        if (msgId === undefined) throw new UsageError('outbox wait: MSG_ID is required')
        const timeoutMs = values.timeout === undefined ? undefined : numberOption(values.timeout, '--timeout', 0) * 1000
        return await waitFor(store, path, msgId, timeoutMs)
      }
      default:
        throw new UsageError(`outbox: unknown action "${action}" (expected list, show, retry, purge or wait)`)
    }
  } finally {
    await store.close()
  }
}

function summary(m: OutboxMessage, recipients: readonly { cn: string; state: string }[]): Record<string, unknown> {
  return {
    msg_id: m.msgId,
    topic: m.topic,
    state: m.state,
    attempts: m.attempts,
    created_at: m.createdAt,
    deadline: m.deadline,
    finished_at: m.finishedAt ?? null,
    quorum: m.quorum,
    acked: recipients.filter((r) => r.state === 'acked').map((r) => r.cn),
    missing: recipients.filter((r) => r.state !== 'acked').map((r) => r.cn),
    pending: recipients.filter((r) => r.state === 'pending').map((r) => r.cn),
    rejected: recipients.filter((r) => r.state === 'rejected').map((r) => r.cn),
  }
}

/** `2 of 3: reached; acked by alice, bob; still pending: carol` (a quorum publish's message). */
function quorumLine(m: OutboxMessage, recipients: readonly { cn: string; state: string }[]): string {
  const names = (state: string): string[] => recipients.filter((r) => r.state === state).map((r) => r.cn)
  const acked = names('acked')
  const parts = [
    `${m.quorum} of ${recipients.length}: ${acked.length >= m.quorum ? 'reached' : 'not reached'}`,
    `acked by ${acked.length > 0 ? acked.join(', ') : 'nobody'}`,
  ]
  for (const [state, label] of [
    ['pending', 'still pending'],
    ['rejected', 'rejected by'],
    ['expired', 'expired'],
  ] as const) {
    const cns = names(state)
    if (cns.length > 0) parts.push(`${label}${state === 'rejected' ? ' ' : ': '}${cns.join(', ')}`)
  }
  return parts.join('; ')
}

/** When a stored message was signed: its envelope's `timestamp` (whole seconds), else when it was committed. */
function signedAtMs(m: OutboxMessage): number {
  const seconds = envelopeInt(parseJson(m.body, { maxDepth: Infinity }) as JsonObject, 'timestamp')
  return seconds === undefined ? m.createdAt : seconds * 1000
}

/**
 * `outbox wait`: polls the file (cheap: `PRAGMA data_version` every {@link WAIT_POLL_MS}, the row only
 * when another process committed) until the message leaves `pending`, its deadline passes, or `timeoutMs`.
 * Polling rather than asking the agent: it works with no agent, across agent restarts, and for
 * messages that `gilmsg publish` or a library process is delivering.
 */
async function waitFor(store: SqliteOutboxStore, path: string, msgId: string, timeoutMs: number | undefined): Promise<number> {
  const started = Date.now()
  let version: number | undefined
  let deadline = Infinity
  for (;;) {
    const now = Date.now()
    const current = store.dataVersion()
    if (current !== version) {
      version = current
      const m = store.get(msgId)
      if (m === undefined) {
        process.stderr.write(`gilmsg outbox: no message ${msgId} in ${path}\n`)
        return ExitCode.Failure
      }
      deadline = m.deadline
      const recipients = store.recipients(msgId)
      const acked = recipients.filter((r) => r.state === DeliveryState.Acked)
      const missing = recipients.filter((r) => r.state !== DeliveryState.Acked).map((r) => r.cn)
      const ackedBy = acked.length > 0 ? `; acked by ${acked.map((r) => r.cn).join(', ')}` : ''
      if (m.state === DeliveryState.Acked) {
        process.stderr.write(`${msgId}: acknowledged by ${acked.map((r) => `${r.cn} (${r.disposition ?? '?'})`).join(', ')}\n`)
        return ExitCode.Ok
      }
      if (m.state === DeliveryState.Rejected) {
        const r = recipients.find((x) => x.disposition === 'rejected')
        process.stderr.write(`gilmsg outbox: ${new DeliveryRejectedError(msgId, r?.cn ?? '?', r?.reason ?? 'no reason given').message}\n`)
        return ExitCode.Rejected
      }
      if (m.state === DeliveryState.Expired || now >= m.deadline) {
        process.stderr.write(`gilmsg outbox: ${msgId} expired at ${iso(m.finishedAt ?? m.deadline)}: missing ${missing.join(', ')}${ackedBy}\n`)
        return ExitCode.AckTimeout
      }
      if (timeoutMs !== undefined && now - started >= timeoutMs) {
        process.stderr.write(`gilmsg outbox: ACK timeout for ${msgId} (--timeout ${timeoutMs / 1000}): missing ${missing.join(', ')}${ackedBy}; it stays pending\n`)
        return ExitCode.AckTimeout
      }
    }
    await new Promise((resolve) => setTimeout(resolve, WAIT_POLL_MS))
    // Deadlines and --timeout pass without any write: look again when either is due.
    if (Date.now() >= Math.min(started + (timeoutMs ?? Infinity), deadline)) version = undefined
  }
}
