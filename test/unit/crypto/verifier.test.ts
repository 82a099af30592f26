import 'reflect-metadata'
import * as x509 from '@peculiar/x509'
import { createHash, createPrivateKey, webcrypto } from 'node:crypto'
import { readFile, rm } from 'node:fs/promises'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestPki, type TestPki } from '../../support/pki.js'
import { renewCrl, revokeCert } from '../../../src/crypto/certs.js'
import { certificateField, derToPem, pemToDer, wrapBase64 } from '../../../src/crypto/pem.js'
import { createSigner } from '../../../src/crypto/signer.js'
import { CryptoMode, InvalidReason } from '../../../src/crypto/types.js'
import type { CryptoMode as Mode, SignedFields, Signer, VerifyResult } from '../../../src/crypto/types.js'
import { createVerifier } from '../../../src/crypto/verifier.js'
import type { VerifierOptions } from '../../../src/crypto/verifier.js'
import { CertificateError, CrlRollbackError, InvalidArgumentError } from '../../../src/errors.js'
import { DAY, daysFromNow, signedFields, tempDir } from './helpers.js'

const canonical = Buffer.from('{"crypto":"x509","i":1,"msg":{"a":1},"topic":"org.example.dev.test"}')

let main: TestPki
let other: TestPki
let futureCa: TestPki
let expiredCa: TestPki
let revocation: TestPki
const dirs: string[] = []

beforeAll(async () => {
  const [d1, d2, d3, d4, d5] = await Promise.all(['main', 'other', 'future-ca', 'expired-ca', 'crl'].map((p) => tempDir(`verifier-${p}`)))
  dirs.push(d1 as string, d2 as string, d3 as string, d4 as string, d5 as string)
  ;[main, other, futureCa, expiredCa, revocation] = await Promise.all([
    createTestPki(d1 as string, [
      { name: 'alice' },
      { name: 'bob', key: 'ec' },
      { name: 'carol', key: 'ed25519' },
      { name: 'old', key: 'ec', notBefore: daysFromNow(-10), notAfter: daysFromNow(-1) },
      { name: 'future', key: 'ec', notBefore: daysFromNow(1), notAfter: daysFromNow(10) },
    ]),
    createTestPki(d2 as string, [{ name: 'alice' }], { cn: 'gilmsg CA' }),
    createTestPki(d3 as string, [{ name: 'dave', key: 'ec' }], { notBefore: daysFromNow(1), notAfter: daysFromNow(100) }),
    createTestPki(d4 as string, [{ name: 'erin', key: 'ec' }], { notBefore: daysFromNow(-100), notAfter: daysFromNow(-1) }),
    createTestPki(d5 as string, [{ name: 'alice', key: 'ec' }, { name: 'mallory', key: 'ec' }, { name: 'longlived', key: 'ec', days: 1000 }]),
  ])
})

afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })))
})

function signer(pki: TestPki, name: string, mode: Mode = CryptoMode.X509Sha256): Signer {
  const leaf = pki.leaf(name)
  return createSigner({ mode, keyPem: leaf.keyPem, certPem: leaf.certPem })
}

function verifierFor(pki: TestPki, opts: Omit<VerifierOptions, 'caPem'> = {}) {
  return createVerifier({ caPem: pki.caPem, ...opts })
}

function expectFailure(result: VerifyResult, reason: InvalidReason, detail?: RegExp): void {
  expect(result.ok).toBe(false)
  if (result.ok) return
  expect(result.reason).toBe(reason)
  if (detail !== undefined) expect(result.detail).toMatch(detail)
}

describe('verify: ok', () => {
  it.each([
    ['alice', CryptoMode.X509],
    ['alice', CryptoMode.X509Sha256],
    ['bob', CryptoMode.X509Sha256],
    ['carol', CryptoMode.X509Sha256],
  ] as const)('%s with %s returns the CN and the certificate fingerprint', async (name, mode) => {
    const result = (await verifierFor(main)).verify(signedFields(signer(main, name, mode), canonical))
    const fingerprint = createHash('sha256').update(pemToDer(main.leaf(name).certPem, 'CERTIFICATE')).digest('hex')
    expect(result).toEqual({ ok: true, cn: name, fingerprint })
  })

  it('accepts a certificate field wrapped differently (validators ignore line breaks)', async () => {
    const fields = signedFields(signer(main, 'alice'), canonical)
    const rewrapped = { ...fields, certificate: (fields.certificate as string).replaceAll('\n', '') }
    expect((await verifierFor(main)).verify(rewrapped).ok).toBe(true)
  })
})

