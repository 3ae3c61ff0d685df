import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_RESOURCES } from '../../plugins/kubernetes/defaults.ts';
import { KubeClient, loadKubeConfig } from '../../kubernetes/index.ts';
import { discover } from '../../plugins/kubernetes/index.ts';
import { MESHSYNC_USER } from '../support/kube-cluster.ts';
import { startMeshsync, type MeshsyncProcess } from '../support/meshsync-process.ts';
import { cluster } from './setup.ts';

const NS = 'discovery-test';

const widgetCrd = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: 'widgets.example.com' },
  spec: {
    group: 'example.com',
    scope: 'Namespaced',
    names: { plural: 'widgets', singular: 'widget', kind: 'Widget', listKind: 'WidgetList' },
    versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } } }],
  },
};

const widget = (name: string) => ({ apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name, namespace: NS }, spec: { size: name.length } });

describe('discovery on a real kube-apiserver', function () {
  this.timeout(120_000);
  let dir: string;
  let meshsync: MeshsyncProcess | undefined;

  before(async () => {
    await cluster.apply([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } }]);
  });
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'meshsync-discovery-'));
  });
  afterEach(async () => {
    await meshsync?.kill();
    meshsync = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  it('reads the same catalog from aggregated discovery as from the legacy per-group documents, the 15 defaults among it', async () => {
    const client = new KubeClient(loadKubeConfig({ kubeconfig: cluster.meshsyncKubeconfig }));
    try {
      const aggregated = await discover(client);
      // The same client, made to ask /apis for the legacy APIGroupList (as a server without aggregated discovery answers).
      const legacyOnly = Object.assign(Object.create(client), { get: (path: string, options: object = {}) => client.get(path, { ...options, accept: 'application/json' }) });
      const legacy = await discover(legacyOnly);
      const shape = (catalog: typeof aggregated) => [...catalog.values()].map((r) => ({ ...r, verbs: [...r.verbs].sort() })).sort((a, b) => a.id.localeCompare(b.id));
      expect(shape(aggregated)).to.deep.equal(shape(legacy));
      for (const id of DEFAULT_RESOURCES) expect(aggregated.has(id), id).to.equal(true);
      expect(aggregated.get('deployments.v1.apps')).to.include({ kind: 'Deployment', namespaced: true, preferred: true });
      expect(aggregated.get('nodes.v1.')).to.include({ kind: 'Node', namespaced: false });
    } finally {
      client.close();
    }
  });

  it('meshsync run with no config watches the 15 default resources and lists each of them', async () => {
    meshsync = startMeshsync({ dir, env: { KUBECONFIG: cluster.meshsyncKubeconfig } });
    const watching = await meshsync.waitForLog(/^watching \d+ resources$/);
    expect(watching.resources).to.have.members([...DEFAULT_RESOURCES]);
    await meshsync.waitForLog(/initial sync complete/);
    const namespaces = [...meshsync.view('namespaces.v1.').values()].map((o) => o.metadata.name);
    expect(namespaces).to.include.members(['default', 'kube-system', NS]);
    // Every default resource was asked for (a list, or the watch of a streaming list) by meshsync.
    const asked = new Set(cluster.audit({ user: MESHSYNC_USER }).map((e) => e.path));
    for (const id of DEFAULT_RESOURCES) {
      const [plural, version, group] = [id.split('.')[0], id.split('.')[1], id.split('.').slice(2).join('.')];
      expect(asked.has(group ? `/apis/${group}/${version}/${plural}` : `/api/${version}/${plural}`), id).to.equal(true);
    }
  });

  it('picks up a CRD created after start, publishes its objects, DELETED when the CRD goes (the watch ends cleanly), ADDED again when it returns', async () => {
    meshsync = startMeshsync({
      dir,
      env: { KUBECONFIG: cluster.meshsyncKubeconfig },
      config: { clusterId: 'discovery', plugins: [['meshsync:kubernetes', { resources: ['namespaces.v1.', '*.*.example.com'], backoffInitialMs: 100, backoffMaxMs: 1000 }], ['meshsync:stdout', { format: 'json' }]] },
    });
    await meshsync.waitForLog(/initial sync complete/);
    await cluster.apply([widgetCrd]);
    await meshsync.waitForLog(/resource now served; watching it/, 60_000);
    // The CRD's resource may be served a moment after it is established: create until it is.
    await createWhenServed([widget('w1'), widget('w2')]);
    const added = () => meshsync!.events.filter((e) => e.resource === 'widgets.v1.example.com' && e.type === 'ADDED').map((e) => e.object.metadata.name);
    await meshsync.waitFor(() => added().includes('w1') && added().includes('w2'), 'ADDED for both widgets');
    const w1 = meshsync.events.find((e) => e.object.metadata.name === 'w1')!;
    expect(w1.object).to.include({ kind: 'Widget', apiVersion: 'example.com/v1' });
    expect(w1.object.spec).to.deep.equal({ size: 2 });

    await cluster.ok('/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com', { method: 'DELETE' });
    const deleted = () => meshsync!.events.filter((e) => e.resource === 'widgets.v1.example.com' && e.type === 'DELETED').map((e) => e.object.metadata.name);
    await meshsync.waitFor(() => deleted().includes('w1') && deleted().includes('w2'), 'DELETED for both widgets');
    await meshsync.waitForLog(/resource no longer served; stopped watching it/);
    expect(meshsync.view('widgets.v1.example.com').size).to.equal(0);
    // Ended cleanly: no failed request reported for the resource that went away.
    const complaints = meshsync.logs().filter((l) => l.level >= 40 && JSON.stringify(l).includes('widgets'));
    expect(complaints, JSON.stringify(complaints)).to.deep.equal([]);

    const before = added().length;
    await cluster.apply([widgetCrd]);
    await createWhenServed([widget('w1')]);
    await meshsync.waitFor(() => added().length > before, 'ADDED again after the CRD returned');
    expect(added().slice(before)).to.deep.equal(['w1']);
    expect([...meshsync.view('widgets.v1.example.com').values()].map((o) => o.metadata.name)).to.deep.equal(['w1']);
  });
});

/** Creates objects of a just-installed CRD, retrying while its resource is not served yet (404). */
async function createWhenServed(objects: { apiVersion: string; kind: string; metadata: { name: string; namespace?: string } }[]): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (const object of objects) {
    for (;;) {
      const r = await cluster.request(`/apis/${object.apiVersion}/namespaces/${object.metadata.namespace}/widgets`, { method: 'POST', body: object });
      if (r.status === 201) break;
      if (r.status !== 404 || Date.now() > deadline) throw new Error(`creating ${object.metadata.name}: ${r.status} ${r.body}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}
