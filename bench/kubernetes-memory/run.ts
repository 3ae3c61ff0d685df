/**
 * Memory benchmark (not a test): bytes per cached pod (JS heap plus memory outside it, such as
 * the byte arrays meshsync keeps full objects in) for 10k realistic pods, held by
 * meshsync's reflector (full objects and metadataOnly) and by @kubernetes/client-node's
 * makeInformer, in the same run; and by a whole meshsync core on standby (delivery held, so its
 * sink's lane holds an event per pod besides the store). The simulator runs in a child process.
 *
 *   node --expose-gc --import tsx bench/kubernetes-memory/run.ts [--pods 10000]
 *
 * Writes bench/results/kubernetes-memory.json. Targets: full <= 0.6x client-node, metadataOnly <= 0.1x.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { CoreV1Api, makeInformer, type V1Pod } from '@kubernetes/client-node';
import { KubeClient, loadKubeConfig } from '../../kubernetes/client.ts';
import { Reflector } from '../../kubernetes/reflector.ts';
import kubernetes from '../../plugins/kubernetes/index.ts';
import { createCore } from '../../core/core.ts';
import { memorySink } from '../../testing/index.ts';
import type { ResourceRef } from '../../core/types.ts';
import { startBenchCluster } from './cluster.ts';

const { values: args } = parseArgs({
  options: {
    pods: { type: 'string', default: '10000' },
    out: { type: 'string', default: join(import.meta.dirname, '../results/kubernetes-memory.json') },
  },
});
const PODS = Number(args.pods);
const POD: ResourceRef = Object.freeze({ group: '', version: 'v1', resource: 'pods', kind: 'Pod', namespaced: true });

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc --import tsx bench/kubernetes-memory/run.ts');

async function settledMemory(): Promise<number> {
  for (let i = 0; i < 4; i++) {
    gc!();
    await new Promise((resolve) => setImmediate(resolve));
  }
  // Outside the heap too: meshsync keeps full objects as UTF-8 bytes in ArrayBuffers.
  const { heapUsed, external } = process.memoryUsage();
  return heapUsed + external;
}

/** Memory (heap and external) held by what `load` returns (kept alive while measuring), per pod. */
async function measure(name: string, load: () => Promise<{ hold: unknown; count: () => number; stop: () => Promise<unknown> }>) {
  const before = await settledMemory();
  const loaded = await load();
  const after = await settledMemory();
  const count = loaded.count();
  await loaded.stop();
  const bytes = after - before;
  console.log(`${name.padEnd(28)} ${count} objects  ${(bytes / 1024 / 1024).toFixed(1)} MiB  ${Math.round(bytes / count)} bytes/object`);
  return { name, objects: count, memoryBytes: bytes, bytesPerObject: Math.round(bytes / count) };
}

function reflectorLoad(kubeconfig: string, metadataOnly: boolean, resident: 'fingerprints' | 'objects' = 'objects') {
  return async () => {
    const client = new KubeClient(loadKubeConfig({ kubeconfig }));
    const abort = new AbortController();
    let listed!: () => void;
    const done = new Promise<void>((resolve) => (listed = resolve));
    const reflector = new Reflector(client, POD, { metadataOnly, resident }, {
      pageSize: 500, minWatchTimeoutSeconds: 300, watchSilenceTimeoutMs: 0, watchHoldMaxMs: 5000, backoffInitialMs: 800, backoffMaxMs: 30_000,
    }, {
      emit: () => {}, listed: () => listed(), failed: (e) => console.error(e.message), watchRestarted: () => {}, relisted: () => {}, malformedLine: () => {},
    });
    reflector.start(abort.signal);
    await done;
    return {
      hold: reflector,
      count: () => reflector.store.size,
      stop: async () => {
        await reflector.stop();
        client.close();
      },
    };
  };
}

/** A standby replica: the kubernetes source and one sink whose lane is held (as leader election holds it). */
function standbyLoad(kubeconfig: string) {
  return async () => {
    const sink = memorySink('bench:sink');
    const core = createCore({ plugins: [kubernetes({ kubeconfig, resources: ['pods.v1.'], watchCustomResourceDefinitions: false }), sink.plugin] });
    core.holdDelivery('bench', true);
    await core.start();
    await core.whenReady();
    const [lane] = core.state.lanes();
    if (lane.pending !== PODS) throw new Error(`the held lane has ${lane.pending} events, not ${PODS}`);
    return { hold: core, count: () => core.state.resourceCounts()['pods.v1.'] ?? 0, stop: () => core.stop() };
  };
}

function informerLoad(kubeconfig: string) {
  return async () => {
    const kc = loadKubeConfig({ kubeconfig });
    const api = kc.makeApiClient(CoreV1Api);
    const informer = makeInformer<V1Pod>(kc, '/api/v1/pods', () => api.listPodForAllNamespaces());
    await informer.start();
    return { hold: informer, count: () => informer.list().length, stop: () => informer.stop() };
  };
}

const cluster = await startBenchCluster(PODS);
try {
  // A warm-up list, so lazily built state in this process (agents, parsers, JIT) is not counted.
  await (await reflectorLoad(cluster.kubeconfig, true)()).stop();
  await (await informerLoad(cluster.kubeconfig)()).stop();
  const informer = await measure('client-node makeInformer', informerLoad(cluster.kubeconfig));
  const full = await measure('meshsync reflector (full, resident objects)', reflectorLoad(cluster.kubeconfig, false));
  const metadataOnly = await measure('meshsync reflector (metadataOnly)', reflectorLoad(cluster.kubeconfig, true));
  const fingerprints = await measure('meshsync reflector (fingerprints, the default)', reflectorLoad(cluster.kubeconfig, false, 'fingerprints'));
  const standby = await measure('meshsync standby (held lane)', standbyLoad(cluster.kubeconfig));
  const result = {
    benchmark: 'kubernetes-memory',
    date: new Date().toISOString(),
    node: process.version,
    pods: PODS,
    podSource: 'testing/simulator/demo.ts makePod',
    results: [informer, full, metadataOnly, fingerprints, standby],
    ratios: {
      fullVsClientNode: +(full.bytesPerObject / informer.bytesPerObject).toFixed(3),
      metadataOnlyVsClientNode: +(metadataOnly.bytesPerObject / informer.bytesPerObject).toFixed(3),
      fingerprintsVsClientNode: +(fingerprints.bytesPerObject / informer.bytesPerObject).toFixed(3),
      // Not a target: what a standby holds per pod, against its store alone (the held lane's share).
      standbyVsReflector: +(standby.bytesPerObject / full.bytesPerObject).toFixed(3),
    },
    targets: { fullVsClientNode: 0.6, metadataOnlyVsClientNode: 0.1 },
  };
  const met = result.ratios.fullVsClientNode <= 0.6 && result.ratios.metadataOnlyVsClientNode <= 0.1;
  console.log(`ratios: full ${result.ratios.fullVsClientNode}x, metadataOnly ${result.ratios.metadataOnlyVsClientNode}x of client-node (targets 0.6x, 0.1x): ${met ? 'met' : 'NOT met'}`);
  await mkdir(dirname(args.out!), { recursive: true });
  await writeFile(args.out!, `${JSON.stringify({ ...result, targetsMet: met }, null, 2)}\n`);
} finally {
  await cluster.close();
}