describe('verify: bad_signature', () => {
  it('rejects tampered canonical bytes', async () => {
    const fields = signedFields(signer(main, 'alice', CryptoMode.X509), canonical)
    const tampered = Buffer.from(canonical)
    tampered[10] = (tampered[10] as number) ^ 0x01
    expectFailure((await verifierFor(main)).verify({ ...fields, canonical: tampered }), InvalidReason.BadSignature, /alice/)
  })

  it('rejects a signature made by another key under the same CN', async () => {
    const fields = signedFields(signer(main, 'alice'), canonical)
    const forged = signer(other, 'alice').sign(canonical)
    expectFailure((await verifierFor(main)).verify({ ...fields, signature: forged }), InvalidReason.BadSignature)
  })

  it('rejects a signature made in the other mode', async () => {
    const fields = signedFields(signer(main, 'alice', CryptoMode.X509), canonical)
    expectFailure((await verifierFor(main)).verify({ ...fields, crypto: CryptoMode.X509Sha256 }), InvalidReason.BadSignature)
  })

  it.each(['bob', 'carol'])('rejects junk signature bytes for %s', async (name) => {
    const fields = signedFields(signer(main, name), canonical)
    expectFailure((await verifierFor(main)).verify({ ...fields, signature: wrapBase64(Buffer.from('0123456789')) }), InvalidReason.BadSignature)
  })
})

describe('verify: chain', () => {
  it('rejects a certificate from another CA with the same CN (unknown_ca)', async () => {
    const fields = signedFields(signer(other, 'alice', CryptoMode.X509), canonical)
    expectFailure((await verifierFor(main)).verify(fields), InvalidReason.UnknownCa)
    expect((await verifierFor(other)).verify(fields).ok).toBe(true)
  })

  it('rejects the CA certificate itself as a signer', async () => {
    const fields = signedFields(signer(main, 'alice'), canonical)
    expectFailure((await verifierFor(main)).verify({ ...fields, certificate: certificateField(other.caPem) }), InvalidReason.UnknownCa)
  })

  it('rejects an expired certificate', async () => {
    expectFailure((await verifierFor(main)).verify(signedFields(signer(main, 'old'), canonical)), InvalidReason.Expired, /old expired/)
  })

  it('rejects a certificate that is not yet valid', async () => {
    expectFailure((await verifierFor(main)).verify(signedFields(signer(main, 'future'), canonical)), InvalidReason.NotYetValid, /future/)
  })

  it('rejects everything while the CA is not yet valid', async () => {
    expectFailure((await verifierFor(futureCa)).verify(signedFields(signer(futureCa, 'dave'), canonical)), InvalidReason.NotYetValid, /CA certificate/)
  })

  it('rejects everything once the CA has expired', async () => {
    expectFailure((await verifierFor(expiredCa)).verify(signedFields(signer(expiredCa, 'erin'), canonical)), InvalidReason.Expired, /CA certificate/)
  })

  it('re-checks validity against the clock on cache hits', async () => {
    let now = Date.now()
    const verifier = await verifierFor(main, { clock: () => now })
    const fields = signedFields(signer(main, 'alice'), canonical)
    expect(verifier.verify(fields).ok).toBe(true)
    now += 400 * DAY
    expectFailure(verifier.verify(fields), InvalidReason.Expired, /alice expired/)
    now = Date.now() - 10 * DAY
    expectFailure(verifier.verify(fields), InvalidReason.NotYetValid)
    now = Date.now()
    expect(verifier.verify(fields).ok).toBe(true)
    expect(verifier.cacheStats).toMatchObject({ misses: 1, hits: 3, size: 1 })
  })
})

