import { mkdtemp, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Signer, SignedFields } from '../../../src/crypto/types.js'

export interface VectorCase {
  readonly label: string
  readonly key_pem: string
  readonly cert_pem_file: string
  readonly certificate_field: string
  readonly signature_field: string
  readonly canonical_signed_string: string
  readonly canonical_sha1_hex: string
  readonly wire_frame0_topic: string
  readonly wire_frame1_json: string
}

export async function loadVectors(): Promise<readonly VectorCase[]> {
  const text = await readFile(new URL('../../../spec/vectors/vectors.json', import.meta.url), 'utf8')
  return (JSON.parse(text) as { cases: VectorCase[] }).cases
}

export function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `gilmsg-${prefix}-`))
}

export const DAY = 24 * 60 * 60 * 1000

export function daysFromNow(days: number): Date {
  return new Date(Date.now() + days * DAY)
}

/** Signed fields for `canonical`, as the envelope layer would hand them to a verifier. */
export function signedFields(signer: Signer, canonical: Buffer, topic = 'org.example.dev.test'): SignedFields {
  return { crypto: signer.mode, topic, canonical, signature: signer.sign(canonical), certificate: signer.certificateField }
}
