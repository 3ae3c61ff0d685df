/**
 * The `meshsync` command, the composition root: parses the command line and runs validate,
 * print-config, install and rbac here, run and snapshot in run.ts, the demo cluster in demo.ts.
 * Logs go to stderr; stdout belongs to the stdout sink and to print-config.
 */
import { readFileSync, realpathSync } from 'node:fs';
import { basename, extname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import type { LoadProblem } from '../config/load.ts';
import { maskSecrets, secretPaths } from '../config/mask.ts';
import { LOG_LEVELS } from '../config/schema.ts';
import { ConfigError, ERROR_CODES, formatProblems, MeshSyncError, type ErrorCode } from '../core/errors.ts';
import { createLogger } from '../core/log.ts';
import { redactSecretsInText } from '../core/secrets.ts';
import { didYouMean } from '../core/suggest.ts';
import { loadConfig } from './config.ts';
import { hasKubeConfig, startDemo, type DemoRun } from './demo.ts';
import { commandHelp, flagLines, parseFlags, UsageError, type CommandSpec, type FlagSpec } from './args.ts';
import { INSTALL_FLAGS, INSTALL_NOTES, runInstallCommand, type ShippedConfig } from './install/command.ts';
import { INSTALL_DEFAULTS } from './install/manifests.ts';
import { BUILTINS } from './builtins.ts';
import { MANIFEST, OWN_IMAGE } from './package-info.ts';
import { createProgressDisplay } from './progress.ts';
import { createCoreFrom, heapFlagsFor, run, snapshot } from './run.ts';

const SHARED_FLAGS = {
  config: { type: 'string', short: 'c', value: '<file>', help: 'config file (default: search for meshsync.config.*, .meshsyncrc*, package.json "meshsync")' },
  'log-level': { type: 'string', value: '<level>', help: `${LOG_LEVELS.join(' | ')} (beats LOG_LEVEL and the config)` },
} as const satisfies Record<string, FlagSpec>;
const SIMULATOR_FLAG = {
  simulator: { type: 'string', value: '[auto]', help: 'run against a built-in simulated cluster (demo mode);\n"auto": only when no kubeconfig or service account is found' },
} as const satisfies Record<string, FlagSpec>;

/** Every command: its flags, summary and examples (parsing, --help and "did you mean" read this). */
export const COMMANDS = {
  run: {
    brief: 'watch the cluster and deliver every change (default)',
    summary: 'Watch the cluster and deliver every change to the sinks until stopped (Ctrl-C or SIGTERM: drains first, for stopTimeoutMs at most, and exits 3 if events were left undelivered; a second Ctrl-C, a second later or more, exits at once).',
    flags: { ...SHARED_FLAGS, ...SIMULATOR_FLAG },
    examples: ['meshsync run --config meshsync.config.ts', 'meshsync run --simulator          # a demo against a simulated cluster'],
  },
  validate: {
    brief: 'check the config and exit: 0 when valid, 1 with every problem',
    summary: 'Check the config without starting anything: exit 0 and "valid: <file>", or exit 1 with every problem (file, path, expected).',
    flags: SHARED_FLAGS,
    examples: ['meshsync validate --config meshsync.config.yaml'],
  },
  'print-config': {
    brief: 'print the resolved config as JSON, secrets masked',
    summary: 'Print the resolved config (defaults, environment and plugins applied) as JSON, secrets masked.',
    flags: SHARED_FLAGS,
    examples: ['meshsync print-config > resolved.json'],
  },
  snapshot: {
    brief: 'sync once, write the current state to --out, exit',
    summary: 'Sync once, write the current state of the cluster to --out and exit; nothing is delivered to the config\'s sinks.',
    flags: {
      ...SHARED_FLAGS, ...SIMULATOR_FLAG,
      out: { type: 'string', short: 'o', value: '<file>', help: 'where to write the state: one JSON array for a .json file, else JSON lines' },
      timeout: { type: 'string', value: '<ms>', help: 'how long the whole run may take, start-up included, before it fails (default 120000)' },
    },
    examples: ['meshsync snapshot --out state.json --timeout 30000', 'meshsync snapshot --simulator --out state.jsonl'],
  },
  install: {
    brief: 'print the manifests that run meshsync in a cluster (meshsync install | kubectl apply -f -)',
    summary: 'Print the manifests that run meshsync in a cluster, with RBAC for exactly what the config watches.',
    flags: { ...INSTALL_FLAGS, ...SHARED_FLAGS },
    notes: INSTALL_NOTES,
    examples: ['meshsync install --config cluster.yaml --broker-url nats://meshery-nats.meshery:4222 | kubectl apply -f -'],
  },
  rbac: {
    brief: 'print the least-privilege RBAC for the config',
    summary: 'Print only the ServiceAccount\'s RBAC: list and watch on exactly the resources the config watches.',
    flags: { namespace: INSTALL_FLAGS.namespace, name: INSTALL_FLAGS.name, replicas: INSTALL_FLAGS.replicas, ...SHARED_FLAGS },
    examples: ['meshsync rbac --config meshsync.config.yaml | kubectl apply -f -'],
  },
} as const satisfies Record<string, CommandSpec>;
type Command = Exclude<keyof typeof COMMANDS, 'install' | 'rbac'>;

/** For "--out is an option of snapshot, not of run". */
const FLAG_OWNERS: Record<string, string> = {};
for (const [name, spec] of Object.entries(COMMANDS) as [string, CommandSpec][]) for (const flag of Object.keys(spec.flags)) FLAG_OWNERS[flag] ??= name;

const HELP = `Usage: meshsync [command] [options]

Keeps an outside system (NATS, by default) in sync with one Kubernetes cluster.

Commands:
${Object.entries(COMMANDS).map(([name, spec]) => `  ${name.padEnd(14)}${spec.brief}`).join('\n')}

Options:
${flagLines({ ...COMMANDS.snapshot.flags, help: { type: 'boolean', short: 'h', help: 'show this help; meshsync <command> --help shows a command\'s own' }, version: { type: 'boolean', short: 'v', help: 'show the version' } })}

Environment: CLUSTER_ID, BROKER_URL, LOG_LEVEL, KUBECONFIG, MESHSYNC_CONFIG_DIR (where the config search
starts; default the working directory). See config/README.md for precedence.
Exit codes: 0 done, 1 failed (the message says why), 2 bad command line, 3 run stopped with events
not delivered by the stop deadline (stopTimeoutMs; the log says how many).`;

export interface CliIo {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  readonly env: NodeJS.ProcessEnv;
  readonly cwd: string;
}

interface CliOptions {
  command: Command;
  config?: string;
  logLevel?: string;
  simulator: 'off' | 'on' | 'auto';
  out?: string;
  timeoutMs: number;
}

/** Runs the CLI; resolves with the exit code (run resolves only when stopped by a signal). */
export async function main(argv: readonly string[], io: CliIo = { stdout: process.stdout, stderr: process.stderr, env: process.env, cwd: process.cwd() }): Promise<number> {
  if (argv[0] === 'install' || argv[0] === 'rbac') return installCommand(argv[0], argv.slice(1), io);
  let options: CliOptions;
  try {
    const parsed = parseCommandLine(argv);
    if (parsed === 'version') return write(io.stdout, `${MANIFEST.version}\n`), 0;
    if (typeof parsed === 'object' && 'help' in parsed) return write(io.stdout, `${parsed.help}\n`), 0;
    options = parsed;
  } catch (error) {
    const command = error instanceof UsageError ? error.command : undefined;
    write(io.stderr, `meshsync: ${(error as Error).message} (see meshsync ${command ? `${command} ` : ''}--help)\n`);
    return 2;
  }

  // validate and print-config answer on stdout: their logs say only what needs attention, unless asked.
  const quiet = options.command === 'validate' || options.command === 'print-config';
  // On a terminal, run and snapshot draw their start-up and initial sync live; logs go above it.
  const display = (options.command === 'run' || options.command === 'snapshot') && io.stderr === process.stderr && process.stderr.isTTY
    ? createProgressDisplay(process.stderr) : undefined;
  const logger = createLogger({ level: options.logLevel ?? envLogLevel(io.env, quiet ? 'warn' : 'info'), ...(display ? { destination: display.logStream, pretty: true } : {}) });
  let demo: DemoRun | undefined;
  try {
    if (options.command === 'run' || options.command === 'snapshot') {
      for (const flag of heapFlagsFor(process.execArgv)) setFlagsFromString(flag);
      if (options.simulator === 'on' || (options.simulator === 'auto' && !hasKubeConfig(io.env))) {
        demo = await startDemo(io.env, (text) => write(io.stderr, text));
      }
    }
    const loaded = await loadConfig({
      configFile: options.config, cwd: configSearchDir(io, options.config), env: io.env, logger, command: options.command,
      // Only what runs, or shows what would run, asks the cluster; validate reads nothing but the config.
      ...(options.command === 'run' || options.command === 'print-config' ? { resourceNamesBroker: () => resourceNamesBroker(io.env) } : {}),
    });
    if (options.logLevel === undefined && io.env.LOG_LEVEL === undefined && !quiet) logger.level = loaded.config.logLevel;
    switch (options.command) {
      case 'validate':
        createCoreFrom(loaded, logger); // apply() of every plugin runs too: taps only, no I/O
        write(io.stdout, `valid: ${loaded.file ?? 'no config file (MeshSync defaults)'}\n`);
        return 0;
      case 'print-config':
        write(io.stdout, `${JSON.stringify(maskSecrets({ file: loaded.file ?? null, ...loaded.config }), null, 2)}\n`);
        return 0;
      case 'snapshot':
        return await snapshot(loaded, logger, resolve(io.cwd, options.out!), options.timeoutMs, display);
      case 'run':
        // Events printed on the same terminal are the display already: a live region would tear them.
        return await run(loaded, logger, process.stdout.isTTY && loaded.plugins.some((plugin) => plugin.name === 'meshsync:stdout') ? undefined : display);
    }
    return 2;
  } catch (error) {
    write(io.stderr, formatError(error));
    return 1;
  } finally {
    display?.stop();
    await demo?.stop();
    logger.flush?.();
  }
}

/** Throws a usage error for an empty --config, or one given more than once (in any spelling: --config F, --config=F, -c F, -cF). */
function checkConfigFlag(command: string, argv: readonly string[], value: string | undefined): void {
  if (value !== undefined && value.trim() === '') throw new UsageError('--config needs a file', command);
  if (argv.filter((arg) => arg === '--config' || arg.startsWith('--config=') || arg.startsWith('-c')).length > 1) throw new UsageError('--config is given more than once', command);
}

/**
 * Where the config search starts: MESHSYNC_CONFIG_DIR when set (the image sets /config, so it
 * finds the mounted config while its working directory is not that mount), else the working
 * directory; a --config path is relative to the working directory.
 */
function configSearchDir(io: CliIo, configFile: string | undefined): string {
  const dir = io.env.MESHSYNC_CONFIG_DIR?.trim();
  return configFile === undefined && dir ? resolve(io.cwd, dir) : io.cwd;
}

/** Whether the MeshSync custom resource (as the defaults read it: POD_NAMESPACE, else meshery) names a broker; no when there is no cluster to ask. */
async function resourceNamesBroker(env: NodeJS.ProcessEnv): Promise<boolean> {
  if (!hasKubeConfig(env)) return false;
  const { readResourceBroker } = await import('../plugins/meshsync-resource/index.ts');
  return (await readResourceBroker({ namespace: env.POD_NAMESPACE?.trim() || 'meshery' }, env)) !== undefined;
}

/** LOG_LEVEL when it names a level, else `fallback`: the config loader reports a bad one with every other problem. */
function envLogLevel(env: NodeJS.ProcessEnv, fallback: string): string {
  const level = env.LOG_LEVEL?.trim();
  return level && (LOG_LEVELS as readonly string[]).includes(level) ? level : fallback;
}

/** Runs `load` with process.env.POD_NAMESPACE set as given (plugin option defaults read it), then puts it back. */
async function withPodNamespace<T>(namespace: string, load: () => Promise<T>): Promise<T> {
  const before = process.env.POD_NAMESPACE;
  process.env.POD_NAMESPACE = namespace;
  try {
    return await load();
  } finally {
    if (before === undefined) delete process.env.POD_NAMESPACE;
    else process.env.POD_NAMESPACE = before;
  }
}

/** `meshsync install|rbac`: manifests for the config in force, on stdout (for kubectl apply -f -). */
async function installCommand(command: 'install' | 'rbac', argv: readonly string[], io: CliIo): Promise<number> {
  const logger = createLogger({ level: envLogLevel(io.env, 'warn') });
  let flags: Record<string, string | boolean | undefined>;
  try {
    const parsed = parseFlags(command, argv, COMMANDS[command].flags, FLAG_OWNERS);
    if (parsed.values.help) return write(io.stdout, `${commandHelp(command, COMMANDS[command])}\n`), 0;
    if (parsed.positionals.length) throw new UsageError(`unexpected arguments: ${parsed.positionals.join(' ')}`, command);
    flags = parsed.values as Record<string, string | boolean | undefined>;
    checkConfigFlag(command, argv, flags.config as string | undefined);
  } catch (error) {
    write(io.stderr, `meshsync ${command}: ${(error as Error).message} (see meshsync ${command} --help)\n`);
    return 2;
  }
  try {
    // The config resolves as in the pod, where POD_NAMESPACE is the namespace installed into: plugins
    // that default their namespace to it (the MeshSync resource, the Lease) must not take this machine's.
    const podNamespace = (flags.namespace as string | undefined) ?? INSTALL_DEFAULTS.namespace;
    const loaded = await withPodNamespace(podNamespace, () => loadConfig({ configFile: flags.config as string | undefined, cwd: io.cwd, env: { ...io.env, POD_NAMESPACE: podNamespace }, logger, command: 'run' }));
    // No file: the pod runs the in-cluster defaults, whatever this machine's defaults are.
    const secrets = loaded.file ? secretPaths(loaded.config) : [];
    const shipped = loaded.file ? shippedConfig(loaded.file, secrets.length > 0) : undefined;
    // The image holds the built-ins, and what its PLUGINS build argument added: the default one only the built-ins.
    const added = command === 'install' ? loaded.plugins.map((plugin) => plugin.name).filter((name) => !BUILTINS.names.includes(name)) : [];
    if (added.length > 0) {
      const build = `PLUGINS="${[...new Set(added)].join(' ')}" npm run image`;
      if (flags.image === undefined) {
        throw new MeshSyncError('MESHSYNC_IMAGE_LACKS_PLUGIN', `the config names ${added.join(', ')}, which the default image ${OWN_IMAGE} does not hold (it has the built-in plugins only): the pod would fail at start. Build an image with them (${build}) and pass it with --image`);
      }
      write(io.stderr, `meshsync install: the config names plugins that are not built in (${added.join(', ')}): the image ${flags.image} must hold them (${build} builds one)\n`);
    }
    const manifests = runInstallCommand(command, argv, loaded.file ? loaded.config : undefined, shipped);
    if (command === 'install' && shipped?.holdsSecrets) {
      write(io.stderr, `meshsync install: the config holds credentials (${secrets.join(', ')}): it goes into a Secret, not a ConfigMap\n`);
    }
    write(io.stdout, manifests);
    return 0;
  } catch (error) {
    if (error instanceof MeshSyncError) {
      write(io.stderr, formatError(error));
      return 1;
    }
    write(io.stderr, `meshsync ${command}: ${(error as Error).message}\n`);
    return 2;
  }
}

/** The config file as the pod will read it from /config: its text, under a name whose extension tells the format. */
function shippedConfig(file: string, holdsSecrets: boolean): ShippedConfig {
  const text = readFileSync(file, 'utf8');
  if (basename(file) === 'package.json') return { text: `${JSON.stringify((JSON.parse(text) as { meshsync?: unknown }).meshsync ?? {}, null, 2)}\n`, file: 'meshsync.config.json', holdsSecrets };
  const extension = extname(file);
  // .meshsyncrc has no extension and holds YAML or JSON (YAML reads both).
  return { text, file: `meshsync.config${extension === '' || extension === '.meshsyncrc' ? '.yaml' : extension}`, holdsSecrets };
}

function parseCommandLine(argv: readonly string[]): CliOptions | { help: string } | 'version' {
  // `--simulator` takes an optional value: `--simulator`, `--simulator auto`, `--simulator=auto`.
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] !== '--simulator') args.push(argv[i]);
    else if (argv[i + 1] === 'auto' || argv[i + 1] === 'on' || argv[i + 1] === 'off') args.push(`--simulator=${argv[++i]}`);
    else args.push('--simulator=on');
  }
  if (args.length === 0 || args[0] === '--help' || args[0] === '-h') return args.length === 0 ? runOptions({}) : { help: HELP };
  if (args[0] === '--version' || args[0] === '-v') return 'version';
  // The command is the first word; flags before it are the default command's (`meshsync --config x` runs).
  const named = !args[0].startsWith('-');
  const name = named ? args[0] : 'run';
  if (!Object.hasOwn(COMMANDS, name)) {
    throw new Error(`unknown command "${name}"${didYouMean(name, Object.keys(COMMANDS))} (commands: ${Object.keys(COMMANDS).join(', ')})`);
  }
  const command = name as Command;
  const spec: CommandSpec = COMMANDS[command];
  const rest = named ? args.slice(1) : args;
  const { values, positionals } = parseFlags(command, rest, spec.flags, FLAG_OWNERS);
  if (values.help) return { help: command === 'run' && !named ? HELP : commandHelp(command, spec) };
  if (positionals.length > 0) throw new UsageError(`unexpected arguments: ${positionals.join(' ')}`, command);
  return runOptions(values as Record<string, string | undefined>, command, rest);
}

