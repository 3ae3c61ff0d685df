/**
 * Finds, reads, checks and resolves the meshsync config: schema problems and every plugin's option
 * problems are collected and thrown together, as one ConfigError naming the file and each path.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { createRequire, isBuiltin } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { cosmiconfig, type Loader } from 'cosmiconfig';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { ConfigError, type ConfigProblem, type ErrorCode } from '../core/errors.ts';
import { withoutJsonExcerpt } from '../core/secrets.ts';
import type { Logger } from '../core/log.ts';
import { isPlugin, zodProblems, type PluginFactory } from '../core/plugin.ts';
import { didYouMean } from '../core/suggest.ts';
import type { Plugin } from '../core/types.ts';
import type { ConfigEnv } from './define.ts';
import { configSchema, LOG_LEVELS, pluginEntrySchema, type LogLevel, type PluginSummary, type ResolvedConfig } from './schema.ts';

export const REDACT_SECRETS = 'meshsync:redact-secrets';

/** What npm accepts as a package name: lower case, an optional @scope/, no spaces or paths. */
const NPM_PACKAGE_NAME = /^(@[a-z0-9-~][a-z0-9-._~]*\/)?[a-z0-9-~][a-z0-9-._~]*$/;

/** Where a config is looked for, in each directory from the working directory up to the project root. */
export const SEARCH_PLACES: readonly string[] = Object.freeze([
  'package.json',
  '.meshsyncrc', '.meshsyncrc.json', '.meshsyncrc.yaml', '.meshsyncrc.yml',
  '.meshsyncrc.ts', '.meshsyncrc.mts', '.meshsyncrc.js', '.meshsyncrc.mjs', '.meshsyncrc.cjs',
  'meshsync.config.ts', 'meshsync.config.mts', 'meshsync.config.js', 'meshsync.config.mjs', 'meshsync.config.cjs',
  'meshsync.config.json', 'meshsync.config.yaml', 'meshsync.config.yml',
]);

export interface LoadConfigOptions {
  /** `--config PATH`: skips the search. Relative to `cwd`. */
  readonly configFile?: string;
  /** Where the search starts; default process.cwd(). */
  readonly cwd?: string;
  /** Default process.env. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly logger?: Logger;
  /** Handed to a config that exports a function. Default `run`. */
  readonly command?: string;
  /** The built-in plugins, named `meshsync:<name>` (the CLI hands over its catalog). Default: none. */
  readonly builtins?: PluginCatalog;
  /**
   * Asked only when the MeshSync defaults apply and BROKER_URL is unset: does the MeshSync custom
   * resource name a broker? The defaults then publish to NATS (the resource's broker), else to stdout.
   * Default: no.
   */
  readonly resourceNamesBroker?: () => Promise<boolean>;
}

/** The built-in plugins a loader resolves by name. */
export interface PluginCatalog {
  readonly names: readonly string[];
  /** Built-ins a process runs once at most, and why (a config listing one twice is refused). */
  readonly runOnce: Readonly<Record<string, string>>;
  /** Imports a built-in's factory; throws when its module cannot load. */
  load(name: string): Promise<unknown>;
}

const NO_BUILTINS: PluginCatalog = Object.freeze({ names: [], runOnce: {}, load: (name: string) => Promise.reject(new Error(`unknown built-in plugin ${name}`)) });

/** True when a module's default export is a plugin factory (a function; definePlugin adds pluginName). */
export function isPluginFactory(value: unknown): value is PluginFactory {
  return typeof value === 'function';
}

export interface LoadedConfig {
  /** The config file, absolute; absent when none was found (MeshSync defaults). */
  readonly file?: string;
  readonly config: ResolvedConfig;
  readonly plugins: readonly Plugin[];
}

/** A config problem with the error code it belongs to. */
export interface LoadProblem extends ConfigProblem {
  readonly code: ErrorCode;
}

type Raw = Record<string, unknown>;