describe('verify: CRL', () => {
  it('reports revoked after revokeCert + reloadCrl, even for a cached certificate', async () => {
    const verifier = await verifierFor(revocation, { crlPem: revocation.crlPem })
    const mallory = signedFields(signer(revocation, 'mallory'), canonical)
    const alice = signedFields(signer(revocation, 'alice'), canonical)
    expect(verifier.verify(mallory).ok).toBe(true)
    expect(verifier.verify(alice).ok).toBe(true)
    expect(verifier.cacheStats.size).toBe(2)

    const res = await revokeCert(revocation.dir, 'mallory')
    expect(res.serial).toBe(revocation.leaf('mallory').serial)
    expect(verifier.verify(mallory).ok).toBe(true)

    await verifier.reloadCrl(await readFile(revocation.crlPath, 'utf8'))
    expect(verifier.cacheStats.size).toBe(0)
    expectFailure(verifier.verify(mallory), InvalidReason.Revoked, /mallory/)
    expect(verifier.verify(alice).ok).toBe(true)

    const fresh = await verifierFor(revocation, { crlPem: await readFile(revocation.crlPath, 'utf8') })
    expectFailure(fresh.verify(mallory), InvalidReason.Revoked)

    await verifier.reloadCrl(undefined)
    expect(verifier.verify(mallory).ok).toBe(true)
  })

  it('keeps enforcing a CRL once the clock is past its nextUpdate (stale), and says so in crlStatus', async () => {
    let now = Date.now()
    const crlPem = await foreignCrl(main, [main.leaf('alice').serial], { nextUpdate: daysFromNow(30) })
    const verifier = await verifierFor(main, { crlPem, clock: () => now })
    const bob = signedFields(signer(main, 'bob'), canonical)
    const alice = signedFields(signer(main, 'alice'), canonical)
    expect(verifier.verify(bob).ok).toBe(true)
    expect(verifier.crlStatus()).toMatchObject({ stale: false, revokedCount: 1 })
    expect(verifier.crlStatus()?.daysUntilNextUpdate).toBeCloseTo(30, 1)
    now += 31 * DAY
    expect(verifier.verify(bob).ok).toBe(true)
    expectFailure(verifier.verify(alice), InvalidReason.Revoked, /alice/)
    expect(verifier.crlStatus()).toMatchObject({ stale: true, revokedCount: 1 })
    expect(verifier.crlStatus()?.daysUntilNextUpdate).toBeCloseTo(-1, 1)
  })

  it('accepts a CRL whose nextUpdate has passed (still enforced), fails everything with one not yet valid', async () => {
    const fields = signedFields(signer(revocation, 'longlived'), canonical)
    await renewCrl(revocation.dir, { thisUpdate: daysFromNow(-10), nextUpdate: daysFromNow(-1) })
    const stale = await readFile(revocation.crlPath, 'utf8')
    const staleVerifier = await verifierFor(revocation, { crlPem: stale })
    expect(staleVerifier.verify(fields).ok).toBe(true)
    expect(staleVerifier.crlStatus()?.stale).toBe(true)

    await renewCrl(revocation.dir, { thisUpdate: daysFromNow(1) })
    const early = await readFile(revocation.crlPath, 'utf8')
    expectFailure((await verifierFor(revocation, { crlPem: early })).verify(fields), InvalidReason.NotYetValid, /CRL/)

    await renewCrl(revocation.dir)
    expect((await verifierFor(revocation, { crlPem: await readFile(revocation.crlPath, 'utf8') })).verify(fields).ok).toBe(true)
  })

  it('refuses a CRL not signed by the CA, at creation and on reload (keeping the old CRL)', async () => {
    await expect(verifierFor(main, { crlPem: other.crlPem })).rejects.toThrow(CertificateError)
    await expect(verifierFor(main, { crlPem: 'garbage' })).rejects.toThrow(CertificateError)
    const verifier = await verifierFor(main, { crlPem: main.crlPem })
    await expect(verifier.reloadCrl(other.crlPem)).rejects.toThrow(CertificateError)
    expect(verifier.verify(signedFields(signer(main, 'alice'), canonical)).ok).toBe(true)
  })
})

async function caSigningKey(pki: TestPki, hash: string): Promise<webcrypto.CryptoKey> {
  const pkcs8 = createPrivateKey(await readFile(pki.caKeyPath, 'utf8')).export({ type: 'pkcs8', format: 'der' })
  return webcrypto.subtle.importKey('pkcs8', pkcs8, { name: 'RSASSA-PKCS1-v1_5', hash }, false, ['sign'])
}