/** The options of run, validate, print-config or snapshot from their parsed flags. */
function runOptions(values: Record<string, string | undefined>, command: Command = 'run', argv: readonly string[] = []): CliOptions {
  const logLevel = values['log-level'];
  if (logLevel !== undefined && !(LOG_LEVELS as readonly string[]).includes(logLevel)) throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}${didYouMean(logLevel, LOG_LEVELS)}`, command);
  const simulator = values.simulator ?? 'off';
  if (simulator !== 'off' && simulator !== 'on' && simulator !== 'auto') throw new UsageError('--simulator takes no value, or "auto"', command);
  const timeoutMs = values.timeout === undefined ? 120_000 : Number(values.timeout);
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) throw new UsageError('--timeout must be a positive number of milliseconds', command);
  if (command === 'snapshot' && !values.out) throw new UsageError('snapshot needs --out <file>', command);
  checkConfigFlag(command, argv, values.config);
  return { command, config: values.config, logLevel, simulator, out: values.out, timeoutMs };
}

/**
 * A fatal error for stderr: code, message, causes and remedies, with the credentials its text may
 * quote masked. A config problem's path is not masked: key names are never secrets (`token` is a
 * key, only its value is one), and masking `key: "formt"` would hide the very typo to fix.
 */
export function formatError(error: unknown): string {
  if (!(error instanceof MeshSyncError)) {
    return `meshsync: error: ${redactSecretsInText(error instanceof Error ? error.message : String(error))}\n`;
  }
  const codes = new Set<ErrorCode>([error.code]);
  const problems = (error.details?.problems ?? []) as readonly Partial<LoadProblem>[];
  for (const problem of problems) if (problem.code) codes.add(problem.code);
  for (let cause = error.cause; cause instanceof MeshSyncError; cause = cause.cause) codes.add(cause.code);
  const message = error instanceof ConfigError ? formatProblems(error.problems, redactSecretsInText) : redactSecretsInText(error.message);
  let text = `meshsync: error ${error.code}: ${message}\n`;
  if (error.cause instanceof MeshSyncError) text += `  caused by ${error.cause.code}: ${redactSecretsInText(error.cause.message)}\n`;
  for (const code of codes) text += `  remedy${codes.size > 1 ? ` (${code})` : ''}: ${ERROR_CODES[code].remedy}\n`;
  return text;
}

function write(stream: NodeJS.WritableStream, text: string): void {
  stream.write(text);
}

/** Exits once stdout and stderr are flushed (a pipe may still hold the last lines). */
export async function exit(code: number): Promise<never> {
  await Promise.all([process.stdout, process.stderr].map((stream) => new Promise<void>((done) => stream.write('', () => done()))));
  process.exit(code);
}

function isMainModule(): boolean {
  if (!process.argv[1]) return false;
  try {
    return realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return pathToFileURL(process.argv[1]).href === import.meta.url;
  }
}

if (isMainModule()) {
  main(process.argv.slice(2)).then(exit, (error) => {
    process.stderr.write(formatError(error));
    return exit(1);
  });
}
