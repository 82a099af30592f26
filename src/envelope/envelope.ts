import { createHash } from 'node:crypto'
import { userInfo } from 'node:os'
import { v7 as uuidv7 } from 'uuid'
import { canonicalize, canonicalizeWithout, canonicalMember, canonicalMembers, joinMembers, type CanonicalMember } from '../json/canonical.js'
import { parseJson } from '../json/parse.js'
import { DEFAULT_MAX_JSON_DEPTH } from '../util/defaults.js'
import { fromPlain, toPlain } from '../json/plain.js'
import { isJsonNumber, jsonInt, Lossless, type JsonObject, type JsonValue } from '../json/value.js'
import { InvalidReason, type Signer, type Verifier, type VerifyOptions } from '../crypto/types.js'

/** Fields a signature covers never include these two. */
const SIGNATURE_FIELDS: ReadonlySet<string> = new Set(['signature', 'certificate'])

/**
 * A new fedmsg `msg_id`: `<year>-<uuid>` (UTC year). The UUID is version 7
 * (RFC 9562: time-ordered, increasing within this process) where fedmsg
 * uses version 4: ids are opaque to every consumer, and time-ordered keys
 * let the outbox and inboxes, indexed by msg_id, append instead of writing
 * to a random page of each index per message.
 */
export function newMsgId(nowMs: number): string {
  return `${new Date(nowMs).getUTCFullYear()}-${uuidv7()}`
}

let cachedUsername: string | undefined
/** The OS user, as fedmsg's `username` field (cached: it cannot change in a process). */
export function osUsername(): string {
  if (cachedUsername === undefined) {
    try {
      cachedUsername = userInfo().username
    } catch {
      cachedUsername = process.env['USER'] ?? 'unknown'
    }
  }
  return cachedUsername
}

export interface EnvelopeInput {
  readonly topic: string
  /** The user's payload: a plain JS value (converted with `fromPlain`) or a {@link Lossless} value. */
  readonly msg: unknown
  readonly i: number
  readonly nowMs: number
  readonly username: string
  readonly msgId?: string
  /** Extra top-level fields (e.g. `gilmsg_version`), added before signing so that they are signed. */
  readonly extra?: Readonly<Record<string, unknown>>
  /** The nesting receivers accept (`max_json_depth`); `msg` sits one level down. Default {@link DEFAULT_MAX_JSON_DEPTH} (64). */
  readonly maxDepth?: number
}

/** Builds the unsigned envelope, as fedmsg's `publish` does. */
export function buildEnvelope(input: EnvelopeInput): JsonObject {
  const env: JsonObject = new Map<string, JsonValue>()
  env.set('topic', input.topic)
  const maxDepth = (input.maxDepth ?? DEFAULT_MAX_JSON_DEPTH) - 1
  env.set('msg', input.msg instanceof Lossless ? input.msg.value : fromPlain(input.msg, 'msg', { maxDepth }))
  env.set('msg_id', input.msgId ?? newMsgId(input.nowMs))
  env.set('timestamp', jsonInt(BigInt(Math.floor(input.nowMs / 1000))))
  env.set('i', jsonInt(BigInt(input.i)))
  env.set('username', input.username)
  for (const [k, v] of Object.entries(input.extra ?? {})) env.set(k, fromPlain(v, k))
  return env
}

/** A message ready for the wire, with the facts the reliability layer keeps. */
export interface SealedMessage {
  readonly topic: string
  readonly msgId: string
  /** Frame 1: the envelope as sent. */
  readonly body: string
  /** The canonical bytes that were signed (the envelope without signature and certificate). */
  readonly canonical: Buffer
  /** SHA-256 hex of `canonical`: what an ACK binds to. */
  readonly digest: string
}

/** SHA-256 hex of canonical bytes: the content digest an ACK carries. */
export function contentDigest(canonical: Buffer): string {
  return createHash('sha256').update(canonical).digest('hex')
}

function sealWith(env: JsonObject, canonicalText: string): Omit<SealedMessage, 'body'> {
  const canonical = Buffer.from(canonicalText, 'latin1')
  return { topic: env.get('topic') as string, msgId: env.get('msg_id') as string, canonical, digest: contentDigest(canonical) }
}

/**
 * Signs an envelope (fedmsg's order: `crypto` is set first, so it is signed)
 * and serialises it for the wire. With no signer the message goes out unsigned.
 */
export function sealEnvelope(env: JsonObject, signer: Signer | undefined): SealedMessage {
  if (signer === undefined) return sealUnsigned(env)
  const { sealed, members } = toSign(env, signer)
  return withSignature(sealed, members, signer, signer.sign(sealed.canonical))
}

/**
 * As {@link sealEnvelope}, with the signature computed on libuv's thread pool
 * (an RSA-2048 signature takes about a millisecond of CPU that the event loop
 * then does not spend).
 */
export async function sealEnvelopeAsync(env: JsonObject, signer: Signer | undefined): Promise<SealedMessage> {
  if (signer === undefined) return sealUnsigned(env)
  const { sealed, members } = toSign(env, signer)
  return withSignature(sealed, members, signer, await signer.signAsync(sealed.canonical))
}

