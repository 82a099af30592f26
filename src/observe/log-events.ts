/**
 * What a service logs of gilmsg's events, once each, with fields: expiries and rejections
 * (`msg_id`, `recipient`, `reason`), CRL reloads, connections made and lost (`address`),
 * and drops, which come in bursts: one line per reason per interval with a count, never
 * one per dropped message (those are `debug` lines).
 */
import type { Logger } from 'pino'
import { describeCrlEvent, type CrlEvent } from '../crypto/crl-watch.js'
import type { ReliablePublisher } from '../reliable/publisher.js'
import type { ConnectionListener } from '../transport/transport.js'
import { systemClock, type Clock } from '../util/clock.js'

/** Drops are summed over this long, then logged as one line per reason. */
export const DROP_LOG_INTERVAL_MS = 10_000

export interface DropBurstsOptions {
  /** Default {@link DROP_LOG_INTERVAL_MS}. */
  readonly intervalMs?: number
  /** Default the system clock (its timer does not keep the process alive). */
  readonly clock?: Clock
  /** Turns the detail of a drop into text safe for a terminal (e.g. escaping control characters). Default: as is. */
  readonly safe?: (text: string) => string
}

/**
 * Sums drops by reason and logs each reason once per interval (`warn`, fields `reason`,
 * `count`, `sample`: the detail of the first drop of the burst). Each drop is also logged
 * at `debug` (with `reason`, `detail`) when that level is on.
 */
export class DropBursts {
  readonly #log: Logger
  readonly #intervalMs: number
  readonly #clock: Clock
  readonly #safe: (text: string) => string
  readonly #counts = new Map<string, { count: number; sample: string | undefined }>()
  #cancel: (() => void) | undefined
  #closed = false

  constructor(log: Logger, options: DropBurstsOptions = {}) {
    this.#log = log
    this.#intervalMs = options.intervalMs ?? DROP_LOG_INTERVAL_MS
    this.#clock = options.clock ?? systemClock
    this.#safe = options.safe ?? ((t) => t)
  }

  /** Counts one drop. */
  add(reason: string, detail?: string): void {
    if (this.#log.isLevelEnabled('debug')) {
      const d = detail === undefined ? undefined : this.#safe(detail)
      this.#log.debug({ reason, ...(d !== undefined ? { detail: d } : {}) }, d === undefined ? `dropped (${reason})` : `dropped (${reason}): ${d}`)
    }
    const entry = this.#counts.get(reason)
    if (entry !== undefined) entry.count++
    else this.#counts.set(reason, { count: 1, sample: detail })
    if (this.#cancel === undefined && !this.#closed) this.#cancel = this.#clock.setTimer(() => this.flush(), this.#intervalMs)
  }

  /** Logs what was counted since the last flush, one line per reason. */
  flush(): void {
    this.#cancel?.()
    this.#cancel = undefined
    for (const [reason, { count, sample }] of this.#counts) {
      const s = sample === undefined ? undefined : this.#safe(sample)
      this.#log.warn(
        { reason, count, ...(s !== undefined ? { sample: s } : {}) },
        `${count} message${count === 1 ? '' : 's'} dropped: ${reason}${s !== undefined ? ` (first: ${s})` : ''}`,
      )
    }
    this.#counts.clear()
  }

  /** Flushes and stops the timer; later drops are counted and logged by the next `flush()` only. Idempotent. */
  close(): void {
    this.#closed = true
    this.flush()
  }
}

/** Logs a publisher's outcomes: expiries and rejections (`warn`), background failures (`error`). Returns the function that stops. */
export function logPublisherEvents(publisher: Pick<ReliablePublisher, 'on'>, log: Logger): () => void {
  const off = [
    publisher.on('expired', (e) =>
      log.warn(
        { msg_id: e.msgId, missing: e.missing, acked: e.acked.map((a) => a.cn), ...(e.rejected.length > 0 ? { rejected: e.rejected.map((r) => r.cn) } : {}) },
        `${e.msgId} expired: no ACK from ${e.missing.join(', ')}`,
      ),
    ),
    publisher.on('rejected', (r) =>
      log.warn(
        { msg_id: r.msgId, recipient: r.recipient, reason: r.reason, ended: r.ended },
        `${r.msgId} rejected by ${r.recipient}: ${r.reason}${r.ended ? '' : ' (the quorum can still be reached: still pending for the others)'}`,
      ),
    ),
    publisher.on('background:error', (e) => log.error({ err: e, code: e.code }, e.message)),
  ]
  return () => {
    for (const f of off.splice(0)) f()
  }
}

/** A CRL watcher's `onCrlEvent` that logs: loads and reloads `info`, a stale CRL and a refused CA fetch `warn`, a refused CRL `error`. */
export function crlEventLogger(log: Logger): (event: CrlEvent) => void {
  return (event) => {
    const text = describeCrlEvent(event)
    switch (event.type) {
      case 'crl:loaded':
      case 'crl:stale': {
        const s = event.status
        const fields = {
          path: event.path,
          crl_number: s.crlNumber?.toString(),
          revoked: s.revokedCount,
          next_update: new Date(s.nextUpdate).toISOString(),
          stale: s.stale,
          ...(event.type === 'crl:loaded' ? { initial: event.initial } : {}),
        }
        if (event.type === 'crl:loaded') log.info(fields, text)
        else log.warn(fields, text)
        return
      }
      case 'crl:error':
        log.error({ path: event.path, reason: event.error.message, code: event.error.code }, text)
        return
      case 'ca:error':
        log.warn({ path: event.path, reason: event.error.message, code: event.error.code }, text)
        return
    }
  }
}

/**
 * Logs each connection of a subscriber made (`info`, "connected to ADDRESS") and ended
 * (`warn`, "disconnected from ADDRESS: reconnecting"), with the field `address`: a relay
 * restarted or a partition shows as one pair of lines, not as silence.
 */
export function connectionLogger(log: Logger): ConnectionListener {
  return (event, address) => {
    if (event === 'connected') log.info({ address }, `connected to ${address}`)
    else log.warn({ address }, `disconnected from ${address}: reconnecting`)
  }
}
