import { DEFAULT_CA_DAYS, DEFAULT_CERT_DAYS, DEFAULT_CRL_DAYS, initCa, issueCert, renewCrl, revokeCert } from '../crypto/certs.js'
import { intOption, parse } from './args.js'
import { UsageError } from '../errors.js'
import { ExitCode } from './exit-codes.js'

const HELP = `Usage:
  gilmsg certs init --dir DIR [--cn CN] [--days N] [--force]
      a CA (DIR/ca.crt, DIR/ca.key) and an empty CRL (DIR/crl.pem); --force replaces an existing CA
  gilmsg certs issue NAME --dir DIR [--cn CN] [--key rsa|ec|ed25519] [--days N] [--force]
      DIR/NAME.crt and DIR/NAME.key, signed by the CA; the CN defaults to NAME.
      rsa (default) works with Python fedmsg ("x509"); ec and ed25519 need crypto_backend "x509_sha256".
      --force replaces an existing NAME.crt and NAME.key (the old certificate stays valid
      until it expires: revoke it first if its key may be compromised)
  gilmsg certs revoke NAME --dir DIR [--days N]
      adds DIR/NAME.crt to DIR/crl.pem and re-signs it (cRLNumber + 1, valid N days)
  gilmsg certs crl --dir DIR [--days N]
      re-signs DIR/crl.pem with the same entries (cRLNumber + 1, valid N days from now):
      run it before the CRL's next update, after which verifiers report it as stale
--days: validity in days (init: the CA, default ${DEFAULT_CA_DAYS}; issue: the certificate, default ${DEFAULT_CERT_DAYS};
revoke and crl: the CRL, default ${DEFAULT_CRL_DAYS}).
DIR is fedmsg's ssldir layout: point "ssldir" at it ("ca_cert_location" defaults to DIR/ca.crt,
and DIR/crl.pem is used when "crl_location" is unset). Running processes pick up a new
crl.pem within seconds (or at once on SIGHUP); an older CRL than one already seen is refused.
DIR is created with mode 0700 and keys are written with mode 0600. A private key that group
or others can read or write, or in a directory they can write, is refused (as OpenSSH does).`

const KEYS = ['rsa', 'ec', 'ed25519'] as const

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      dir: { type: 'string', short: 'd' },
      cn: { type: 'string' },
      key: { type: 'string' },
      days: { type: 'string' },
      force: { type: 'boolean' },
    },
    true,
  )
  const [action, name, ...extra] = positionals
  if (values.help || action === undefined) {
    process.stdout.write(HELP + '\n')
    return values.help ? ExitCode.Ok : ExitCode.Usage
  }
  if (values.dir === undefined) throw new UsageError(`certs ${action}: --dir DIR is required`)
  if (extra.length > 0) throw new UsageError(`certs ${action}: unexpected argument "${extra[0]}"`)
  const dir = values.dir
  switch (action) {
    case 'init': {
      if (name !== undefined) throw new UsageError(`certs init takes no NAME (got "${name}")`)
      const res = await initCa(dir, {
        ...(values.cn !== undefined ? { cn: values.cn } : {}),
        ...(values.days !== undefined ? { days: intOption(values.days, '--days', 1) } : {}),
        ...(values.force ? { force: true } : {}),
      })
      process.stdout.write(`created ${res.caCertPath}, ${res.caKeyPath} and ${res.crlPath}\n`)
      return ExitCode.Ok
    }
    case 'issue': {
      if (name === undefined) throw new UsageError('certs issue: NAME is required')
      const key = values.key ?? 'rsa'
      if (!(KEYS as readonly string[]).includes(key)) throw UsageError.format('--key', `one of ${KEYS.join(', ')}`, key)
      const res = await issueCert(dir, name, {
        key: key as (typeof KEYS)[number],
        ...(values.cn !== undefined ? { cn: values.cn } : {}),
        ...(values.days !== undefined ? { days: intOption(values.days, '--days', 1) } : {}),
        ...(values.force ? { force: true } : {}),
      })
      process.stdout.write(`created ${res.certPath} and ${res.keyPath} (CN=${res.cn}, serial ${res.serial})\n`)
      return ExitCode.Ok
    }
    case 'revoke': {
      if (name === undefined) throw new UsageError('certs revoke: NAME is required')
      const res = await revokeCert(dir, name, crlDays(values.days))
      process.stdout.write(`revoked ${name} (serial ${res.serial}) in ${res.crlPath}${res.alreadyRevoked ? ' (it already was; the CRL was re-signed)' : ''}\n`)
      return ExitCode.Ok
    }
    case 'crl': {
      if (name !== undefined) throw new UsageError(`certs crl takes no NAME (got "${name}")`)
      const res = await renewCrl(dir, crlDays(values.days))
      process.stdout.write(
        `re-signed ${res.crlPath}: cRLNumber ${res.crlNumber}, ${res.revokedCount} revoked, next update ${res.nextUpdate.toISOString()}\n`,
      )
      return ExitCode.Ok
    }
    default:
      throw new UsageError(`certs: unknown action "${action}" (expected init, issue, revoke or crl)`)
  }
}

function crlDays(days: string | undefined): { crlDays?: number } {
  return days === undefined ? {} : { crlDays: intOption(days, '--days', 1) }
}
