import { busFromConfig } from '../bus/from-config.js'
import type { Bus } from '../bus/bus.js'
import { ConfigError, StoreError, UsageError } from '../errors.js'
import { SqliteOutboxStore } from '../outbox/sqlite.js'
import { storePath } from '../reliable/from-config.js'
import { reliableFields } from '../reliable/protocol.js'
import { checkPositive } from '../reliable/publisher-types.js'
import { DEFAULT_DEADLINE_MS } from '../reliable/publisher.js'
import type { Transport } from '../transport/transport.js'
import { AgentNotifier, agentSocketPath } from './agent-socket.js'
import { joinRecipients, numberOption, parse, recipientsOption } from './args.js'
import { cliConfig } from './config.js'
import { ExitCode } from './exit-codes.js'
import { payloadOf, readStdin } from './input.js'
import { parseDuration } from './outbox.js'

/** How long `enqueue` keeps trying while other processes hold the outbox's write lock, unless --lock-timeout says otherwise. */
export const DEFAULT_LOCK_TIMEOUT_MS = 60_000

const HELP = `Usage: gilmsg enqueue --recipients CN [CN ...] [--deadline D] [--topic T] [--modname M]
                      [--message M | stdin] [--json-input] [--lines] [--lock-timeout S]
                      [--config FILE] [--name NAME] [--verbose]

Signs a guaranteed message, commits it to the outbox of --name (the one "gilmsg agent"
delivers from) and exits 0 as soon as it is durable, printing its msg_id on stdout. The
running agent is told at once and sends it; without one, a warning on stderr says that the
message is kept until an agent starts. "gilmsg outbox wait MSG_ID" waits for its outcome.
  --recipients CN ...   certificate CNs that must acknowledge (space- or comma-separated)
  --deadline D          resends end after D (30s, 15m, 12h, 7d; default 24h, at most 5d)
  --topic T             default "log"; full topic <topic_prefix>.<environment>.<modname>.<T>
  --modname M           default "gilmsg"
  --message M           the message text (default: all of stdin is one message)
  --lines               each non-empty stdin line is one message: committed as they are
                        read, one msg_id printed per line, in order (many messages, one process)
  --json-input          the text is JSON, published exactly (default: {"log": text})
  --lock-timeout S      how long to keep trying while other processes write to the outbox
                        (default ${DEFAULT_LOCK_TIMEOUT_MS / 1000}); then it fails (exit 1) saying which msg_ids were stored
  --verbose             say which config file was loaded (on stderr)
Exit codes: 0 stored (durable); 1 not stored (the outbox stayed locked, a disk error);
2 usage or configuration error.`

/** Messages sealed and committed together (one transaction) in --lines mode. */
const LINES_BATCH = 256

/** Enqueue only signs: it never opens a socket. */
const SEAL_ONLY: Transport = {
  openPublisher: () => Promise.reject(new ConfigError('gilmsg enqueue does not publish')),
  openSubscriber: () => Promise.reject(new ConfigError('gilmsg enqueue does not subscribe')),
}

/** True for a `StoreError` caused by another connection's lock (SQLITE_BUSY / SQLITE_LOCKED after the busy timeout). */
function isLocked(e: unknown): boolean {
  if (!(e instanceof StoreError)) return false
  const code = (e.cause as { code?: unknown } | undefined)?.code
  return typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'))
}

class LockTimeout extends Error {}

/** Runs `attempt` again while it fails on another process's lock, until `until` (ms since the epoch). */
async function whileLocked<T>(until: number, attempt: () => T | Promise<T>): Promise<T> {
  for (;;) {
    try {
      return await attempt()
    } catch (e) {
      if (!isLocked(e)) throw e
      if (Date.now() >= until) throw new LockTimeout()
    }
  }
}

interface Job {
  readonly bus: Bus
  readonly store: SqliteOutboxStore
  readonly topic: string
  readonly recipients: readonly string[]
  readonly deadlineMs: number
  readonly modname: string | undefined
  readonly until: number
}

