/**
 * Runs the Kubernetes API simulator, seeded with N realistic pods (the simulator's makePod), in a
 * child process, so its own memory never shows in the heap the benchmarks measure.
 *
 *   child:  npx tsx bench/kubernetes-memory/cluster.ts <pods> <kubeconfig path>
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface BenchCluster {
  readonly kubeconfig: string;
  readonly url: string;
  close(): Promise<void>;
}

/** Starts a seeded simulator in a child process; resolves once it serves. */
export async function startBenchCluster(pods: number): Promise<BenchCluster> {
  const kubeconfig = join(mkdtempSync(join(tmpdir(), 'meshsync-bench-')), 'kubeconfig');
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), [String(pods), kubeconfig], {
    execArgv: ['--import', 'tsx', '--max-old-space-size=8192'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    child.once('message', (m) => resolve(String((m as { url: string }).url)));
    child.once('exit', (code) => reject(new Error(`simulator process exited with ${code}`)));
  });
  return {
    kubeconfig,
    url,
    close: () => new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    }),
  };
}

async function main(): Promise<void> {
  const [count, kubeconfig] = process.argv.slice(2);
  const { startSimulator } = await import('../../testing/simulator/index.ts');
  const { makePod } = await import('../../testing/simulator/demo.ts');
  const sim = await startSimulator({ historyLimit: 1000 });
  for (let n = 0; n < 20; n++) sim.create('namespaces.v1.', { metadata: { name: `ns-${n}` } });
  for (let i = 0; i < Number(count); i++) sim.create('pods.v1.', makePod(i, `ns-${i % 20}`));
  await sim.writeKubeconfig(kubeconfig);
  process.send!({ url: sim.url });
  process.on('SIGTERM', () => {
    void sim.close().then(() => process.exit(0));
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
