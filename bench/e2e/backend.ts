/**
 * The API server bench/e2e syncs from: the project's simulator in this process (the default), or
 * a real control plane (`--server real`: kube-apiserver, etcd and kube-controller-manager from
 * test/cluster, built or found cached). Each contender gets an identity of its own, so the real
 * server's audit log tells whose first pods request came when.
 */
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startSimulator, type KubeObject, type KubeSimulator } from '../../testing/simulator/index.ts';
import { KubeCluster } from '../../test/support/kube-cluster.ts';

export const POD = 'pods.v1.';
const nowUs = () => Number(process.hrtime.bigint() / 1000n);
const stampPatch = () => ({ metadata: { annotations: { 'bench/stamp': String(nowUs()) } } });

export interface Credentials {
  /** The API server's URL, a bearer token and the CA to trust (https only). */
  url: string;
  token: string;
  caFile?: string;
  /** A kubeconfig carrying the same. */
  kubeconfig: string;
}

/** The pods to seed: `count` of them, pod i made by `make(i)` (made only as the backend needs them). */
export interface PodSeed {
  readonly count: number;
  make(i: number): KubeObject;
}

export interface Backend {
  readonly kind: 'simulator' | 'real' | 'replay';
  /** Creates the namespaces and pods; resolves with the seconds it took and each pod's namespace and name. */
  seed(namespaces: string[], pods: PodSeed): Promise<{ seconds: number; names: [string, string][] }>;
  /** One pod as the server serves it (for its size). */
  get(namespace: string, name: string): Promise<KubeObject>;
  credentials(contender: string): Promise<Credentials>;
  /** Starts watching for `contender`'s first pods request (LIST or WATCH); `first()` gives its monotonic µs. */
  observeFirstPodsRequest(contender: string): { first(): Promise<number>; stop(): void };
  /** A change to a pod (its bench/stamp annotation set to now). */
  stamp(namespace: string, name: string): Promise<void> | void;
  /**
   * Writes `count` changes for the max-rate phase (`next()` names each pod) and resolves with the
   * monotonic µs the measured interval starts at: on the simulator, the changes wait behind
   * stalled watches and are released at once; a real server is written as fast as it takes it.
   */
  burst(count: number, next: () => [string, string]): Promise<number>;
  readonly describeBurst: string;
  close(): Promise<void>;
}

export async function simulatorBackend(dir: string): Promise<Backend> {
  const sim: KubeSimulator = await startSimulator({ historyLimit: 50_000, bookmarkIntervalMs: 1000 });
  const kubeconfig = join(dir, 'kubeconfig');
  await sim.writeKubeconfig(kubeconfig);
  // The simulator's HTTP server is private; a second 'request' listener only observes.
  const server = (sim as unknown as { server: Server }).server;
  return {
    kind: 'simulator',
    async seed(namespaces, pods) {
      const started = nowUs();
      for (const name of namespaces) sim.create('namespaces.v1.', { metadata: { name } });
      const names: [string, string][] = [];
      for (let i = 0; i < pods.count; i++) {
        const pod = sim.create(POD, pods.make(i));
        names.push([pod.metadata.namespace!, pod.metadata.name]);
      }
      return { seconds: (nowUs() - started) / 1e6, names };
    },
    get: async (namespace, name) => sim.get(POD, namespace, name)!,
    credentials: async () => ({ url: sim.url, token: sim.token, kubeconfig }),
    observeFirstPodsRequest() {
      // One contender runs at a time, so the first pods request after this is its own.
      let resolve!: (us: number) => void;
      const first = new Promise<number>((r) => (resolve = r));
      const onRequest = (req: IncomingMessage) => {
        if (req.url?.includes('/pods')) {
          resolve(nowUs());
          server.off('request', onRequest);
        }
      };
      server.on('request', onRequest);
      return { first: () => first, stop: () => server.off('request', onRequest) };
    },
    stamp: (namespace, name) => void sim.patch(POD, namespace, name, stampPatch()),
    async burst(count, next) {
      sim.stallWatches(true);
      for (let i = 0; i < count; i++) {
        const [namespace, name] = next();
        sim.patch(POD, namespace, name, stampPatch());
      }
      const released = nowUs();
      sim.stallWatches(false);
      return released;
    },
    describeBurst: 'changes written while the watch is stalled, then released at once; time from release to the last message received',
    close: () => sim.close(),
  };
}

