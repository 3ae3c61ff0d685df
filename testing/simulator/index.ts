// meshsync's stand-in for kube-apiserver: an in-memory, HTTP-speaking cluster
// with fault controls, so the project (and kubectl) can be tested for real
// without a cluster. Behaviour and known gaps: README.md in this folder.
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { clone, Cluster, fullObject, KUBE_SYSTEM_UID } from './cluster.ts';
import type { KubeObject } from './cluster.ts';
import { errors } from './errors.ts';
import { mergePatch } from './patch.ts';
import { ProtobufDecoder } from './protobuf.ts';
import { DEFAULT_FIXTURES_DIR, Registry } from './registry.ts';
import type { ResourceInfo } from './registry.ts';
import { ApiServer, SIMULATED_USER } from './server.ts';
import type { InjectedFailure, RequestRecord } from './server.ts';

export type { KubeObject } from './cluster.ts';
export type { RequestRecord } from './server.ts';

/** Which requests `failRequests` answers with an error, and how. */
export type FailRequestsOptions = Omit<InjectedFailure, 'remaining' | 'status'> & { readonly status?: number; readonly times?: number };
export type { ResourceInfo } from './registry.ts';
export { KubeApiError } from './errors.ts';
export type { Status } from './errors.ts';
export { KUBE_SYSTEM_UID } from './cluster.ts';
export { DEFAULT_FIXTURES_DIR } from './registry.ts';
export { SIMULATED_USER, VERSION_INFO } from './server.ts';

export interface SimulatorOptions {
  /** 0 (default) picks a free port */
  port?: number;
  /** events retained per resource for watch resumption; older rvs get 410 (default 10000) */
  historyLimit?: number;
  /** interval between BOOKMARK events on watches that allow them (default 1000) */
  bookmarkIntervalMs?: number;
  /** Serve streaming lists (watch with sendInitialEvents, the WatchList feature); false: refuse them with 422, as a server without the feature does (default true) */
  watchList?: boolean;
  /** root of the kubernetes fixtures (holds discovery/, objects/, protobuf/) */
  fixturesDir?: string;
}

const DEFAULT_TOKEN = 'meshsync-simulator-token';

export interface KubeSimulator {
  readonly url: string;
  /** The bearer token the kubeconfig carries (the simulator accepts any). */
  readonly token: string;
  kubeconfig(): string;
  writeKubeconfig(path: string): Promise<void>;

  create(resourceId: string, obj: object): KubeObject;
  /** Unconditional unless obj.metadata.resourceVersion is set (then 409 on a stale one). */
  update(resourceId: string, obj: object): KubeObject;
  /** JSON merge patch. */
  patch(resourceId: string, namespace: string | undefined, name: string, mergePatch: object): KubeObject;
  delete(resourceId: string, namespace: string | undefined, name: string): void;
  get(resourceId: string, namespace: string | undefined, name: string): KubeObject | undefined;
  list(resourceId: string, namespace?: string): KubeObject[];
  /** Current global resourceVersion. */
  resourceVersion(): string;
  resource(resourceId: string): ResourceInfo | undefined;

  /** End every open watch abruptly (connection destroyed mid-stream). */
  dropWatches(): void;
  /** Forget history: watches/continues from older resourceVersions get 410 Expired. */
  compact(): void;
  /**
   * While on, open watches write nothing: no events, no bookmarks. Events are
   * buffered per stream and delivered in order when turned off (a network stall,
   * not data loss); a client that gives up and reconnects simply drops them.
   */
  stallWatches(on: boolean): void;
  /** The next line each matching open watch writes is invalid JSON (or the next watch opened, if none is open). */
  injectMalformedLine(resourceId?: string): void;
  /**
   * The next `times` (default 1) resource requests that match fail with `status` (default 503;
   * 429 and 500 as kube-apiserver words them), with a Retry-After header when `retryAfterSeconds`
   * is given. Match on a resource id, verbs, and/or a predicate on the request.
   */
  failRequests(options: FailRequestsOptions): void;
  /** 403 Forbidden for these verbs (default list and watch) of a resource. */
  forbid(resourceId: string, verbs?: string[]): void;
  unforbid(resourceId?: string): void;
  requests(): RequestRecord[];
  clearRequests(): void;
  openWatchCount(): number;

  close(): Promise<void>;
}

class Simulator implements KubeSimulator {
  url = '';
  readonly token = DEFAULT_TOKEN;
  private readonly registry: Registry;
  private readonly cluster: Cluster;
  private readonly api: ApiServer;
  private readonly server: Server;

  constructor(private readonly opts: SimulatorOptions) {
    const fixtures = opts.fixturesDir ?? DEFAULT_FIXTURES_DIR;
    this.registry = new Registry(fixtures);
    this.cluster = new Cluster(this.registry, opts.historyLimit ?? 10_000);
    this.api = new ApiServer(this.cluster, this.registry, new ProtobufDecoder(fixtures), opts.bookmarkIntervalMs ?? 1000, opts.watchList ?? true);
    this.server = createServer({ keepAlive: true }, this.api.handle);
    this.bootstrap();
  }