export async function loadConfig(options: LoadConfigOptions = {}): Promise<LoadedConfig> {
  const cwd = options.cwd ?? process.cwd();
  const env = options.env ?? process.env;
  const { file, raw } = await readConfigFile(cwd, options.configFile, { command: options.command ?? 'run' });
  const baseDir = file === undefined ? cwd : dirname(file);
  const problems: LoadProblem[] = [];
  const builtins = options.builtins ?? NO_BUILTINS;

  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) problems.push(...schemaProblems(parsed.error, file));

  const entries = Array.isArray(raw.plugins) ? (raw.plugins as unknown[]) : undefined;
  const plugins: Plugin[] = [];
  if (entries === undefined) {
    // Defaults are only resolved for an otherwise valid config: importing them costs seconds (the Kubernetes client).
    if (raw.plugins === undefined && parsed.success) {
      const resourceBroker = !env.BROKER_URL?.trim() && (await options.resourceNamesBroker?.()) === true;
      plugins.push(...await resolveAll(defaultPluginEntries(env, resourceBroker), 'default plugins', baseDir, undefined, problems, builtins));
    }
  } else {
    const valid = entries.map((entry) => (pluginEntrySchema.safeParse(entry).success ? entry : undefined));
    plugins.push(...await resolveAll(valid, 'plugins', baseDir, file, problems, builtins));
    problems.push(...repeatedBuiltins(valid, file, builtins.runOnce));
  }

  if (!plugins.some((plugin) => plugin.name === REDACT_SECRETS) && problems.length === 0) {
    plugins.push(...await resolveAll([REDACT_SECRETS], 'added plugins', baseDir, undefined, problems, builtins));
    options.logger?.info({ plugin: REDACT_SECRETS }, `${REDACT_SECRETS} added: the config lists none, and secrets never leave in clear by accident (opt out with redactSecrets({ enabled: false }))`);
  }

  const envLogLevel = env.LOG_LEVEL?.trim();
  if (envLogLevel && !(LOG_LEVELS as readonly string[]).includes(envLogLevel)) {
    problems.push({ code: 'MESHSYNC_CONFIG_INVALID', path: 'LOG_LEVEL (environment)', message: `expected one of ${LOG_LEVELS.join(', ')}, got "${envLogLevel}"${didYouMean(envLogLevel, LOG_LEVELS)}` });
  }
  if (problems.length > 0 || !parsed.success) throw configError(problems);

  const data = parsed.data;
  const clusterId = env.CLUSTER_ID?.trim() || data.clusterId;
  const config: ResolvedConfig = Object.freeze({
    ...(clusterId ? { clusterId } : {}),
    plugins: Object.freeze(plugins.map((plugin): PluginSummary => Object.freeze({ name: plugin.name, options: plugin.options }))),
    pipeline: Object.freeze({ ...data.pipeline }),
    stopTimeoutMs: data.stopTimeoutMs,
    logLevel: (envLogLevel as LogLevel | undefined) || data.logLevel,
  });
  return Object.freeze({ ...(file === undefined ? {} : { file }), config, plugins: Object.freeze(plugins) });
}

/**
 * The plugins MeshSync runs with no config file: watch the default resources, a watch-list that
 * passes everything (live edits replace it), the MeshSync custom resource wherever it exists (its
 * watch-list, its broker, its status; quiet without its CRD), redact, publish (to NATS when
 * BROKER_URL or the resource names a broker, else to stdout), serve metrics.
 */
export function defaultPluginEntries(env: Readonly<Record<string, string | undefined>>, resourceNamesBroker = false): (string | [string, object])[] {
  const inCluster = Boolean(env.KUBERNETES_SERVICE_HOST);
  // Outside a cluster the resource is read, but its status belongs to the MeshSync that runs in it.
  const resource: string | [string, object] = inCluster ? 'meshsync:meshsync-resource' : ['meshsync:meshsync-resource', { writeStatus: false }];
  // In a cluster, a Lease keeps one publisher even while a rolling update runs two pods.
  const operations = inCluster ? ['meshsync:leader-election'] : [];
  const sink = env.BROKER_URL?.trim() || resourceNamesBroker ? 'meshsync:nats' : 'meshsync:stdout';
  return ['meshsync:kubernetes', 'meshsync:watch-list', resource, ...operations, REDACT_SECRETS, sink, 'meshsync:metrics'];
}

