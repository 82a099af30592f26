import { findConfigFiles } from '../config/config.js'
import { terminalSafe } from './terminal.js'
import { numberOption, parse } from './args.js'
import { endpointChecks, relayChecks } from './checks/network.js'
import { pkiChecks } from './checks/pki.js'
import { CheckStatus, ok, warn, type CheckResult } from './checks/result.js'
import { roundtripCheck } from './checks/roundtrip.js'
import { storeChecks } from './checks/stores.js'
import { cliConfig, ORIGINS } from './config.js'
import { UsageError } from '../errors.js'
import { ExitCode } from './exit-codes.js'

/** How long each network check (a bind, a relay handshake) and each store's lock wait may take by default: 2 s. */
export const DEFAULT_CHECK_TIMEOUT_S = 2
/** How long `--roundtrip` waits for its own ACK by default: 10 s. */
export const DEFAULT_ROUNDTRIP_TIMEOUT_S = 10

const HELP = `Usage: gilmsg check [--config FILE] [--name NAME] [--certname NAME] [--json] [--roundtrip] [--timeout S]

Checks this host's gilmsg setup and prints one line per check: ok, warn or fail, what was
checked, and what was found (or what to do). Says on stderr which config file was loaded.
  config          the config file in use
  ca, ca expiry   the CA certificate (ca_cert_location) can be read; days left (warn under 30)
  crl             the CRL is signed by the CA and not older than one already accepted
  crl update      its age and nextUpdate: fail when past (stale) or not yet valid, warn when close
  cert chain      the signing certificate (<ssldir>/<certname>.crt) is issued by the CA, not revoked
  cert expiry     days left (warn under 30, fail when expired)
  key             the private key is private (mode 0600: else fail, with the chmod) and matches
  endpoint        each address this process binds can be bound (bound and closed at once)
  relay inbound   a ZMTP handshake with each relay_inbound address, within the timeout
  relay outbound  the same with each endpoints.relay_outbound address
  outbox, inbox   opened read-only (never created): integrity (quick_check), schema version,
                  pending / remembered counts; a missing file is "none yet"
  roundtrip       (--roundtrip) a guaranteed message to this process's own certificate through
                  the configured bus, and its ACK back: the whole path in one command
Options:
  --json          a JSON array of {name, status, detail} instead of lines
  --roundtrip     also run the roundtrip (stores in memory: the files are not touched)
  --timeout S     seconds each network check may take (default ${DEFAULT_CHECK_TIMEOUT_S}; the roundtrip: default ${DEFAULT_ROUNDTRIP_TIMEOUT_S})
Exit status: 0 when no check fails (warnings allowed), 1 when one does, 2 for a usage or
configuration error.`

export async function run(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    json: { type: 'boolean' },
    roundtrip: { type: 'boolean' },
    timeout: { type: 'string' },
  })
  if (values.help) {
    process.stdout.write(HELP + '\n')
    return ExitCode.Ok
  }
  const timeoutS = numberOption(values.timeout, '--timeout', DEFAULT_CHECK_TIMEOUT_S)
  if (timeoutS <= 0) throw UsageError.format('--timeout', 'a number of seconds > 0', values.timeout)
  const timeoutMs = timeoutS * 1000
  const roundtripMs = values.timeout === undefined ? DEFAULT_ROUNDTRIP_TIMEOUT_S * 1000 : timeoutMs
  const config = cliConfig({ ...values, verbose: true })
  const found = findConfigFiles(values.config === undefined ? {} : { file: values.config })
  const results: CheckResult[] = [
    found.length === 0
      ? warn('config', 'no config file (no --config, no $GILMSG_CONFIG, no /etc/gilmsg.d/*.json, no ./gilmsg.json): the defaults')
      : ok('config', found.map((f) => `${f.path} (${ORIGINS[f.origin]})`).join(', ')),
    ...pkiChecks(config, Date.now()),
    ...(await endpointChecks(config, timeoutMs)),
    ...(await relayChecks(config, timeoutMs)),
    ...storeChecks(config, timeoutMs),
  ]
  if (values.roundtrip) results.push(await roundtripCheck(config, roundtripMs))
  process.stdout.write(values.json ? JSON.stringify(results, null, 2) + '\n' : format(results))
  return results.some((r) => r.status === CheckStatus.Fail) ? ExitCode.Failure : ExitCode.Ok
}

/** One aligned line per check: status, name, detail (made safe for a terminal). */
export function format(results: readonly CheckResult[]): string {
  const width = Math.max(...results.map((r) => r.name.length))
  return results.map((r) => `${r.status.padEnd(4)}  ${r.name.padEnd(width)}  ${terminalSafe(r.detail)}\n`).join('')
}
