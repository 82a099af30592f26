/**
 * Test parties on an in-memory bus: a signer for a test PKI's leaf, and a
 * Bus on a MemoryHub that signs as that leaf and validates with a verifier.
 */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Bus } from '../../src/bus/bus.js'
import { createTestPki, type TestPki } from './pki.js'
import { createVerifier } from '../../src/crypto/verifier.js'
import { createSigner } from '../../src/crypto/signer.js'
import type { Signer, Verifier } from '../../src/crypto/types.js'
import type { TopicParts } from '../../src/envelope/topic.js'
import { MemoryTransport, type MemoryHub } from '../../src/transport/memory.js'
import type { Clock } from '../../src/util/clock.js'

/** An `x509_sha256` signer for a leaf (the tests' leaves have EC keys). */
export function leafSigner(leaf: { readonly keyPem: string; readonly certPem: string }): Signer {
  return createSigner({ mode: 'x509_sha256', keyPem: leaf.keyPem, certPem: leaf.certPem })
}

export interface MemoryBusOptions {
  readonly hub: MemoryHub
  readonly verifier: Verifier
  readonly topic: TopicParts
  readonly clock: Clock
}

/** A Bus on `hub` named `name`, signing with `signer` (default: the leaf `name` of `pki`). */
export function memoryBus(o: MemoryBusOptions, pki: TestPki, name: string, signer: Signer = leafSigner(pki.leaf(name))): Bus {
  return new Bus({ transport: new MemoryTransport(o.hub, name), signer, verifier: o.verifier, topic: o.topic, maxJsonDepth: 64, clock: o.clock })
}

/** A test PKI with EC leaves `names` (in a new temp dir) and a verifier for it. */
export async function ecPartiesPki(tag: string, names: readonly string[]): Promise<{ pki: TestPki; verifier: Verifier }> {
  const pki = await createTestPki(join(mkdtempSync(join(tmpdir(), `gilmsg-${tag}-`)), 'pki'), names.map((name) => ({ name, key: 'ec' as const })))
  return { pki, verifier: await createVerifier({ caPem: pki.caPem, crlPem: pki.crlPem }) }
}
