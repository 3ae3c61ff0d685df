/**
 * First-event benchmark (not a test): time from start to the first pod event with 100k pods in
 * the cluster, for meshsync's kubernetes source (through the core, discovery included) and for
 * @kubernetes/client-node's makeInformer, which lists everything before its first `add`.
 * The simulator runs in a child process.
 *
 *   node --import tsx --max-old-space-size=8192 bench/kubernetes-first-event/run.ts [--pods 100000]
 *
 * Writes bench/results/kubernetes-first-event.json (times and their ratio).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { CoreV1Api, makeInformer, type V1Pod } from '@kubernetes/client-node';
import { z } from 'zod';
import { createCore } from '../../core/core.ts';
import { definePlugin } from '../../core/plugin.ts';
import kubernetes from '../../plugins/kubernetes/index.ts';
import { loadKubeConfig } from '../../kubernetes/client.ts';
import { startBenchCluster } from '../kubernetes-memory/cluster.ts';
import { median } from '../stats.ts';

const { values: args } = parseArgs({
  options: {
    pods: { type: 'string', default: '100000' },
    runs: { type: 'string', default: '3' },
    out: { type: 'string', default: join(import.meta.dirname, '../results/kubernetes-first-event.json') },
  },
});
const PODS = Number(args.pods);
const RUNS = Number(args.runs);

/** meshsync: a core with the kubernetes source and a sink that accepts everything; a filter tap stamps the first pod event. */
async function meshsyncFirstEvent(kubeconfig: string): Promise<number> {
  let first = 0;
  const probe = definePlugin({
    name: 'bench:first-event',
    description: 'stamps the first pod event',
    options: z.object({}),
    setup: () => (core) => {
      core.hooks.filter.tap('bench:first-event', (event) => {
        if (first === 0 && event.resource.resource === 'pods') first = performance.now();
        return undefined;
      });
      core.hooks.sink.tapPromise('bench:sink', async () => {});
    },
  })();
  const core = createCore({ clusterId: 'bench', plugins: [kubernetes({ kubeconfig, resources: ['pods.v1.'] }), probe] });
  const started = performance.now();
  await core.start();
  while (first === 0) await new Promise((resolve) => setTimeout(resolve, 1));
  await core.stop();
  return first - started;
}

async function informerFirstEvent(kubeconfig: string): Promise<number> {
  const kc = loadKubeConfig({ kubeconfig });
  const api = kc.makeApiClient(CoreV1Api);
  const informer = makeInformer<V1Pod>(kc, '/api/v1/pods', () => api.listPodForAllNamespaces());
  let first = 0;
  informer.on('add', () => {
    if (first === 0) first = performance.now();
  });
  const started = performance.now();
  await informer.start();
  while (first === 0) await new Promise((resolve) => setTimeout(resolve, 1));
  await informer.stop();
  return first - started;
}

console.log(`seeding ${PODS} pods in the simulator (child process)...`);
const cluster = await startBenchCluster(PODS);
try {
  const ours: number[] = [];
  const theirs: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    ours.push(await meshsyncFirstEvent(cluster.kubeconfig));
    theirs.push(await informerFirstEvent(cluster.kubeconfig));
    console.log(`run ${run + 1}: meshsync ${ours.at(-1)!.toFixed(0)} ms, client-node makeInformer ${theirs.at(-1)!.toFixed(0)} ms`);
  }
  const result = {
    benchmark: 'kubernetes-first-event',
    date: new Date().toISOString(),
    node: process.version,
    pods: PODS,
    runs: RUNS,
    meshsyncMs: ours.map((x) => Math.round(x)),
    clientNodeMakeInformerMs: theirs.map((x) => Math.round(x)),
    medianMeshsyncMs: Math.round(median(ours)),
    medianClientNodeMs: Math.round(median(theirs)),
    ratio: +(median(ours) / median(theirs)).toFixed(4),
    target: 'meshsync first event within 500 ms',
  };
  console.log(`median: meshsync ${result.medianMeshsyncMs} ms, client-node ${result.medianClientNodeMs} ms, ratio ${result.ratio}`);
  await mkdir(dirname(args.out!), { recursive: true });
  await writeFile(args.out!, `${JSON.stringify({ ...result, targetMet: result.medianMeshsyncMs <= 500 }, null, 2)}\n`);
} finally {
  await cluster.close();
}