  private bootstrap(): void {
    const ns = this.info('namespaces.v1.');
    for (const name of ['default', 'kube-system', 'kube-public', 'kube-node-lease']) {
      this.cluster.create(ns, { metadata: { name, ...(name === 'kube-system' ? { uid: KUBE_SYSTEM_UID } : {}) } }, { keepUid: true });
    }
    this.cluster.create(this.info('services.v1.'), {
      metadata: { name: 'kubernetes', namespace: 'default', labels: { component: 'apiserver', provider: 'kubernetes' } },
      spec: {
        clusterIP: '10.96.0.1',
        clusterIPs: ['10.96.0.1'],
        ipFamilies: ['IPv4'],
        ipFamilyPolicy: 'SingleStack',
        ports: [{ name: 'https', port: 443, protocol: 'TCP', targetPort: 6443 }],
        sessionAffinity: 'None',
        type: 'ClusterIP',
      },
      status: { loadBalancer: {} },
    });
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.opts.port ?? 0, '127.0.0.1', () => resolve());
    });
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  private info(resourceId: string): ResourceInfo {
    const info = this.registry.get(resourceId);
    if (!info) throw errors.badRequest(`unknown resource id ${resourceId} (expected <plural>.<version>.<group>, e.g. pods.v1.)`);
    return info;
  }

  resource(resourceId: string): ResourceInfo | undefined {
    return this.registry.get(resourceId);
  }

  kubeconfig(): string {
    return [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: meshsync-simulator',
      '  cluster:',
      `    server: ${this.url}`,
      '    insecure-skip-tls-verify: true',
      'users:',
      '- name: meshsync',
      '  user:',
      `    token: ${this.token}`,
      'contexts:',
      '- name: meshsync-simulator',
      '  context:',
      '    cluster: meshsync-simulator',
      '    user: meshsync',
      '    namespace: default',
      'current-context: meshsync-simulator',
      'preferences: {}',
      '',
    ].join('\n');
  }

  async writeKubeconfig(path: string): Promise<void> {
    await writeFile(path, this.kubeconfig(), { mode: 0o600 });
  }

  create(resourceId: string, obj: object): KubeObject {
    const info = this.info(resourceId);
    return fullObject(info, this.cluster.create(info, clone(obj) as KubeObject));
  }

  update(resourceId: string, obj: object): KubeObject {
    const info = this.info(resourceId);
    return fullObject(info, this.cluster.update(info, clone(obj) as KubeObject));
  }

  patch(resourceId: string, namespace: string | undefined, name: string, patch: object): KubeObject {
    const info = this.info(resourceId);
    const current = this.cluster.mustGet(info, namespace, name);
    const next = mergePatch(current.body, patch);
    const e = this.cluster.update(info, { ...next, metadata: { ...next.metadata, resourceVersion: undefined } }, { namespace, name });
    return fullObject(info, e);
  }

  delete(resourceId: string, namespace: string | undefined, name: string): void {
    this.cluster.delete(this.info(resourceId), namespace, name);
  }

  get(resourceId: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const info = this.info(resourceId);
    const e = this.cluster.get(info, namespace, name);
    return e ? fullObject(info, e) : undefined;
  }

  list(resourceId: string, namespace?: string): KubeObject[] {
    const info = this.info(resourceId);
    return this.cluster.list(info, { namespace }).items.map((e) => fullObject(info, e));
  }

  resourceVersion(): string {
    return String(this.cluster.rv);
  }

  dropWatches(): void {
    for (const w of [...this.api.watches]) w.drop();
  }

  compact(): void {
    this.cluster.compact();
  }

  stallWatches(on: boolean): void {
    this.api.stalled = on;
    if (!on) for (const w of this.api.watches) w.pump();
  }

  injectMalformedLine(resourceId?: string): void {
    const matching = [...this.api.watches].filter((w) => !resourceId || w.resourceId === resourceId);
    if (matching.length) for (const w of matching) w.injectMalformed();
    else this.api.pendingMalformed.push(resourceId ?? '*');
  }

  failRequests(options: FailRequestsOptions): void {
    const { times = 1, status = 503, ...match } = options;
    this.api.failures.push({ ...match, status, remaining: times });
  }

  forbid(resourceId: string, verbs: string[] = ['list', 'watch']): void {
    this.info(resourceId);
    const set = this.api.forbidden.get(resourceId) ?? new Set<string>();
    for (const v of verbs) set.add(v);
    this.api.forbidden.set(resourceId, set);
  }

  unforbid(resourceId?: string): void {
    if (resourceId) this.api.forbidden.delete(resourceId);
    else this.api.forbidden.clear();
  }

  requests(): RequestRecord[] {
    return [...this.api.log];
  }

  clearRequests(): void {
    this.api.log.length = 0;
  }

  openWatchCount(): number {
    return this.api.watches.size;
  }

  async close(): Promise<void> {
    for (const w of [...this.api.watches]) w.end();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}

export async function startSimulator(opts: SimulatorOptions = {}): Promise<KubeSimulator> {
  const sim = new Simulator(opts);
  await sim.listen();
  return sim;
}

