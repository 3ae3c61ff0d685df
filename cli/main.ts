/**
 * The `meshsync` command, the composition root: parses the command line and runs validate,
 * print-config, install and rbac here, run and snapshot in run.ts, the demo cluster in demo.ts.
 * Logs go to stderr; stdout belongs to the stdout sink and to print-config.
 */
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import type { LoadedConfig, LoadProblem } from '../config/load.ts';
import { maskSecrets, secretPaths } from '../config/mask.ts';
import { LOG_LEVELS } from '../config/schema.ts';
import { ERROR_CODES, MeshSyncError, type ErrorCode } from '../core/errors.ts';
import { createLogger } from '../core/log.ts';
import { redactSecretsInText } from '../core/secrets.ts';
import { loadConfig } from './config.ts';
import { hasKubeConfig, startDemo, type DemoRun } from './demo.ts';
import { INSTALL_COMMAND_USAGE, runInstallCommand, type ShippedConfig } from './install/command.ts';
import { createCoreFrom, heapFlagsFor, run, snapshot } from './run.ts';

const COMMANDS = ['run', 'validate', 'print-config', 'snapshot'] as const;
type Command = (typeof COMMANDS)[number];

const HELP = `Usage: meshsync [command] [options]

Keeps an outside system (NATS, by default) in sync with one Kubernetes cluster.

Commands:
  run             watch the cluster and deliver every change (default)
  validate        check the config and exit: 0 when valid, 1 with every problem
  print-config    print the resolved config as JSON, secrets masked
  snapshot        sync once, write the current state to --out, exit
  install         print the manifests that run meshsync in a cluster (meshsync install | kubectl apply -f -)
  rbac            print the least-privilege RBAC for the config (see meshsync install --help)

Options:
  -c, --config <file>      config file (default: search for meshsync.config.*, .meshsyncrc*, package.json "meshsync")
      --log-level <level>  ${LOG_LEVELS.join(' | ')} (beats LOG_LEVEL and the config)
      --simulator [auto]   run against a built-in simulated cluster (demo mode);
                           "auto": only when no kubeconfig or service account is found
  -o, --out <file>         snapshot: where to write the state
      --timeout <ms>       snapshot: how long to wait for the initial sync (default 120000)
  -h, --help               show this help
  -v, --version            show the version

Environment: CLUSTER_ID, BROKER_URL, LOG_LEVEL, KUBECONFIG, MESHSYNC_CONFIG_DIR (where the config search
starts; default the working directory). See config/README.md for precedence.
Exit codes: 0 done, 1 failed (the message says why), 2 bad command line.`;

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
    if (parsed === 'help') return write(io.stdout, `${HELP}\n`), 0;
    if (parsed === 'version') return write(io.stdout, `${readVersion()}\n`), 0;
    options = parsed;
  } catch (error) {
    write(io.stderr, `meshsync: ${(error as Error).message} (see meshsync --help)\n`);
    return 2;
  }

  const logger = createLogger({ level: options.logLevel ?? envLogLevel(io.env, 'info') });
  let demo: DemoRun | undefined;
  try {
    if (options.command === 'run' || options.command === 'snapshot') {
      for (const flag of heapFlagsFor(process.execArgv)) setFlagsFromString(flag);
      if (options.simulator === 'on' || (options.simulator === 'auto' && !hasKubeConfig(io.env))) {
        demo = await startDemo(io.env, (text) => write(io.stderr, text));
      }
    }
    const loaded = await loadConfig({ configFile: options.config, cwd: configSearchDir(io, options.config), env: io.env, logger, command: options.command });
    if (options.logLevel === undefined && io.env.LOG_LEVEL === undefined) logger.level = loaded.config.logLevel;
    switch (options.command) {
      case 'validate':
        createCoreFrom(loaded, logger); // apply() of every plugin runs too: taps only, no I/O
        write(io.stdout, `valid: ${loaded.file ?? 'no config file (MeshSync defaults)'}\n`);
        return 0;
      case 'print-config':
        write(io.stdout, `${JSON.stringify(maskSecrets({ file: loaded.file ?? null, ...loaded.config }), null, 2)}\n`);
        return 0;
      case 'snapshot':
        return await snapshot(loaded, logger, resolve(io.cwd, options.out!), options.timeoutMs);
      case 'run':
        return await run(loaded, logger);
    }
    return 2;
  } catch (error) {
    write(io.stderr, formatError(error));
    return 1;
  } finally {
    await demo?.stop();
    logger.flush?.();
  }
}