/** A CRL made outside certs.ts: any hash, any serial spelling, optionally without nextUpdate, with or without a cRLNumber. */
async function foreignCrl(
  pki: TestPki,
  serials: readonly string[],
  opts: { hash?: string; nextUpdate?: Date | null; thisUpdate?: Date; crlNumber?: number } = {},
): Promise<string> {
  const hash = opts.hash ?? 'SHA-256'
  const crl = await x509.X509CrlGenerator.create(
    {
      issuer: new x509.X509Certificate(pki.caPem).subjectName,
      thisUpdate: opts.thisUpdate ?? daysFromNow(-1),
      ...(opts.nextUpdate === null ? {} : { nextUpdate: opts.nextUpdate ?? daysFromNow(30) }),
      entries: serials.map((serialNumber) => ({ serialNumber, revocationDate: daysFromNow(-1) })),
      ...(opts.crlNumber === undefined ? {} : { extensions: [new x509.Extension('2.5.29.20', false, new Uint8Array([2, 1, opts.crlNumber]))] }),
      signingKey: await caSigningKey(pki, hash),
      signingAlgorithm: { name: 'RSASSA-PKCS1-v1_5', hash },
    },
    webcrypto,
  )
  return derToPem(Buffer.from(crl.rawData), 'X509 CRL')
}

/** A signer whose EC certificate, issued by the pki's CA, has the given serial. */
async function leafWithSerial(pki: TestPki, serialNumber: string, cn: string): Promise<Signer> {
  const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber,
      subject: `CN=${cn}`,
      issuer: new x509.X509Certificate(pki.caPem).subjectName,
      notBefore: daysFromNow(-1),
      notAfter: daysFromNow(30),
      publicKey: keys.publicKey,
      signingKey: await caSigningKey(pki, 'SHA-256'),
      signingAlgorithm: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
    },
    webcrypto,
  )
  const keyPem = derToPem(Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)), 'PRIVATE KEY')
  return createSigner({ mode: CryptoMode.X509Sha256, keyPem, certPem: derToPem(Buffer.from(cert.rawData), 'CERTIFICATE') })
}

describe('verify: CRLs from other tools', () => {
  it('matches serials however the certificate and the CRL spell them (sign byte, leading zero)', async () => {
    const [ff, abc, other] = await Promise.all([leafWithSerial(main, 'ff', 'ff'), leafWithSerial(main, '0abc', 'abc'), leafWithSerial(main, 'abcd', 'abcd')])
    const verifier = await verifierFor(main, { crlPem: await foreignCrl(main, ['00ff', '0abc']) })
    expectFailure(verifier.verify(signedFields(ff, canonical)), InvalidReason.Revoked, /serial ff/)
    expectFailure(verifier.verify(signedFields(abc, canonical)), InvalidReason.Revoked, /serial abc/)
    expect(verifier.verify(signedFields(other, canonical)).ok).toBe(true)
  })

  it.each(['SHA-1', 'SHA-384', 'SHA-512'])('checks a CRL signed with %s against the CA key', async (hash) => {
    const alice = signedFields(signer(main, 'alice'), canonical)
    const crlPem = await foreignCrl(main, [main.leaf('alice').serial], { hash })
    expectFailure((await verifierFor(main, { crlPem })).verify(alice), InvalidReason.Revoked)
    const relabelled = crlPem.replaceAll('X509 CRL', 'CRL')
    expectFailure((await verifierFor(main, { crlPem: relabelled })).verify(alice), InvalidReason.Revoked)
    await expect(verifierFor(other, { crlPem })).rejects.toThrow(/not signed by the CA/)
  })

  it('refuses a CRL without nextUpdate', async () => {
    await expect(verifierFor(main, { crlPem: await foreignCrl(main, ['01'], { nextUpdate: null }) })).rejects.toThrow(/no nextUpdate/)
  })

  it('applies concurrent reloads in call order, skipping refused ones', async () => {
    const alice = signedFields(signer(main, 'alice'), canonical)
    const revoking = await foreignCrl(main, [main.leaf('alice').serial])
    const verifier = await verifierFor(main)
    await Promise.all([verifier.reloadCrl(revoking), verifier.reloadCrl(undefined)])
    expect(verifier.verify(alice).ok).toBe(true)
    const refused = verifier.reloadCrl('garbage')
    const applied = verifier.reloadCrl(revoking)
    await expect(refused).rejects.toThrow(CertificateError)
    await applied
    expectFailure(verifier.verify(alice), InvalidReason.Revoked)
  })
})

