/**
 * Wire compatibility with Python fedmsg, in both directions, against
 * `fedmsg_x509.py`: a re-implementation of fedmsg 1.1.7's signing and validation
 * (fedmsg.encoding, fedmsg.crypto.x509_ng, fedmsg.crypto.utils.validate_policy) on
 * Python's `json` and the `cryptography` package, because fedmsg itself cannot be
 * installed here. The first block checks that stand-in against the bytes real fedmsg
 * produced (spec/vectors), so the other blocks test gilmsg against fedmsg's behaviour.
 *
 * Needs a python3 that can `import cryptography`: $GILMSG_PYTHON, /usr/bin/python3 or
 * python3 (Debian: `apt-get install python3-cryptography`); skipped otherwise.
 */
import { spawn, spawnSync } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestPki, type TestPki } from '../support/pki.js'
import { revokeCert } from '../../src/crypto/certs.js'
import { createSigner, loadSigner } from '../../src/crypto/signer.js'
import { CryptoMode } from '../../src/crypto/types.js'
import type { Signer, Verifier } from '../../src/crypto/types.js'
import { createVerifier } from '../../src/crypto/verifier.js'
import { buildEnvelope, openEnvelope, sealEnvelope } from '../../src/envelope/envelope.js'
import { canonicalize } from '../../src/json/canonical.js'
import { parseJson } from '../../src/json/parse.js'
import { jsonFloat, jsonInt, Lossless } from '../../src/json/value.js'
import type { JsonObject, JsonValue } from '../../src/json/value.js'

const SCRIPT = fileURLToPath(new URL('./fedmsg_x509.py', import.meta.url))
const VECTORS = fileURLToPath(new URL('../../spec/vectors/vectors.json', import.meta.url))
const CANON_CASES = fileURLToPath(new URL('../../spec/vectors/canon_cases.json', import.meta.url))
const DAY = 24 * 60 * 60 * 1000
const TOPIC = 'org.fedoraproject.dev.gilmsg.interop'
const MAX_DEPTH = 64
const SEED = Number(process.env['GILMSG_INTEROP_SEED'] ?? Date.now() % 2 ** 31)

function findPython(): string | undefined {
  const env = process.env['GILMSG_PYTHON']
  const candidates = [...(env !== undefined && env !== '' ? [env] : []), '/usr/bin/python3', 'python3']
  for (const python of candidates) {
    const probe = spawnSync(python, ['-c', 'import cryptography'], { stdio: 'ignore', timeout: 15_000 })
    if (probe.status === 0) return python
  }
  return undefined
}

const PYTHON = findPython()
const SKIP_MESSAGE =
  'SKIPPED: no python3 with the `cryptography` package (tried $GILMSG_PYTHON, /usr/bin/python3, python3); ' +
  'install it with `apt-get install python3-cryptography` (Debian) or `pip install cryptography`, or point GILMSG_PYTHON at one'
if (PYTHON === undefined) console.warn(`python-fedmsg interop tests ${SKIP_MESSAGE}`)

