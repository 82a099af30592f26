/**
 * The logs of long-running commands (pino): one JSON object a line on stderr, or readable
 * text (pino-pretty) for a terminal. Fields are snake_case (`msg_id`, `recipient`,
 * `reason`); the message text says the same in words.
 */
import { pino, type Logger, type DestinationStream } from 'pino'
import pretty from 'pino-pretty'
import { InvalidArgumentError } from '../errors.js'

export type { Logger } from 'pino'

/** The formats of {@link createServiceLogger}: `json` lines, or `text` for people. */
export const LOG_FORMATS = ['json', 'text'] as const
export type LogFormat = (typeof LOG_FORMATS)[number]

/** The levels, most severe first; `silent` logs nothing. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

/** The level unless told otherwise. */
export const DEFAULT_LOG_LEVEL: LogLevel = 'info'

export interface ServiceLoggerOptions {
  /** The command (`tail`, `relay`, ...): each line's `name`. */
  readonly name: string
  /** Default: `text` when `destination` is a terminal, else `json`. */
  readonly format?: LogFormat | undefined
  /** Default {@link DEFAULT_LOG_LEVEL}. */
  readonly level?: LogLevel | undefined
  /** Where lines go; default `process.stderr`, written synchronously (no line is lost on exit). */
  readonly destination?: NodeJS.WritableStream | undefined
}

/** True when `value` is one of {@link LOG_FORMATS}. */
export function isLogFormat(value: unknown): value is LogFormat {
  return (LOG_FORMATS as readonly unknown[]).includes(value)
}

/** True when `value` is one of {@link LOG_LEVELS}. */
export function isLogLevel(value: unknown): value is LogLevel {
  return (LOG_LEVELS as readonly unknown[]).includes(value)
}

/**
 * A pino logger for a service. Lines are written synchronously: a line logged before
 * `process.exit` is on stderr. Text lines look like `12:00:00.000 INFO (tail): listening on
 * ... {"reason": ...}`, coloured on a terminal. Throws `InvalidArgumentError` for an
 * unknown format or level.
 */
export function createServiceLogger(options: ServiceLoggerOptions): Logger {
  const level = options.level ?? DEFAULT_LOG_LEVEL
  if (!isLogLevel(level)) throw InvalidArgumentError.format('level', LOG_LEVELS.join(', '), level)
  const destination = options.destination ?? process.stderr
  const tty = (destination as { isTTY?: boolean }).isTTY === true
  const format = options.format ?? (tty ? 'text' : 'json')
  if (!isLogFormat(format)) throw InvalidArgumentError.format('format', LOG_FORMATS.join(' or '), format)
  const toStderr = destination === process.stderr
  const stream: DestinationStream =
    format === 'text'
      ? pretty({
          sync: true,
          destination: toStderr ? 2 : destination,
          colorize: tty,
          ignore: 'pid,hostname',
          translateTime: 'SYS:HH:MM:ss.l',
          singleLine: true,
        })
      : toStderr
        ? pino.destination({ fd: 2, sync: true })
        : (destination as DestinationStream)
  return pino({ name: options.name, level, timestamp: pino.stdTimeFunctions.isoTime }, stream)
}

/** What a service's JSON log line carries that its readers (the demo, the bench, tests) use. */
export interface LogLine {
  readonly level?: number
  readonly name?: string
  readonly msg?: string
  readonly stats?: Record<string, number>
  readonly [field: string]: unknown
}

/** Parses one JSON log line written by `createServiceLogger`; undefined for anything else. */
export function parseLogLine(line: string): LogLine | undefined {
  if (!line.startsWith('{')) return undefined
  try {
    const value: unknown = JSON.parse(line)
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as LogLine) : undefined
  } catch {
    return undefined
  }
}