/** One ConfigError for all problems; its code is theirs when they share one. */
export function configError(problems: readonly LoadProblem[]): ConfigError {
  const codes = new Set(problems.map((problem) => problem.code));
  return new ConfigError(problems, codes.size === 1 ? [...codes][0] : 'MESHSYNC_CONFIG_INVALID');
}

async function readConfigFile(cwd: string, configFile: string | undefined, configEnv: ConfigEnv): Promise<{ file?: string; raw: Raw }> {
  const explorer = cosmiconfig('meshsync', {
    searchPlaces: [...SEARCH_PLACES],
    searchStrategy: 'project',
    cache: false,
    loaders: { '.ts': loadTypeScript, '.mts': loadTypeScript, '.json': loadJson, '.yaml': loadYaml, '.yml': loadYaml, noExt: loadYaml },
  });
  let file: string | undefined = configFile === undefined ? undefined : resolve(cwd, configFile);
  let value: unknown;
  try {
    if (file !== undefined && !existsSync(file)) {
      throw new ConfigError([{ code: 'MESHSYNC_CONFIG_LOAD', file, path: '', message: 'config file not found' } as LoadProblem], 'MESHSYNC_CONFIG_LOAD');
    }
    const result = file === undefined ? await explorer.search(cwd) : await explorer.load(file);
    if (result === null && file === undefined) return { raw: {} };
    file = result?.filepath ?? file!;
    // A named file that holds nothing (cosmiconfig: null, or isEmpty) is an empty config when it is
    // data (YAML, JSON), and a mistake when it is a module that exports nothing.
    if ((result === null || result.isEmpty) && /\.[cm]?[jt]s$/.test(file)) {
      throw configError([{ code: 'MESHSYNC_CONFIG_INVALID', file, path: '', message: 'expected the config to be an object (export default defineConfig({...})), got nothing: the module exports null or undefined, or has no default export' }]);
    }
    value = result === null || result.isEmpty ? {} : result.config;
    if (typeof value === 'function') value = await (value as (env: ConfigEnv) => unknown)(configEnv);
    value = await value;
  } catch (error) {
    throw loadError(error, file ?? (error as { filepath?: string }).filepath);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw configError([{ code: 'MESHSYNC_CONFIG_INVALID', file, path: '', message: `expected the config to be an object (export default defineConfig({...})), got ${describe(value)}` }]);
  }
  return { file, raw: value as Raw };
}

/**
 * A config that throws while it is read: a parse error, or a plugin factory rejecting its options
 * in a TS config. Parsers quote the text around an error (code frames, the token found), and a
 * config's text may hold secrets: the message keeps what went wrong and where, not the text.
 */
function loadError(error: unknown, file: string | undefined): ConfigError {
  if (error instanceof ConfigError || (error as ConfigError)?.name === 'ConfigError') {
    const config = error as ConfigError;
    return new ConfigError(config.problems.map((problem) => ({ ...problem, file: problem.file ?? file, code: config.code })), config.code);
  }
  const lines = thrownText(error).replace(/^(JSON|YAML|TypeScript) Error in [^\n]*:\s*/, '').split('\n');
  // esbuild (a TS config run by tsx): "Transform failed with 1 error:" then "<file>:1:30: ERROR: Expected "}" but found "'…'"".
  const message = (lines[0].endsWith(':') && lines.length > 1 ? `${lines[0]} ${lines[1]}` : lines[0]).replace(/ but found ".*"$/, '');
  return configError([{ code: 'MESHSYNC_CONFIG_LOAD', file, path: '', message }]);
}

