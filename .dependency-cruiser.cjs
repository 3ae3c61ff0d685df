/**
 * The layering rules (README, "Layout"), checked by `npm run test:layers`:
 *   cli -> config -> plugins -> kubernetes (a public library) -> core; testing -> core.
 * Type-only imports count: a layer that names another's types depends on it.
 */
const PRODUCTION = '^(index[.]ts|cli|config|core|kubernetes|plugins)(/|$)';

module.exports = {
  forbidden: [
    {
      name: 'core-stands-alone',
      comment: 'core/ is the engine only: it imports neither config, plugins, cli nor testing (nor the libraries plugins use).',
      severity: 'error',
      from: { path: '^core/' },
      to: { path: '^(index[.]ts$|cli/|config/|plugins/|testing/|kubernetes/|test/|bench/)' },
    },
    {
      name: 'plugins-use-the-public-api',
      comment: 'A built-in plugin imports only what a third-party plugin may: core/index.ts (meshsync) and kubernetes/index.ts (meshsync/kubernetes).',
      severity: 'error',
      from: { path: '^plugins/' },
      to: { path: '^(core|kubernetes)/', pathNot: '^(core|kubernetes)/index[.]ts$' },
    },
    {
      name: 'plugins-stand-alone',
      comment: 'A plugin imports no other plugin: what two share is public, in core or a library.',
      severity: 'error',
      from: { path: '^plugins/([^/]+)/' },
      to: { path: '^plugins/', pathNot: '^plugins/$1/' },
    },
    {
      name: 'plugins-import-nothing-above',
      comment: 'Plugins are composed by the CLI and configured by config/: they import neither, nor the package entry, nor the test kit.',
      severity: 'error',
      from: { path: '^plugins/' },
      to: { path: '^(index[.]ts$|cli/|config/|testing/|test/|bench/)' },
    },
    {
      name: 'libraries-use-the-public-api',
      comment: 'A shared library (kubernetes/, meshsync/kubernetes) is public itself: it imports core/index.ts only, and no plugin, config or CLI.',
      severity: 'error',
      from: { path: '^kubernetes/' },
      to: { path: '^(index[.]ts$|cli/|config/|plugins/|testing/|test/|bench/|core/(?!index[.]ts$))' },
    },
    {
      name: 'config-takes-the-catalog',
      comment: 'config/ resolves plugins from the catalog the CLI hands it: it imports no plugin and no CLI.',
      severity: 'error',
      from: { path: '^config/' },
      to: { path: '^(index[.]ts$|cli/|plugins/|testing/|test/|bench/)' },
    },
    {
      name: 'test-doubles-stay-out',
      comment: 'Nothing that ships in the image imports the test kit, the tests or the benchmarks (the demo loads testing/ at run time, see cli/demo.ts).',
      severity: 'error',
      from: { path: PRODUCTION },
      to: { path: '^(testing|test|bench)/' },
    },
    {
      name: 'testing-uses-the-public-api',
      comment: 'The test kit (meshsync/testing) is written against the public API, as plugin authors use it.',
      severity: 'error',
      from: { path: '^testing/' },
      to: { path: '^(index[.]ts$|cli/|config/|plugins/|kubernetes/|test/|bench/|core/(?!index[.]ts$))' },
    },
    {
      name: 'no-cycles',
      comment: 'Every arrow points down: no module reaches itself again through its imports.',
      severity: 'error',
      from: { path: PRODUCTION },
      to: { circular: true },
    },
    {
      name: 'resolvable',
      comment: 'Every import resolves (a moved file left no stale path behind).',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)(node_modules|dist|fixtures)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['source', 'import', 'node', 'default'] },
  },
};