/** JSON text with everything outside ASCII escaped, so that stdin carries it byte-exact (lone surrogates included). */
function ascii(text: string): string {
  return text.replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

/** Runs one command of fedmsg_x509.py over a batch: one JSON line in, one JSON object out per line. */
async function py<T = Record<string, unknown>>(args: readonly string[], lines: readonly string[]): Promise<T[]> {
  for (const line of lines) if (line.includes('\n')) throw new Error(`input line with a newline: ${line.slice(0, 80)}`)
  const child = spawn(PYTHON as string, [SCRIPT, ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
  const out: Buffer[] = []
  const err: Buffer[] = []
  child.stdout.on('data', (b: Buffer) => out.push(b))
  child.stderr.on('data', (b: Buffer) => err.push(b))
  const done = new Promise<number | null>((resolve, reject) => {
    child.on('error', reject)
    child.on('close', resolve)
  })
  child.stdin.end(lines.map((l) => `${ascii(l)}\n`).join(''))
  const code = await done
  const stderr = Buffer.concat(err).toString('utf8')
  if (code !== 0) throw new Error(`fedmsg_x509.py ${args[0] ?? ''} exited with ${String(code)}: ${stderr}`)
  const results = Buffer.concat(out)
    .toString('utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as T)
  if (results.length !== lines.length) throw new Error(`fedmsg_x509.py ${args[0] ?? ''}: ${lines.length} lines in, ${results.length} out; ${stderr}`)
  return results
}

interface PyVerdict {
  readonly ok: boolean
  readonly reason: string | null
  readonly detail: string
  readonly cn: string | null
  readonly topic_match: boolean | null
  readonly raised: boolean
}

interface PySigned {
  readonly ok: boolean
  readonly body: string
  readonly canonical: string
  readonly error?: string
}

interface Frames {
  readonly topic: string
  readonly body: string
}

function pyValidate(frames: readonly Frames[], options: { ca?: string; crl?: string; extra?: readonly string[] } = {}): Promise<PyVerdict[]> {
  const args = ['validate']
  if (options.ca !== undefined) args.push('--ca', options.ca)
  if (options.crl !== undefined) args.push('--crl', options.crl)
  args.push(...(options.extra ?? []))
  return py<PyVerdict>(args, frames.map((f) => JSON.stringify(f)))
}

function frame(body: string, topic = TOPIC): Frames {
  return { topic, body }
}

// ---------------------------------------------------------------------------- payloads

/** Payloads written as JSON text (parsed losslessly, so `1.0` stays a float). */
const TRICKY_TEXTS: readonly string[] = [
  '{"f":1.0,"g":1e-05,"h":1e16,"i":1e+16,"j":-0.0,"k":0.0001,"l":1.2345678901234568e+17,"m":123456789.123,"n":0.1,"o":5e-324,"p":1.7976931348623157e+308,"q":2.5}',
  '{"ints":[12345678901234567890123,-18446744073709551616,9007199254740993,-0,0,1]}',
  '{"nan":NaN,"inf":Infinity,"ninf":-Infinity}',
  '{"text":"h\\u00e9llo \\u2713 \\ud83d\\ude00","ls":"\\u2028\\u2029","astral":"\\ud800\\udc00\\udbff\\udfff","lone":"\\ud800x\\udfff"}',
  '{"\\ue000":1,"\\ud83d\\ude00":2,"b":3,"B":4,"":5,"a\\u0000":6,"\\u00e9":7,"\\uffff":8,"\\ud800":9}',
  '{"e":[],"o":{},"s":"","deep":[[[]],{"a":{}}],"n":null,"t":true,"f":false}',
  '{"s":"\\"quoted\\" back\\\\slash /slash \\b\\f\\n\\r\\t \\u0000\\u001f\\u007f </script>"}',
  '"just a string"',
  '3.0',
  '[1,1.0,"1",null]',
  'null',
  `${'['.repeat(30)}1.5${']'.repeat(30)}`,
]

/** Python-side payloads: number spellings and JSON gilmsg never produces, read by json.loads. */
const PYTHON_ONLY_TEXTS: readonly string[] = [
  '{"a":1E5,"b":1.50,"c":-0,"d":0.1e-6,"e":1e400,"f":-1e400,"g":1e-400,"h":2.50E+3,"i":0.000}',
  '{"dup":1,"dup":2.0,"x":{"k":"first","k":"last"}}',
  '{"nan":NaN,"inf":Infinity,"ninf":-Infinity,"big":123456789012345678901234567890,"neg":-98765432109876543210}',
  '{ "spaced" :\t[ 1 , 2.0 ,\t3e0 ] , "raw":"caf\u00e9 \u2713 \ud83d\ude00 \u2028" }',
  '{"esc":"\\/\\u00E9\\uD83D\\uDE00","lone":"\\udc00\\ud800"}',
  '[1.0000000000000002,0.30000000000000004,100000000000000000000.0,1e22,123e-20]',
]

// Lossless JSON model values: floats stay floats, ints of any size, duplicate keys last-wins.
const keyArb = fc.oneof(fc.string({ unit: 'binary', maxLength: 6 }), fc.constantFrom('\ud800', '\udfff', '\ue000', '😀', 'B', 'b', ''))
const stringArb = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 12 }),
  fc.constantFrom('\u2028', '\ud800', '\udfff', '"\\/\b\f\n\r\t\u0000\u001f\u007f', '😀', '\ue000'),
)
const numberArb: fc.Arbitrary<JsonValue> = fc.oneof(
  fc.double().map(jsonFloat),
  fc.integer({ min: -1e6, max: 1e6 }).map((n) => jsonFloat(n)),
  fc.bigInt({ min: -(10n ** 40n), max: 10n ** 40n }).map(jsonInt),
)
const modelArb: fc.Arbitrary<JsonValue> = fc.letrec<{ value: JsonValue }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    stringArb,
    numberArb,
    fc.array(tie('value'), { maxLength: 5 }),
    fc.array(fc.tuple(keyArb, tie('value')), { maxLength: 5 }).map((entries): JsonValue => new Map(entries)),
  ),
})).value
const payloadObjectArb: fc.Arbitrary<JsonValue> = fc
  .array(fc.tuple(keyArb, fc.oneof(modelArb, fc.double().map(jsonFloat))), { maxLength: 6 })
  .map((entries) => new Map(entries))