/** Imports TS directly when this process can (tsx, or a Node that strips types); else transpiles it with typescript. */
const loadTypeScript: Loader = async (filepath, content) => {
  // A config outside any project that has meshsync (/config in the image, a mounted ConfigMap)
  // still imports 'meshsync': it runs from a scratch directory that links meshsync in.
  if (!seesMeshsync(dirname(filepath))) return importTranspiled(filepath, content, true);
  try {
    const module = await import(pathToFileURL(filepath).href);
    return module.default;
  } catch (error) {
    if ((error as { code?: string }).code !== 'ERR_UNKNOWN_FILE_EXTENSION') throw error;
    return importTranspiled(filepath, content, false);
  }
};

function seesMeshsync(dir: string): boolean {
  try {
    createRequire(join(dir, 'meshsync.config.cjs')).resolve('meshsync/package.json');
    return true;
  } catch {
    return false;
  }
}

/**
 * Transpiles a TS config to an ES module and imports it: next to the config when that directory is
 * writable and sees meshsync (so relative imports work), else in a scratch directory whose
 * node_modules links meshsync and the packages beside it (a ConfigMap at /config is read-only).
 */
async function importTranspiled(filepath: string, content: string, inScratch: boolean): Promise<unknown> {
  const { default: ts } = await import('typescript');
  const { outputText: output, diagnostics = [] } = ts.transpileModule(content, {
    fileName: filepath,
    reportDiagnostics: true,
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: false, rewriteRelativeImportExtensions: true },
  });
  // transpileModule repairs what it cannot parse and goes on: a syntax error must stop here.
  const errors = diagnostics.filter((diagnostic) => diagnostic.category === ts.DiagnosticCategory.Error);
  if (errors.length > 0) {
    throw new Error(`TypeScript: ${errors.map((diagnostic) => {
      const at = diagnostic.file && diagnostic.start !== undefined ? diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start) : undefined;
      return `${at ? `line ${at.line + 1}, column ${at.character + 1}: ` : ''}${ts.flattenDiagnosticMessageText(diagnostic.messageText, ' ')}`;
    }).join('; ')}`);
  }
  const name = `${basename(filepath)}.${randomUUID()}.mjs`;
  let target = join(dirname(filepath), name);
  let scratch: string | undefined;
  if (!inScratch) {
    try {
      await writeFile(target, output);
    } catch (error) {
      if (!['EROFS', 'EACCES', 'EPERM'].includes((error as NodeJS.ErrnoException).code ?? '')) throw error;
      inScratch = true;
    }
  }
  if (inScratch) {
    scratch = await mkdtemp(join(tmpdir(), 'meshsync-config-'));
    await linkPackages(join(scratch, 'node_modules'), dirname(filepath));
    target = join(scratch, name);
    await writeFile(target, output);
  }
  try {
    return (await import(pathToFileURL(target).href)).default;
  } finally {
    await rm(scratch ?? target, { recursive: true, force: true });
  }
}

/** A node_modules for the scratch directory: the packages the config's directory (or meshsync) sees, and meshsync itself. */
async function linkPackages(into: string, configDir: string): Promise<void> {
  await mkdir(into);
  const own = dirname(fileURLToPath(import.meta.url));
  const modules = nearestNodeModules(configDir) ?? nearestNodeModules(own);
  for (const entry of modules ? await readdir(modules) : []) {
    if (!entry.startsWith('.')) await symlink(join(modules!, entry), join(into, entry), 'dir');
  }
  const root = packageRoot(own);
  if (root && !existsSync(join(into, 'meshsync'))) await symlink(root, join(into, 'meshsync'), 'dir');
}

/**
 * The directory of meshsync's own package.json, from this file (config/ in the sources,
 * dist/config/ when built). The outermost wins: tsc also copies package.json into dist/.
 */
function packageRoot(from: string): string | undefined {
  let root: string | undefined;
  for (let dir = from; ; dir = dirname(dir)) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'meshsync') root = dir;
    if (dirname(dir) === dir) return root;
  }
}

function nearestNodeModules(from: string): string | undefined {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'node_modules'))) return join(dir, 'node_modules');
    if (dirname(dir) === dir) return undefined;
  }
}

