import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { canonicalize } from '../../../src/json/canonical.js'
import { parseJson } from '../../../src/json/parse.js'

function load(name: string): unknown {
  return JSON.parse(readFileSync(new URL(`../../../spec/vectors/${name}`, import.meta.url), 'utf8'))
}

describe('Python canonical vectors', () => {
  it('reproduces every pair of canon_cases.json', () => {
    const cases = load('canon_cases.json') as [string, string][]
    expect(cases.length).toBe(3026)
    const failures: string[] = []
    cases.forEach(([input, expected], i) => {
      let actual: string
      try {
        actual = canonicalize(parseJson(input))
      } catch (e) {
        actual = `threw ${String(e)}`
      }
      if (actual !== expected) failures.push(`#${i} ${JSON.stringify(input)}: got ${actual}, expected ${expected}`)
    })
    expect(failures).toEqual([])
  })

  it('keeps canonical_corner_cases of vectors.json unchanged', () => {
    const { canonical_corner_cases: corners } = load('vectors.json') as { canonical_corner_cases: { canonical: string }[] }
    expect(corners.length).toBeGreaterThan(0)
    const failures = corners
      .map((c) => ({ input: c.canonical, actual: canonicalize(parseJson(c.canonical)) }))
      .filter((r) => r.actual !== r.input)
    expect(failures).toEqual([])
  })
})
