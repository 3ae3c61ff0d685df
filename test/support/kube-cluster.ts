/**
 * A real Kubernetes control plane for tests: etcd, kube-apiserver and kube-controller-manager,
 * built by test/cluster/build/build.ts, started on free 127.0.0.1 ports with a generated CA,
 * serving certificate and service-account signing key, RBAC on. Every process is stopped by pid
 * when the cluster stops, and on process exit if a test run dies first.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from '../cluster/build/build.ts';
import { kubeRequest, type Connection, type KubeResponse, type RequestOptions } from './kube-http.ts';
import { freePort, sleep } from './wait.ts';

export type { KubeResponse, RequestOptions } from './kube-http.ts';

/** One component's process: started with fixed arguments, so it can be stopped and started again in place. */
class Component {
  private child?: ChildProcess;
  private exited?: Promise<void>;

  constructor(
    readonly name: string,
    private readonly binary: string,
    /** The port it serves on, when it is an API server (to find its audit log). */
    readonly port: number | undefined,
    private readonly args: () => string[],
    private readonly log: string,
  ) {}

  get pid(): number | undefined {
    return this.child?.exitCode === null && this.child.signalCode === null ? this.child.pid : undefined;
  }

  start(): void {
    if (this.pid !== undefined) throw new Error(`${this.name} is already running (pid ${this.pid})`);
    appendFileSync(this.log, `\n==== start ${new Date().toISOString()}\n`);
    const out = openSync(this.log, 'a');
    const child = spawn(this.binary, this.args(), { stdio: ['ignore', out, out] });
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    running.add(child);
    child.once('exit', () => running.delete(child));
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
  async stop(graceMs = 10_000): Promise<void> {
    const child = this.child;
    if (!child || this.pid === undefined) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  async kill(): Promise<void> {
    const child = this.child;
    if (!child || this.pid === undefined) return;
    child.kill('SIGKILL');
    await this.exited;
  }

  tail(lines = 40): string {
    if (!existsSync(this.log)) return '';
    return readFileSync(this.log, 'utf8').split('\n').slice(-lines).join('\n');
  }
}

// Children of every cluster in this process, killed on exit so a crashed run leaves none behind.
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** The user name of the `meshsyncKubeconfig` credential (an admin, in system:masters). */
export const MESHSYNC_USER = 'meshsync';

/** What the audit log records: every list and watch (the requests a reflector makes), with its outcome. */
const AUDIT_POLICY = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    verbs: [list, watch]
  - level: None
`;

export interface AuditEvent {
  verb: string;
  requestReceivedTimestamp: string;
  requestURI: string;
  stage: 'ResponseStarted' | 'ResponseComplete' | 'Panic';
  user: { username: string };
  responseStatus?: { code?: number; message?: string };
  /** The URI's query, parsed. */
  query: Record<string, string>;
  path: string;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** CA, serving and client certificates (EC P-256: fast to make) and the service-account key pair. */
function makePki(dir: string): void {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '30', '-subj', '/CN=meshsync-test-ca'], dir);
  const sign = (name: string, subject: string, ext: string) => {
    openssl(['req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject], dir);
    writeFileSync(join(dir, `${name}.ext`), ext);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '30', '-extfile', `${name}.ext`], dir);
  };
  sign('apiserver', '/CN=kube-apiserver',
    'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.0.0.1\n'
    + 'extendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment\n');
  const client = 'extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n';
  sign('admin', '/O=system:masters/CN=kubernetes-admin', client);
  // meshsync's own identity, so the audit log tells its requests from the tests' own.
  sign('meshsync', `/O=system:masters/CN=${MESHSYNC_USER}`, client);
  sign('controller-manager', '/CN=system:kube-controller-manager', client);
  openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'sa.key'], dir);
  openssl(['pkey', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'], dir);
}

export function kubeconfigText(server: string, caFile: string, user: { certFile: string; keyFile: string } | { token: string }): string {
  const credentials = 'token' in user
    ? `    token: ${user.token}\n`
    : `    client-certificate: ${user.certFile}\n    client-key: ${user.keyFile}\n`;
  return `apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: ${server}
    certificate-authority: ${caFile}
users:
- name: user
  user:
${credentials}contexts:
- name: test
  context: { cluster: test, user: user }
current-context: test
`;
}

export interface ApiserverOptions {
  /** Extra --feature-gates, e.g. `WatchList=false`. */
  featureGates?: string;
}

export class KubeCluster {
  readonly dir: string;
  readonly caFile: string;
  /** The admin's kubeconfig (system:masters, client certificate). */
  readonly kubeconfig: string;
  /** An admin kubeconfig for meshsync (user MESHSYNC_USER), whose requests the audit log shows apart. */
  readonly meshsyncKubeconfig: string;
  readonly version: string;
  private readonly etcd: Component;
  private readonly apiserver: Component;
  private readonly controllerManager: Component;
  private readonly extra: Component[] = [];
  /** The extra API servers' URLs by their feature gates. */
  private readonly extraByOptions = new Map<string, string>();
  private readonly agent: Agent;
  private readonly ca: Buffer;
  private constructor(
    dir: string,
    private readonly bin: string,
    readonly etcdUrl: string,
    readonly apiserverPort: number,
    etcdPeerPort: number,
    controllerManagerPort: number,
  ) {
    this.dir = dir;
    this.caFile = join(dir, 'ca.crt');
    this.kubeconfig = join(dir, 'admin.kubeconfig');
    this.version = (JSON.parse(readFileSync(join(bin, 'versions.json'), 'utf8')) as { kubernetes: string }).kubernetes;
    const peer = `http://127.0.0.1:${etcdPeerPort}`;
    this.etcd = new Component('etcd', join(bin, 'etcd'), etcdPort(etcdUrl), () => [
      '--name=default', `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=${etcdUrl}`, `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=${peer}`, `--initial-advertise-peer-urls=${peer}`, `--initial-cluster=default=${peer}`,
      // A test cluster's data may be lost with the machine; fsync would only slow every write.
      '--unsafe-no-fsync', '--log-level=warn', '--quota-backend-bytes=4294967296',
    ], join(dir, 'etcd.log'));
    this.apiserver = this.apiserverComponent('kube-apiserver', apiserverPort, {});
    const cmKubeconfig = join(dir, 'controller-manager.kubeconfig');
    writeFileSync(cmKubeconfig, kubeconfigText(this.server, this.caFile, { certFile: join(dir, 'controller-manager.crt'), keyFile: join(dir, 'controller-manager.key') }));
    this.controllerManager = new Component('kube-controller-manager', join(bin, 'kube-controller-manager'), controllerManagerPort, () => [
      `--kubeconfig=${cmKubeconfig}`, `--authentication-kubeconfig=${cmKubeconfig}`, `--authorization-kubeconfig=${cmKubeconfig}`,
      '--bind-address=127.0.0.1', `--secure-port=${controllerManagerPort}`, `--cert-dir=${join(dir, 'controller-manager-certs')}`,
      `--service-account-private-key-file=${join(dir, 'sa.key')}`, `--root-ca-file=${this.caFile}`,
      '--use-service-account-credentials=true', '--leader-elect=false', '--v=1',
    ], join(dir, 'controller-manager.log'));
    writeFileSync(this.kubeconfig, kubeconfigText(this.server, this.caFile, { certFile: join(dir, 'admin.crt'), keyFile: join(dir, 'admin.key') }));
    this.meshsyncKubeconfig = join(dir, 'meshsync.kubeconfig');
    writeFileSync(this.meshsyncKubeconfig, kubeconfigText(this.server, this.caFile, { certFile: join(dir, 'meshsync.crt'), keyFile: join(dir, 'meshsync.key') }));
    writeFileSync(join(dir, 'audit-policy.yaml'), AUDIT_POLICY);
    this.ca = readFileSync(this.caFile);
    this.agent = new Agent({
      ca: this.ca, cert: readFileSync(join(dir, 'admin.crt')), key: readFileSync(join(dir, 'admin.key')),
      keepAlive: true, maxSockets: 32,
    });
  }

