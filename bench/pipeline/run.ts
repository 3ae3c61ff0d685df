/**
 * Pipeline benchmark (not a test): events per second through watch-list + redact-secrets + an
 * in-memory sink, in the framework and in a plain loop doing the same work. Each side runs in a
 * child process of its own (a fresh V8), the children alternating, all from this one script.
 *
 *   npx tsx bench/pipeline/run.ts [--events 1000000] [--pairs 4] [--runs 3] [--chunk 1000]
 *
 * Writes bench/results/pipeline.json and prints a table. See bench/README.md.
 */
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { createCore } from '../../core/core.ts';
import { definePlugin } from '../../core/plugin.ts';
import { resourceId } from '../../core/resource.ts';
import type { Batch, EventType, KubeObject, ResourceRef, SourceContext, SyncEvent } from '../../core/types.ts';
import { watchList, compileWatchList, watchListOptions, EVENT_BITS, type WatchListOptions } from '../../plugins/watch-list/index.ts';
import { redactSecrets, createRedactor } from '../../plugins/redact-secrets/index.ts';
import { median } from '../stats.ts';

const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: '1000000' },
    /** Child processes per side (they alternate), and timed runs in each after one warm-up. */
    pairs: { type: 'string', default: '4' },
    runs: { type: 'string', default: '3' },
    chunk: { type: 'string', default: '1000' },
    objects: { type: 'string', default: '20000' },
    out: { type: 'string', default: join(import.meta.dirname, '../results/pipeline.json') },
    /** Runs one side in this process and prints its result as JSON (how the children run; also for profiling). */
    side: { type: 'string' },
    wait: { type: 'string' },
  },
});
const EVENTS = Number(args.events);
const PAIRS = Number(args.pairs);
const RUNS = Number(args.runs);
const CHUNK = Number(args.chunk);
const OBJECTS = Number(args.objects);
const BATCH_SIZE = 500;
/** The core's default unless --wait is given (ms a partial batch waits; 0 = until the sink is free). */
const BATCH_WAIT = args.wait === undefined ? undefined : Number(args.wait);

const ref = (group: string, version: string, resource: string, kind: string): ResourceRef => Object.freeze({ group, version, resource, kind, namespaced: true });
const PODS = ref('', 'v1', 'pods', 'Pod');
const SECRETS = ref('', 'v1', 'secrets', 'Secret');
const CONFIGMAPS = ref('', 'v1', 'configmaps', 'ConfigMap');
const EVENTS_REF = ref('', 'v1', 'events', 'Event');

/** Excludes Kubernetes Events entirely and the MODIFIED events of ConfigMaps: ~10% of the stream is filtered. */
const WATCH_LIST: WatchListOptions = { exclude: [{ resource: 'events.v1.' }, { resource: 'configmaps.v1.', events: ['MODIFIED'] }] };

// ---- synthetic workload -------------------------------------------------------------------------

function rand(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}
const random = rand(42);
const hex = (n: number) => Array.from({ length: n }, () => Math.floor(random() * 16).toString(16)).join('');

function managedFields(): unknown[] {
  return [
    { manager: 'kube-controller-manager', operation: 'Update', apiVersion: 'v1', time: '2026-01-01T00:00:00Z', fieldsType: 'FieldsV1', fieldsV1: { 'f:metadata': { 'f:labels': { '.': {}, 'f:app': {}, 'f:pod-template-hash': {} }, 'f:ownerReferences': { '.': {} } }, 'f:spec': { 'f:containers': { 'k:{"name":"web"}': { '.': {}, 'f:image': {}, 'f:name': {}, 'f:ports': {} } } } } },
    { manager: 'kubelet', operation: 'Update', apiVersion: 'v1', time: '2026-01-01T00:00:05Z', fieldsType: 'FieldsV1', subresource: 'status', fieldsV1: { 'f:status': { 'f:conditions': {}, 'f:containerStatuses': {}, 'f:hostIP': {}, 'f:phase': {}, 'f:podIP': {}, 'f:startTime': {} } } },
  ];
}