/** YAML with line and column in its errors, without the excerpt of the file that follows them (see loadError). */
const loadYaml: Loader = (filepath, content) => {
  const document = parseDocument(content, { prettyErrors: true });
  if (document.errors.length > 0) throw new Error(`YAML: ${document.errors.map((error) => error.message.split('\n')[0].replace(/:$/, '')).join('; ')}`);
  return document.toJS();
};

/** JSON with line and column in its errors, without the text V8 quotes around some of them (see loadError). */
const loadJson: Loader = (filepath, content) => {
  try {
    return JSON.parse(content);
  } catch (error) {
    const message = (error as Error).message;
    const at = /^(.*?) in JSON at position (\d+)/.exec(message);
    if (at === null) throw new Error(`JSON: ${withoutJsonExcerpt(message)}`);
    const before = content.slice(0, Number(at[2])).split('\n');
    throw new Error(`JSON: ${at[1]} at line ${before.length}, column ${before.at(-1)!.length + 1}`);
  }
};

function schemaProblems(error: z.ZodError, file: string | undefined): LoadProblem[] {
  return zodProblems(error, '', file, configSchema).map((problem) => ({ code: 'MESHSYNC_CONFIG_INVALID', ...problem }));
}

/** A built-in that runs once per process, listed again: a problem at each repetition. */
function repeatedBuiltins(entries: readonly unknown[], file: string | undefined, runOnce: PluginCatalog['runOnce']): LoadProblem[] {
  const firstAt = new Map<string, number>();
  const problems: LoadProblem[] = [];
  entries.forEach((entry, index) => {
    const name = isPlugin(entry) ? entry.name : typeof entry === 'string' ? entry : Array.isArray(entry) ? entry[0] : undefined;
    if (typeof name !== 'string' || !Object.hasOwn(runOnce, name)) return;
    const first = firstAt.get(name);
    if (first === undefined) firstAt.set(name, index);
    else problems.push({ code: 'MESHSYNC_CONFIG_INVALID', file, path: `plugins[${index}]`, message: `${name} is listed again (first at plugins[${first}]); list it once: ${runOnce[name]}` });
  });
  return problems;
}

async function resolveAll(entries: readonly unknown[], label: string, baseDir: string, file: string | undefined, problems: LoadProblem[], builtins: PluginCatalog): Promise<Plugin[]> {
  const results = await Promise.all(entries.map((entry, index) => (entry === undefined ? undefined : resolvePlugin(entry, `${label}[${index}]`, baseDir, file, builtins))));
  const plugins: Plugin[] = [];
  for (const result of results) {
    if (result === undefined) continue;
    if (Array.isArray(result)) problems.push(...result);
    else plugins.push(result);
  }
  return plugins;
}