describe('CRL rollback', () => {
  const alice = (): SignedFields => signedFields(signer(main, 'alice'), canonical)

  it('refuses a CRL with a lower cRLNumber on reload, keeping the newer one (and its revocations)', async () => {
    const [older, newer, newest] = await Promise.all([
      foreignCrl(main, [], { crlNumber: 3 }),
      foreignCrl(main, [main.leaf('alice').serial], { crlNumber: 5 }),
      foreignCrl(main, [main.leaf('alice').serial], { crlNumber: 6, thisUpdate: daysFromNow(-2) }),
    ])
    const verifier = await verifierFor(main, { crlPem: newer })
    expectFailure(verifier.verify(alice()), InvalidReason.Revoked)
    const refused = verifier.reloadCrl(older)
    await expect(refused).rejects.toThrow(CrlRollbackError)
    await expect(refused).rejects.toThrow(/cRLNumber 3 is lower than 5/)
    expectFailure(verifier.verify(alice()), InvalidReason.Revoked)
    expect(verifier.crlStatus()?.crlNumber).toBe(5n)
    await verifier.reloadCrl(newer)
    // A higher number wins even with an older thisUpdate.
    await verifier.reloadCrl(newest)
    expect(verifier.crlMark).toMatchObject({ crlNumber: 6n })
    await expect(verifier.reloadCrl(newer)).rejects.toThrow(CrlRollbackError)
  })

  it('without cRLNumbers, refuses a CRL with an older thisUpdate', async () => {
    const [older, newer] = await Promise.all([
      foreignCrl(main, [], { thisUpdate: daysFromNow(-3) }),
      foreignCrl(main, [main.leaf('alice').serial], { thisUpdate: daysFromNow(-2) }),
    ])
    const verifier = await verifierFor(main, { crlPem: newer })
    await expect(verifier.reloadCrl(older)).rejects.toThrow(/thisUpdate .* is older than/)
    expectFailure(verifier.verify(alice()), InvalidReason.Revoked)
  })

  it('remembers the newest CRL even after the CRL is removed, and honours minimumCrl at creation', async () => {
    const [older, newer] = await Promise.all([foreignCrl(main, [], { crlNumber: 3 }), foreignCrl(main, [main.leaf('alice').serial], { crlNumber: 5 })])
    const verifier = await verifierFor(main, { crlPem: newer })
    await verifier.reloadCrl(undefined)
    await expect(verifier.reloadCrl(older)).rejects.toThrow(CrlRollbackError)
    const mark = verifier.crlMark
    expect(mark).toBeDefined()
    await expect(verifierFor(main, { crlPem: older, minimumCrl: mark })).rejects.toThrow(CrlRollbackError)
    expect((await verifierFor(main, { crlPem: newer, minimumCrl: mark })).crlMark).toEqual(mark)
    expect((await verifierFor(main, { crlPem: older })).crlStatus()?.crlNumber).toBe(3n)
  })
})

describe('verify: routing policy', () => {
  const topic = 'org.example.dev.alice.only'
  const policy = { [topic]: ['alice'] }

  it('allows listed CNs and denies others on a policy topic', async () => {
    const verifier = await verifierFor(main, { routingPolicy: policy })
    expect(verifier.verify(signedFields(signer(main, 'alice'), canonical, topic)).ok).toBe(true)
    expectFailure(verifier.verify(signedFields(signer(main, 'bob'), canonical, topic)), InvalidReason.PolicyDenied, /bob/)
  })

  it('lets other topics pass unless routingNitpicky', async () => {
    const bob = signedFields(signer(main, 'bob'), canonical, 'org.example.dev.other')
    expect((await verifierFor(main, { routingPolicy: policy })).verify(bob).ok).toBe(true)
    expectFailure((await verifierFor(main, { routingPolicy: policy, routingNitpicky: true })).verify(bob), InvalidReason.PolicyDenied, /routing_nitpicky/)
  })

  it('does not treat inherited object keys as policy topics', async () => {
    const verifier = await verifierFor(main, { routingPolicy: policy })
    for (const t of ['constructor', '__proto__', 'toString']) {
      expect(verifier.verify(signedFields(signer(main, 'bob'), canonical, t)).ok).toBe(true)
    }
  })

  it('signedBy replaces the policy with {topic: [signedBy]}, nitpicky', async () => {
    const verifier = await verifierFor(main, { routingPolicy: policy })
    const bob = signedFields(signer(main, 'bob'), canonical, topic)
    expect(verifier.verify(bob, { signedBy: 'bob' }).ok).toBe(true)
    expectFailure(verifier.verify(bob, { signedBy: 'alice' }), InvalidReason.PolicyDenied, /expected "alice"/)
    const elsewhere = signedFields(signer(main, 'bob'), canonical, 'org.example.dev.other')
    expectFailure((await verifierFor(main)).verify(elsewhere, { signedBy: 'carol' }), InvalidReason.PolicyDenied)
  })
})