// JSON texts with unusual number spellings, duplicate keys and whitespace (no newlines: the protocol is line-based).
const numberToken = fc.oneof(
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((d) => String(d)),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((d) => d.toExponential()),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((d) => d.toPrecision(17)),
  fc.bigInt({ min: -(10n ** 40n), max: 10n ** 40n }).map(String),
  fc.integer().map((n) => `${n}.0`),
  fc.tuple(fc.integer({ min: -99999, max: 99999 }), fc.integer({ min: -400, max: 400 })).map(([m, e]) => `${m}E${e}`),
  fc.constantFrom('-0', '-0.0', '1.50', '0.000', '1e400', '-1e400', '1e-400', 'NaN', 'Infinity', '-Infinity', '5e-324', '2.2250738585072014e-308', '9007199254740993', '0.1e1'),
)
const textArb: fc.Arbitrary<string> = fc.letrec<{ v: string }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    numberToken,
    stringArb.map((s) => JSON.stringify(s)),
    fc.constantFrom('null', 'true', 'false'),
    fc.array(tie('v'), { maxLength: 4 }).map((xs) => `[${xs.join(', ')}]`),
    fc
      .array(fc.tuple(fc.constantFrom('a', 'b', 'A', 'é', '😀', '\ue000', '', '\ud800'), tie('v')), { maxLength: 4 })
      .map((es) => `{${es.map(([k, v]) => `${JSON.stringify(k)} :\t${v}`).join(' ,')}}`),
  ),
})).v

function sample<T>(arb: fc.Arbitrary<T>, numRuns: number, offset: number): T[] {
  return fc.sample(arb, { numRuns, seed: SEED + offset })
}

// ---------------------------------------------------------------------------- fixtures

let dir: string
let main: TestPki
let other: TestPki
let staleCrl: TestPki
let crlPath: string
let crlPem: string
let alice: Signer
let verifier: Verifier

beforeAll(async () => {
  if (PYTHON === undefined) return
  dir = await mkdtemp(join(tmpdir(), 'gilmsg-interop-'))
  const now = Date.now()
  ;[main, other, staleCrl] = await Promise.all([
    createTestPki(join(dir, 'main'), [
      { name: 'alice' },
      { name: 'mallory' },
      { name: 'old', notBefore: new Date(now - 10 * DAY), notAfter: new Date(now - DAY) },
      { name: 'host', cn: 'shell-app01.phx2.example.org' },
    ]),
    // Same CA CN and same leaf CN, different keys: only the key identifiers and signatures differ.
    createTestPki(join(dir, 'other'), [{ name: 'alice' }]),
    createTestPki(join(dir, 'stale'), [{ name: 'alice' }], { thisUpdate: new Date(now - 10 * DAY), nextUpdate: new Date(now - DAY) }),
  ])
  await revokeCert(main.dir, 'mallory')
  crlPath = main.crlPath
  crlPem = await readFile(crlPath, 'utf8')
  alice = loadSigner({ mode: CryptoMode.X509, ssldir: main.dir, certname: 'alice' })
  verifier = await createVerifier({ caPem: main.caPem, crlPem })
})

