/**
 * A CA and named leaves in one call, with their PEM texts: what the benchmark makes at run
 * time (`gilmsg bench`, from the installed package) and what tests use as their fixture
 * (test/support/pki.ts). Built on the public certificate tooling (`initCa`, `issueCert`).
 */
import { readFile } from 'node:fs/promises'
import { CertificateError } from '../../src/index.js'
import { initCa, issueCert, type InitCaOptions, type IssueCertOptions, type IssuedCert } from '../../src/internal.js'

/** One leaf of {@link createPki}. */
export interface PkiLeafSpec extends IssueCertOptions {
  readonly name: string
}

/** A leaf made by {@link createPki}, with its PEM texts. */
export interface PkiLeaf extends IssuedCert {
  readonly certPem: string
  readonly keyPem: string
}

/** What {@link createPki} made. */
export interface Pki {
  readonly dir: string
  readonly caCertPath: string
  readonly caKeyPath: string
  readonly crlPath: string
  readonly caPem: string
  /** The CRL as written by `initCa`, before any revocation. */
  readonly crlPem: string
  readonly leaves: ReadonlyMap<string, PkiLeaf>
  /** The leaf called `name`; throws if there is none. */
  leaf(name: string): PkiLeaf
}

/**
 * A CA in `dir` (see `initCa`; `ca` options pass through) and the given leaves, issued
 * concurrently. RSA keys cost about 50-100 ms each to generate.
 */
export async function createPki(dir: string, leaves: readonly PkiLeafSpec[], ca: InitCaOptions = {}): Promise<Pki> {
  const made = await initCa(dir, ca)
  const issued = await Promise.all(
    leaves.map(async ({ name, ...opts }) => {
      const cert = await issueCert(dir, name, opts)
      const [certPem, keyPem] = await Promise.all([readFile(cert.certPath, 'utf8'), readFile(cert.keyPath, 'utf8')])
      return { ...cert, certPem, keyPem }
    }),
  )
  const map = new Map(issued.map((leaf) => [leaf.name, leaf]))
  return {
    dir,
    caCertPath: made.caCertPath,
    caKeyPath: made.caKeyPath,
    crlPath: made.crlPath,
    caPem: await readFile(made.caCertPath, 'utf8'),
    crlPem: await readFile(made.crlPath, 'utf8'),
    leaves: map,
    leaf(name: string): PkiLeaf {
      const leaf = map.get(name)
      if (leaf === undefined) throw new CertificateError(`no test leaf named ${JSON.stringify(name)}`)
      return leaf
    },
  }
}