function sealUnsigned(env: JsonObject): SealedMessage {
  const text = canonicalize(env)
  return { ...sealWith(env, text), body: text }
}

/** The signed bytes, and the members of the wire form (which adds the signature and certificate without serialising the rest again). */
function toSign(env: JsonObject, signer: Signer): { readonly sealed: Omit<SealedMessage, 'body'>; readonly members: CanonicalMember[] } {
  env.set('crypto', signer.mode)
  const members = canonicalMembers(env, SIGNATURE_FIELDS)
  return { sealed: sealWith(env, joinMembers(members)), members }
}

function withSignature(sealed: Omit<SealedMessage, 'body'>, members: readonly CanonicalMember[], signer: Signer, signature: string): SealedMessage {
  const body = joinMembers([...members, canonicalMember('signature', signature), certificateMember(signer)])
  return { ...sealed, body }
}

/** Each signer's `"certificate":"..."` member, serialised once (a kilobyte of PEM whose newlines are escaped on every message otherwise). */
const certificateMembers = new WeakMap<Signer, CanonicalMember & { readonly field: string }>()

function certificateMember(signer: Signer): CanonicalMember {
  const field = signer.certificateField
  const cached = certificateMembers.get(signer)
  if (cached !== undefined && cached.field === field) return cached
  const member = { ...canonicalMember('certificate', field), field }
  certificateMembers.set(signer, member)
  return member
}

/** Why an incoming message was dropped by the envelope layer (beyond the verifier's reasons). */
export const EnvelopeDropReason = {
  NotJson: 'not_json',
  NotObject: 'not_object',
  TooDeep: 'too_deep',
  MissingField: 'missing_field',
} as const
export type EnvelopeDropReason = (typeof EnvelopeDropReason)[keyof typeof EnvelopeDropReason]

/** A received envelope that passed parsing (and validation, when a verifier was given). */
export interface OpenedMessage {
  readonly topic: string
  readonly msgId: string
  /** The lossless envelope, as received. */
  readonly envelope: JsonObject
  /** Canonical bytes of the envelope without signature and certificate. */
  readonly canonical: Buffer
  readonly digest: string
  /** The signer's certificate CN; undefined when validation is off. */
  readonly signer: string | undefined
  readonly fingerprint: string | undefined
}

export type OpenResult =
  | { readonly ok: true; readonly message: OpenedMessage }
  | { readonly ok: false; readonly reason: InvalidReason | EnvelopeDropReason; readonly detail: string }

export interface OpenOptions extends VerifyOptions {
  readonly maxDepth: number
  /** Validate signatures; undefined = accept unsigned (validate_signatures false). */
  readonly verifier: Verifier | undefined
}

/**
 * Parses and validates frame 1 of a message received under `frameTopic`.
 * Every invalid message is `{ ok: false, reason }`; only a bug (here or in the
 * verifier) throws.
 */
export function openEnvelope(frameTopic: string, body: string, options: OpenOptions): OpenResult {
  let value: JsonValue
  try {
    value = parseJson(body, { maxDepth: options.maxDepth })
  } catch (e) {
    const detail = (e as Error).message
    return { ok: false, reason: /too deeply nested/.test(detail) ? EnvelopeDropReason.TooDeep : EnvelopeDropReason.NotJson, detail }
  }
  if (!(value instanceof Map)) return { ok: false, reason: EnvelopeDropReason.NotObject, detail: 'frame 1 is not a JSON object' }
  const topic = value.get('topic')
  const msgId = value.get('msg_id')
  if (typeof topic !== 'string') return { ok: false, reason: EnvelopeDropReason.MissingField, detail: 'envelope has no string "topic"' }
  if (topic !== frameTopic) {
    return { ok: false, reason: InvalidReason.TopicMismatch, detail: `frame 0 "${frameTopic}" is not the signed topic "${topic}"` }
  }
  if (typeof msgId !== 'string') return { ok: false, reason: EnvelopeDropReason.MissingField, detail: 'envelope has no string "msg_id"' }
  const canonical = Buffer.from(canonicalizeWithout(value, SIGNATURE_FIELDS), 'latin1')
  let signer: string | undefined
  let fingerprint: string | undefined
  if (options.verifier !== undefined) {
    const res = options.verifier.verify(
      { crypto: value.get('crypto'), topic, canonical, signature: value.get('signature'), certificate: value.get('certificate') },
      options.signedBy === undefined ? {} : { signedBy: options.signedBy },
    )
    if (!res.ok) return res
    signer = res.cn
    fingerprint = res.fingerprint
  }
  return { ok: true, message: { topic, msgId, envelope: value, canonical, digest: contentDigest(canonical), signer, fingerprint } }
}

/** Reads a top-level envelope field as a plain JS value. */
export function envelopeField(env: JsonObject, key: string): unknown {
  const v = env.get(key)
  return v === undefined ? undefined : toPlain(v)
}

/** Reads an integer field (e.g. `i`, `timestamp`) as a number, or undefined. */
export function envelopeInt(env: JsonObject, key: string): number | undefined {
  const v = env.get(key)
  return v !== undefined && v !== null && isJsonNumber(v) && v.kind === 'int' ? Number(v.value) : undefined
}
