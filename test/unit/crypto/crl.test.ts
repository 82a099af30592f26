/**
 * The CRL reader (src/crypto/crl.ts): CRLs made by the `openssl ca` command for every
 * CA key type it signs CRLs with, compared with what `openssl crl` reads from them;
 * tampered and hostile DER; the rollback rule.
 */
import 'reflect-metadata'
import * as x509 from '@peculiar/x509'
import fc from 'fast-check'
import { execFileSync } from 'node:child_process'
import { createPrivateKey, randomBytes, webcrypto, X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestPki, type TestPki } from '../../support/pki.js'
import { crlDerFromPem, crlRollback, newestMark, readCaCrl, type CrlMark } from '../../../src/crypto/crl.js'
import { childrenOf, encodingOf, readRoot, type DerElement } from '../../../src/crypto/der.js'
import { derToPem } from '../../../src/crypto/pem.js'
import { createSigner } from '../../../src/crypto/signer.js'
import { CryptoMode, InvalidReason } from '../../../src/crypto/types.js'
import { createVerifier } from '../../../src/crypto/verifier.js'
import { CertificateError } from '../../../src/errors.js'
import { daysFromNow, signedFields, tempDir } from './helpers.js'
import { hasOpenssl } from '../../support/openssl.js'

const dirs: string[] = []
let pki: TestPki
let other: TestPki

beforeAll(async () => {
  const [a, b] = await Promise.all([tempDir('crl-main'), tempDir('crl-other')])
  dirs.push(a, b)
  ;[pki, other] = await Promise.all([createTestPki(a, [{ name: 'alice', key: 'ec' }]), createTestPki(b, [])])
})

afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })))
})

function openssl(cwd: string, args: readonly string[], input?: string): string {
  return execFileSync('openssl', args, { cwd, input: input ?? '', stdio: ['pipe', 'pipe', 'pipe'] }).toString()
}

const CA_CONFIG = `[ca]
default_ca = CA_default
[CA_default]
dir = .
database = ./index.txt
crlnumber = ./crlnumber
default_md = sha256
default_crl_days = 30
`

interface OpensslCa {
  readonly dir: string
  readonly ca: X509Certificate
  readonly caPem: string
  /** Issues an EC P-256 leaf with this serial (hex); returns its PEM files. */
  leaf(name: string, serialHex: string): { certPem: string; keyPem: string }
  revoke(name: string, reason?: string): void
  /** `openssl ca -gencrl`; returns the PEM. */
  gencrl(): Promise<string>
}