/** The ServiceAccount namespace of the contenders' identities. */
const BENCH_NS = 'meshsync-bench';

export async function realBackend(): Promise<Backend> {
  const cluster = await KubeCluster.start();
  const tokens = new Map<string, Credentials>();
  const podsPath = (namespace: string) => `/api/v1/namespaces/${namespace}/pods`;
  const patch = (namespace: string, name: string) =>
    cluster.ok(`${podsPath(namespace)}/${name}`, { method: 'PATCH', body: stampPatch(), contentType: 'application/merge-patch+json' }).then(() => undefined);
  return {
    kind: 'real',
    async seed(namespaces, seed) {
      const started = nowUs();
      const pods = Array.from({ length: seed.count }, (_, i) => seed.make(i));
      await cluster.apply([BENCH_NS, ...namespaces].map((name) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } })));
      // Pods need their namespace's default ServiceAccount, which the controller-manager creates.
      for (const name of namespaces) {
        while ((await cluster.request(`/api/v1/namespaces/${name}/serviceaccounts/default`)).status !== 200) await new Promise((r) => setTimeout(r, 100));
      }
      const byNamespace = new Map<string, unknown[]>();
      for (const pod of pods) {
        // Owners and nodes that do not exist would have the garbage collector and the pod GC delete them.
        const { ownerReferences: _owners, managedFields: _fields, uid: _uid, resourceVersion: _rv, creationTimestamp: _created, ...metadata } = pod.metadata as Record<string, unknown>;
        const { nodeName: _node, ...spec } = pod.spec as Record<string, unknown>;
        const list = byNamespace.get(metadata.namespace as string) ?? [];
        list.push({ apiVersion: 'v1', kind: 'Pod', metadata, spec });
        byNamespace.set(metadata.namespace as string, list);
      }
      await Promise.all([...byNamespace].map(([namespace, list]) => cluster.createMany(podsPath(namespace), list, 4)));
      return { seconds: (nowUs() - started) / 1e6, names: pods.map((pod) => [pod.metadata.namespace!, pod.metadata.name] as [string, string]) };
    },
    get: (namespace, name) => cluster.ok(`${podsPath(namespace)}/${name}`),
    async credentials(contender) {
      const known = tokens.get(contender);
      if (known) return known;
      await cluster.apply([
        { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: contender, namespace: BENCH_NS } },
        {
          apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: `meshsync-bench-${contender}` },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cluster-admin' },
          subjects: [{ kind: 'ServiceAccount', name: contender, namespace: BENCH_NS }],
        },
      ]);
      const token = await cluster.token(BENCH_NS, contender);
      const credentials = { url: cluster.server, token, caFile: cluster.caFile, kubeconfig: cluster.kubeconfigForToken(token, `bench-${contender}`) };
      tokens.set(contender, credentials);
      return credentials;
    },
    observeFirstPodsRequest(contender) {
      const since = Date.now();
      // Wall clock (the audit log's) to monotonic µs.
      const offsetUs = Date.now() * 1000 - nowUs();
      let stopped = false;
      const first = (async () => {
        while (!stopped) {
          const event = cluster.audit({ user: `system:serviceaccount:${BENCH_NS}:${contender}`, since })
            .find((e) => e.path.endsWith('/pods'));
          if (event) return Date.parse(event.requestReceivedTimestamp) * 1000 + microseconds(event.requestReceivedTimestamp) - offsetUs;
          await new Promise((r) => setTimeout(r, 200));
        }
        return NaN;
      })();
      return { first: () => first, stop: () => (stopped = true) };
    },
    stamp: (namespace, name) => patch(namespace, name),
    async burst(count, next) {
      const started = nowUs();
      let written = 0;
      const worker = async () => {
        while (written < count) {
          written++;
          const [namespace, name] = next();
          await patch(namespace, name);
        }
      };
      await Promise.all(Array.from({ length: 32 }, worker));
      return started;
    },
    describeBurst: 'changes written as fast as the real API server takes them (32 at a time); time from the first write to the last message received: the rate is the server\'s, the CPU per event the contender\'s',
    close: () => cluster.stop(),
  };
}

