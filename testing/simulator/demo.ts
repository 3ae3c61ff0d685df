// A small, realistic cluster for demos and tests, plus steady churn and a pod
// factory for benchmarks. Objects are built from the recorded fixtures.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { KubeObject, KubeSimulator } from './index.ts';
import { DEFAULT_FIXTURES_DIR } from './registry.ts';

const fixtureCache = new Map<string, string>();
function fixture(name: string, fixturesDir = DEFAULT_FIXTURES_DIR): any {
  const path = join(fixturesDir, 'objects', name);
  if (!fixtureCache.has(path)) fixtureCache.set(path, readFileSync(path, 'utf8'));
  return JSON.parse(fixtureCache.get(path)!);
}

const POD = 'pods.v1.';
const RS = 'replicasets.v1.apps';
const DEPLOY = 'deployments.v1.apps';
const CM = 'configmaps.v1.';
const CRD_ID = 'customresourcedefinitions.v1.apiextensions.k8s.io';
const VGSC = 'volumegroupsnapshotclasses.v1beta1.groupsnapshot.storage.k8s.io';

const hex = (n: number, len: number) => (n >>> 0).toString(16).padStart(len, '0').slice(-len);
/** Deterministic pseudo-hash so names look like the controllers' ones. */
function hashName(s: string, len = 10): string {
  let h = 2166136261;
  for (const c of s) h = Math.imul(h ^ c.charCodeAt(0), 16777619);
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
  let out = '';
  for (let i = 0; i < len; i++) {
    out += alphabet[(h >>> 0) % alphabet.length];
    h = Math.imul(h ^ i, 16777619);
  }
  return out;
}

interface PodOpts {
  name: string;
  namespace: string;
  labels: Record<string, string>;
  nodeName: string;
  owner?: { kind: string; name: string; uid: string };
  image?: string;
}

function pod(o: PodOpts): KubeObject {
  const p = fixture('pod.json');
  const c = p.spec.containers[0];
  c.name = o.labels.app ?? 'app';
  c.image = o.image ?? 'registry.example.com/shop/app:1.4.2';
  c.ports = [{ containerPort: 8080, name: 'http', protocol: 'TCP' }];
  c.resources = { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '500m', memory: '256Mi' } };
  c.env.push({ name: 'POD_NAME', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } });
  c.readinessProbe = { httpGet: { path: '/healthz', port: 8080, scheme: 'HTTP' }, periodSeconds: 10, timeoutSeconds: 1, successThreshold: 1, failureThreshold: 3 };
  p.spec.nodeName = o.nodeName;
  p.metadata = {
    name: o.name,
    namespace: o.namespace,
    labels: o.labels,
    annotations: { 'prometheus.io/scrape': 'true', 'prometheus.io/port': '8080' },
    ...(o.owner
      ? { ownerReferences: [{ apiVersion: 'apps/v1', kind: o.owner.kind, name: o.owner.name, uid: o.owner.uid, controller: true, blockOwnerDeletion: true }] }
      : {}),
  };
  const cs = p.status.containerStatuses[0];
  cs.name = c.name;
  cs.image = c.image;
  p.status.podIP = `10.244.${hashName(o.name).charCodeAt(0) % 250}.${hashName(o.name).charCodeAt(1) % 250}`;
  p.status.podIPs = [{ ip: p.status.podIP }];
  p.status.phase = 'Running';
  return p;
}

/** A realistic ~4 KB pod (fixture-based, owned by a ReplicaSet) for benchmarks. */
export function makePod(i: number, namespace = 'default'): KubeObject {
  const rs = `bench-${hashName(`bench-${Math.floor(i / 1000)}`)}`;
  const p = pod({
    name: `${rs}-${hashName(String(i), 5)}-${i}`,
    namespace,
    labels: { app: 'bench', shard: String(i % 16), 'pod-template-hash': rs.slice(6) },
    nodeName: `node-${i % 50}`,
    owner: { kind: 'ReplicaSet', name: rs, uid: `00000000-0000-4000-8000-${hex(Math.floor(i / 1000), 12)}` },
  });
  p.metadata.annotations['kubectl.kubernetes.io/restartedAt'] = '2024-05-01T10:00:00Z';
  p.metadata.annotations['checksum/config'] = hex(i * 2654435761, 8).repeat(8);
  p.metadata.managedFields = [
    { apiVersion: 'v1', fieldsType: 'FieldsV1', fieldsV1: { 'f:metadata': { 'f:labels': { '.': {}, 'f:app': {} } }, 'f:spec': { 'f:containers': {} } }, manager: 'kube-controller-manager', operation: 'Update', time: '2024-05-01T10:00:00Z' },
  ];
  return p;
}

