import type { GilmsgConfig } from '../config/config.js'
import { busFromConfig, resolveCertname, type OpenBusOptions } from '../bus/from-config.js'
import { SqliteInboxStore } from '../inbox/sqlite.js'
import { defaultStatePath, SqliteOutboxStore } from '../outbox/sqlite.js'
import type { InboxStore } from '../inbox/store.js'
import type { OutboxStore } from '../outbox/store.js'
import { ConfigError } from '../errors.js'
import { Gilmsg, whyNotAcknowledge, type GilmsgOptions } from './gilmsg.js'

export interface OpenGilmsgOptions extends OpenBusOptions, Omit<GilmsgOptions, 'bus' | 'outbox' | 'inbox'> {
  /** Open the outbox (to publish guaranteed messages). Default true. */
  readonly outbox?: boolean
  /** Open the inbox (to acknowledge messages naming this CN). Default true. */
  readonly inbox?: boolean
}

/** The file an outbox or inbox lives in: the config's path, else a per-name file in the user's state directory. */
export function storePath(config: GilmsgConfig, kind: 'outbox' | 'inbox'): string {
  const configured = kind === 'outbox' ? config.outbox_path : config.inbox_path
  return configured ?? defaultStatePath(config.name ?? resolveCertname(config), kind)
}

/**
 * Opens gilmsg as the config describes: the signed bus, a SQLite outbox and
 * inbox, and the reliability layer on top (see {@link Gilmsg.open}). Rejects
 * with `ConfigError`, before opening any store, when the inbox is asked for with
 * `validate_signatures` false and without `ackUnvalidated`.
 */
export async function openGilmsg(config: GilmsgConfig, options: OpenGilmsgOptions = {}): Promise<Gilmsg> {
  const bus = await busFromConfig(config, options)
  const refused = (options.inbox ?? true) ? whyNotAcknowledge(bus, options.ackUnvalidated) : undefined
  if (refused !== undefined) {
    await bus.close()
    throw new ConfigError(`${config.source}: ${refused}`)
  }
  const storeOptions = { synchronous: config.store_synchronous }
  let outbox: OutboxStore | undefined
  let inbox: InboxStore | undefined
  try {
    if (options.outbox ?? true) outbox = SqliteOutboxStore.open(storePath(config, 'outbox'), storeOptions)
    if (options.inbox ?? true) inbox = SqliteInboxStore.open(storePath(config, 'inbox'), storeOptions)
  } catch (e) {
    await Promise.all([bus.close(), outbox?.close()])
    throw e
  }
  const { outbox: _o, inbox: _i, transport: _t, signer: _s, verifier: _v, ...rest } = options
  return Gilmsg.open({
    ...rest,
    bus,
    outbox,
    inbox,
    acceptLegacyAcks: options.acceptLegacyAcks ?? config.accept_legacy_acks,
    resendRate: options.resendRate ?? config.resend_rate,
  })
}
