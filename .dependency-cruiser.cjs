/**
 * Layering rules of src/, checked by `npm run lint:deps` (part of `npm test`).
 * Arrows point down only: each folder lists the folders it may import from. `src/errors.ts`
 * is importable from everywhere; `src/index.ts` and `src/internal.ts` sit on top.
 * A folder imports a sibling only through that sibling's files, never the other way round,
 * and never in a cycle.
 */
const MAY_IMPORT = {
  util: [],
  json: ['util'],
  crypto: ['util'],
  transport: ['util'],
  envelope: ['crypto', 'json', 'util'],
  protocol: [],
  config: ['crypto', 'util'],
  sqlite: ['util'],
  outbox: ['protocol', 'sqlite', 'util'],
  inbox: ['sqlite', 'util'],
  bus: ['config', 'crypto', 'envelope', 'json', 'transport', 'util'],
  reliable: ['bus', 'config', 'crypto', 'envelope', 'inbox', 'json', 'outbox', 'protocol', 'transport', 'util'],
  // observe: metrics, health server and logs of services; reads the layers below, never the CLI.
  observe: ['bus', 'crypto', 'inbox', 'outbox', 'protocol', 'reliable', 'transport', 'util'],
  cli: ['bus', 'config', 'crypto', 'envelope', 'inbox', 'json', 'observe', 'outbox', 'reliable', 'transport', 'util'],
}

const folderRules = Object.entries(MAY_IMPORT).map(([folder, allowed]) => ({
  name: `layer-${folder}`,
  comment: `src/${folder}/ may import only from ${allowed.length ? allowed.map((a) => `src/${a}/`).join(', ') : 'nothing in src/'} (and src/errors.ts)`,
  severity: 'error',
  from: { path: `^src/${folder}/` },
  to: { path: '^src/', pathNot: [`^src/${folder}/`, '^src/errors\\.ts$', ...allowed.map((a) => `^src/${a}/`)] },
}))

module.exports = {
  forbidden: [
    { name: 'no-circular', comment: 'no import cycles', severity: 'error', from: {}, to: { circular: true } },
    {
      name: 'no-unknown-folder',
      comment: 'every folder of src/ has a place in MAY_IMPORT (.dependency-cruiser.cjs)',
      severity: 'error',
      from: { path: '^src/[^/]+/', pathNot: `^src/(${Object.keys(MAY_IMPORT).join('|')})/` },
      to: {},
    },
    {
      name: 'entry-files-on-top',
      comment: 'nothing in src/ imports the public entry files',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^src/(index|internal)\\.ts$' },
    },
    {
      name: 'src-not-from-tests-or-bench',
      comment: 'src/ never imports tests; only `gilmsg bench` (src/cli/bench.ts) runs the benchmark',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/cli/bench\\.ts$' },
      to: { path: '^(test|bench)/' },
    },
    ...folderRules,
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default', 'types'] },
  },
}