/** A pod of 2–4 KB as a watch delivers it (status, managedFields and all). */
function pod(i: number): KubeObject {
  const name = `web-${hex(10)}-${hex(5)}`;
  const env = Array.from({ length: 2 + Math.floor(random() * 10) }, (_, k) => ({ name: `VAR_${k}`, value: hex(12) }));
  return {
    apiVersion: 'v1', kind: 'Pod',
    metadata: {
      name, namespace: `ns-${i % 40}`, uid: `${hex(8)}-${hex(4)}-${hex(4)}-${hex(4)}-${hex(12)}`, resourceVersion: String(1000 + i),
      labels: { app: 'web', 'pod-template-hash': hex(10), tier: 'frontend' },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `web-${hex(10)}`, uid: hex(32), controller: true, blockOwnerDeletion: true }],
      creationTimestamp: '2026-01-01T00:00:00Z',
      managedFields: managedFields(),
    },
    spec: {
      containers: [{ name: 'web', image: `registry.example.com/web:${hex(7)}`, ports: [{ containerPort: 8080, protocol: 'TCP' }], env, resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '500m', memory: '256Mi' } } }],
      nodeName: `node-${i % 50}`, serviceAccountName: 'default', restartPolicy: 'Always', dnsPolicy: 'ClusterFirst',
      tolerations: [{ key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 }],
    },
    status: {
      phase: 'Running', hostIP: `10.0.${i % 250}.1`, podIP: `10.1.${i % 250}.${i % 200}`, startTime: '2026-01-01T00:00:01Z',
      conditions: ['Initialized', 'Ready', 'ContainersReady', 'PodScheduled'].map((type) => ({ type, status: 'True', lastTransitionTime: '2026-01-01T00:00:02Z' })),
      containerStatuses: [{ name: 'web', ready: true, restartCount: 0, image: 'registry.example.com/web', imageID: `sha256:${hex(64)}`, containerID: `containerd://${hex(64)}`, started: true, state: { running: { startedAt: '2026-01-01T00:00:02Z' } } }],
    },
  };
}

function secret(i: number): KubeObject {
  const data = { username: Buffer.from(`user-${i}`).toString('base64'), password: Buffer.from(hex(24)).toString('base64'), 'tls.key': Buffer.from(hex(600)).toString('base64') };
  const name = `db-${i}`;
  const lastApplied = `${JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: `ns-${i % 40}` }, data, type: 'Opaque' })}\n`;
  return {
    apiVersion: 'v1', kind: 'Secret', type: 'Opaque', data,
    metadata: { name, namespace: `ns-${i % 40}`, uid: hex(32), resourceVersion: String(i), annotations: { 'kubectl.kubernetes.io/last-applied-configuration': lastApplied }, managedFields: managedFields() },
  };
}

function small(resource: ResourceRef, i: number): KubeObject {
  return { apiVersion: 'v1', kind: resource.kind, metadata: { name: `${resource.resource}-${i}`, namespace: `ns-${i % 40}`, uid: hex(32), resourceVersion: String(i) }, data: { 'app.properties': `key=${hex(200)}` }, reason: 'Scheduled', message: hex(100) };
}

interface Item { readonly resource: ResourceRef; readonly object: KubeObject }

/** The object pool and the 1M-event schedule: 87% pods, 3% Secrets, 5% ConfigMaps, 5% Events. */
function workload(): { items: Item[]; types: EventType[]; order: Uint32Array } {
  const items: Item[] = [];
  for (let i = 0; i < OBJECTS; i++) {
    const roll = random();
    if (roll < 0.03) items.push({ resource: SECRETS, object: secret(i) });
    else if (roll < 0.08) items.push({ resource: CONFIGMAPS, object: small(CONFIGMAPS, i) });
    else if (roll < 0.13) items.push({ resource: EVENTS_REF, object: small(EVENTS_REF, i) });
    else items.push({ resource: PODS, object: pod(i) });
  }
  // Each object as a source hands it over: parsed from JSON. Built directly, its strings would be
  // template-literal ropes (V8 cons strings), and reading a uid or name through a rope costs a
  // second memory access that no decoded object has.
  for (const item of items) (item as { object: KubeObject }).object = JSON.parse(JSON.stringify(item.object));
  const order = new Uint32Array(EVENTS);
  const types: EventType[] = new Array(EVENTS);
  for (let i = 0; i < EVENTS; i++) {
    order[i] = Math.floor(random() * OBJECTS);
    const roll = random();
    types[i] = roll < 0.05 ? 'ADDED' : roll < 0.97 ? 'MODIFIED' : 'DELETED';
  }
  return { items, types, order };
}

// Only the processes that run a side need the workload; the parent merely compares them.
const work = args.side === undefined ? { items: [], types: [], order: new Uint32Array(0) } : workload();