interface DemoApp {
  namespace: string;
  name: string;
  replicas: number;
  image: string;
}

const APPS: DemoApp[] = [
  { namespace: 'shop', name: 'frontend', replicas: 3, image: 'registry.example.com/shop/frontend:2.1.0' },
  { namespace: 'shop', name: 'cart', replicas: 2, image: 'registry.example.com/shop/cart:1.7.3' },
  { namespace: 'monitoring', name: 'prometheus', replicas: 1, image: 'quay.io/prometheus/prometheus:v2.53.0' },
];
const NODES = ['worker-1', 'worker-2', 'worker-3'];

const rsName = (app: DemoApp) => `${app.name}-${hashName(app.name)}`;

/** Seeds namespaces, nodes, deployments → replicasets → pods, services, config, a secret and a CRD with objects. */
export function seedDemoCluster(sim: KubeSimulator): void {
  for (const ns of ['shop', 'monitoring']) sim.create('namespaces.v1.', { metadata: { name: ns, labels: { team: ns } } });

  for (const name of NODES) {
    const n = fixture('node.json');
    n.metadata = { name, labels: { ...n.metadata.labels, 'kubernetes.io/hostname': name, 'node-role.kubernetes.io/worker': '' }, annotations: n.metadata.annotations };
    sim.create('nodes.v1.', n);
  }

  let podIndex = 0;
  for (const app of APPS) {
    const labels = { app: app.name };
    const d = fixture('deployment.json');
    d.metadata = { name: app.name, namespace: app.namespace, labels, annotations: { 'deployment.kubernetes.io/revision': '1' } };
    d.spec.replicas = app.replicas;
    d.spec.selector = { matchLabels: labels };
    d.spec.template.metadata = { labels };
    d.spec.template.spec.containers[0].name = app.name;
    d.spec.template.spec.containers[0].image = app.image;
    d.status = { ...d.status, replicas: app.replicas, readyReplicas: app.replicas, availableReplicas: app.replicas, updatedReplicas: app.replicas, observedGeneration: 1 };
    const dep = sim.create(DEPLOY, d);
    const hash = hashName(app.name);
    const rs = sim.create(RS, {
      metadata: {
        name: rsName(app),
        namespace: app.namespace,
        labels: { ...labels, 'pod-template-hash': hash },
        annotations: { 'deployment.kubernetes.io/desired-replicas': String(app.replicas), 'deployment.kubernetes.io/revision': '1' },
        ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: app.name, uid: dep.metadata.uid, controller: true, blockOwnerDeletion: true }],
      },
      spec: { replicas: app.replicas, selector: { matchLabels: { ...labels, 'pod-template-hash': hash } }, template: { ...d.spec.template, metadata: { labels: { ...labels, 'pod-template-hash': hash } } } },
      status: { replicas: app.replicas, readyReplicas: app.replicas, availableReplicas: app.replicas, fullyLabeledReplicas: app.replicas, observedGeneration: 1 },
    });
    for (let i = 0; i < app.replicas; i++) {
      sim.create(POD, pod({
        name: `${rs.metadata.name}-${hashName(`${app.name}-${i}`, 5)}`,
        namespace: app.namespace,
        labels: { ...labels, 'pod-template-hash': hash },
        nodeName: NODES[podIndex++ % NODES.length],
        owner: { kind: 'ReplicaSet', name: rs.metadata.name, uid: rs.metadata.uid },
        image: app.image,
      }));
    }
    sim.create('services.v1.', {
      metadata: { name: app.name, namespace: app.namespace, labels },
      spec: { selector: labels, ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080 }], type: 'ClusterIP', clusterIP: `10.96.${10 + podIndex}.${20 + podIndex}`, sessionAffinity: 'None' },
      status: { loadBalancer: {} },
    });
  }

  const cm = fixture('configmap.json');
  cm.metadata = { name: 'frontend-config', namespace: 'shop', labels: { app: 'frontend' } };
  cm.data = { 'feature.flags': 'checkout-v2=true\nrecommendations=false\n', LOG_LEVEL: 'info' };
  sim.create(CM, cm);

  const secretData = { username: Buffer.from('shop-admin').toString('base64'), password: Buffer.from('s3cr3t-P@ssw0rd').toString('base64') };
  const lastApplied = { apiVersion: 'v1', kind: 'Secret', metadata: { annotations: {}, name: 'db-credentials', namespace: 'shop' }, type: 'Opaque', data: secretData };
  sim.create('secrets.v1.', {
    metadata: {
      name: 'db-credentials',
      namespace: 'shop',
      labels: { app: 'cart' },
      // the classic leak: client-side apply keeps the whole secret in an annotation
      annotations: { 'kubectl.kubernetes.io/last-applied-configuration': `${JSON.stringify(lastApplied)}\n` },
    },
    type: 'Opaque',
    data: secretData,
  });

  sim.create(CRD_ID, fixture('crd-volumegroupsnapshotclasses.groupsnapshot.storage.k8s.io.json'));
  for (const [name, driver] of [['csi-hostpath-groupsnapclass', 'hostpath.csi.k8s.io'], ['ebs-groupsnapclass', 'ebs.csi.aws.com']]) {
    sim.create(VGSC, { apiVersion: 'groupsnapshot.storage.k8s.io/v1beta1', kind: 'VolumeGroupSnapshotClass', metadata: { name }, driver, deletionPolicy: 'Delete' });
  }
}

