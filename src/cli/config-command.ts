import { join } from 'node:path'
import { inspectConfig, loadConfig, nearest, CONFIG_KEYS, type ConfigReport, type GilmsgConfig } from '../config/config.js'
import { fedmsgOnlyPurpose } from '../config/fedmsg-keys.js'
import { storePath } from '../reliable/from-config.js'
import { parse } from './args.js'
import { configOptions, ORIGINS } from './config.js'
import { ExitCode } from './exit-codes.js'

const HELP = `Usage: gilmsg config [--config FILE|DIR] [--query KEY] [--json] [--check]

Prints the effective configuration (files, then environment, then defaults), like fedmsg-config,
as JSON in file form: it can be read back with --config.
  --query KEY   print one key (a dotted path goes into objects: endpoints.relay_outbound):
                a string as it is, a list one item a line, anything else as JSON;
                exit 1 when the key is unset or unknown (as fedmsg-config)
  --json        print the --query value, or the --check report, as JSON
  --check       list the files read (in merge order), the fedmsg keys ignored (with what fedmsg
                uses them for) and every problem; exit 2 when there is a problem
  --name N, --certname C   override the files, as for the other commands
Files: --config FILE, or --config DIR (DIR/*.json merged in name order), else $GILMSG_CONFIG
(a file or a directory), else /etc/gilmsg.d/*.json then ./gilmsg.json, each if it exists.`

export async function run(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    query: { type: 'string', short: 'q' },
    json: { type: 'boolean' },
    check: { type: 'boolean' },
  })
  if (values.help) {
    process.stdout.write(HELP + '\n')
    return ExitCode.Ok
  }
  const options = configOptions(values)
  if (values.check === true) {
    const report = inspectConfig(options)
    process.stdout.write(values.json === true ? JSON.stringify(checkJson(report), null, 2) + '\n' : checkText(report))
    return report.problems.length === 0 ? ExitCode.Ok : ExitCode.Usage
  }
  const effective = fileForm(loadConfig(options))
  if (values.query === undefined) {
    process.stdout.write(JSON.stringify(effective, null, 2) + '\n')
    return ExitCode.Ok
  }
  return query(effective, values.query, values.json === true)
}

/**
 * The configuration as a config file writes it, with the defaults that depend on the
 * environment (`$XDG_STATE_HOME`) or on other keys filled in: keys sorted, unset as null,
 * "no limit" as 0.
 */
export function fileForm(config: GilmsgConfig): Record<string, unknown> {
  const { source: _source, ...keys } = config
  const effective: Record<string, unknown> = {
    ...keys,
    ca_cert_location: config.ca_cert_location ?? join(config.ssldir, 'ca.crt'),
    ...(config.name !== undefined
      ? { outbox_path: storePath(config, 'outbox'), inbox_path: storePath(config, 'inbox') }
      : {}),
  }
  return sorted(effective) as Record<string, unknown>
}

function sorted(v: unknown): unknown {
  if (v === undefined) return null
  if (v === Infinity) return 0
  if (Array.isArray(v)) return v.map(sorted)
  if (typeof v !== 'object' || v === null) return v
  const out: Record<string, unknown> = {}
  for (const k of Object.keys(v).sort()) out[k] = sorted((v as Record<string, unknown>)[k])
  return out
}

function lookup(config: Record<string, unknown>, key: string): { found: boolean; value: unknown } {
  if (Object.hasOwn(config, key)) return { found: true, value: config[key] }
  let cur: unknown = config
  for (const part of key.split('.')) {
    if (typeof cur !== 'object' || cur === null || Array.isArray(cur) || !Object.hasOwn(cur, part)) return { found: false, value: undefined }
    cur = (cur as Record<string, unknown>)[part]
  }
  return { found: true, value: cur }
}

function query(config: Record<string, unknown>, key: string, json: boolean): number {
  const { found, value } = lookup(config, key)
  if (!found) {
    const purpose = fedmsgOnlyPurpose(key)
    const near = nearest(key, CONFIG_KEYS)
    process.stderr.write(
      purpose !== undefined
        ? `gilmsg: "${key}" is a fedmsg key gilmsg ignores (fedmsg: ${purpose})\n`
        : `gilmsg: key "${key}" does not exist in the config${near !== undefined ? ` (did you mean "${near}"?)` : ''}\n`,
    )
    return ExitCode.Failure
  }
  if (json) {
    process.stdout.write(JSON.stringify(value) + '\n')
    return ExitCode.Ok
  }
  if (value === null) {
    process.stderr.write(`gilmsg: key "${key}" is not set\n`)
    return ExitCode.Failure
  }
  if (typeof value === 'string') process.stdout.write(value + '\n')
  else if (Array.isArray(value)) process.stdout.write(value.map((x) => (typeof x === 'string' ? x : JSON.stringify(x)) + '\n').join(''))
  else process.stdout.write(JSON.stringify(value, null, 2) + '\n')
  return ExitCode.Ok
}

function checkJson(report: ConfigReport): Record<string, unknown> {
  return {
    ok: report.problems.length === 0,
    files: report.files.map((f) => ({ path: f.path, origin: f.origin })),
    ignored: report.ignored.map((i) => ({ key: i.key, file: i.file, fedmsg_use: i.purpose })),
    problems: report.problems.map((p) => p.message),
  }
}

function checkText(report: ConfigReport): string {
  const lines: string[] = []
  if (report.files.length === 0) lines.push('files read: none (no --config, no $GILMSG_CONFIG, no /etc/gilmsg.d/*.json, no ./gilmsg.json): the defaults')
  else {
    lines.push('files read (in this order; a later file wins):')
    for (const f of report.files) lines.push(`  ${f.path} (${ORIGINS[f.origin]})`)
  }
  if (report.ignored.length > 0) {
    lines.push('ignored (fedmsg keys for parts gilmsg does not have):')
    for (const i of report.ignored) lines.push(`  ${i.key}: ${i.purpose}${report.files.length > 1 ? ` (${i.file})` : ''}`)
  }
  if (report.problems.length > 0) {
    lines.push(`problems (${report.problems.length}):`)
    for (const p of report.problems) lines.push(`  ${p.message}`)
  } else lines.push('ok: no problems')
  return lines.join('\n') + '\n'
}
