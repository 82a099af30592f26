import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { findCertificate, restoreCertificate } from '../../../src/sqlite/certificates.js'

/** What the stores do: cut the span out, remember where; then put it back. */
function roundTrip(body: string): { readonly restored: string; readonly cut: string | undefined } {
  const span = findCertificate(body)
  if (span === undefined) return { restored: restoreCertificate(body, null, null), cut: undefined }
  const rest = body.slice(0, span.start) + body.slice(span.end)
  const cut = body.slice(span.start, span.end)
  return { restored: restoreCertificate(rest, span.start, cut), cut }
}

function certificateOf(body: string): string | undefined {
  const span = findCertificate(body)
  return span === undefined ? undefined : body.slice(span.start, span.end)
}

describe('findCertificate', () => {
  it('finds the top-level "certificate" string, first key or later, with or without spaces', () => {
    expect(certificateOf('{"certificate":"MIIC\\nAB==\\n","crypto":"x509"}')).toBe('MIIC\\nAB==\\n')
    expect(certificateOf('{"a":1,"b":[1,{"x":"}"}],"certificate":"C","z":null}')).toBe('C')
    expect(certificateOf(' { "a" : true ,\n "certificate" :\t"C\\"D" } ')).toBe('C\\"D')
    expect(certificateOf('{"a":"\\\\","certificate":"C"}')).toBe('C')
  })

  it('skips a "certificate" nested in an earlier value, or inside a string', () => {
    expect(certificateOf('{"a":{"certificate":"nested"},"certificate":"top"}')).toBe('top')
    expect(certificateOf('{"a":["certificate","x"],"certificate":"top"}')).toBe('top')
    expect(certificateOf('{"a":"\\"certificate\\":\\"no\\"","b":1}')).toBeUndefined()
    expect(certificateOf('{"msg":{"certificate":"nested"}}')).toBeUndefined()
  })

  it('finds nothing in what is not an object with a non-empty string certificate, or text it cannot follow', () => {
    for (const body of ['', '[]', '"certificate"', '{}', '{"certificate":""}', '{"certificate":5}', '{"certificate":null}', '{"certificate":"unterminated', '{"a":{"b":1}', 'not json']) {
      expect(findCertificate(body), body).toBeUndefined()
    }
  })
})

describe('cutting the certificate out and putting it back', () => {
  it('gives back every body exactly, and cuts the value JSON.parse sees as the top-level certificate', () => {
    const seed = Number(process.env['GILMSG_PROPERTY_SEED'] ?? Date.now() % 2 ** 31)
    console.log(`certificates property seed ${seed} (replay: GILMSG_PROPERTY_SEED=${seed})`)
    const key = fc.oneof(fc.constantFrom('certificate', 'crypto', 'msg', 'a', 'signature'), fc.string({ unit: 'binary', maxLength: 6 }))
    const object = fc.dictionary(key, fc.jsonValue({ maxDepth: 3 }), { maxKeys: 6 })
    const withCertificate = fc.tuple(object, fc.string({ unit: 'binary', minLength: 1, maxLength: 40 }), fc.nat()).map(([o, cert, at]) => {
      const entries = Object.entries(o).filter(([k]) => k !== 'certificate')
      entries.splice(at % (entries.length + 1), 0, ['certificate', cert])
      return Object.fromEntries(entries) as Record<string, unknown>
    })
    fc.assert(
      fc.property(fc.oneof(object, withCertificate), fc.boolean(), (value, spaced) => {
        const body = spaced ? JSON.stringify(value, null, 1) : JSON.stringify(value)
        const { restored, cut } = roundTrip(body)
        expect(restored).toBe(body)
        const top = (JSON.parse(body) as Record<string, unknown>)['certificate']
        if (typeof top === 'string' && top.length > 0) expect(JSON.parse(`"${cut ?? ''}"`)).toBe(top)
        else expect(cut).toBeUndefined()
      }),
      { seed, numRuns: 500 },
    )
  })
})