/** An entry (instance, name or [name, options]) to a plugin, or the problems that prevent it. */
async function resolvePlugin(entry: unknown, path: string, baseDir: string, file: string | undefined, builtins: PluginCatalog): Promise<Plugin | LoadProblem[]> {
  if (isPlugin(entry)) return entry;
  const [name, options] = typeof entry === 'string' ? [entry, undefined] : (entry as [string, unknown]);
  const problem = (code: ErrorCode, message: string, at = path): LoadProblem[] => [{ code, file, path: at, message }];

  let factory: unknown;
  if (name.startsWith('meshsync:')) {
    if (!builtins.names.includes(name)) {
      return problem('MESHSYNC_CONFIG_INVALID', `unknown built-in plugin "${name}"${suggestBuiltin(name.slice('meshsync:'.length), builtins)} (built-ins: ${builtins.names.join(', ')})`);
    }
    try {
      factory = await builtins.load(name);
    } catch (error) {
      return problem('MESHSYNC_PLUGIN_NOT_FOUND', `built-in plugin "${name}" could not be loaded: ${messageOf(error)}`);
    }
  } else if (builtins.names.includes(`meshsync:${name}`)) {
    return problem('MESHSYNC_CONFIG_INVALID', `unknown plugin "${name}": built-ins take the meshsync: prefix; did you mean "meshsync:${name}"?`);
  } else if (isBuiltin(name)) {
    // Node resolves a built-in's name to the name itself, which an import reads as a file of the working directory.
    return problem('MESHSYNC_CONFIG_INVALID', `"${name}" is a Node.js built-in module, not a plugin package: a plugin is a built-in ("meshsync:nats") or an npm package ("meshsync-plugin-example")`);
  } else if (!NPM_PACKAGE_NAME.test(name)) {
    return problem('MESHSYNC_CONFIG_INVALID', `"${name}" is not a package name: a plugin is a built-in ("meshsync:nats") or an npm package ("meshsync-plugin-example"); a plugin in a file of your own goes into a TS or JS config as an imported instance`);
  } else {
    // Beside the config first, then beside meshsync (the image: /config holds the file, /app the packages).
    const root = packageRoot(dirname(fileURLToPath(import.meta.url)));
    let loaded = await importPackage(name, baseDir);
    if ('error' in loaded && loaded.notInstalled && root !== undefined && !baseDir.startsWith(root)) loaded = await importPackage(name, root);
    if ('error' in loaded) {
      // A bare name one typo away from a built-in ("nast") is likelier that built-in than a package.
      const builtin = loaded.notInstalled ? suggestBuiltin(name, builtins) : '';
      return problem('MESHSYNC_PLUGIN_NOT_FOUND', loaded.notInstalled
        ? `plugin package "${name}" is not installed (looked from ${baseDir}${root && !baseDir.startsWith(root) ? ` and ${root}` : ''})${builtin ? `${builtin} If not, install it` : '; install it'}: npm install ${name}`
        : `plugin package "${name}" could not be loaded: ${loaded.error}; reinstall it (npm install ${name}) or report it to its authors`);
    }
    factory = loaded.module.default;
    if (!isPluginFactory(factory) && isPluginFactory((factory as { default?: unknown } | undefined)?.default)) factory = (factory as { default: unknown }).default;
    if (!isPluginFactory(factory)) {
      return problem('MESHSYNC_PLUGIN_INVALID', `plugin package "${name}" does not export a plugin factory as its default export (got ${describe(factory)})`);
    }
  }
  if (!isPluginFactory(factory)) return problem('MESHSYNC_PLUGIN_INVALID', `"${name}" does not export a plugin factory`);

  const schema = factory.optionsSchema as z.ZodType | undefined;
  if (schema && typeof schema.safeParse === 'function') {
    const checked = schema.safeParse(options ?? {});
    if (!checked.success) {
      return zodProblems(checked.error, `${path}.options`, file, schema).map((problem) => ({ code: 'MESHSYNC_PLUGIN_OPTIONS' as const, ...problem }));
    }
  }
  let plugin: unknown;
  try {
    plugin = factory(options as never);
  } catch (error) {
    if ((error as ConfigError)?.name === 'ConfigError') {
      return (error as ConfigError).problems.map((p) => ({ code: (error as ConfigError).code, file, path: `${path}.options${p.path.replace(/^.*? options/, '')}`, message: p.message }));
    }
    return problem('MESHSYNC_PLUGIN_INVALID', `plugin "${name}" threw when created: ${messageOf(error)}`);
  }
  if (!isPlugin(plugin)) return problem('MESHSYNC_PLUGIN_INVALID', `plugin "${name}"'s factory did not return { name, apply(core) } (got ${describe(plugin)})`);
  return plugin;
}

/** `; did you mean "meshsync:nats"?` for `nast`: built-ins compared by their names without the prefix. */
function suggestBuiltin(name: string, builtins: PluginCatalog): string {
  return didYouMean(name, builtins.names.map((builtin) => builtin.slice('meshsync:'.length)), (builtin) => `"meshsync:${builtin}"`);
}

/**
 * Imports a package as `baseDir` sees it (its node_modules, then the parents'). A name only ever
 * resolves to a package directory under a node_modules (`<dir>/node_modules/<name>/package.json`)
 * and to a file inside it: never to a
 * file beside the config, nor to anything relative to the working directory.
 */
