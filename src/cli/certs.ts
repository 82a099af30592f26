import { initCa, issueCert, revokeCert } from '../crypto/certs.js'
import { intOption, parse, UsageError } from './args.js'
import { ExitCode } from './exit-codes.js'

const HELP = `Usage:
  gilmsg certs init --dir DIR [--cn CN] [--days N] [--force]
      a CA (DIR/ca.crt, DIR/ca.key) and an empty CRL (DIR/crl.pem); --force replaces an existing CA
  gilmsg certs issue NAME --dir DIR [--cn CN] [--key rsa|ec|ed25519] [--days N] [--force]
      DIR/NAME.crt and DIR/NAME.key, signed by the CA; the CN defaults to NAME.
      rsa (default) works with Python fedmsg ("x509"); ec and ed25519 need crypto_backend "x509_sha256".
      --force replaces an existing NAME.crt and NAME.key (the old certificate stays valid
      until it expires: revoke it first if its key may be compromised)
  gilmsg certs revoke NAME --dir DIR
      adds DIR/NAME.crt to DIR/crl.pem
DIR is fedmsg's ssldir layout: point "ssldir", "ca_cert_location" and "crl_location" at it.
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
      if (!(KEYS as readonly string[]).includes(key)) throw new UsageError(`--key: expected one of ${KEYS.join(', ')}, got "${key}"`)
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
      const res = await revokeCert(dir, name)
      process.stdout.write(`revoked ${name} (serial ${res.serial}) in ${res.crlPath}\n`)
      return ExitCode.Ok
    }
    default:
      throw new UsageError(`certs: unknown action "${action}" (expected init, issue or revoke)`)
  }
}