/** Emits the schedule in chunks, one chunk per macrotask, as a watch stream's data events would. */
function emitInChunks(emit: (type: EventType, resource: ResourceRef, object: KubeObject, observedAt: number) => void): Promise<void> {
  return new Promise((resolve) => {
    let next = 0;
    const step = () => {
      const end = Math.min(next + CHUNK, EVENTS);
      const now = Date.now();
      for (let i = next; i < end; i++) {
        const item = work.items[work.order[i]];
        emit(work.types[i], item.resource, item.object, now);
      }
      next = end;
      if (next < EVENTS) setImmediate(step);
      else resolve();
    };
    setImmediate(step);
  });
}

// ---- the two contenders -------------------------------------------------------------------------

/** Wall seconds, and CPU seconds of this process (robust to neighbours on a shared machine). */
interface RunResult { seconds: number; cpuSeconds: number; delivered: number }

const cpuSince = (start: NodeJS.CpuUsage) => {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1e6;
};

async function runFramework(): Promise<RunResult> {
  let delivered = 0;
  let context: SourceContext | undefined;
  const source = definePlugin({
    name: 'bench:source', description: '', options: z.object({}),
    setup: () => (core) => core.hooks.source.tap('bench:source', (ctx) => {
      context = ctx;
      ctx.synced();
    }),
  })();
  const sink = definePlugin({
    name: 'bench:sink', description: '', options: z.object({}),
    setup: () => (core) => core.hooks.sink.tapPromise('bench:sink', async (batch: Batch) => {
      delivered += batch.length;
    }),
  })();
  const core = createCore({ plugins: [source, watchList(WATCH_LIST), redactSecrets(), sink], batchSize: BATCH_SIZE, clusterId: 'bench', batchMaxWaitMs: BATCH_WAIT });
  await core.start();
  const ctx = context!;
  const cpu = process.cpuUsage();
  const started = performance.now();
  await emitInChunks((type, resource, object, observedAt) => ctx.emit(type, resource, object, observedAt));
  await core.drain();
  const seconds = (performance.now() - started) / 1000;
  const cpuSeconds = cpuSince(cpu);
  await core.stop();
  return { seconds, cpuSeconds, delivered };
}

/** The same filtering and redaction, written as a plain loop: no hooks, no lanes, no coalescing. */
async function runBaseline(): Promise<RunResult> {
  let delivered = 0;
  const compiled = compileWatchList(watchListOptions.parse(WATCH_LIST));
  const masks = new Map<ResourceRef, number>();
  const redact = createRedactor({ redactSecrets: true, stripManagedFields: true });
  const deliver = async (batch: SyncEvent[]) => {
    delivered += batch.length;
  };
  let batch: SyncEvent[] = [];
  let flushing: Promise<void> = Promise.resolve();
  const cpu = process.cpuUsage();
  const started = performance.now();
  await emitInChunks((type, resource, object, observedAt) => {
    let mask = masks.get(resource);
    if (mask === undefined) masks.set(resource, (mask = compiled.maskOf(resourceId(resource))));
    if ((mask & EVENT_BITS[type]) === 0) return;
    batch.push(redact({ type, resource, object, clusterId: 'bench', observedAt }));
    if (batch.length >= BATCH_SIZE) {
      const full = batch;
      batch = [];
      flushing = flushing.then(() => deliver(full));
    }
  });
  flushing = flushing.then(() => deliver(batch));
  await flushing;
  return { seconds: (performance.now() - started) / 1000, cpuSeconds: cpuSince(cpu), delivered };
}

// ---- measure ------------------------------------------------------------------------------------

type Side = 'baseline' | 'framework';
interface SideResult { side: Side; seconds: number[]; cpuSeconds: number[]; delivered: number; podBytes: { min: number; max: number } }

/** One side in this process: a warm-up run (JIT), then the timed runs. */
async function runSide(side: Side): Promise<SideResult> {
  const run = side === 'baseline' ? runBaseline : runFramework;
  await run();
  const results: RunResult[] = [];
  for (let i = 0; i < RUNS; i++) results.push(await run());
  const podBytes = work.items.filter((item) => item.resource === PODS).map((item) => JSON.stringify(item.object).length);
  return {
    side, seconds: results.map((r) => r.seconds), cpuSeconds: results.map((r) => r.cpuSeconds), delivered: results[0].delivered,
    podBytes: { min: Math.min(...podBytes), max: Math.max(...podBytes) },
  };
}