/** The µs within the millisecond of an RFC 3339 timestamp with microseconds (Date.parse keeps only ms). */
function microseconds(timestamp: string): number {
  const fraction = /\.(\d+)/.exec(timestamp)?.[1] ?? '';
  return Number(fraction.padEnd(6, '0').slice(3, 6));
}


/** Pods recorded from the simulator, which the replay server's pods are made from. */
const RECORDED_PODS = 1000;
/** Items per line written at once by a streaming list (the writes' own cost stays small). */
const REPLAY_CHUNK = 100;

/**
 * The simulator for everything but pods (discovery, namespaces, the cluster id), and in front of
 * it a server that answers pods LIST and WATCH (a streaming list too) from pods recorded from the
 * simulator: RECORDED_PODS of them are created there and read back as the simulator serves them;
 * pod i is recorded pod i mod RECORDED_PODS under a name, uid and resourceVersion of its own.
 * Nothing is stored per pod but its resourceVersion, so a million pods cost the bench a few MB, and
 * the feed runs as fast as one JSON.stringify per pod. Changes (churn, bursts) are MODIFIED lines
 * written to the open watches.
 */
export async function replayBackend(dir: string): Promise<Backend> {
  const sim: KubeSimulator = await startSimulator({ bookmarkIntervalMs: 1000 });
  const watchers = new Set<ServerResponse>();
  /** Watches that asked for PartialObjectMetadata. */
  const partialWatchers = new WeakSet<ServerResponse>();
  let templates: KubeObject[] = [];
  let namespaceOf: (i: number) => string = () => 'default';
  let count = 0;
  const resourceVersions: number[] = [];
  let rv = 1;
  let held: [string, string][] | undefined;
  let firstPodsRequest: ((us: number) => void) | undefined;

  const podOf = (i: number, annotations?: Record<string, string>): KubeObject => {
    const template = templates[i % templates.length];
    const metadata = {
      ...template.metadata,
      name: `replay-${i}`, namespace: namespaceOf(i),
      uid: `00000000-0000-4000-9000-${i.toString(16).padStart(12, '0')}`, resourceVersion: String(resourceVersions[i]),
      ...(annotations ? { annotations: { ...template.metadata.annotations, ...annotations } } : {}),
    };
    return { ...template, metadata };
  };
  // Asked for PartialObjectMetadata (metadataOnly), the server sends the metadata alone.
  const partial = (object: KubeObject, partialObject: boolean) => (partialObject ? { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: object.metadata } : object);
  const itemJson = (i: number, partialObject: boolean) => {
    const { kind: _kind, apiVersion: _apiVersion, ...item } = partial(podOf(i), partialObject);
    return JSON.stringify(item);
  };
  const watchLine = (type: string, object: KubeObject, partialObject = false) => `{"type":"${type}","object":${JSON.stringify(partialObject ? partial(object, true) : { kind: 'Pod', apiVersion: 'v1', ...object })}}\n`;
  const bookmark = (initialEventsEnd = false) => `{"type":"BOOKMARK","object":{"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":"${rv}"${initialEventsEnd ? ',"annotations":{"k8s.io/initial-events-end":"true"}' : ''}}}}\n`;
  const write = (res: ServerResponse, text: string) => (res.write(text) ? undefined : new Promise<void>((resolve) => res.once('drain', () => resolve())));

  async function pods(req: IncomingMessage, res: ServerResponse, query: URLSearchParams): Promise<void> {
    firstPodsRequest?.(nowUs());
    firstPodsRequest = undefined;
    res.setHeader('Content-Type', 'application/json');
    const partialObject = req.headers.accept?.includes('as=PartialObjectMetadata') ?? false;
    if (partialObject) partialWatchers.add(res);
    if (query.get('watch') !== '1' && query.get('watch') !== 'true') {
      const start = Number(query.get('continue') || 0);
      const limit = Number(query.get('limit') || count);
      const end = Math.min(count, start + limit);
      const items: string[] = [];
      for (let i = start; i < end; i++) items.push(itemJson(i, partialObject));
      const more = end < count ? `,"continue":"${end}"` : '';
      res.end(`{"kind":"${partialObject ? 'PartialObjectMetadataList' : 'PodList'}","apiVersion":"${partialObject ? 'meta.k8s.io/v1' : 'v1'}","metadata":{"resourceVersion":"${rv}"${more}},"items":[${items.join(',')}]}\n`);
      return;
    }
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
    if (query.get('sendInitialEvents') === 'true') {
      for (let i = 0; i < count; i += REPLAY_CHUNK) {
        let chunk = '';
        for (let j = i; j < Math.min(count, i + REPLAY_CHUNK); j++) chunk += watchLine('ADDED', podOf(j), partialObject);
        await write(res, chunk);
        if (res.destroyed) return;
      }
      await write(res, bookmark(true));
    }
    watchers.add(res);
    const timer = setInterval(() => res.write(bookmark()), 1000);
    req.on('close', () => {
      clearInterval(timer);
      watchers.delete(res);
      partialWatchers.delete(res);
    });
  }

  const front = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://replay');
    if (url.pathname === '/api/v1/pods') {
      pods(req, res, url.searchParams).catch(() => res.destroy());
      return;
    }
    const target = new URL(sim.url);
    const proxied = request({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    proxied.on('error', () => res.destroy());
    req.pipe(proxied);
  });
  await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(front.address() as AddressInfo).port}`;
  const kubeconfig = join(dir, 'kubeconfig-replay');
  await writeFile(kubeconfig, sim.kubeconfig().replace(sim.url, url), { mode: 0o600 });

  /** Changes waiting while held: [full line, metadata-only line]. */
  const change = (i: number) => {
    resourceVersions[i] = ++rv;
    const pod = podOf(i, { 'bench/stamp': String(nowUs()) });
    const lines: [string, string] = [watchLine('MODIFIED', pod), watchLine('MODIFIED', pod, true)];
    if (held !== undefined) held.push(lines);
    else for (const watcher of watchers) watcher.write(lines[partialWatchers.has(watcher) ? 1 : 0]);
  };
  const indexOf = (name: string) => Number(name.slice('replay-'.length));

  return {
    kind: 'replay',
    async seed(namespaces, seed) {
      const started = nowUs();
      for (const name of namespaces) sim.create('namespaces.v1.', { metadata: { name } });
      for (let i = 0; i < Math.min(RECORDED_PODS, seed.count); i++) sim.create(POD, seed.make(i));
      // As the simulator serves them: uid, resourceVersion, creationTimestamp and defaults set.
      templates = sim.list(POD).map(({ kind: _kind, apiVersion: _apiVersion, ...pod }) => pod as KubeObject);
      namespaceOf = (i) => namespaces[i % namespaces.length];
      count = seed.count;
      for (let i = 0; i < count; i++) resourceVersions.push(++rv);
      const names = Array.from({ length: count }, (_, i): [string, string] => [namespaceOf(i), `replay-${i}`]);
      return { seconds: (nowUs() - started) / 1e6, names };
    },
    get: async (_namespace, name) => ({ kind: 'Pod', apiVersion: 'v1', ...podOf(indexOf(name)) }),
    credentials: async () => ({ url, token: sim.token, kubeconfig }),
    observeFirstPodsRequest() {
      let resolve!: (us: number) => void;
      const first = new Promise<number>((r) => (resolve = r));
      firstPodsRequest = resolve;
      return { first: () => first, stop: () => (firstPodsRequest = undefined) };
    },
    stamp: (_namespace, name) => change(indexOf(name)),
    async burst(changes, next) {
      held = [];
      for (let i = 0; i < changes; i++) change(indexOf(next()[1]));
      const lines = held;
      held = undefined;
      const released = nowUs();
      for (let i = 0; i < lines.length; i += REPLAY_CHUNK) {
        const chunk = lines.slice(i, i + REPLAY_CHUNK);
        const text = [chunk.map((pair) => pair[0]).join(''), chunk.map((pair) => pair[1]).join('')];
        for (const watcher of watchers) watcher.write(text[partialWatchers.has(watcher) ? 1 : 0]);
      }
      return released;
    },
    describeBurst: 'changes made while nothing is written to the watch, then written at once; time from release to the last message received',
    async close() {
      for (const watcher of watchers) watcher.destroy();
      await new Promise<void>((resolve) => front.close(() => resolve()));
      await sim.close();
    },
  };
}
