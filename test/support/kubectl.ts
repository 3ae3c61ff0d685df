// Runs the real kubectl against a simulator, isolated from the user's config and cache.
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

/** Absolute path to kubectl, or a thrown Error that says what is missing (tests must fail, not skip). */
export function findKubectl(): string {
  const candidates = [...(process.env.PATH ?? '').split(delimiter).map((d) => join(d, 'kubectl')), '/usr/bin/kubectl'];
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {
      // try the next one
    }
  }
  throw new Error('kubectl not found on PATH (nor at /usr/bin/kubectl): the kubectl integration tests need a real kubectl v1.32 binary');
}

export interface KubectlEnv {
  bin: string;
  kubeconfig: string;
  /** HOME for kubectl, so its discovery cache starts empty for every test run */
  home: string;
}

export function kubectlEnv(kubeconfig: string): KubectlEnv {
  return { bin: findKubectl(), kubeconfig, home: mkdtempSync(join(tmpdir(), 'kubectl-home-')) };
}

function env(k: KubectlEnv): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: k.home, KUBECONFIG: k.kubeconfig, KUBECACHEDIR: join(k.home, 'cache') };
}

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function kubectl(k: KubectlEnv, args: string[], input?: string): Promise<KubectlResult> {
  return new Promise((resolve) => {
    const child = execFile(k.bin, args, { env: env(k), timeout: 15_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as any).code === 'number' ? (err as any).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

/** Like `kubectl`, but rejects with kubectl's stderr on a non-zero exit. */
export async function kubectlOk(k: KubectlEnv, args: string[], input?: string): Promise<string> {
  const r = await kubectl(k, args, input);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

/** A long-running kubectl (e.g. `get -w`) whose output accumulates in `output()`. */
export function kubectlSpawn(k: KubectlEnv, args: string[]): { proc: ChildProcess; output: () => string; waitFor: (re: RegExp, timeoutMs?: number) => Promise<void>; stop: () => void } {
  const proc = spawn(k.bin, args, { env: env(k) });
  let out = '';
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (out += d));
  const waitFor = (re: RegExp, timeoutMs = 10_000) =>
    new Promise<void>((resolve, reject) => {
      const started = Date.now();
      const check = () => {
        if (re.test(out)) return resolve();
        if (Date.now() - started > timeoutMs) return reject(new Error(`timed out waiting for ${re} in kubectl output:\n${out}`));
        setTimeout(check, 50);
      };
      check();
    });
  return { proc, output: () => out, waitFor, stop: () => proc.kill('SIGTERM') };
}