  get server(): string {
    return `https://127.0.0.1:${this.apiserverPort}`;
  }

  /** Builds (or finds cached) binaries, then starts etcd, kube-apiserver and kube-controller-manager and waits until they serve. */
  static async start(): Promise<KubeCluster> {
    const bin = build();
    const dir = mkdtempSync(join(tmpdir(), 'meshsync-kube-'));
    makePki(dir);
    const [etcdPort, etcdPeerPort, apiserverPort, cmPort] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    const cluster = new KubeCluster(dir, bin, `http://127.0.0.1:${etcdPort}`, apiserverPort, etcdPeerPort, cmPort);
    try {
      await cluster.startEtcd();
      await cluster.startApiserver();
      cluster.controllerManager.start();
      // Pods need the default ServiceAccount, which the controller-manager creates.
      await cluster.until(async () => (await cluster.request('/api/v1/namespaces/default/serviceaccounts/default')).status === 200, 'the default ServiceAccount', 60_000, cluster.controllerManager);
    } catch (error) {
      const logs = [cluster.etcd, cluster.apiserver, cluster.controllerManager].map((c) => `--- ${c.name}\n${c.tail()}`).join('\n');
      await cluster.stop();
      throw new Error(`${(error as Error).message}\n${logs}`);
    }
    return cluster;
  }

