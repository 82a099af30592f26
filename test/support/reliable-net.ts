/**
 * Helpers for the reliability integration tests (test/integration/reliable):
 * a relay on loopback tcp, fedmsg-style configs pointing every process at
 * it, and bounded waits (no test may hang).
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createTestPki, type TestPki } from './pki.js'
import { sleep } from '../../bench/lib/timing.js'
import { startRelay, type Relay, type RelayMode } from '../../src/transport/relay.js'
import { SqliteOutboxStore } from '../../src/outbox/sqlite.js'

export { sleep, withTimeout } from '../../bench/lib/timing.js'

export const TOPIC_PREFIX = 'org.test'
export const ENVIRONMENT = 'it'
/** Application messages go out with this modname, so `APP_PREFIX` selects them and not the ACKs. */
export const APP_MODNAME = 'app'
export const APP_PREFIX = `${TOPIC_PREFIX}.${ENVIRONMENT}.${APP_MODNAME}.`

/**
 * The relay mode the tests that start a relay in process use: `$GILMSG_TEST_RELAY_MODE`
 * (`native` or `js`), else the default. Run them once per mode to cover both.
 */
export function testRelayMode(): RelayMode | undefined {
  const mode = process.env['GILMSG_TEST_RELAY_MODE']
  if (mode === undefined || mode === '') return undefined
  if (mode !== 'native' && mode !== 'js') throw new Error(`GILMSG_TEST_RELAY_MODE: expected native or js, got ${mode}`)
  return mode
}

/** A relay on `tcp://127.0.0.1:*` (both sides), with the ports it got, in {@link testRelayMode}. */
export async function startLoopbackRelay(): Promise<{ relay: Relay; inbound: string; outbound: string }> {
  const mode = testRelayMode()
  const relay = await startRelay({ inbound: ['tcp://127.0.0.1:*'], outbound: ['tcp://127.0.0.1:*'], ...(mode ? { mode } : {}) })
  const inbound = relay.endpoints.inbound[0]
  const outbound = relay.endpoints.outbound[0]
  if (inbound === undefined || outbound === undefined) throw new Error('relay did not report its endpoints')
  return { relay, inbound, outbound }
}

/**
 * A config (file form) for the process signing as `certname`: `active`,
 * publishing to the relay's inbound and subscribing to its outbound, EC keys
 * signed with `x509_sha256`, outbox and inbox as `<dir>/<certname>.*.db`.
 */
export function relayConfig(
  pki: TestPki,
  relay: { inbound: string; outbound: string },
  dir: string,
  certname: string,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    topic_prefix: TOPIC_PREFIX,
    environment: ENVIRONMENT,
    active: true,
    relay_inbound: [relay.inbound],
    endpoints: { relay_outbound: [relay.outbound] },
    name: certname,
    certname,
    ssldir: pki.dir,
    ca_cert_location: pki.caCertPath,
    crl_location: pki.crlPath,
    crypto_backend: 'x509_sha256',
    outbox_path: join(dir, `${certname}.outbox.db`),
    inbox_path: join(dir, `${certname}.inbox.db`),
    ...extra,
  }
}

/** Writes `config` as `<dir>/<file>.json` and returns the path. */
export function writeConfigFile(dir: string, file: string, config: Record<string, unknown>): string {
  const path = join(dir, `${file}.json`)
  writeFileSync(path, JSON.stringify(config, null, 2), { mode: 0o600 })
  return path
}


/** What the tests of CLI processes around one relay share: see {@link startCliWorld}. */
export interface CliWorld {
  /** A fresh scratch directory (the stores, the configs, the PKI under `pki/`). */
  readonly dir: string
  /** For the CLI processes: their state under `dir`, no config from the environment. */
  readonly env: NodeJS.ProcessEnv
  readonly net: { readonly relay: Relay; readonly inbound: string; readonly outbound: string }
  /** Each name's config file ({@link relayConfig}), by name. */
  readonly configs: Record<string, string>
}

/**
 * A scratch directory named after `prefix`, a P-256 certificate for each of `names`, an
 * in-process relay on loopback tcp and one config file per name pointing at it. The caller
 * closes `net.relay` and removes `dir`.
 */
export async function startCliWorld(prefix: string, names: readonly string[]): Promise<CliWorld> {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  const env = { XDG_STATE_HOME: join(dir, 'state'), GILMSG_CONFIG: '' }
  const pki = await createTestPki(join(dir, 'pki'), names.map((name) => ({ name, key: 'ec' as const })))
  const net = await startLoopbackRelay()
  const configs: Record<string, string> = {}
  for (const name of names) configs[name] = writeConfigFile(dir, name, relayConfig(pki, net, dir, name))
  return { dir, env, net, configs }
}

/** Polls `condition` every `everyMs` until it is true; rejects naming `what` (and `detail()`) after `ms`. */
export async function waitUntil(condition: () => boolean, ms: number, what: string, detail: () => string = () => '', everyMs = 20): Promise<void> {
  const until = Date.now() + ms
  while (!condition()) {
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}${detail() ? `: ${detail()}` : ''}`)
    await sleep(everyMs)
  }
}


/**
 * Reads an outbox through a second connection (WAL allows it while a publisher
 * has the file open). publish() resolves before its receipt's batch commits
 * (at the end of that turn); opening a second connection in the publisher's
 * own process before then would wait on the publisher's write lock while
 * blocking the very commit that releases it, so this yields one turn first.
 */
export async function readOutboxFile<T>(path: string, read: (store: SqliteOutboxStore) => T): Promise<T> {
  // A publisher in this process may hold a write batch open until its setImmediate: opening
  // waits synchronously on the lock (blocking that very commit), so wait briefly and retry
  // on the next turns of the event loop instead.
  let store: SqliteOutboxStore | undefined
  for (let attempt = 0; store === undefined; attempt++) {
    await new Promise((resolve) => setImmediate(resolve))
    try {
      store = SqliteOutboxStore.open(path, { busyTimeoutMs: 50 })
    } catch (err) {
      if (attempt >= 100 || !/SQLITE_BUSY/.test(String(err))) throw err
    }
  }
  try {
    return read(store)
  } finally {
    await store.close()
  }
}