/** Seals `payloads`, commits them in one batch (retrying while the file is locked) and resolves with their msg_ids once durable. */
async function enqueueAll(job: Job, payloads: readonly unknown[]): Promise<string[]> {
  const sealed = await Promise.all(
    payloads.map((msg) =>
      job.bus.sealAsync(job.topic, msg, { ...(job.modname !== undefined ? { modname: job.modname } : {}), extra: reliableFields(job.recipients) }),
    ),
  )
  const now = Date.now()
  const rows = sealed.map((s) => ({
    msgId: s.msgId,
    topic: s.topic,
    body: s.body,
    digest: s.digest,
    recipients: job.recipients,
    createdAt: now,
    deadline: now + job.deadlineMs,
    // Never due before a publisher sent it: the agent sends unsent rows first (and then schedules resends).
    nextAttemptAt: now + job.deadlineMs,
    unsent: true,
  }))
  await whileLocked(job.until, () => job.store.addAll(rows).durable)
  return rows.map((r) => r.msgId)
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parse(joinRecipients(argv), {
    recipients: { type: 'string', short: 'r', multiple: true },
    deadline: { type: 'string' },
    message: { type: 'string', short: 'm' },
    'json-input': { type: 'boolean' },
    lines: { type: 'boolean' },
    topic: { type: 'string', short: 't' },
    modname: { type: 'string' },
    'lock-timeout': { type: 'string' },
    verbose: { type: 'boolean', short: 'v' },
  })
  if (values.help) {
    process.stdout.write(HELP + '\n')
    return ExitCode.Ok
  }
  const recipients = recipientsOption(values.recipients)
  if (recipients.length === 0) throw new UsageError('--recipients: required (the certificate CNs that must acknowledge)')
  if (values.lines && values.message !== undefined) throw new UsageError('--lines reads stdin: not with --message')
  const deadlineMs = values.deadline === undefined ? DEFAULT_DEADLINE_MS : parseDuration(values.deadline, '--deadline')
  try {
    checkPositive(deadlineMs, '--deadline')
  } catch (e) {
    throw new UsageError((e as Error).message)
  }
  const lockTimeoutMs = numberOption(values['lock-timeout'], '--lock-timeout', DEFAULT_LOCK_TIMEOUT_MS / 1000) * 1000
  const jsonInput = values['json-input'] ?? false
  const config = cliConfig(values)
  const outboxPath = storePath(config, 'outbox')
  const bus = await busFromConfig(config, { transport: SEAL_ONLY, verifier: undefined })
  if (bus.signer === undefined) {
    await bus.close()
    throw new ConfigError(`${config.source}: sign_messages is false: a guaranteed message must be signed (its recipients verify it, and the agent the ACKs)`)
  }
  const until = Date.now() + lockTimeoutMs
  let store: SqliteOutboxStore | undefined
  let notifier: AgentNotifier | undefined
  const stored: string[] = []
  try {
    store = await whileLocked(until, () => SqliteOutboxStore.open(outboxPath, { synchronous: config.store_synchronous }))
    notifier = await connectAgent(outboxPath)
    const job: Job = { bus, store, topic: values.topic ?? 'log', recipients, deadlineMs, modname: values.modname, until }
    const commit = async (payloads: readonly unknown[]): Promise<void> => {
      const ids = await enqueueAll(job, payloads)
      stored.push(...ids)
      process.stdout.write(ids.map((id) => id + '\n').join(''))
      notifier?.notify(ids)
    }
    if (values.lines) {
      await forEachLineBatch((lines, first) => commit(lines.map((l, i) => payloadOf(l, jsonInput, `stdin line ${first + i + 1}`))))
      if (stored.length === 0) throw new UsageError('nothing to enqueue: no lines on stdin')
    } else {
      const text = values.message ?? (await readStdin()).replace(/\r?\n$/, '')
      if (text.trim() === '') throw new UsageError('nothing to enqueue: give --message or the message on stdin')
      await commit([payloadOf(text, jsonInput, values.message !== undefined ? 'the message' : 'stdin')])
    }
  } catch (e) {
    if (!(e instanceof LockTimeout)) throw e
    process.stderr.write(
      `gilmsg enqueue: the outbox ${outboxPath} stayed locked by other processes for ${lockTimeoutMs / 1000} s (--lock-timeout); ` +
        (stored.length > 0 ? `the ${stored.length} msg_ids printed are stored, the rest is not\n` : 'nothing was stored\n'),
    )
    return ExitCode.Failure
  } finally {
    await store?.close()
    await bus.close()
    const confirmed = await notifier?.close()
    if (stored.length > 0) warnUnlessDelivered(confirmed, outboxPath)
  }
  return ExitCode.Ok
}

async function connectAgent(outboxPath: string): Promise<AgentNotifier | undefined> {
  let socketPath: string
  try {
    socketPath = agentSocketPath(outboxPath)
  } catch {
    return undefined
  }
  return AgentNotifier.connect(socketPath)
}

function warnUnlessDelivered(confirmed: boolean | undefined, outboxPath: string): void {
  if (confirmed === undefined) {
    process.stderr.write(`gilmsg enqueue: no agent is running on ${outboxPath}: the message is kept there and sent once "gilmsg agent" starts on it\n`)
  } else if (!confirmed) {
    process.stderr.write(`gilmsg enqueue: the agent on ${outboxPath} did not confirm the notice; it finds the message at its next check\n`)
  }
}

/** Calls `each` with the complete non-empty stdin lines of every chunk read (at most {@link LINES_BATCH} at a time), in order. */
async function forEachLineBatch(each: (lines: readonly string[], first: number) => Promise<void>): Promise<void> {
  let rest = ''
  let seen = 0
  const flush = async (lines: string[]): Promise<void> => {
    const nonEmpty = lines.map((l) => l.replace(/\r$/, '')).filter((l) => l.trim() !== '')
    for (let i = 0; i < nonEmpty.length; i += LINES_BATCH) {
      const batch = nonEmpty.slice(i, i + LINES_BATCH)
      await each(batch, seen)
      seen += batch.length
    }
  }
  if (process.stdin.isTTY) return
  process.stdin.setEncoding('utf8')
  for await (const chunk of process.stdin) {
    const lines = (rest + (chunk as string)).split('\n')
    rest = lines.pop() ?? ''
    await flush(lines)
  }
  await flush([rest])
}