async function opensslCa(label: string, keyArgs: readonly string[], md: string): Promise<OpensslCa> {
  const dir = await tempDir(`crl-openssl-${label}`)
  dirs.push(dir)
  await writeFile(join(dir, 'ca.cnf'), CA_CONFIG)
  await writeFile(join(dir, 'index.txt'), '')
  await writeFile(join(dir, 'crlnumber'), '1000\n')
  openssl(dir, ['genpkey', ...keyArgs, '-out', 'ca.key'])
  openssl(dir, ['req', '-x509', '-new', '-key', 'ca.key', '-subj', `/O=Example/CN=${label} CA`, '-days', '30', '-out', 'ca.crt'])
  const caPem = await readFile(join(dir, 'ca.crt'), 'utf8')
  return {
    dir,
    caPem,
    ca: new X509Certificate(caPem),
    leaf(name, serialHex) {
      openssl(dir, ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`])
      const csr = openssl(dir, ['req', '-new', '-key', `${name}.key`, '-subj', `/CN=${name}`])
      openssl(dir, ['x509', '-req', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', `0x${serialHex}`, '-days', '5', '-out', `${name}.crt`], csr)
      return { certPem: readFileSync(join(dir, `${name}.crt`), 'utf8'), keyPem: readFileSync(join(dir, `${name}.key`), 'utf8') }
    },
    revoke(name, reason = 'keyCompromise') {
      openssl(dir, ['ca', '-config', 'ca.cnf', '-keyfile', 'ca.key', '-cert', 'ca.crt', '-revoke', `${name}.crt`, '-crl_reason', reason, '-md', md])
    },
    async gencrl() {
      openssl(dir, ['ca', '-config', 'ca.cnf', '-gencrl', '-keyfile', 'ca.key', '-cert', 'ca.crt', '-md', md, '-out', 'crl.pem'])
      return readFile(join(dir, 'crl.pem'), 'utf8')
    },
  }
}

/** What `openssl crl` reads from a CRL: the revoked serials (canonical hex), the CRL number, the dates. */
function opensslView(dir: string, pem: string): { serials: string[]; crlNumber: bigint; lastUpdate: number; nextUpdate: number } {
  const text = openssl(dir, ['crl', '-noout', '-text'], pem)
  const serials = [...text.matchAll(/Serial Number: ([0-9A-F]+)/g)].map((m) => (m[1] as string).toLowerCase().replace(/^0+/, ''))
  const number = /crlNumber=0x([0-9A-F]+)/i.exec(openssl(dir, ['crl', '-noout', '-crlnumber'], pem))?.[1]
  const dates = openssl(dir, ['crl', '-noout', '-lastupdate', '-nextupdate'], pem)
  const date = (key: string): number => Date.parse(new RegExp(`${key}=(.*)`).exec(dates)?.[1] ?? '')
  return { serials: serials.sort(), crlNumber: BigInt(`0x${number ?? 'x'}`), lastUpdate: date('lastUpdate'), nextUpdate: date('nextUpdate') }
}

const canonical = Buffer.from('{"msg":"x"}')

describe.skipIf(!hasOpenssl())('CRLs made by openssl ca', () => {
  it.each([
    ['rsa-sha256', ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048'], 'sha256'],
    ['rsa-sha1', ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048'], 'sha1'],
    ['ec-p256', ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'], 'sha256'],
    ['ec-p384', ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384'], 'sha384'],
    ['ed25519', ['-algorithm', 'ed25519'], 'default'],
  ] as const)('%s: reads what openssl reads, checks the signature, and the verifier refuses the revoked leaf', async (label, keyArgs, md) => {
    const ca = await opensslCa(label, keyArgs, md)
    const revoked = ca.leaf('revoked', '80aa01')
    const held = ca.leaf('held', '0f')
    const kept = ca.leaf('kept', '7e57')
    ca.revoke('revoked')
    ca.revoke('held', 'certificateHold')
    const pem = await ca.gencrl()

    const crl = readCaCrl(pem, ca.ca)
    const seen = opensslView(ca.dir, pem)
    expect([...crl.revoked].sort()).toEqual(seen.serials)
    expect([...crl.revoked].sort()).toEqual(['80aa01', 'f'])
    expect(crl.crlNumber).toBe(seen.crlNumber)
    expect(crl.crlNumber).toBe(0x1000n)
    expect(crl.thisUpdate).toBe(seen.lastUpdate)
    expect(crl.nextUpdate).toBe(seen.nextUpdate)
    expect(crl.entries.find((e) => e.serial === '0080aa01')?.reason).toBe(1)
    expect(crl.entries.find((e) => e.serial === '0f')?.reason).toBe(6)

    // The next CRL from the same CA has the next number.
    expect(readCaCrl(await ca.gencrl(), ca.ca).crlNumber).toBe(0x1001n)

    const verifier = await createVerifier({ caPem: ca.caPem, crlPem: pem })
    const fields = (leaf: { certPem: string; keyPem: string }) => signedFields(createSigner({ mode: CryptoMode.X509Sha256, ...leaf }), canonical)
    expect(verifier.verify(fields(revoked))).toMatchObject({ ok: false, reason: InvalidReason.Revoked })
    expect(verifier.verify(fields(held))).toMatchObject({ ok: false, reason: InvalidReason.Revoked })
    expect(verifier.verify(fields(kept)).ok).toBe(true)

    expect(() => readCaCrl(pem, new X509Certificate(pki.caPem))).toThrow(/not signed by the CA/)
  }, 30_000)
})

/** The tbsCertList (whole encoding) of a CRL's DER. */
function tbsOf(der: Buffer): Buffer {
  const [tbs] = childrenOf(der, readRoot(der))
  if (tbs === undefined) throw new Error('no tbsCertList')
  return encodingOf(der, tbs)
}

/** Re-signs `tbs` (DER) as a CertificateList with the pki's CA key (sha256WithRSAEncryption). */
async function signTbs(ca: TestPki, tbs: Buffer): Promise<string> {
  const pkcs8 = createPrivateKey(await readFile(ca.caKeyPath, 'utf8')).export({ type: 'pkcs8', format: 'der' })
  const key = await webcrypto.subtle.importKey('pkcs8', pkcs8, { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, false, ['sign'])
  const signature = Buffer.from(await webcrypto.subtle.sign('RSASSA-PKCS1-v1_5', key, tbs))
  const alg = Buffer.from('300d06092a864886f70d01010b0500', 'hex')
  const bits = Buffer.concat([Buffer.from([0]), signature])
  return derToPem(tlv(0x30, Buffer.concat([tbs, alg, tlv(0x03, bits)])), 'X509 CRL')
}

function tlv(tag: number, content: Buffer): Buffer {
  const n = content.length
  const len = n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : n < 0x10000 ? Buffer.from([0x82, n >> 8, n & 0xff]) : Buffer.from([0x83, n >> 16, (n >> 8) & 0xff, n & 0xff])
  return Buffer.concat([Buffer.from([tag]), len, content])
}

function utcTime(ms: number): Buffer {
  const text = new Date(ms).toISOString().replace(/[-:T]/g, '').slice(2, 14) + 'Z'
  return tlv(0x17, Buffer.from(text, 'latin1'))
}

/** A v2 tbsCertList built by hand: `serials` revoked, cRLNumber `crlNumber`, issued by the pki's CA. */
function handMadeTbs(ca: TestPki, serials: readonly number[], crlNumber: number): Buffer {
  const caDer = new X509Certificate(ca.caPem).raw
  const [caTbs] = childrenOf(caDer, readRoot(caDer))
  const subject = childrenOf(caDer, caTbs as DerElement)[5] as DerElement
  const now = Date.now()
  const entries = serials.map((n) => tlv(0x30, Buffer.concat([tlv(0x02, Buffer.from(n.toString(16).padStart(8, '0'), 'hex')), utcTime(now - 60_000)])))
  const numberExt = tlv(0x30, Buffer.concat([tlv(0x06, Buffer.from('551d14', 'hex')), tlv(0x04, tlv(0x02, Buffer.from([crlNumber])))]))
  return tlv(
    0x30,
    Buffer.concat([
      tlv(0x02, Buffer.from([1])),
      Buffer.from('300d06092a864886f70d01010b0500', 'hex'),
      encodingOf(caDer, subject),
      utcTime(now - 60_000),
      utcTime(now + 86_400_000),
      tlv(0x30, Buffer.concat(entries)),
      tlv(0xa0, tlv(0x30, numberExt)),
    ]),
  )
}

/** The tbsCertList of a CRL made by @peculiar/x509 with the given extensions, for re-signing after an edit. */
async function crlWith(ca: TestPki, extensions: x509.Extension[]): Promise<string> {
  const pkcs8 = createPrivateKey(await readFile(ca.caKeyPath, 'utf8')).export({ type: 'pkcs8', format: 'der' })
  const signingKey = await webcrypto.subtle.importKey('pkcs8', pkcs8, { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, false, ['sign'])
  const crl = await x509.X509CrlGenerator.create(
    {
      issuer: new x509.X509Certificate(ca.caPem).subjectName,
      thisUpdate: daysFromNow(-1),
      nextUpdate: daysFromNow(30),
      extensions,
      signingKey,
      signingAlgorithm: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
    },
    webcrypto,
  )
  return derToPem(Buffer.from(crl.rawData), 'X509 CRL')
}

describe('readCaCrl: what it refuses', () => {
  const ca = (): X509Certificate => new X509Certificate(pki.caPem)

  it('refuses a CRL whose signed part was changed (one flipped bit anywhere in tbsCertList)', () => {
    const der = crlDerFromPem(pki.crlPem)
    expect(readCaCrl(pki.crlPem, ca()).crlNumber).toBe(1n)
    const tbs = tbsOf(der)
    const start = der.indexOf(tbs)
    for (let i = start; i < start + tbs.length; i++) {
      const bad = Buffer.from(der)
      bad[i] = (bad[i] as number) ^ 0x01
      expect(() => readCaCrl(derToPem(bad, 'X509 CRL'), ca()), `byte ${i}`).toThrow(CertificateError)
    }
  })

  it('refuses a CRL of another CA with the same name, and trailing bytes', () => {
    const sameName = new X509Certificate(other.caPem)
    expect(sameName.subject).toBe(ca().subject)
    expect(() => readCaCrl(other.crlPem, ca())).toThrow(/not signed by the CA/)
    const der = Buffer.concat([crlDerFromPem(pki.crlPem), Buffer.from([0])])
    expect(() => readCaCrl(derToPem(der, 'X509 CRL'), ca())).toThrow(/bytes after/)
  })

  it('refuses delta CRLs and unknown critical extensions, accepts unknown non-critical ones', async () => {
    const delta = await crlWith(pki, [new x509.Extension('2.5.29.27', true, Buffer.from([2, 1, 1]))])
    expect(() => readCaCrl(delta, ca())).toThrow(/deltaCRLIndicator/)
    const unknownCritical = await crlWith(pki, [new x509.Extension('1.2.3.4', true, Buffer.from([5, 0]))])
    expect(() => readCaCrl(unknownCritical, ca())).toThrow(/critical extension 1\.2\.3\.4/)
    const unknown = await crlWith(pki, [new x509.Extension('1.2.3.4', false, Buffer.from([5, 0])), new x509.Extension('2.5.29.20', false, Buffer.from([2, 2, 0x01, 0x00]))])
    expect(readCaCrl(unknown, ca()).crlNumber).toBe(256n)
  })

  it('refuses a CRL whose outer signature algorithm differs from the signed one', async () => {
    const tbsDer = tbsOf(crlDerFromPem(await crlWith(pki, [])))
    // Re-signed as is (sha256WithRSAEncryption inside and out): accepted.
    expect(readCaCrl(await signTbs(pki, tbsDer), ca()).thisUpdate).toBeLessThan(Date.now())
    // The inner algorithm changed to sha512WithRSAEncryption (OID last byte 0x0b -> 0x0d), re-signed: refused.
    const inner = Buffer.from(tbsDer)
    const at = inner.indexOf(Buffer.from('2a864886f70d01010b', 'hex'))
    expect(at).toBeGreaterThan(0)
    inner[at + 8] = 0x0d
    const mismatched = await signTbs(pki, inner)
    expect(() => readCaCrl(mismatched, ca())).toThrow(/two different signature algorithms/)
  })

  it('reads a CRL of 10,000 entries (which @peculiar/x509 cannot parse) in well under a second', async () => {
    const pem = await signTbs(pki, handMadeTbs(pki, Array.from({ length: 10_000 }, (_, i) => 0x100000 + i), 9))
    expect(() => new x509.X509Crl(crlDerFromPem(pem))).toThrow(/node count/)
    const started = performance.now()
    const crl = readCaCrl(pem, ca())
    expect(performance.now() - started).toBeLessThan(1000)
    expect(crl.revoked.size).toBe(10_000)
    expect(crl.crlNumber).toBe(9n)
    expect(crl.revoked.has('100abc')).toBe(true)
  })

  it('throws only CertificateError, whatever the bytes (mutated and random DER)', () => {
    const der = crlDerFromPem(pki.crlPem)
    fc.assert(
      fc.property(
        fc.oneof(
          fc.array(fc.record({ at: fc.nat(der.length - 1), value: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 4 }).map((edits) => {
            const bad = Buffer.from(der)
            for (const e of edits) bad[e.at] = e.value
            return bad
          }),
          fc.nat(der.length - 1).map((n) => der.subarray(0, n)),
          fc.uint8Array({ minLength: 1, maxLength: 200 }).map((b) => Buffer.concat([Buffer.from([0x30, 0x81, b.length]), Buffer.from(b)])),
        ),
        (bytes) => {
          try {
            readCaCrl(derToPem(bytes.length === 0 ? randomBytes(1) : bytes, 'X509 CRL'), ca())
          } catch (err) {
            expect(err).toBeInstanceOf(CertificateError)
          }
        },
      ),
      { numRuns: 500 },
    )
  })
})

describe('crlRollback', () => {
  const t = (days: number): number => Date.UTC(2026, 0, 1) + days * 86_400_000
  const mark = (crlNumber: bigint | undefined, day: number): CrlMark => ({ crlNumber, thisUpdate: t(day) })

  it.each([
    ['nothing in use', undefined, mark(1n, 0), false],
    ['the same CRL', mark(5n, 3), mark(5n, 3), false],
    ['a higher number', mark(5n, 3), mark(6n, 4), false],
    ['a higher number with an older thisUpdate', mark(5n, 3), mark(6n, 1), false],
    ['a lower number', mark(5n, 3), mark(4n, 9), true],
    ['the same number with an older thisUpdate', mark(5n, 3), mark(5n, 2), true],
    ['no numbers, newer thisUpdate', mark(undefined, 3), mark(undefined, 4), false],
    ['no numbers, older thisUpdate', mark(undefined, 3), mark(undefined, 2), true],
    ['numbered in use, unnumbered older offered', mark(5n, 3), mark(undefined, 2), true],
    ['unnumbered in use, numbered newer offered', mark(undefined, 3), mark(1n, 4), false],
  ] as const)('%s: rollback %s', (_label, inUse, offered, isRollback) => {
    expect(crlRollback(inUse, offered) !== undefined).toBe(isRollback)
  })

  it('newestMark keeps the highest number and the latest thisUpdate', () => {
    expect(newestMark(mark(5n, 3), mark(4n, 9))).toEqual(mark(5n, 9))
    expect(newestMark(undefined, mark(undefined, 2))).toEqual(mark(undefined, 2))
    expect(newestMark(mark(undefined, 2), mark(7n, 1))).toEqual(mark(7n, 2))
  })
})
