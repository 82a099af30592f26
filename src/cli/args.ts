import { parseArgs, type ParseArgsConfig } from 'node:util'
import { UsageError } from '../errors.js'

type Options = NonNullable<ParseArgsConfig['options']>

/** The options every command takes. */
export const COMMON_OPTIONS = {
  config: { type: 'string', short: 'c' },
  name: { type: 'string' },
  certname: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies Options

/** What {@link parse} returns for a command's options `O`. */
export type ParsedArgs<O extends Options> = ReturnType<
  typeof parseArgs<{ args: string[]; options: typeof COMMON_OPTIONS & O; allowPositionals: boolean; strict: true }>
>

/** `node:util` parseArgs, strict, with errors turned into {@link UsageError}. */
export function parse<O extends Options>(argv: readonly string[], options: O, allowPositionals = false): ParsedArgs<O> {
  try {
    return parseArgs({ args: [...argv], options: { ...COMMON_OPTIONS, ...options }, allowPositionals, strict: true })
  } catch (e) {
    throw new UsageError((e as Error).message)
  }
}

/** Parses a non-negative number option; `what` names it in the error. */
export function numberOption(value: string | undefined, what: string, fallback: number): number {
  if (value === undefined) return fallback
  const n = Number(value)
  if (value.trim() === '' || !Number.isFinite(n) || n < 0) throw UsageError.format(what, 'a number >= 0', value)
  return n
}

/** Parses a positive integer option. */
export function intOption(value: string | undefined, what: string, fallback: number): number {
  const n = numberOption(value, what, fallback)
  if (!Number.isSafeInteger(n) || n < 1) throw UsageError.format(what, 'a whole number >= 1', value)
  return n
}

/** `--recipients a b c --next` -> `--recipients a,b,c --next`: parseArgs has no multi-value options. */
export function joinRecipients(argv: readonly string[]): string[] {
  const out: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string
    if (arg !== '--recipients' && arg !== '-r') {
      out.push(arg)
      continue
    }
    const values: string[] = []
    while (i + 1 < argv.length && !(argv[i + 1] as string).startsWith('-')) values.push(argv[++i] as string)
    out.push('--recipients', values.join(','))
  }
  return out
}

/** The CNs of `--recipients` (given space- or comma-separated, repeatable), de-duplicated; [] when absent; a `UsageError` when given empty. */
export function recipientsOption(values: readonly string[] | undefined): string[] {
  const recipients = [...new Set((values ?? []).flatMap((r) => r.split(',')).map((r) => r.trim()).filter((r) => r !== ''))]
  if (values !== undefined && recipients.length === 0) throw new UsageError('--recipients: give at least one certificate CN')
  return recipients
}