  private apiserverComponent(name: string, port: number, options: ApiserverOptions): Component {
    const d = this.dir;
    return new Component(name, join(this.bin, 'kube-apiserver'), port, () => [
      `--etcd-servers=${this.etcdUrl}`, '--bind-address=127.0.0.1', '--advertise-address=127.0.0.1', `--secure-port=${port}`,
      `--cert-dir=${join(d, `${name}-certs`)}`,
      `--tls-cert-file=${join(d, 'apiserver.crt')}`, `--tls-private-key-file=${join(d, 'apiserver.key')}`, `--client-ca-file=${join(d, 'ca.crt')}`,
      `--service-account-key-file=${join(d, 'sa.pub')}`, `--service-account-signing-key-file=${join(d, 'sa.key')}`,
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local', '--api-audiences=https://kubernetes.default.svc.cluster.local',
      '--authorization-mode=Node,RBAC', '--service-cluster-ip-range=10.0.0.0/24',
      // Nothing outside this machine reaches it: no kubernetes Service endpoints to keep.
      '--endpoint-reconciler-type=none',
      // Tests decide when etcd forgets history (compact()); a timer would make 410s random.
      '--etcd-compaction-interval=0',
      `--audit-policy-file=${join(d, 'audit-policy.yaml')}`, `--audit-log-path=${join(d, `${name}.audit.log`)}`, '--audit-log-format=json',
      // Without it a stopping server waits on its open watches (a minute, here) before exiting.
      '--shutdown-watch-termination-grace-period=2s',
      '--profiling=false', '--v=1',
      ...(options.featureGates ? [`--feature-gates=${options.featureGates}`] : []),
    ], join(d, `${name}.log`));
  }

  async startEtcd(): Promise<void> {
    this.etcd.start();
    await this.until(async () => {
      const r = await this.etcdCall('/health', undefined, 'GET').catch(() => undefined);
      return r?.health === 'true';
    }, 'etcd /health', 30_000, this.etcd);
  }

  stopEtcd(): Promise<void> {
    return this.etcd.stop();
  }

  async startApiserver(): Promise<void> {
    this.apiserver.start();
    await this.waitReady(this.server, this.apiserver);
  }

  stopApiserver(): Promise<void> {
    return this.apiserver.stop();
  }

  /** SIGKILL, as a crash (or an OOM kill) would. */
  killApiserver(): Promise<void> {
    return this.apiserver.kill();
  }