async function importPackage(name: string, baseDir: string): Promise<{ module: { default?: unknown } } | { error: string; notInstalled: boolean }> {
  const packageDir = findPackageDir(name, baseDir);
  if (packageDir === undefined) return { error: `no node_modules/${name} from ${baseDir}`, notInstalled: true };
  let entry: string | undefined;
  try {
    entry = createRequire(join(packageDir, 'package.json')).resolve(name);
  } catch (error) {
    const code = (error as { code?: string }).code;
    // require refuses an ESM-only package, and misses an entry behind a condition it does not use
    // (`source`, when the CLI runs from TypeScript sources): read the package's exports as import does.
    entry = resolveImportEntry(packageDir);
    if (entry === undefined) return { error: messageOf(error), notInstalled: code === 'MODULE_NOT_FOUND' };
    if (!existsSync(entry)) return { error: `its entry ${entry} does not exist (is the package built?)`, notInstalled: false };
  }
  if (!isAbsolute(entry) || !within(realpathSync(packageDir), realpathSync(entry))) {
    return { error: `it resolves to ${entry}, outside its package directory ${packageDir}`, notInstalled: false };
  }
  try {
    return { module: await import(pathToFileURL(entry).href) };
  } catch (error) {
    return { error: messageOf(error), notInstalled: false };
  }
}

/** `<dir>/node_modules/<name>` with a package.json, from `from` up to the root. */
function findPackageDir(name: string, from: string | undefined): string | undefined {
  for (let dir = from; dir !== undefined; dir = dirname(dir) === dir ? undefined : dirname(dir)) {
    const packageDir = join(dir, 'node_modules', name);
    if (existsSync(join(packageDir, 'package.json'))) return packageDir;
  }
  return undefined;
}

function within(dir: string, file: string): boolean {
  const path = relative(dir, file);
  return path !== '' && !path.startsWith('..') && !isAbsolute(path);
}

/** The `import` entry of an ESM-only package (require.resolve refuses those): exports['.'] under import/node/default. */
function resolveImportEntry(packageDir: string): string | undefined {
  const manifest = JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8')) as { exports?: unknown };
  const exports = manifest.exports as Record<string, unknown> | string | undefined;
  const root = typeof exports === 'object' && exports !== null && '.' in exports ? exports['.'] : exports;
  const target = pickCondition(root, [...userConditions(), 'import', 'node', 'default']);
  return target === undefined ? undefined : join(packageDir, target);
}

function pickCondition(target: unknown, conditions: readonly string[]): string | undefined {
  if (typeof target === 'string') return target;
  if (Array.isArray(target)) return target.map((item) => pickCondition(item, conditions)).find((item) => item !== undefined);
  if (typeof target !== 'object' || target === null) return undefined;
  for (const [condition, next] of Object.entries(target)) {
    if (conditions.includes(condition)) {
      const picked = pickCondition(next, conditions);
      if (picked !== undefined) return picked;
    }
  }
  return undefined;
}

/** `--conditions` given to this process (e.g. `source` in development). */
function userConditions(): string[] {
  const args = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
  const out: string[] = [];
  args.forEach((arg, index) => {
    const inline = /^(?:--conditions|-C)=(.+)$/.exec(arg);
    if (inline) out.push(inline[1]);
    else if ((arg === '--conditions' || arg === '-C') && args[index + 1]) out.push(args[index + 1]);
  });
  return out;
}

/** What a config or plugin threw, as text: an Error's message, else a description of the value (never `[object Object]`). */
function thrownText(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (typeof (error as { message?: unknown } | null)?.message === 'string') return (error as { message: string }).message;
  return typeof error === 'object' && error !== null ? `it threw ${describe(error)} that is not an Error` : `it threw ${String(error)}`;
}

function messageOf(error: unknown): string {
  return thrownText(error).split('\n')[0];
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : typeof value;
}
