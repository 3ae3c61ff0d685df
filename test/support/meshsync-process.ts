/**
 * Runs the real meshsync CLI (from the TypeScript sources, as `npm run meshsync` does) as a child
 * process, and reads what it publishes on stdout (the stdout sink's JSON lines) into events and a
 * consumer's view: objects by uid, as a consumer that applies events in order keeps them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sleep } from './wait.ts';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CLI = join(ROOT, 'cli', 'main.ts');
const TSX = import.meta.resolve('tsx');

export interface PublishedEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  resource: string;
  cluster_id: string;
  object: { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; uid: string; resourceVersion: string; [k: string]: unknown }; [k: string]: unknown };
}

export interface MeshsyncProcess {
  readonly child: ChildProcess;
  readonly events: PublishedEvent[];
  /** stderr so far (JSON log lines). */
  stderr(): string;
  /** The log records so far, parsed. */
  logs(): Record<string, any>[];
  /** The consumer's view: the last ADDED/MODIFIED per uid, gone on DELETED. */
  view(resource?: string): Map<string, PublishedEvent['object']>;
  waitFor(check: () => boolean, what: string, timeoutMs?: number): Promise<void>;
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<Record<string, any>>;
  /** SIGTERM (a drain), and the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL, as a crash would. */
  kill(): Promise<void>;
  readonly exited: Promise<number | null>;
}

export interface MeshsyncOptions {
  /** The config, written as JSON into `dir`. */
  config?: unknown;
  dir: string;
  args?: string[];
  env?: Record<string, string>;
}

/** Writes `config` as `<dir>/meshsync.config.json` and returns its path. */
export function writeConfig(dir: string, config: unknown, name = 'meshsync.config.json'): string {
  const file = join(dir, name);
  writeFileSync(file, JSON.stringify(config, null, 2));
  return file;
}

/** Starts `meshsync run` (or the command in `args`) with the config and the env given, nothing of this process's env but PATH. */
export function startMeshsync(options: MeshsyncOptions): MeshsyncProcess {
  const args = options.args ?? ['run'];
  const withConfig = options.config === undefined ? args : [...args, '--config', writeConfig(options.dir, options.config)];
  const child = spawn(process.execPath, ['--conditions=source', '--import', TSX, CLI, ...withConfig], {
    cwd: options.dir,
    env: { PATH: process.env.PATH ?? '', HOME: options.dir, LOG_LEVEL: 'info', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const events: PublishedEvent[] = [];
  let partial = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString('utf8')).split('\n');
    partial = lines.pop()!;
    for (const line of lines) if (line) events.push(JSON.parse(line) as PublishedEvent);
  });
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const logs = () => stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, any>);
  const waitFor = async (check: () => boolean, what: string, timeoutMs = 60_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`meshsync exited (${child.exitCode ?? child.signalCode}) before ${what}:\n${stderr.slice(-4000)}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${stderr.slice(-4000)}`);
      await sleep(50);
    }
  };
  return {
    child,
    events,
    stderr: () => stderr,
    logs,
    view: (resource) => viewOf(events, resource),
    waitFor,
    async waitForLog(pattern, timeoutMs) {
      let found: Record<string, any> | undefined;
      await waitFor(() => (found = logs().find((l) => pattern.test(String(l.msg)))) !== undefined, `a log line matching ${pattern}`, timeoutMs);
      return found!;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    exited,
  };
}

/** Runs a meshsync command to its end (`rbac`, `install`, `validate`): its exit code and output. */
export async function runMeshsyncCommand(dir: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--conditions=source', '--import', TSX, CLI, ...args], {
    cwd: dir, env: { PATH: process.env.PATH ?? '', HOME: dir, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  return { code, stdout, stderr };
}

/** What a consumer that applies events in order holds: objects by uid. */
export function viewOf(events: readonly PublishedEvent[], resource?: string): Map<string, PublishedEvent['object']> {
  const view = new Map<string, PublishedEvent['object']>();
  for (const event of events) {
    if (resource !== undefined && event.resource !== resource) continue;
    if (event.type === 'DELETED') view.delete(event.object.metadata.uid);
    else view.set(event.object.metadata.uid, event.object);
  }
  return view;
}

/** The events `meshsync snapshot --out <file>` wrote. */
export function readSnapshot(file: string): PublishedEvent[] {
  return readFileSync(file, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line) as PublishedEvent);
}
