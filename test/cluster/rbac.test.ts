import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { DEFAULT_RESOURCES } from '../../plugins/kubernetes/defaults.ts';
import { kubectlEnv, kubectlOk, kubectl, type KubectlEnv } from '../support/kubectl.ts';
import { runMeshsyncCommand, startMeshsync, writeConfig, type MeshsyncProcess } from '../support/meshsync-process.ts';
import { untilAsync } from '../support/wait.ts';
import { cluster } from './setup.ts';

const NS = 'rbac-test';
const SA = 'meshsync';

/** The defaults' resources, the MeshSync resource's status, metrics on a free port; events on stdout. */
const config = {
  clusterId: 'rbac-test',
  plugins: [
    ['meshsync:kubernetes', { backoffInitialMs: 200, backoffMaxMs: 1000 }],
    'meshsync:watch-list',
    ['meshsync:meshsync-resource', { namespace: NS, statusIntervalSeconds: 1, configDir: '/nonexistent' }],
    ['meshsync:metrics', { port: 0, host: '127.0.0.1', statusDetail: true }],
    ['meshsync:stdout', { format: 'json' }],
  ],
};

const crPath = `/apis/meshery.io/v1alpha1/namespaces/${NS}/meshsyncs/meshery-meshsync`;
const condition = async (type: string) => ((await cluster.ok(crPath)).status?.conditions ?? []).find((c: { type: string }) => c.type === type);

