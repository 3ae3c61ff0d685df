/**
 * Runs Debian's Prometheus (2.42, `apt-get install prometheus`, which scripts/setup-system.sh does)
 * for the observability tests: promtool, and a server on a free 127.0.0.1 port with its own temp
 * storage, scraping the targets given, queried through its HTTP API.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { freePort, untilAsync } from './wait.ts';

/** `prometheus` or `promtool`, on PATH or in /usr/bin; a clear error when the package is missing. */
export function prometheusBinary(name: 'prometheus' | 'promtool'): string {
  const which = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  const found = which.status === 0 ? which.stdout.trim() : [`/usr/bin/${name}`].find((path) => existsSync(path));
  if (!found) throw new Error(`${name} not found; install Debian's prometheus package (apt-get install -y prometheus; npm test's scripts/setup-system.sh does)`);
  return found;
}

/** Runs promtool; resolves with its output, rejects with it when promtool fails. */
export async function promtool(args: string[], cwd?: string): Promise<string> {
  try {
    const { stdout, stderr } = await promisify(execFile)(prometheusBinary('promtool'), args, { cwd });
    return stdout + stderr;
  } catch (error) {
    const { stdout = '', stderr = '' } = error as { stdout?: string; stderr?: string };
    throw new Error(`promtool ${args.join(' ')} failed:\n${stdout}${stderr}`);
  }
}

export interface PrometheusHandle {
  readonly url: string;
  /** GET /api/v1/<path>: the `data` of a successful answer. */
  api<T = any>(path: string, params?: Record<string, string>): Promise<T>;
  /** An instant query's result vector. */
  query(expr: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]>;
  dispose(): Promise<void>;
}

export interface PrometheusOptions {
  /** host:port of each target, scraped under job `meshsync`. */
  readonly targets: string[];
  readonly scrapeIntervalSeconds?: number;
  readonly ruleFiles?: string[];
}

export async function startPrometheus(options: PrometheusOptions): Promise<PrometheusHandle> {
  const binary = prometheusBinary('prometheus');
  const dir = mkdtempSync(join(tmpdir(), 'meshsync-prometheus-'));
  const port = await freePort();
  const interval = `${options.scrapeIntervalSeconds ?? 1}s`;
  writeFileSync(join(dir, 'prometheus.yml'), stringify({
    global: { scrape_interval: interval, evaluation_interval: interval },
    rule_files: options.ruleFiles ?? [],
    scrape_configs: [{ job_name: 'meshsync', static_configs: [{ targets: options.targets }] }],
  }));
  const child: ChildProcess = spawn(binary, [
    `--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (chunk: Buffer) => (log += chunk.toString('utf8')));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const api = async <T>(path: string, params: Record<string, string> = {}): Promise<T> => {
    const response = await fetch(`${url}/api/v1/${path}?${new URLSearchParams(params)}`);
    const body = await response.json() as { status: string; data: T; error?: string };
    if (body.status !== 'success') throw new Error(`Prometheus ${path} ${JSON.stringify(params)}: ${body.error}`);
    return body.data;
  };
  const dispose = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await untilAsync(async () => {
      if (child.exitCode !== null) throw new Error(`prometheus exited (${child.exitCode}):\n${log.slice(-4000)}`);
      return fetch(`${url}/-/ready`).then((r) => r.ok, () => false);
    }, 'Prometheus to be ready', 30_000);
  } catch (error) {
    await dispose();
    throw error;
  }
  return {
    url,
    api,
    query: (expr) => api('query', { query: expr }).then((data: any) => data.result),
    dispose,
  };
}
