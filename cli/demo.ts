/**
 * Demo mode (`--simulator`): meshsync against the Kubernetes API simulator of meshsync/testing.
 * The simulator is a test double: it ships in the npm package's testing/ and in a checkout, never
 * in the image, so it is loaded at run time from beside the CLI, and its absence is a clear error.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MeshSyncError } from '../core/index.ts';

/** What testing/simulator/demo.ts provides (test/unit/cli.test.ts checks that it does). */
export interface DemoModule {
  startDemoCluster(options?: { intervalMs?: number }): Promise<{ readonly url: string; writeKubeconfig(path: string): Promise<void>; stop(): Promise<void> }>;
}

/** testing/simulator/demo.ts from a checkout (tsx), demo.js from a build: the CLI's own extension. */
export const DEMO_MODULE = new URL(`../testing/simulator/demo${extname(fileURLToPath(import.meta.url))}`, import.meta.url);

/** True when a real cluster is configured: KUBECONFIG, ~/.kube/config, or an in-cluster service account. */
export function hasKubeConfig(env: NodeJS.ProcessEnv): boolean {
  if (env.KUBECONFIG) return true;
  if (existsSync(join(env.HOME ?? homedir(), '.kube', 'config'))) return true;
  return Boolean(env.KUBERNETES_SERVICE_HOST) && existsSync('/var/run/secrets/kubernetes.io/serviceaccount/token');
}

export interface DemoRun {
  stop(): Promise<void>;
}

/** Starts the demo cluster and points KUBECONFIG at it; `say` shows the banner (stderr). */
export async function startDemo(env: NodeJS.ProcessEnv, say: (text: string) => void): Promise<DemoRun> {
  if (!existsSync(fileURLToPath(DEMO_MODULE))) {
    throw new MeshSyncError('MESHSYNC_KUBE_CONFIG', 'demo mode (--simulator) needs the Kubernetes API simulator of meshsync/testing, which this build does not ship (the image has no test doubles): run `npm start` in a checkout, or point KUBECONFIG at a cluster');
  }
  const demo = (await import(DEMO_MODULE.href)) as DemoModule;
  const cluster = await demo.startDemoCluster({ intervalMs: 2000 });
  const dir = await mkdtemp(join(tmpdir(), 'meshsync-simulator-'));
  const kubeconfig = join(dir, 'kubeconfig');
  await cluster.writeKubeconfig(kubeconfig);
  env.KUBECONFIG = kubeconfig;
  say([
    '',
    '  ================================================================',
    '   DEMO MODE: meshsync is watching a SIMULATED Kubernetes cluster',
    `   API server: ${cluster.url}   kubeconfig: ${kubeconfig}`,
    '   Objects are created, changed and deleted by a demo generator.',
    '   To watch a real cluster, set KUBECONFIG (or run in a pod) and',
    '   leave out --simulator.',
    '  ================================================================',
    '', '',
  ].join('\n'));
  return {
    async stop() {
      await cluster.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
