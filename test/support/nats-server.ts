/**
 * Runs a real nats-server for integration tests: finds the binary (installing it with apt when
 * running as root), starts it on a free port with its own temp store dir, waits until it accepts
 * connections, and can stop, restart (same port) or kill it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { connect, type Msg } from '@nats-io/transport-node';
import { join } from 'node:path';
import { freePort } from './wait.ts';

export { freePort };

export interface NatsServerOptions {
  /** Client port; a free one when left out. */
  readonly port?: number;
  /** nats-server config text (auth, tls, max_payload, ...); `port` and `store_dir` are set by the harness. */
  readonly config?: string;
  /** Enables JetStream (store dir in the temp dir). */
  readonly jetstream?: boolean;
  /** Extra command-line arguments. */
  readonly args?: readonly string[];
  /** URL scheme for `url` (`tls` when the config enables TLS and the test wants it spelled out). */
  readonly scheme?: 'nats' | 'tls';
}

export interface NatsServerHandle {
  readonly url: string;
  readonly port: number;
  /** The temp dir holding the config and the JetStream store. */
  readonly dir: string;
  /** Stops the server gracefully (SIGTERM) and waits for it to exit. Keeps the temp dir for restart(). */
  stop(): Promise<void>;
  /** Starts the server again on the same port (and with the same store). */
  restart(): Promise<void>;
  /** Kills the server (SIGKILL), as a crash would. */
  kill(): Promise<void>;
  /** Stops the server and removes its temp dir. */
  dispose(): Promise<void>;
}

const CANDIDATES = ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server'];

let cachedBinary: string | undefined;

/** The nats-server binary: on PATH, in the usual places, or installed with apt when running as root. */
export function findNatsServer(): string {
  if (cachedBinary) return cachedBinary;
  const found = lookup();
  if (found) return (cachedBinary = found);
  if (process.getuid?.() === 0) {
    const install = () => spawnSync('apt-get', ['-o', 'DPkg::Lock::Timeout=600', 'install', '-y', 'nats-server'], { stdio: 'ignore' }).status === 0;
    if (!install()) {
      spawnSync('apt-get', ['-o', 'DPkg::Lock::Timeout=600', 'update'], { stdio: 'ignore' });
      install();
    }
    const installed = lookup();
    if (installed) return (cachedBinary = installed);
  }
  throw new Error('nats-server not found on PATH or in /usr/sbin, /usr/bin; install it (apt-get install nats-server, or https://github.com/nats-io/nats-server/releases) to run the NATS integration tests');
}

function lookup(): string | undefined {
  const which = spawnSync('sh', ['-c', 'command -v nats-server'], { encoding: 'utf8' });
  const onPath = which.status === 0 ? which.stdout.trim() : '';
  if (onPath) return onPath;
  return CANDIDATES.find((path) => existsSync(path));
}

/** A TCP port nobody listens on right now. */
export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServerHandle> {
  const binary = findNatsServer();
  const port = options.port ?? await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'meshsync-nats-'));
  const configFile = join(dir, 'nats.conf');
  const lines = [`listen: "127.0.0.1:${port}"`];
  if (options.jetstream) lines.push(`jetstream { store_dir: "${join(dir, 'js')}" }`);
  if (options.config) lines.push(options.config);
  writeFileSync(configFile, `${lines.join('\n')}\n`);
  const args = ['-c', configFile, ...(options.args ?? [])];

  let child: ChildProcess | undefined;
  let output = '';
  const launch = async () => {
    output = '';
    const proc = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    proc.stdout?.on('data', (chunk) => (output = (output + chunk).slice(-4000)));
    proc.stderr?.on('data', (chunk) => (output = (output + chunk).slice(-4000)));
    const exited = new Promise<never>((_, reject) => proc.once('exit', (code) => reject(new Error(`nats-server exited (${code}) before accepting connections:\n${output}`))));
    exited.catch(() => undefined);
    await Promise.race([waitForPort(port, 10_000), exited]);
  };
  const halt = async (signal: NodeJS.Signals) => {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill(signal);
    await exited;
  };

  await launch();
  const scheme = options.scheme ?? 'nats';
  return {
    url: `${scheme}://127.0.0.1:${port}`,
    port,
    dir,
    stop: () => halt('SIGTERM'),
    kill: () => halt('SIGKILL'),
    restart: async () => {
      await halt('SIGTERM');
      await launch();
    },
    dispose: async () => {
      await halt('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Resolves once something accepts TCP connections on the port. */
async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = tcpConnect({ port, host: '127.0.0.1' });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`nats-server did not listen on ${port} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A subscriber with the real client that records every message. */
/** Applies every message `sub` has received to `consumer`, and keeps doing so as more arrive; returns how to stop. */
export function feedConsumer(sub: { messages: Msg[] }, consumer: { apply(data: Uint8Array): unknown }): () => void {
  let applied = 0;
  const timer = setInterval(() => {
    for (; applied < sub.messages.length; applied++) consumer.apply(sub.messages[applied].data);
  }, 10);
  return () => clearInterval(timer);
}

export async function subscriber(url: string, subject: string, options: Parameters<typeof connect>[0] = {}) {
  const nc = await connect({ servers: url, ...options });
  const messages: Msg[] = [];
  const waiters = new Set<() => void>();
  nc.subscribe(subject, {
    callback: (_, msg) => {
      messages.push(msg);
      for (const check of [...waiters]) check();
    },
  });
  await nc.flush();
  return {
    nc,
    messages,
    json: () => messages.map((m) => m.json<Record<string, any>>()),
    waitFor(predicate: (messages: Msg[]) => boolean, timeoutMs = 5000): Promise<void> {
      if (predicate(messages)) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`timed out with ${messages.length} messages`));
        }, timeoutMs);
        const check = () => {
          if (!predicate(messages)) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve();
        };
        waiters.add(check);
      });
    },
    close: () => nc.close(),
  };
}


/**
 * Starts a core whose sources have nothing to list, and waits for the NATS sink's announcement of
 * that state (no ledger: an empty RESYNC_BEGIN/RESYNC_END frame), then forgets it: the messages
 * `sub` holds after this are those of what the test emits.
 */
export async function startAnnounced(start: () => Promise<void>, sub: { messages: Msg[]; waitFor(predicate: (messages: Msg[]) => boolean, timeoutMs?: number): Promise<void> }): Promise<void> {
  await start();
  const isEnd = (m: Msg) => m.string().startsWith('{"type":"RESYNC_END"');
  await sub.waitFor((messages) => messages.some(isEnd), 10_000);
  sub.messages.splice(0, sub.messages.findIndex(isEnd) + 1);
}
