/**
 * What several cases share: the run's certificates, a relay on loopback tcp,
 * and config files pointing gilmsg processes at it.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createPki, type Pki } from './pki.js'
import { startRelay, type Relay } from '../../src/index.js'
import { ENVIRONMENT, TOPIC_PREFIX } from './names.js'

/** Topics are `org.bench.b.<modname>.<topic>` (see `names.ts`). */
export { APP_MODNAME, APP_PREFIX, ENVIRONMENT, TOPIC_PREFIX } from './names.js'

/** The key families the network cases run with: RSA-2048 signing fedmsg's `x509` (SHA-1), or P-256 with `x509_sha256`. */
export type KeyFamily = 'rsa' | 'ec'

/** The roles that have a certificate in each family. */
export type Role = 'pub' | 'r1' | 'r2' | 'r3'

const ROLES: readonly Role[] = ['pub', 'r1', 'r2', 'r3']

/** The certname (and CN) of `role` in `family`: `r1` for RSA (as `gilmsg certs issue r1` makes), `r1-ec` for P-256. */
export function certname(family: KeyFamily, role: Role): string {
  return family === 'rsa' ? role : `${role}-ec`
}

/** The crypto mode a family signs with. */
export function cryptoMode(family: KeyFamily): 'x509' | 'x509_sha256' {
  return family === 'rsa' ? 'x509' : 'x509_sha256'
}

/** The Ed25519 leaf (crypto case only). */
export const ED25519_CERT = 'pub-ed'

/** Makes the run's CA and leaves: RSA `pub r1 r2 r3`, P-256 `pub-ec r1-ec r2-ec r3-ec`, Ed25519 `pub-ed`. */
export function makeBenchPki(dir: string): Promise<Pki> {
  return createPki(dir, [
    ...ROLES.map((r) => ({ name: certname('rsa', r), key: 'rsa' as const })),
    ...ROLES.map((r) => ({ name: certname('ec', r), key: 'ec' as const })),
    { name: ED25519_CERT, key: 'ed25519' as const },
  ])
}

/** A relay on `tcp://127.0.0.1:*` (both sides) with the addresses it got. */
export interface BenchRelay {
  readonly relay: Relay
  readonly inbound: string
  readonly outbound: string
}

/** Starts a relay in this process on loopback tcp, ports chosen by the OS. */
export async function startBenchRelay(): Promise<BenchRelay> {
  const relay = await startRelay({ inbound: ['tcp://127.0.0.1:*'], outbound: ['tcp://127.0.0.1:*'] })
  const inbound = relay.endpoints.inbound[0]
  const outbound = relay.endpoints.outbound[0]
  if (inbound === undefined || outbound === undefined) {
    await relay.close()
    throw new Error('the relay did not report its endpoints')
  }
  return { relay, inbound, outbound }
}

/** What {@link writeConfig} puts in a config besides the common keys. */
export interface ConfigSpec {
  readonly certname: string
  readonly family: KeyFamily
  readonly relay?: BenchRelay
  readonly outboxPath?: string
  readonly inboxPath?: string
  /** More keys, in file form. */
  readonly extra?: Record<string, unknown>
}

/**
 * Writes `<dir>/<file>.json`: a fedmsg-style config (`active`, publishing to
 * the relay's inbound and subscribing to its outbound when a relay is given),
 * signing as `certname`, validating against the run's CA and CRL. Returns
 * the path.
 */
export function writeConfig(dir: string, file: string, pki: Pki, spec: ConfigSpec): string {
  const config: Record<string, unknown> = {
    topic_prefix: TOPIC_PREFIX,
    environment: ENVIRONMENT,
    name: spec.certname,
    certname: spec.certname,
    ssldir: pki.dir,
    ca_cert_location: pki.caCertPath,
    crl_location: pki.crlPath,
    crypto_backend: cryptoMode(spec.family),
    ...(spec.relay ? { active: true, relay_inbound: [spec.relay.inbound], endpoints: { relay_outbound: [spec.relay.outbound] } } : {}),
    ...(spec.outboxPath !== undefined ? { outbox_path: spec.outboxPath } : {}),
    ...(spec.inboxPath !== undefined ? { inbox_path: spec.inboxPath } : {}),
    ...spec.extra,
  }
  const path = join(dir, `${file}.json`)
  writeFileSync(path, JSON.stringify(config, null, 2), { mode: 0o600 })
  return path
}