  /**
   * Another kube-apiserver on the same etcd (with other feature gates, or to write through while
   * the main one is down), started once per set of options; stopped with the cluster.
   */
  async startExtraApiserver(options: ApiserverOptions = {}): Promise<string> {
    const key = options.featureGates ?? '';
    const running = this.extraByOptions.get(key);
    if (running) return running;
    const port = await freePort();
    const component = this.apiserverComponent(`kube-apiserver-${this.extra.length + 1}`, port, options);
    this.extra.push(component);
    component.start();
    const server = `https://127.0.0.1:${port}`;
    await this.waitReady(server, component);
    this.extraByOptions.set(key, server);
    return server;
  }

  private async waitReady(server: string, component: Component): Promise<void> {
    await this.until(async () => (await this.request('/readyz', { server }).catch(() => ({ status: 0 }))).status === 200, `${component.name} /readyz`, 90_000, component);
  }

  private async until(check: () => Promise<boolean>, what: string, timeoutMs: number, component?: Component): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await check())) {
      if (component && component.pid === undefined) throw new Error(`${component.name} exited while waiting for ${what}:\n${component.tail()}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(200);
    }
  }

  /** How to reach the main API server as the admin (client certificate), for kube-http's requests and watches. */
  get connection(): Connection {
    return { server: this.server, agent: this.agent, ca: this.ca };
  }

  /** A request to the API server as the admin (or with a bearer token). */
  request(path: string, options: RequestOptions = {}): Promise<KubeResponse> {
    return kubeRequest(this.connection, path, options);
  }

  /** Like request(), but throws unless the status is 2xx. */
  async ok(path: string, options: RequestOptions = {}): Promise<any> {
    const r = await this.request(path, options);
    if (r.status < 200 || r.status > 299) throw new Error(`${options.method ?? 'GET'} ${path}: ${r.status} ${r.body.slice(0, 500)}`);
    return r.json;
  }

  /** Applies objects (server-side apply, as the admin). */
  async apply(objects: any[], fieldManager = 'meshsync-test'): Promise<void> {
    for (const o of objects) await this.ok(`${objectPath(o)}?fieldManager=${fieldManager}&force=true`, { method: 'PATCH', body: o, contentType: 'application/apply-patch+yaml' });
  }

  /** POSTs every object to `collection` (`concurrency` at a time); resolves with the created objects. */
  async createMany(collection: string, objects: unknown[], concurrency = 32): Promise<any[]> {
    const created: any[] = new Array(objects.length);
    let next = 0;
    const worker = async () => {
      while (next < objects.length) {
        const index = next++;
        created[index] = await this.ok(collection, { method: 'POST', body: objects[index] });
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, objects.length) }, worker));
    return created;
  }

  /** Every item of a collection, read in pages (as the admin). */
  async listAll(collection: string, server?: string): Promise<any[]> {
    const items: any[] = [];
    let token = '';
    do {
      const page = await this.ok(`${collection}?limit=500${token ? `&continue=${encodeURIComponent(token)}` : ''}`, { server });
      items.push(...page.items);
      token = page.metadata.continue ?? '';
    } while (token);
    return items;
  }

  /** A token for a ServiceAccount (TokenRequest), valid for an hour. */
  async token(namespace: string, serviceAccount: string): Promise<string> {
    const r = await this.ok(`/api/v1/namespaces/${namespace}/serviceaccounts/${serviceAccount}/token`, {
      method: 'POST', body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } },
    });
    return r.status.token as string;
  }

  /** meshsync's kubeconfig, for another of the cluster's API servers (startExtraApiserver). */
  meshsyncKubeconfigFor(server: string): string {
    const file = join(this.dir, `meshsync-${new URL(server).port}.kubeconfig`);
    writeFileSync(file, kubeconfigText(server, this.caFile, { certFile: join(this.dir, 'meshsync.crt'), keyFile: join(this.dir, 'meshsync.key') }));
    return file;
  }

  /** A kubeconfig file that authenticates with `token` (for a ServiceAccount). */
  kubeconfigForToken(token: string, name: string): string {
    const file = join(this.dir, `${name}.kubeconfig`);
    writeFileSync(file, kubeconfigText(this.server, this.caFile, { token }));
    return file;
  }

  /** etcd's current revision. */
  async etcdRevision(): Promise<number> {
    const r = await this.etcdCall('/v3/kv/range', { key: Buffer.from('/').toString('base64') });
    return Number(r.header.revision);
  }

  /** Compacts etcd at its current revision (what the apiserver does every 5 minutes by default): older resourceVersions are gone. */
  async compact(): Promise<number> {
    const revision = await this.etcdRevision();
    await this.etcdCall('/v3/kv/compaction', { revision: String(revision), physical: true });
    return revision;
  }

  private etcdCall(path: string, body: unknown, method = 'POST'): Promise<any> {
    return new Promise((resolve, reject) => {
      const req = httpRequest(new URL(path, this.etcdUrl), { method, headers: { 'content-type': 'application/json' } }, (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => {
          if ((res.statusCode ?? 0) >= 300) return reject(new Error(`etcd ${path}: ${res.statusCode} ${text}`));
          try { resolve(JSON.parse(text)); } catch (e) { reject(e); }
        });
      });
      req.on('error', reject);
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
  }

  /**
   * The audit log of the main kube-apiserver (or of `server`, an extra one): its list and watch
   * requests (a watch has an entry when its response starts and one when it ends), by `user`
   * and received since `since` (ms since the epoch) when given.
   */
  audit(filter: { user?: string; server?: string; since?: number } = {}): AuditEvent[] {
    const { user, server, since } = filter;
    const name = server === undefined || server === this.server ? 'kube-apiserver' : this.extra.find((c) => server.endsWith(`:${c.port}`))?.name;
    const file = join(this.dir, `${name}.audit.log`);
    if (!existsSync(file)) return [];
    const out: AuditEvent[] = [];
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      if (!line) continue;
      const event = JSON.parse(line) as AuditEvent;
      if (user !== undefined && event.user.username !== user) continue;
      if (since !== undefined && Date.parse(event.requestReceivedTimestamp) < since) continue;
      const url = new URL(event.requestURI, 'https://x');
      out.push({ ...event, path: url.pathname, query: Object.fromEntries(url.searchParams) });
    }
    return out;
  }

  /** Recent log lines of every component, for a failing test's message. */
  logs(lines = 30): string {
    return [this.etcd, this.apiserver, this.controllerManager, ...this.extra].map((c) => `--- ${c.name}\n${c.tail(lines)}`).join('\n');
  }

  /** Stops every process this cluster started and removes its files (keeps them when MESHSYNC_KEEP_CLUSTER is set). */
  async stop(): Promise<void> {
    this.agent.destroy();
    await Promise.all([this.controllerManager.stop(), ...this.extra.map((c) => c.stop())]);
    await this.apiserver.stop();
    await this.etcd.stop();
    if (!process.env.MESHSYNC_KEEP_CLUSTER) rmSync(this.dir, { recursive: true, force: true });
  }
}

const etcdPort = (url: string) => Number(new URL(url).port);

const CLUSTER_SCOPED = new Set(['Namespace', 'Node', 'PersistentVolume', 'StorageClass', 'CustomResourceDefinition', 'ClusterRole', 'ClusterRoleBinding']);

/** The REST path of an object from its apiVersion, kind and name (plural: lowercase kind + s, enough for tests' kinds). */
export function objectPath(o: { apiVersion: string; kind: string; metadata: { name: string; namespace?: string } }, plural = pluralOf(o.kind)): string {
  const base = o.apiVersion.includes('/') ? `/apis/${o.apiVersion}` : `/api/${o.apiVersion}`;
  const ns = o.metadata.namespace && !CLUSTER_SCOPED.has(o.kind) ? `/namespaces/${o.metadata.namespace}` : '';
  return `${base}${ns}/${plural}/${o.metadata.name}`;
}

function pluralOf(kind: string): string {
  const lower = kind.toLowerCase();
  if (lower.endsWith('s')) return `${lower}es`;
  if (lower.endsWith('y')) return `${lower.slice(0, -1)}ies`;
  return `${lower}s`;
}
