/**
 * The import directions of src/ (ARCHITECTURE.md draws them): each folder may import only the folders
 * listed for it; anything else, any cycle, or a source file no test reaches fails `npm test`
 * (test/architecture.test.ts runs `depcruise src test` with this file; so does `npm run lint:imports`).
 */

/** Leaves: anyone may import them; they import no folder of ours. */
const LEAVES = ['errors.ts', 'mime', 'net', 'observability/logger.ts', 'observability/iso-time.ts', 'config'];

/** folder (under src/) → the folders it may import, besides itself and the leaves. */
const MAY_IMPORT = {
  'cli.ts': ['cli', 'app', 'auth', 'spool', 'graph'],
  // history search and .eml export read the history file and the spool directly, as the queue tools do.
  cli: ['app', 'auth', 'spool', 'graph', 'history'],
  app: ['smtp', 'delivery', 'scheduler', 'fleet', 'graph', 'auth', 'spool', 'observability', 'policy', 'history', 'web'],
  smtp: ['cleanup', 'policy', 'spool'],
  cleanup: ['policy'],
  policy: [],
  delivery: ['graph', 'scheduler', 'spool', 'policy'],
  scheduler: [],
  // the slots a fleet of replicas shares on Redis; the scheduler asks them through its MailboxSlots interface
  fleet: ['scheduler'],
  graph: ['auth'],
  auth: [],
  spool: [],
  // the delivery history: records made from the delivery engine's events (types) and queue ids (time order).
  history: ['delivery', 'spool'],
  // the status page: routes, login, CSRF and the page itself; what it shows and does comes through the
  // StatusSource that app/ builds, so it reads history types and nothing below.
  web: ['history'],
  // metrics, readiness and the admin listener observe the parts below (types and events), and are made by app/.
  observability: ['delivery', 'graph', 'spool', 'auth', 'scheduler', 'fleet'],
  // the leaves themselves
  mime: [],
  net: [],
  config: [],
  'errors.ts': [],
};

const esc = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const path = (folder) => `^src/${esc(folder)}${folder.endsWith('.ts') ? '$' : '/'}`;

/** One rule per folder: from it, anything in src/ that is neither its own folder, a leaf, nor allowed. */
const perFolder = Object.entries(MAY_IMPORT).map(([from, to]) => ({
  name: `imports-of-${from.replace(/[/.]/g, '-')}`,
  comment: `src/${from} may import only ${[...to, ...LEAVES].join(', ')} (ARCHITECTURE.md)`,
  severity: 'error',
  from: { path: path(from) },
  to: { path: '^src/', pathNot: [path(from), ...to.map(path), ...LEAVES.map(path)] },
}));

/** Leaves are leaves: the logger and the clock format may import nothing of ours. */
const leafFiles = ['observability/logger.ts', 'observability/iso-time.ts'].map((f) => ({
  name: `leaf-${f.replace(/[/.]/g, '-')}`,
  comment: `src/${f} is a leaf: anyone imports it, it imports nothing of ours`,
  severity: 'error',
  from: { path: path(f) },
  to: { path: '^src/', pathNot: [path(f), path('observability/iso-time.ts')] },
}));

module.exports = {
  forbidden: [
    ...perFolder,
    ...leafFiles,
    {
      name: 'leaves-import-no-folder',
      comment: 'mime/, net/, config/ and errors.ts import only each other’s leaves: they sit below everything',
      severity: 'error',
      from: { path: '^src/(mime|net|config)/|^src/errors\\.ts$' },
      to: { path: '^src/', pathNot: ['^src/(mime|net|config)/', '^src/errors\\.ts$'] },
    },
    { name: 'no-cycles', comment: 'no import cycles', severity: 'error', from: {}, to: { circular: true } },
    {
      name: 'exercised-by-a-test',
      comment:
        'every source file is reached from a test file; the command line is the exception: the tests run it as the built binary (test/system/cli.test.ts)',
      severity: 'error',
      from: { path: '^test/.*\\.test\\.ts$' },
      to: { path: '^src/', pathNot: '^src/cli(\\.ts$|/)', reachable: false },
    },
    {
      name: 'src-not-from-tests',
      comment: 'src/ never imports from test/ or bench/',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(test|bench)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    moduleSystems: ['es6'],
  },
};