describe('RBAC on a real kube-apiserver: meshsync as a ServiceAccount bound to what `meshsync rbac` prints', function () {
  this.timeout(180_000);
  let dir: string;
  let kube: KubectlEnv;
  let saKubeconfig: string;
  let meshsync: MeshsyncProcess | undefined;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'meshsync-rbac-'));
    kube = kubectlEnv(cluster.kubeconfig);
    await kubectlOk(kube, ['apply', '-f', join(import.meta.dirname, '..', '..', 'deploy', 'crd', 'meshsync.yaml')]);
    await kubectlOk(kube, ['wait', '--for=condition=Established', 'crd/meshsyncs.meshery.io', '--timeout=60s']);
    await cluster.apply([
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } },
      { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: SA, namespace: NS } },
    ]);
    const rbac = await runMeshsyncCommand(dir, ['rbac', '--namespace', NS, '--name', SA, '--config', writeConfig(dir, config)]);
    expect(rbac.code, rbac.stderr).to.equal(0);
    await kubectlOk(kube, ['apply', '-f', '-'], rbac.stdout);
    // The CR the resource plugin reports on (applied after the CRD is served; its cache may still be filling).
    await untilAsync(async () => (await cluster.request(`${crPath.replace(/\/meshery-meshsync$/, '')}`)).status === 200, 'the MeshSync CRD served', 30_000);
    await cluster.apply([{ apiVersion: 'meshery.io/v1alpha1', kind: 'MeshSync', metadata: { name: 'meshery-meshsync', namespace: NS }, spec: {} }]);
    saKubeconfig = cluster.kubeconfigForToken(await cluster.token(NS, SA), 'rbac-test-sa');
  });
  afterEach(async () => {
    await meshsync?.kill();
    meshsync = undefined;
  });
  after(async () => {
    await cluster.request(`/api/v1/namespaces/${NS}`, { method: 'DELETE' });
    rmSync(dir, { recursive: true, force: true });
  });

  const start = () => (meshsync = startMeshsync({ dir, config, env: { KUBECONFIG: saKubeconfig } }));

  it('syncs every default resource with nothing forbidden, and says so on the CR (Ready=True, Degraded=False)', async () => {
    const run = start();
    await run.waitForLog(/initial sync complete/);
    expect(run.logs().filter((l) => l.err?.code === 'MESHSYNC_KUBE_FORBIDDEN' || /forbidden/i.test(String(l.msg)))).to.deep.equal([]);
    const { address } = await run.waitForLog(/serving \/metrics/);
    const status = await (await fetch(`http://${address}/status`)).json();
    expect(Object.keys(status.resources)).to.include.members([...DEFAULT_RESOURCES]);
    expect(status.unreadable).to.deep.equal({});
    // What it published equals what the server holds, e.g. every namespace and ConfigMap.
    const namespaces = new Set((await cluster.listAll('/api/v1/namespaces')).map((o) => o.metadata.uid));
    await run.waitFor(() => [...namespaces].every((uid) => run.view('namespaces.v1.').has(uid)), 'every namespace published');
    const configMaps = new Set((await cluster.listAll('/api/v1/configmaps')).map((o) => o.metadata.uid));
    await run.waitFor(() => [...configMaps].every((uid) => run.view('configmaps.v1.').has(uid)), 'every ConfigMap published');
    await untilAsync(async () => (await condition('Ready'))?.status === 'True', 'Ready=True on the CR');
    expect(await condition('Degraded')).to.include({ status: 'False', reason: 'AllResourcesReadable' });
  });

  it('reports a resource whose list is taken away (a real 403) in the log, the metric and the CR status, and keeps syncing the others; readable again once granted', async () => {
    const role = await cluster.ok('/apis/rbac.authorization.k8s.io/v1/clusterroles/meshsync');
    const withoutConfigMaps = structuredClone(role);
    for (const rule of withoutConfigMaps.rules) if (rule.apiGroups.includes('') && rule.verbs.includes('list')) rule.resources = rule.resources.filter((r: string) => r !== 'configmaps');
    await cluster.ok('/apis/rbac.authorization.k8s.io/v1/clusterroles/meshsync', { method: 'PUT', body: withoutConfigMaps });
    try {
      const run = start();
      const forbidden = await run.waitForLog(/forbidden to list\/watch configmaps\.v1\./);
      expect(forbidden.err?.code).to.equal('MESHSYNC_KUBE_FORBIDDEN');
      expect(forbidden.msg).to.include('RBAC needs verbs list and watch on resource "configmaps"');
      await run.waitForLog(/initial sync complete/); // a forbidden resource does not hold the others back
      const { address } = await run.waitForLog(/serving \/metrics/);
      const metrics = await (await fetch(`http://${address}/metrics`)).text();
      expect(metrics).to.match(/meshsync_watch_errors_total\{[^}]*resource="configmaps\.v1\."[^}]*reason="forbidden"[^}]*\} [1-9]/);
      await untilAsync(async () => (await condition('Degraded'))?.status === 'True', 'Degraded=True on the CR');
      const degraded = await condition('Degraded');
      expect(degraded.reason).to.equal('Forbidden');
      expect(degraded.message).to.include('configmaps.v1.');
      expect((await condition('Ready')).status).to.equal('True');
      // The others keep syncing: a Secret and a Service created now are published.
      const [secret] = await cluster.createMany(`/api/v1/namespaces/${NS}/secrets`, [{ metadata: { name: 'after-403' }, stringData: { k: 'v' } }]);
      const [service] = await cluster.createMany(`/api/v1/namespaces/${NS}/services`, [{ metadata: { name: 'after-403' }, spec: { ports: [{ port: 80 }] } }]);
      await run.waitFor(() => run.view('secrets.v1.').has(secret.metadata.uid) && run.view('services.v1.').has(service.metadata.uid), 'the new Secret and Service published');
      expect(run.events.some((e) => e.resource === 'configmaps.v1.')).to.equal(false);
      // Granted again: the retry lists ConfigMaps and the CR says all is readable.
      await cluster.ok('/apis/rbac.authorization.k8s.io/v1/clusterroles/meshsync', { method: 'PUT', body: { ...role, metadata: { ...role.metadata, resourceVersion: undefined } } });
      await run.waitForLog(/readable again/, 60_000);
      await untilAsync(async () => (await condition('Degraded'))?.status === 'False', 'Degraded=False on the CR again');
      expect(run.events.some((e) => e.resource === 'configmaps.v1.')).to.equal(true);
    } finally {
      const current = await cluster.ok('/apis/rbac.authorization.k8s.io/v1/clusterroles/meshsync');
      await cluster.ok('/apis/rbac.authorization.k8s.io/v1/clusterroles/meshsync', { method: 'PUT', body: { ...role, metadata: { ...role.metadata, resourceVersion: current.metadata.resourceVersion } } });
    }
  });

  it('prints `meshsync install` manifests that the real server accepts: kubectl apply --dry-run=server, then for real', async () => {
    const ns = 'meshsync-install-test';
    // Its own name, so its ClusterRole and binding do not replace the ones the tests above run under.
    const install = await runMeshsyncCommand(dir, ['install', '--namespace', ns, '--name', 'meshsync-install', '--config', writeConfig(dir, config)]);
    expect(install.code, install.stderr).to.equal(0);
    const objects = parseAllDocuments(install.stdout).map((d) => d.toJS()).filter(Boolean);
    expect(objects.map((o) => o.kind)).to.include.members(['Namespace', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'ConfigMap', 'Deployment', 'CustomResourceDefinition']);
    // With the namespace in place, the dry run validates every object against the real server's
    // schemas and admission (a namespaced object in a missing namespace is refused before that).
    await kubectlOk(kube, ['create', 'namespace', ns]);
    try {
      await kubectlOk(kube, ['apply', '--dry-run=server', '-f', '-'], install.stdout);
      await kubectlOk(kube, ['apply', '-f', '-'], install.stdout);
      for (const o of objects) {
        const got = await kubectl(kube, ['get', `${o.kind}/${o.metadata.name}`, ...(o.metadata.namespace ? ['-n', o.metadata.namespace] : []), '-o', 'name']);
        expect(got.code, `${o.kind}/${o.metadata.name}: ${got.stderr}`).to.equal(0);
      }
    } finally {
      // Everything but the CRD, which the other tests share.
      for (const o of objects.filter((o) => o.kind !== 'CustomResourceDefinition' && !o.metadata.namespace)) {
        await kubectl(kube, ['delete', '--wait=false', '--ignore-not-found', `${o.kind}/${o.metadata.name}`]);
      }
      await kubectl(kube, ['delete', '--wait=false', '--ignore-not-found', 'namespace', ns]);
    }
  });
});