/**
 * A side in a child process of its own. In one process the two sides would share the driver's
 * and the redactor's JIT feedback (the same functions see both sides' objects), which slows
 * whichever side the code was not optimised for; a fresh process per side measures each alone.
 */
async function spawnSide(side: Side): Promise<SideResult> {
  const forwarded = ['events', 'runs', 'chunk', 'objects', ...(args.wait === undefined ? [] : ['wait'])].flatMap((name) => [`--${name}`, String(args[name as keyof typeof args])]);
  const { stdout } = await promisify(execFile)(process.execPath, [...process.execArgv, process.argv[1], '--side', side, ...forwarded], { maxBuffer: 1 << 20 });
  return JSON.parse(stdout) as SideResult;
}

async function main(): Promise<void> {
  if (args.side !== undefined) {
    if (args.side !== 'baseline' && args.side !== 'framework') throw new Error('--side is baseline or framework');
    process.stdout.write(`${JSON.stringify(await runSide(args.side))}\n`);
    return;
  }
  console.error(`workload: ${EVENTS} events over ${OBJECTS} objects, chunks of ${CHUNK}; ${PAIRS} processes per side, ${RUNS} timed runs each`);
  const framework: SideResult[] = [];
  const baseline: SideResult[] = [];
  for (let pair = 0; pair < PAIRS; pair++) {
    // Alternate the order, so drift (thermal, neighbours) hits both alike.
    for (const side of (pair % 2 === 0 ? ['baseline', 'framework'] : ['framework', 'baseline']) as Side[]) {
      (side === 'baseline' ? baseline : framework).push(await spawnSide(side));
    }
    const last = (results: SideResult[]) => `${median(results.at(-1)!.seconds).toFixed(3)} s (${median(results.at(-1)!.cpuSeconds).toFixed(3)} CPU)`;
    console.error(`pair ${pair + 1}/${PAIRS}: baseline ${last(baseline)}, framework ${last(framework)}`);
  }
  const all = (results: SideResult[], key: 'seconds' | 'cpuSeconds') => results.flatMap((result) => result[key]);
  const baselineRate = EVENTS / median(all(baseline, 'seconds'));
  const frameworkRate = EVENTS / median(all(framework, 'seconds'));
  const ratio = frameworkRate / baselineRate;
  // Per pair of processes run back to back: robust to load that drifts during the run.
  const pairRatio = median(framework.map((result, i) => median(baseline[i].seconds) / median(result.seconds)));
  // CPU time of the process: what the framework costs, whatever the neighbours do.
  const cpuRatio = median(all(baseline, 'cpuSeconds')) / median(all(framework, 'cpuSeconds'));
  const result = {
    benchmark: 'pipeline',
    date: new Date().toISOString(),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    workload: {
      events: EVENTS, objects: OBJECTS, chunk: CHUNK, batchSize: BATCH_SIZE, batchMaxWaitMs: BATCH_WAIT ?? 'default',
      podBytes: baseline[0].podBytes,
      mix: { pods: 0.87, secrets: 0.03, configmaps: 0.05, events: 0.05 }, watchList: WATCH_LIST,
    },
    processesPerSide: PAIRS,
    runsPerProcess: RUNS,
    baseline: { eventsPerSecond: Math.round(baselineRate), seconds: all(baseline, 'seconds'), delivered: baseline[0].delivered },
    framework: { eventsPerSecond: Math.round(frameworkRate), seconds: all(framework, 'seconds'), delivered: framework[0].delivered },
    ratio: Number(ratio.toFixed(3)),
    pairRatio: Number(pairRatio.toFixed(3)),
    cpuRatio: Number(cpuRatio.toFixed(3)),
    loadAverage: (await import('node:os')).loadavg().map((load) => Number(load.toFixed(2))),
    target: 0.9,
    met: ratio >= 0.9,
  };
  await mkdir(join(args.out!, '..'), { recursive: true });
  await writeFile(args.out!, `${JSON.stringify(result, null, 2)}\n`);
  console.table({
    baseline: { 'events/s (median)': result.baseline.eventsPerSecond, delivered: result.baseline.delivered },
    framework: { 'events/s (median)': result.framework.eventsPerSecond, delivered: result.framework.delivered },
  });
  console.log(`framework/baseline = ${result.ratio}, median of per-pair ratios ${result.pairRatio}, CPU-time ratio ${result.cpuRatio} (target >= ${result.target}: ${result.met ? 'met' : 'MISSED'}); written to ${args.out}`);
}

await main();
