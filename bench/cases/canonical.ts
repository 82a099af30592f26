/**
 * Case 1: Python-compatible canonical JSON (`canonicalize`, what every sign
 * and every verify serialises) against `JSON.stringify` of the same
 * envelope, in this process. The envelope is a signed fedmsg envelope as it
 * goes on the wire (RSA signature and certificate fields, a 15-key payload).
 */
import { canonicalize, createSigner, parseJson, buildEnvelope, sealEnvelope } from '../../src/internal.js'
import { compareOps } from '../lib/timing.js'
import { line, type BenchCase, type BenchContext, type CaseResult } from '../lib/types.js'
import { APP_PREFIX, certname } from '../lib/setup.js'

/** A fedmsg-like payload with 15 keys (numbers, strings, a float, null, nested list and object). */
export function samplePayload(n = 1): Record<string, unknown> {
  return {
    build_id: 2_400_000 + n,
    name: 'gilmsg',
    version: '1.2.0',
    release: '1.fc40',
    epoch: null,
    owner: 'alice',
    instance: 'primary',
    attribute: 'state',
    old: 0,
    new: 1,
    task_id: 115_000_000 + n,
    score: 0.75,
    request: ['git+https://src.example.org/rpms/gilmsg#0123456789abcdef', 'f40-candidate', { scratch: false }],
    tags: ['f40', 'candidate', 'bench'],
    comment: 'Built by the benchmark: "quoted", tab\tand caf\u00e9',
  }
}

export const canonicalCase: BenchCase = {
  id: 'canonical',
  title: 'canonical JSON',
  async run(ctx: BenchContext): Promise<CaseResult[]> {
    const pki = await ctx.pki()
    const leaf = pki.leaf(certname('rsa', 'pub'))
    const signer = createSigner({ mode: 'x509', keyPem: leaf.keyPem, certPem: leaf.certPem })
    const env = buildEnvelope({ topic: `${APP_PREFIX}canonical`, msg: samplePayload(), i: 1, nowMs: Date.now(), username: 'bench' })
    const body = sealEnvelope(env, signer).body
    const wire = parseJson(body)
    const plain: unknown = JSON.parse(body)
    if (canonicalize(wire) !== body) throw new Error('canonicalize(parse(body)) is not the body: the sample is not canonical')
    let sink = 0
    const ms = ctx.quick ? 40 : 1000
    const reps = ctx.quick ? 1 : 3
    ctx.progress(`canonical: ${Buffer.byteLength(body)}-byte envelope, ${reps} x ${ms} ms each side`)
    const c = compareOps(
      () => void (sink += canonicalize(wire).length),
      () => void (sink += JSON.stringify(plain).length),
      { ms, reps, batch: 64 },
    )
    return [
      line({
        id: 'canonical',
        name: 'canonical JSON of a signed envelope vs JSON.stringify',
        figure: c.a,
        unit: 'ops/s',
        baseline: c.b,
        baselineUnit: 'ops/s',
        notes: `${Buffer.byteLength(body)} B envelope, ${(1e6 / c.a).toFixed(1)} us each`,
        details: { bytes: Buffer.byteLength(body), keys: [...(wire as Map<string, unknown>).keys()], runs: { gilmsg: c.aRuns, baseline: c.bRuns }, sink },
      }),
    ]
  },
}
