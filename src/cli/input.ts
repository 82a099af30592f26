import { parseJson } from '../json/parse.js'
import { Lossless } from '../json/value.js'
import { UsageError } from '../errors.js'

/** Reads all of stdin as text (empty when stdin is a terminal). */
export async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) return ''
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

/**
 * The payloads a publishing command sends: `--message M` is one message,
 * otherwise each non-empty stdin line is one. Text becomes `{"log": text}`
 * (fedmsg-logger's shape); with `jsonInput` it is parsed losslessly.
 */
export async function readPayloads(message: string | undefined, jsonInput: boolean): Promise<Lossless[] | unknown[]> {
  const texts = message !== undefined ? [message] : (await readStdin()).split('\n').filter((l) => l.trim() !== '')
  if (texts.length === 0) throw new UsageError('nothing to publish: give --message or lines on stdin')
  return texts.map((t, n) => payloadOf(t, jsonInput, message !== undefined ? 'the message' : `stdin line ${n + 1}`))
}

/**
 * One message's payload from its text: `{"log": text}`, or with `jsonInput`
 * the text parsed losslessly (a `UsageError` naming `where` if it is not JSON).
 */
export function payloadOf(text: string, jsonInput: boolean, where: string): Lossless | { log: string } {
  if (!jsonInput) return { log: text }
  try {
    return new Lossless(parseJson(text))
  } catch (e) {
    throw new UsageError(`--json-input: ${where} is not JSON: ${(e as Error).message}`)
  }
}