/** Throws a usage error for an empty --config, or one given more than once (in any spelling: --config F, --config=F, -c F, -cF). */
function checkConfigFlag(argv: readonly string[], value: string | undefined): void {
  if (value !== undefined && value.trim() === '') throw new Error('--config needs a file');
  if (argv.filter((arg) => arg === '--config' || arg.startsWith('--config=') || arg.startsWith('-c')).length > 1) throw new Error('--config is given more than once');
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

/** LOG_LEVEL when it names a level, else `fallback`: the config loader reports a bad one with every other problem. */
function envLogLevel(env: NodeJS.ProcessEnv, fallback: string): string {
  const level = env.LOG_LEVEL?.trim();
  return level && (LOG_LEVELS as readonly string[]).includes(level) ? level : fallback;
}

/** `meshsync install|rbac`: manifests for the config in force, on stdout (for kubectl apply -f -). */
async function installCommand(command: 'install' | 'rbac', argv: readonly string[], io: CliIo): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) return write(io.stdout, `${INSTALL_COMMAND_USAGE}\n`), 0;
  // The other flags are runInstallCommand's; here only --config, read as run reads it.
  const flag = parseArgs({ args: [...argv], strict: false, allowPositionals: true, options: { config: { type: 'string', short: 'c' } } }).values.config;
  const configFile = typeof flag === 'string' ? flag : undefined;
  const logger = createLogger({ level: envLogLevel(io.env, 'warn') });
  try {
    checkConfigFlag(argv, configFile);
  } catch (error) {
    write(io.stderr, `meshsync ${command}: ${(error as Error).message}\n`);
    return 2;
  }
  try {
    const loaded = await loadConfig({ configFile, cwd: io.cwd, env: io.env, logger, command: 'run' });
    // No file: the pod runs the in-cluster defaults, whatever this machine's defaults are.
    const secrets = loaded.file ? secretPaths(loaded.config) : [];
    const shipped = loaded.file ? shippedConfig(loaded.file, secrets.length > 0) : undefined;
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

function parseCommandLine(argv: readonly string[]): CliOptions | 'help' | 'version' {
  // `--simulator` takes an optional value: `--simulator`, `--simulator auto`, `--simulator=auto`.
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] !== '--simulator') args.push(argv[i]);
    else if (argv[i + 1] === 'auto' || argv[i + 1] === 'on' || argv[i + 1] === 'off') args.push(`--simulator=${argv[++i]}`);
    else args.push('--simulator=on');
  }
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: {
      config: { type: 'string', short: 'c' },
      'log-level': { type: 'string' },
      simulator: { type: 'string' },
      out: { type: 'string', short: 'o' },
      timeout: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'v' },
    },
  });
  if (values.help) return 'help';
  if (values.version) return 'version';
  if (positionals.length > 1) throw new Error(`unexpected arguments: ${positionals.slice(1).join(' ')}`);
  const command = (positionals[0] ?? 'run') as Command;
  if (!COMMANDS.includes(command)) throw new Error(`unknown command "${command}"`);
  const logLevel = values['log-level'];
  if (logLevel !== undefined && !(LOG_LEVELS as readonly string[]).includes(logLevel)) throw new Error(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);
  const simulator = values.simulator ?? 'off';
  if (simulator !== 'off' && simulator !== 'on' && simulator !== 'auto') throw new Error('--simulator takes no value, or "auto"');
  const timeoutMs = values.timeout === undefined ? 120_000 : Number(values.timeout);
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) throw new Error('--timeout must be a positive number of milliseconds');
  if (command === 'snapshot' && !values.out) throw new Error('snapshot needs --out <file>');
  checkConfigFlag(argv, values.config);
  return { command, config: values.config, logLevel, simulator, out: values.out, timeoutMs };
}

/** The code, the message, and the remedy of each code involved: what a user needs to fix a start-up error. */
/** A fatal error for stderr: code, message, causes and remedies, with the credentials its text may quote masked. */
export function formatError(error: unknown): string {
  return redactSecretsInText(formatErrorText(error));
}

function formatErrorText(error: unknown): string {
  if (!(error instanceof MeshSyncError)) {
    return `meshsync: error: ${error instanceof Error ? error.message : String(error)}\n`;
  }
  const codes = new Set<ErrorCode>([error.code]);
  const problems = (error.details?.problems ?? []) as readonly Partial<LoadProblem>[];
  for (const problem of problems) if (problem.code) codes.add(problem.code);
  for (let cause = error.cause; cause instanceof MeshSyncError; cause = cause.cause) codes.add(cause.code);
  let text = `meshsync: error ${error.code}: ${error.message}\n`;
  if (error.cause instanceof MeshSyncError) text += `  caused by ${error.cause.code}: ${error.cause.message}\n`;
  for (const code of codes) text += `  remedy${codes.size > 1 ? ` (${code})` : ''}: ${ERROR_CODES[code].remedy}\n`;
  return text;
}

function readVersion(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      const manifest = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (manifest.name === 'meshsync') return manifest.version ?? '0.0.0';
    }
    if (dirname(dir) === dir) return '0.0.0';
  }
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