describe('verify: unsupported_crypto and malformed', () => {
  const good = (): SignedFields => signedFields(signer(main, 'alice', CryptoMode.X509), canonical)

  it.each(['gpg', 'x509_sha512', '', 'X509'])('rejects crypto %j as unsupported_crypto', async (crypto) => {
    expectFailure((await verifierFor(main)).verify({ ...good(), crypto }), InvalidReason.UnsupportedCrypto)
  })

  it('honours acceptModes', async () => {
    const sha256 = signedFields(signer(main, 'alice'), canonical)
    expectFailure((await verifierFor(main, { acceptModes: [CryptoMode.X509] })).verify(sha256), InvalidReason.UnsupportedCrypto)
    expect((await verifierFor(main, { acceptModes: [CryptoMode.X509] })).verify(good()).ok).toBe(true)
  })

  it('reports an EC certificate under crypto x509 as unsupported_crypto', async () => {
    const bob = signedFields(signer(main, 'bob'), canonical)
    expectFailure((await verifierFor(main)).verify({ ...bob, crypto: CryptoMode.X509 }), InvalidReason.UnsupportedCrypto, /needs an RSA key/)
  })

  it.each([
    ['non-string crypto', { crypto: 42 }],
    ['null crypto', { crypto: null }],
    ['numeric signature', { signature: 123 }],
    ['object certificate', { certificate: {} }],
    ['missing certificate', { certificate: undefined }],
    ['garbage signature base64', { signature: '!!!not base64!!!' }],
    ['empty signature', { signature: '' }],
    ['garbage certificate base64', { certificate: 'abc' }],
    ['certificate that is not PEM', { certificate: wrapBase64(Buffer.from('hello world')) }],
    ['certificate PEM with junk DER', { certificate: certificateField('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n') }],
    ['certificate that is not UTF-8', { certificate: wrapBase64(Buffer.from([0xff, 0xfe])) }],
    ['canonical that is not a Buffer', { canonical: 'text' }],
  ] as const)('%s is malformed', async (_label, patch) => {
    expectFailure((await verifierFor(main)).verify({ ...good(), ...patch } as unknown as SignedFields), InvalidReason.Malformed)
  })

  it('a certificate with bytes after its DER is malformed', async () => {
    const der = Buffer.concat([pemToDer(main.leaf('alice').certPem, 'CERTIFICATE'), Buffer.from([0])])
    const fields = { ...good(), certificate: certificateField(derToPem(der, 'CERTIFICATE')) }
    expectFailure((await verifierFor(main)).verify(fields), InvalidReason.Malformed, /trailing/)
  })

  it('never throws, whatever the fields hold', async () => {
    const verifier = await verifierFor(main, { routingPolicy: { t: ['alice'] }, routingNitpicky: true })
    const valid = good()
    const anything = fc.oneof(
      fc.anything(),
      fc.string(),
      fc.constantFrom<unknown>(valid.signature, valid.certificate, CryptoMode.X509, CryptoMode.X509Sha256, Buffer.alloc(0)),
      fc.uint8Array({ maxLength: 300 }).map((b) => wrapBase64(Buffer.from(b))),
      fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)),
    )
    fc.assert(
      fc.property(anything, anything, anything, anything, anything, fc.option(fc.string(), { nil: undefined }), (crypto, topic, c, signature, certificate, signedBy) => {
        const fields = { crypto, topic, canonical: c, signature, certificate } as unknown as SignedFields
        const result = verifier.verify(fields, signedBy === undefined ? {} : { signedBy })
        expect(result.ok).toBe(false)
      }),
      { numRuns: 300 },
    )
    for (const junk of [null, undefined, 0, 'x', [], {}, { crypto: 'x509' }, new Proxy({}, { get: () => { throw new Error('boom') } })]) {
      expectFailure(verifier.verify(junk as unknown as SignedFields), InvalidReason.Malformed)
    }
  })
})

