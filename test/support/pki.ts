/**
 * The tests' PKI fixture: a CA and named leaves in a directory, with their PEM texts. The
 * benchmark makes the same at run time, so the one implementation lives in bench/lib/pki.ts.
 */
export { createPki as createTestPki } from '../../bench/lib/pki.js'
export type { Pki as TestPki, PkiLeaf as TestPkiLeaf, PkiLeafSpec as TestPkiLeafSpec } from '../../bench/lib/pki.js'