/**
 * Realistic background traffic on the seeded cluster: scaling (pods ADDED /
 * DELETED with their ReplicaSet and Deployment status MODIFIED), config edits
 * and label flips. Returns a stop function.
 */
export function startChurn(sim: KubeSimulator, opts: { intervalMs?: number } = {}): () => void {
  let tick = 0;
  const step = () => {
    tick++;
    const app = APPS[tick % APPS.length];
    try {
      switch (tick % 4) {
        case 0:
          scale(sim, app, tick);
          break;
        case 1:
          sim.patch(CM, 'shop', 'frontend-config', { data: { LOG_LEVEL: tick % 8 === 1 ? 'debug' : 'info', 'last-edit': String(tick) } });
          break;
        case 2: {
          const pods = sim.list(POD, app.namespace).filter((p) => p.metadata.labels?.app === app.name);
          const target = pods[tick % Math.max(1, pods.length)];
          if (target) sim.patch(POD, app.namespace, target.metadata.name, { metadata: { labels: { canary: tick % 3 === 0 ? 'true' : null } } });
          break;
        }
        case 3:
          scale(sim, app, tick);
          break;
      }
    } catch {
      // a test may have deleted demo objects; churn keeps going on what exists
    }
  };
  const timer = setInterval(step, opts.intervalMs ?? 500);
  return () => clearInterval(timer);
}

function scale(sim: KubeSimulator, app: DemoApp, tick: number): void {
  const rs = sim.get(RS, app.namespace, rsName(app));
  if (!rs) return;
  const pods = sim.list(POD, app.namespace).filter((p) => p.metadata.ownerReferences?.[0]?.uid === rs.metadata.uid);
  // oscillate between replicas and replicas+2
  if (pods.length > app.replicas && tick % 8 >= 4) {
    sim.delete(POD, app.namespace, pods[pods.length - 1].metadata.name);
  } else if (pods.length < app.replicas + 2) {
    sim.create(POD, pod({
      name: `${rs.metadata.name}-${hashName(`${app.name}-${tick}`, 5)}`,
      namespace: app.namespace,
      labels: rs.spec.selector.matchLabels,
      nodeName: NODES[tick % NODES.length],
      owner: { kind: 'ReplicaSet', name: rs.metadata.name, uid: rs.metadata.uid },
      image: app.image,
    }));
  } else {
    sim.delete(POD, app.namespace, pods[pods.length - 1].metadata.name);
  }
  const count = sim.list(POD, app.namespace).filter((p) => p.metadata.ownerReferences?.[0]?.uid === rs.metadata.uid).length;
  sim.patch(RS, app.namespace, rs.metadata.name, { spec: { replicas: count }, status: { replicas: count, readyReplicas: count, availableReplicas: count } });
  sim.patch(DEPLOY, app.namespace, app.name, { spec: { replicas: count }, status: { replicas: count, readyReplicas: count, availableReplicas: count, updatedReplicas: count } });
}

/** A simulated cluster for `meshsync run --simulator`: seeded, changing every `intervalMs`. */
export interface DemoCluster {
  readonly url: string;
  writeKubeconfig(path: string): Promise<void>;
  stop(): Promise<void>;
}

/** Starts the simulator with the demo objects and their churn (what the CLI's demo mode runs). */
export async function startDemoCluster(options: { intervalMs?: number } = {}): Promise<DemoCluster> {
  const { startSimulator } = await import('./index.ts');
  const sim = await startSimulator();
  seedDemoCluster(sim);
  const stopChurn = startChurn(sim, { intervalMs: options.intervalMs ?? 2000 });
  return {
    url: sim.url,
    writeKubeconfig: (path) => sim.writeKubeconfig(path),
    async stop() {
      stopChurn();
      await sim.close();
    },
  };
}