describe('verify: a bug is not a malformed message', () => {
  it('an error of its own (here a TypeError from the clock) propagates instead of becoming a malformed result', async () => {
    const verifier = await verifierFor(main, {
      clock: () => {
        throw new TypeError('clock bug')
      },
    })
    expect(() => verifier.verify(signedFields(signer(main, 'alice'), canonical))).toThrow(new TypeError('clock bug'))
  })

  it('a RangeError from a bug propagates too; the same verifier still calls bad input malformed', async () => {
    let calls = 0
    const verifier = await verifierFor(main, {
      clock: () => {
        calls++
        throw new RangeError('out of range')
      },
    })
    expect(() => verifier.verify(signedFields(signer(main, 'alice'), canonical))).toThrow(RangeError)
    expect(calls).toBe(1)
    expectFailure(verifier.verify({ ...signedFields(signer(main, 'alice'), canonical), signature: '!!!not base64!!!' }), InvalidReason.Malformed, /signature: invalid base64/)
    expectFailure(verifier.verify({ ...signedFields(signer(main, 'alice'), canonical), certificate: wrapBase64(Buffer.from('hello world')) }), InvalidReason.Malformed, /certificate: /)
    expect(calls).toBe(1)
  })
})

describe('certificate cache', () => {
  it('validates a certificate once and then hits', async () => {
    const verifier = await verifierFor(main)
    const s = signer(main, 'alice')
    for (let i = 0; i < 5; i++) expect(verifier.verify(signedFields(s, Buffer.from(`{"i":${i}}`))).ok).toBe(true)
    expect(verifier.cacheStats).toEqual({ size: 1, capacity: 1000, hits: 4, misses: 1 })
  })

  it('caches chain failures too', async () => {
    const verifier = await verifierFor(main)
    const fields = signedFields(signer(other, 'alice'), canonical)
    expectFailure(verifier.verify(fields), InvalidReason.UnknownCa)
    expectFailure(verifier.verify(fields), InvalidReason.UnknownCa)
    expect(verifier.cacheStats).toMatchObject({ hits: 1, misses: 1 })
  })

  it('is bounded (LRU) and can be disabled', async () => {
    const verifier = await verifierFor(main, { cacheSize: 2 })
    const [a, b, c] = ['alice', 'bob', 'carol'].map((n) => signedFields(signer(main, n), canonical)) as [SignedFields, SignedFields, SignedFields]
    for (const f of [a, b, a, c]) expect(verifier.verify(f).ok).toBe(true)
    expect(verifier.cacheStats).toMatchObject({ size: 2, hits: 1, misses: 3 })
    verifier.verify(a)
    verifier.verify(b)
    expect(verifier.cacheStats).toMatchObject({ hits: 2, misses: 4 })

    const none = await verifierFor(main, { cacheSize: 0 })
    none.verify(a)
    none.verify(a)
    expect(none.cacheStats).toEqual({ size: 0, capacity: 0, hits: 0, misses: 2 })
  })
})

describe('createVerifier options', () => {
  it('rejects a CA that does not parse', async () => {
    await expect(createVerifier({ caPem: 'nope' })).rejects.toThrow(CertificateError)
  })

  it('accepts a CA file with text around the PEM block', async () => {
    const verifier = await createVerifier({ caPem: `Certificate:\n  Data: ...\n${main.caPem}` })
    expect(verifier.verify(signedFields(signer(main, 'alice'), canonical)).ok).toBe(true)
  })

  it.each([
    ['cacheSize -1', { cacheSize: -1 }],
    ['cacheSize 1.5', { cacheSize: 1.5 }],
    ['unknown mode', { acceptModes: ['gpg'] }],
    ['policy not a list', { routingPolicy: { t: 'alice' } }],
  ] as const)('rejects %s with InvalidArgumentError', async (_label, opts) => {
    await expect(verifierFor(main, opts as unknown as VerifierOptions)).rejects.toThrow(InvalidArgumentError)
  })
})