afterAll(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

let counter = 0
/** Signs like a gilmsg publisher: `msg` is a lossless model value, or with `plain` a JS value as users publish it. */
function seal(msg: JsonValue, signer: Signer = alice, topic = TOPIC, plain = false): string {
  counter += 1
  const env = buildEnvelope({ topic, msg: plain ? msg : new Lossless(msg), i: counter, nowMs: Date.now(), username: 'gilmsg' })
  return sealEnvelope(env, signer).body
}

function signerOf(pki: TestPki, name: string, mode: CryptoMode = CryptoMode.X509): Signer {
  const leaf = pki.leaf(name)
  return createSigner({ mode, keyPem: leaf.keyPem, certPem: leaf.certPem })
}

/** The body re-serialised after `edit` changed the parsed envelope (signature and certificate kept). */
function tamper(body: string, edit: (env: JsonObject) => void): string {
  const env = parseJson(body) as JsonObject
  edit(env)
  return canonicalize(env)
}

function envelopeText(payloadText: string, i: number): string {
  return `{"topic":${JSON.stringify(TOPIC)},"msg":${payloadText},"msg_id":"2026-00000000-0000-4000-8000-${String(i).padStart(12, '0')}","timestamp":1700000000,"i":${i},"username":"fedmsg"}`
}

function gilmsgOpen(body: string, topic = TOPIC) {
  return openEnvelope(topic, body, { maxDepth: MAX_DEPTH, verifier })
}

// ---------------------------------------------------------------------------- tests

describe.skipIf(PYTHON === undefined)(`Python fedmsg interop (${PYTHON ?? SKIP_MESSAGE})`, () => {
  describe('the Python stand-in reproduces real fedmsg 1.1.7 (spec/vectors)', () => {
    interface Vector {
      readonly label: string
      readonly key_pem: string
      readonly cert_pem_file: string
      readonly signature_field: string
      readonly certificate_field: string
      readonly canonical_signed_string: string
      readonly wire_frame0_topic: string
      readonly wire_frame1_json: string
    }

    it('signs every vector byte for byte and accepts the fedmsg wire frames', async () => {
      const text = await readFile(VECTORS, 'utf8')
      const vectors = (JSON.parse(text) as { cases: Vector[] }).cases
      // The unsigned envelopes hold floats such as 1.0: read them losslessly.
      const unsigned = ((parseJson(text) as JsonObject).get('cases') as JsonObject[]).map((c) => canonicalize(c.get('unsigned_envelope') as JsonValue))
      expect(vectors.length).toBeGreaterThan(0)
      for (const [n, v] of vectors.entries()) {
        const key = join(dir, `vector${n}.key`)
        const cert = join(dir, `vector${n}.crt`)
        await Promise.all([writeFile(key, v.key_pem, { mode: 0o600 }), writeFile(cert, v.cert_pem_file)])
        const [signed] = await py<PySigned>(['sign', '--cert', cert, '--key', key], [unsigned[n] as string])
        expect(signed?.ok, v.label).toBe(true)
        const env = JSON.parse(signed?.body as string) as Record<string, unknown>
        expect(env['signature'], v.label).toBe(v.signature_field)
        expect(env['certificate'], v.label).toBe(v.certificate_field)
        expect(signed?.canonical, v.label).toBe(v.canonical_signed_string)
        expect(signed?.body, v.label).toBe(v.wire_frame1_json)
      }
      // The vectors' CA is not published: signature and policy only.
      const tampered = vectors.map((v) => tamper(v.wire_frame1_json, (env) => env.set('i', jsonInt(2n))))
      const verdicts = await pyValidate(
        [...vectors.map((v) => frame(v.wire_frame1_json, v.wire_frame0_topic)), ...tampered.map((b, n) => frame(b, vectors[n]?.wire_frame0_topic))],
        { extra: ['--no-chain'] },
      )
      expect(verdicts.slice(0, vectors.length).map((r) => r.ok)).toEqual(vectors.map(() => true))
      expect(verdicts.slice(vectors.length).map((r) => r.reason)).toEqual(vectors.map(() => 'bad_signature'))
    })

    it("canonicalises all of canon_cases.json as fedmsg's encoder did", async () => {
      const cases = JSON.parse(await readFile(CANON_CASES, 'utf8')) as [string, string][]
      const out = await py<{ ok: boolean; canonical: string }>(['canon'], cases.map(([input]) => input))
      const mismatches = cases.filter(([, want], n) => out[n]?.canonical !== want)
      expect(mismatches).toEqual([])
    })
  })

  describe('gilmsg -> Python fedmsg', () => {
    it('accepts every gilmsg x509 message with tricky and random payloads, and reports the CN', async () => {
      const bodies = [
        ...TRICKY_TEXTS.map((t) => seal(parseJson(t))),
        ...sample(payloadObjectArb, 150, 1).map((p) => seal(p)),
        // Plain JS values, converted by buildEnvelope as a user's payload is.
        ...sample(fc.jsonValue({ stringUnit: 'binary' }), 100, 2).map((v) => seal(v as JsonValue, alice, TOPIC, true)),
      ]
      const hostBody = seal(parseJson('{"from":"host"}'), signerOf(main, 'host'))
      const verdicts = await pyValidate([...bodies, hostBody].map((b) => frame(b)), { ca: main.caCertPath, crl: crlPath })
      const failures = verdicts.flatMap((r, n) => (r.ok ? [] : [{ seed: SEED, verdict: r, body: [...bodies, hostBody][n] }]))
      expect(failures).toEqual([])
      expect(new Set(verdicts.slice(0, -1).map((r) => r.cn))).toEqual(new Set(['alice']))
      expect(verdicts.at(-1)?.cn).toBe('shell-app01.phx2.example.org')
      expect(verdicts.every((r) => r.topic_match === true)).toBe(true)
    })

    it('rejects what fedmsg rejects, for the same reason as gilmsg', async () => {
      const good = seal(parseJson('{"k":1.0,"s":"caf\\u00e9"}'))
      const cases: [string, string, string][] = [
        ['msg changed', tamper(good, (env) => env.set('msg', parseJson('{"k":1,"s":"caf\\u00e9"}'))), 'bad_signature'],
        ['a float became an int', tamper(good, (env) => (env.get('msg') as JsonObject).set('k', jsonInt(1n))), 'bad_signature'],
        ['i changed', tamper(good, (env) => env.set('i', jsonInt(999n))), 'bad_signature'],
        ['field added after signing', tamper(good, (env) => env.set('gilmsg_version', '1')), 'bad_signature'],
        ['signature of another message', tamper(good, (env) => env.set('signature', (parseJson(seal('other')) as JsonObject).get('signature') as string)), 'bad_signature'],
        ['revoked certificate', seal('from mallory', signerOf(main, 'mallory')), 'revoked'],
        ['same CN from another CA', seal('from the other alice', signerOf(other, 'alice')), 'unknown_ca'],
        ['expired certificate', seal('from old', signerOf(main, 'old')), 'expired'],
      ]
      const verdicts = await pyValidate(cases.map(([, body]) => frame(body)), { ca: main.caCertPath, crl: crlPath })
      const gilmsg = cases.map(([, body]) => gilmsgOpen(body))
      for (const [n, [what, , reason]] of cases.entries()) {
        expect({ what, ok: verdicts[n]?.ok, reason: verdicts[n]?.reason, raised: verdicts[n]?.raised }).toEqual({ what, ok: false, reason, raised: false })
        const g = gilmsg[n]
        expect({ what, gilmsg: g?.ok === false ? g.reason : 'accepted' }).toEqual({ what, gilmsg: reason })
      }
    })

    it('accepts a revoked certificate only when no CRL is configured', async () => {
      const body = seal('from mallory', signerOf(main, 'mallory'))
      const [withoutCrl] = await pyValidate([frame(body)], { ca: main.caCertPath })
      expect(withoutCrl?.ok).toBe(true)
    })

    it('rejects everything once the CRL has expired', async () => {
      const body = seal('fresh', signerOf(staleCrl, 'alice'))
      const [verdict] = await pyValidate([frame(body)], { ca: staleCrl.caCertPath, crl: staleCrl.crlPath })
      expect(verdict).toMatchObject({ ok: false, reason: 'expired' })
      expect(verdict?.detail).toMatch(/CRL has expired/)
    })

    it('rejects x509_sha256 messages: that mode is gilmsg-only, unknown to fedmsg', async () => {
      const bodies = [seal('sha256', signerOf(main, 'alice', CryptoMode.X509Sha256))]
      const verdicts = await pyValidate(bodies.map((b) => frame(b)), { ca: main.caCertPath, crl: crlPath })
      expect(verdicts[0]).toMatchObject({ ok: false, reason: 'unsupported_crypto', raised: false })
      expect(gilmsgOpen(bodies[0] as string).ok).toBe(true)
    })

    it('applies routing_policy, routing_nitpicky and "signed by X" as fedmsg does', async () => {
      const body = frame(seal('policy'))
      const run = (extra: readonly string[]) => pyValidate([body], { ca: main.caCertPath, crl: crlPath, extra }).then((r) => r[0])
      const [allowed, denied, otherTopic, nitpicky, signedByAlice, signedByBob] = await Promise.all([
        run(['--policy', JSON.stringify({ [TOPIC]: ['bob', 'alice'] })]),
        run(['--policy', JSON.stringify({ [TOPIC]: ['bob'] })]),
        run(['--policy', JSON.stringify({ 'org.fedoraproject.dev.other': ['bob'] })]),
        run(['--nitpicky', '--policy', JSON.stringify({ 'org.fedoraproject.dev.other': ['alice'] })]),
        run(['--signed-by', 'alice']),
        run(['--signed-by', 'bob']),
      ])
      expect(allowed).toMatchObject({ ok: true, cn: 'alice' })
      expect(denied).toMatchObject({ ok: false, reason: 'policy_denied' })
      expect(otherTopic).toMatchObject({ ok: true })
      expect(nitpicky).toMatchObject({ ok: false, reason: 'policy_denied' })
      expect(signedByAlice).toMatchObject({ ok: true })
      expect(signedByBob).toMatchObject({ ok: false, reason: 'policy_denied' })
      expect(gilmsgOpen(body.body, TOPIC)).toMatchObject({ ok: true })
    })

    it('fedmsg does not compare frame 0 with the signed topic (gilmsg does)', async () => {
      const body = seal('misrouted')
      const [verdict] = await pyValidate([frame(body, 'org.fedoraproject.dev.elsewhere')], { ca: main.caCertPath, crl: crlPath })
      expect(verdict).toMatchObject({ ok: true, topic_match: false })
      expect(gilmsgOpen(body, 'org.fedoraproject.dev.elsewhere')).toMatchObject({ ok: false, reason: 'topic_mismatch' })
    })
  })

  describe('Python fedmsg -> gilmsg', () => {
    const payloads = (): string[] => [...TRICKY_TEXTS, ...PYTHON_ONLY_TEXTS, ...sample(textArb, 120, 3)]

    it.each(['fedmsg', 'spaced', 'unicode'] as const)('gilmsg accepts every Python-signed envelope (wire %s) and names the signer', async (wire) => {
      // ensure_ascii=False cannot encode lone surrogates as UTF-8: such payloads never reach a wire in that form.
      const texts = payloads().filter((t) => wire !== 'unicode' || !/\\u[dD][89abAB]|\\u[dD][c-fC-F]|[\ud800-\udfff]/.test(t))
      const envelopes = texts.map((t, n) => envelopeText(t, n + 1))
      const signed = await py<PySigned>(['sign', '--cert', join(main.dir, 'alice.crt'), '--key', join(main.dir, 'alice.key'), '--wire', wire], envelopes)
      const problems: unknown[] = []
      for (const [n, s] of signed.entries()) {
        if (!s.ok) {
          problems.push({ seed: SEED, payload: texts[n], error: s.error })
          continue
        }
        const opened = gilmsgOpen(s.body)
        if (!opened.ok) problems.push({ seed: SEED, payload: texts[n], body: s.body, reason: opened.reason, detail: opened.detail })
        else if (opened.message.signer !== 'alice' || opened.message.canonical.toString('latin1') !== s.canonical) {
          problems.push({ seed: SEED, payload: texts[n], signer: opened.message.signer, gilmsg: opened.message.canonical.toString('latin1'), python: s.canonical })
        }
      }
      expect(problems).toEqual([])
      expect(signed.length).toBeGreaterThan(wire === 'unicode' ? 50 : 100)
    })

    it('gilmsg rejects tampered Python-signed envelopes with bad_signature, and bad certificates by reason', async () => {
      const envelopes = PYTHON_ONLY_TEXTS.map((t, n) => envelopeText(t, n + 1))
      const signed = await py<PySigned>(['sign', '--cert', join(main.dir, 'alice.crt'), '--key', join(main.dir, 'alice.key')], envelopes)
      const tampered = signed.flatMap((s) => [
        tamper(s.body, (env) => env.set('i', jsonInt(12345n))),
        tamper(s.body, (env) => env.set('msg', 'replaced')),
        tamper(s.body, (env) => env.set('timestamp', jsonFloat(1700000000))),
      ])
      for (const body of tampered) expect(gilmsgOpen(body)).toMatchObject({ ok: false, reason: 'bad_signature' })

      const signAs = (pki: TestPki, name: string) =>
        py<PySigned>(['sign', '--cert', join(pki.dir, `${name}.crt`), '--key', join(pki.dir, `${name}.key`)], [envelopeText('{"from":"python"}', 1)]).then((r) => r[0]?.body as string)
      const [revoked, foreign, expired, host] = await Promise.all([signAs(main, 'mallory'), signAs(other, 'alice'), signAs(main, 'old'), signAs(main, 'host')])
      expect(gilmsgOpen(revoked)).toMatchObject({ ok: false, reason: 'revoked' })
      expect(gilmsgOpen(foreign)).toMatchObject({ ok: false, reason: 'unknown_ca' })
      expect(gilmsgOpen(expired)).toMatchObject({ ok: false, reason: 'expired' })
      const opened = gilmsgOpen(host)
      expect(opened.ok && opened.message.signer).toBe('shell-app01.phx2.example.org')
    })
  })

  describe('relay: Python re-serialises gilmsg bodies', () => {
    it('gilmsg and fedmsg still validate after json.loads + json.dumps with other spacing and key order', async () => {
      const bodies = [...TRICKY_TEXTS.map((t) => seal(parseJson(t))), ...sample(payloadObjectArb, 60, 4).map((p) => seal(p))]
      const relayed = (await py<{ ok: boolean; text: string }>(['reserialize'], bodies)).map((r) => r.text)
      expect(relayed.every((t, n) => t !== bodies[n])).toBe(true)
      expect(relayed[0]?.startsWith('{"username": ')).toBe(true)
      const failures = relayed.flatMap((body) => {
        const opened = gilmsgOpen(body)
        return opened.ok && opened.message.signer === 'alice' ? [] : [{ seed: SEED, body, opened }]
      })
      expect(failures).toEqual([])
      const verdicts = await pyValidate(relayed.map((b) => frame(b)), { ca: main.caCertPath, crl: crlPath })
      expect(verdicts.filter((r) => !r.ok)).toEqual([])
    })
  })

  describe('canonical form: gilmsg and Python agree', () => {
    it('canonicalize(parseJson(text)) equals fedmsg.encoding.dumps(json.loads(text)) for generated JSON', async () => {
      const texts = [
        ...TRICKY_TEXTS,
        ...PYTHON_ONLY_TEXTS,
        ...sample(fc.jsonValue({ stringUnit: 'binary' }), 150, 5).map((v) => JSON.stringify(v)),
        ...sample(textArb, 200, 6),
        ...sample(payloadObjectArb, 100, 7).map((v) => canonicalize(v)),
      ]
      const python = await py<{ ok: boolean; canonical?: string; error?: string }>(['canon'], texts)
      const mismatches = texts.flatMap((text, n) => {
        const gilmsg = canonicalize(parseJson(text, { maxDepth: MAX_DEPTH }))
        return python[n]?.canonical === gilmsg ? [] : [{ seed: SEED, text, gilmsg, python: python[n] }]
      })
      expect(mismatches).toEqual([])
      expect(texts.length).toBeGreaterThan(450)
    })
  })
})
