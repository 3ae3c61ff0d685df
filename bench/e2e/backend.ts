/**
 * The API server bench/e2e syncs from: the project's simulator in this process (the default), or
 * a real control plane (`--server real`: kube-apiserver, etcd and kube-controller-manager from
 * test/cluster, built or found cached). Each contender gets an identity of its own, so the real
 * server's audit log tells whose first pods request came when.
 */
import type { IncomingMessage, Server } from 'node:http';
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

export interface Backend {
  readonly kind: 'simulator' | 'real';
  /** Creates the namespaces and pods; resolves with the seconds it took. */
  seed(namespaces: string[], pods: KubeObject[]): Promise<number>;
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
      for (const pod of pods) sim.create(POD, pod);
      return (nowUs() - started) / 1e6;
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
    async seed(namespaces, pods) {
      const started = nowUs();
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
      return (nowUs() - started) / 1e6;
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

