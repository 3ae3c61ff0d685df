import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseAllDocuments, stringify } from 'yaml';
import { objectPath } from '../support/kube-cluster.ts';
import { kubectlEnv, kubectlOk, type KubectlEnv } from '../support/kubectl.ts';
import { startMeshsync, type MeshsyncProcess } from '../support/meshsync-process.ts';
import { untilAsync } from '../support/wait.ts';
import { buildHelm } from './build/helm.ts';
import { prometheusOperatorCrds, PROMETHEUS_OPERATOR_CRDS } from './build/prometheus-operator.ts';
import { cluster } from './setup.ts';

const CHART = join(import.meta.dirname, '..', '..', 'deploy', 'helm', 'meshery-meshsync');
const NS = 'helm-test';
// Its own name: the chart's ClusterRole and binding are cluster-wide, and rbac.test.ts has `meshsync`.
const NAME = 'meshsync-helm';
const CRDS = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions';
const CRD = `${CRDS}/meshsyncs.meshery.io`;
const MONITORED_NS = 'helm-monitoring';
// Where the BROKER_URL of the meshsync run here points (its events go to stdout): the CR's Publishing-To.
const BROKER = 'nats://meshery-broker.helm-test:4222';
const run = promisify(execFile);

const parse = (yaml: string) => parseAllDocuments(yaml).map((d) => d.toJS()).filter(Boolean);
const whitelist = (...ids: string[]) => JSON.stringify(ids.map((id) => ({ Resource: id, Events: ['ADDED', 'MODIFIED', 'DELETED'] })));

/** What meshsync runs in the pod with the chart's config (config/load.ts defaultPluginEntries in a cluster), events on stdout instead of NATS. */
const config = {
  plugins: [
    ['meshsync:kubernetes', { backoffInitialMs: 200, backoffMaxMs: 1000 }],
    'meshsync:watch-list',
    ['meshsync:meshsync-resource', { configDir: '/nonexistent' }],
    'meshsync:leader-election',
    ['meshsync:stdout', { format: 'json' }],
  ],
};

describe('the Helm chart on a real kube-apiserver: install, upgrade the watch-list live, uninstall', function () {
  this.timeout(180_000);
  let helmBin: string;
  let dir: string;
  let meshsync: MeshsyncProcess | undefined;
  let hadCrd = false;
  let kubectl: KubectlEnv;
  /** The Prometheus Operator CRDs this suite applied, to delete after it. */
  const operatorCrds: string[] = [];

  const helm = async (args: string[], namespace = NS) => (await run(helmBin, [...args, '--kubeconfig', cluster.kubeconfig, '--namespace', namespace], {
    maxBuffer: 16 << 20,
    // Helm's own cache and config stay in the test's folder.
    env: { ...process.env, HELM_CACHE_HOME: join(dir, 'helm-cache'), HELM_CONFIG_HOME: join(dir, 'helm-config'), HELM_DATA_HOME: join(dir, 'helm-data') },
  })).stdout;
  /** A values file: --set would split the JSON at its commas and brackets. */
  const values = (name: string, v: object) => {
    const file = join(dir, `${name}.yaml`);
    writeFileSync(file, stringify(v));
    return file;
  };
  const inNamespace = (m: MeshsyncProcess, resource: string) => [...m.view(resource).values()].filter((o) => o.metadata.namespace === NS).map((o) => o.metadata.name).sort();
  const clusterRoleResources = async () => ((await cluster.ok(`/apis/rbac.authorization.k8s.io/v1/clusterroles/${NAME}`)).rules as { verbs: string[]; resources: string[] }[])
    .filter((r) => r.verbs.includes('watch') && !r.resources.includes('customresourcedefinitions')).flatMap((r) => r.resources).sort();

  before(function () {
    this.timeout(15 * 60_000); // a first build of helm takes minutes; later runs find it cached
    helmBin = buildHelm();
    dir = mkdtempSync(join(tmpdir(), 'meshsync-helm-cluster-'));
    kubectl = kubectlEnv(cluster.kubeconfig);
  });
  after(async () => {
    await meshsync?.kill();
    for (const [release, namespace] of [['meshsync', NS], ['monitored', MONITORED_NS]]) {
      await run(helmBin, ['uninstall', release, '--kubeconfig', cluster.kubeconfig, '--namespace', namespace, '--ignore-not-found']).catch(() => undefined);
      await cluster.request(`/api/v1/namespaces/${namespace}`, { method: 'DELETE' });
    }
    // The suites after this one find the cluster as they would without it.
    if (!hadCrd) await cluster.request(CRD, { method: 'DELETE' });
    for (const path of operatorCrds) await cluster.request(path, { method: 'DELETE' });
    rmSync(dir, { recursive: true, force: true });
    if (kubectl) rmSync(kubectl.home, { recursive: true, force: true });
  });

  it('installs objects the server accepts; meshsync, as the chart\'s ServiceAccount, reports on the chart\'s MeshSync resource (kubectl get meshsync) and reloads the watch-list helm upgrade changes; uninstall leaves only the CRD', async () => {
    // Gone first, so the install is seen to bring it from crds/ (the suites that need it apply it in their before hooks).
    hadCrd = (await cluster.request(CRD)).status === 200;
    await cluster.request(CRD, { method: 'DELETE' });
    await untilAsync(async () => (await cluster.request(CRD)).status === 404, 'the CRD gone');
    // Applied server-side (Helm v4's default, said here): every object passes the server's validation and admission, or the install fails.
    const notes = await helm(['install', 'meshsync', CHART, '--server-side=true', '--create-namespace', '-f', values('install', { name: NAME, watchConfig: { whitelist: whitelist('services.v1.') } })]);
    expect(notes).to.contain(`kubectl get meshsync --namespace ${NS}`);
    const manifest = parse(await helm(['get', 'manifest', 'meshsync']));
    expect(manifest.map((o) => o.kind).sort()).to.deep.equal(['ClusterRole', 'ClusterRoleBinding', 'ConfigMap', 'ConfigMap', 'Deployment', 'MeshSync', 'NetworkPolicy', 'Role', 'RoleBinding', 'Service', 'ServiceAccount']);
    for (const o of manifest) expect((await cluster.request(objectPath(o))).status, `${o.kind} ${o.metadata.name}`).to.equal(200);
    expect((await cluster.request(CRD)).status, 'the CRD from crds/').to.equal(200);
    expect(await clusterRoleResources()).to.deep.equal(['services']);

    await cluster.createMany(`/api/v1/namespaces/${NS}/services`, [{ metadata: { name: 'web' }, spec: { ports: [{ port: 80 }] } }]);
    await cluster.createMany(`/api/v1/namespaces/${NS}/configmaps`, [{ metadata: { name: 'settings' }, data: { a: '1' } }]);
    const kubeconfig = cluster.kubeconfigForToken(await cluster.token(NS, NAME), 'helm-test-sa');
    meshsync = startMeshsync({ dir, config, env: { KUBECONFIG: kubeconfig, POD_NAMESPACE: NS, BROKER_URL: BROKER } });
    const m = meshsync;
    expect((await m.waitForLog(/watch-list applied/)).from).to.equal('configmap');
    await m.waitFor(() => inNamespace(m, 'services.v1.').includes('web'), 'the Service published');
    // The NOTES' check: the chart's MeshSync resource, its status written by meshsync as the chart's ServiceAccount.
    const table = async () => (await kubectlOk(kubectl, ['get', 'meshsync', '--namespace', NS])).trim().split('\n').map((line) => line.trim().split(/\s+/));
    await untilAsync(async () => (await table())[1]?.[1] === 'True', 'kubectl get meshsync: Ready True');
    const [header, row] = await table();
    expect(header).to.deep.equal(['NAME', 'READY', 'PUBLISHING-TO', 'AGE']);
    expect(row.slice(0, 3)).to.deep.equal(['meshery-meshsync', 'True', BROKER]);
    expect(m.events.filter((e) => e.resource !== 'services.v1.').map((e) => e.resource)).to.deep.equal([]);

    // No restart: meshsync watches the ConfigMap; the upgraded ClusterRole lets it list what it now names.
    // The new whitelist encoded twice, as Meshery's values quote it.
    const deployment = `/apis/apps/v1/namespaces/${NS}/deployments/${NAME}`;
    const generation = (await cluster.ok(deployment)).metadata.generation;
    await helm(['upgrade', 'meshsync', CHART, '--reuse-values', '-f', values('upgrade', { watchConfig: { whitelist: JSON.stringify(whitelist('services.v1.', 'configmaps.v1.')) } })]);
    expect(await clusterRoleResources()).to.deep.equal(['configmaps', 'services']);
    expect((await cluster.ok(deployment)).metadata.generation, 'the pods not rolled').to.equal(generation);
    await m.waitFor(() => inNamespace(m, 'configmaps.v1.').includes('settings'), 'ConfigMaps published after helm upgrade');
    expect(m.child.exitCode).to.equal(null);
    await m.kill();
    meshsync = undefined;

    await helm(['uninstall', 'meshsync']);
    for (const o of manifest) {
      await untilAsync(async () => (await cluster.request(objectPath(o))).status === 404, `${o.kind} ${o.metadata.name} deleted`);
    }
    // Helm never deletes what it installed from crds/.
    expect((await cluster.request(CRD)).status).to.equal(200);
  });

  it('with monitoring and config.plugins: the ServiceMonitor and PrometheusRule pass the Prometheus Operator CRDs\' validation, Roles land in the watched namespace; uninstall leaves only the CRD', async () => {
    const file = values('monitored', {
      name: 'meshsync-monitored',
      monitoring: { serviceMonitor: { enabled: true, labels: { release: 'kube-prometheus' } }, prometheusRule: { enabled: true }, dashboard: { enabled: true } },
      config: {
        plugins: [
          ['meshsync:kubernetes', { resources: ['pods.v1.', 'nodes.v1.'], namespaces: { include: [MONITORED_NS] }, metadataOnly: true }],
          'meshsync:watch-list', 'meshsync:meshsync-resource', ['meshsync:leader-election', { leaseName: 'monitored' }], 'meshsync:nats', 'meshsync:metrics',
        ],
      },
    });
    const install = ['install', 'monitored', CHART, '--server-side=true', '--create-namespace', '-f', file];
    // Without the operator's CRDs the server knows no such kinds: the objects do go to it.
    const refused = await helm(install, MONITORED_NS).then(() => '', (error: { stderr: string }) => error.stderr);
    expect(refused).to.match(/no matches for kind "(ServiceMonitor|PrometheusRule)"/);
    await helm(['uninstall', 'monitored', '--ignore-not-found'], MONITORED_NS);

    const crdDir = prometheusOperatorCrds();
    for (const name of PROMETHEUS_OPERATOR_CRDS) {
      const crd = parse(readFileSync(join(crdDir, name), 'utf8'))[0];
      await cluster.apply([crd]);
      operatorCrds.push(`${CRDS}/${crd.metadata.name}`);
      await untilAsync(async () => ((await cluster.ok(`${CRDS}/${crd.metadata.name}`)).status?.conditions ?? [])
        .some((c: { type: string; status: string }) => c.type === 'Established' && c.status === 'True'), `${crd.metadata.name} established`);
    }
    await helm(install, MONITORED_NS);
    const manifest = parse(await helm(['get', 'manifest', 'monitored'], MONITORED_NS));
    const kinds = manifest.map((o) => `${o.kind} ${o.metadata.namespace ?? ''}/${o.metadata.name}`).sort();
    expect(kinds).to.include.members([
      `ServiceMonitor ${MONITORED_NS}/meshsync-monitored`, `PrometheusRule ${MONITORED_NS}/meshsync-monitored`, `ConfigMap ${MONITORED_NS}/meshsync-monitored-dashboard`,
      `Role ${MONITORED_NS}/meshsync-monitored-watch`, `RoleBinding ${MONITORED_NS}/meshsync-monitored-watch`, `MeshSync ${MONITORED_NS}/meshery-meshsync`,
    ]);
    for (const o of manifest) {
      const stored = await cluster.ok(objectPath(o));
      // The server kept every field sent: none pruned as unknown to the CRD's schema.
      if (o.kind === 'ServiceMonitor' || o.kind === 'PrometheusRule') expect(stored.spec, `${o.kind} spec as stored`).to.deep.equal(o.spec);
    }
    const watchRole = await cluster.ok(`/apis/rbac.authorization.k8s.io/v1/namespaces/${MONITORED_NS}/roles/meshsync-monitored-watch`);
    expect(watchRole.rules).to.deep.equal([{ apiGroups: [''], resources: ['pods'], verbs: ['list', 'watch'] }]);

    await helm(['uninstall', 'monitored'], MONITORED_NS);
    for (const o of manifest) {
      await untilAsync(async () => (await cluster.request(objectPath(o))).status === 404, `${o.kind} ${o.metadata.name} deleted`);
    }
    // Nothing of the chart's is left anywhere, by its labels; the MeshSync CRD stays (Helm never deletes crds/).
    for (const collection of ['/api/v1/configmaps', '/api/v1/secrets', '/api/v1/serviceaccounts', '/api/v1/services', '/apis/apps/v1/deployments',
      '/apis/networking.k8s.io/v1/networkpolicies', '/apis/rbac.authorization.k8s.io/v1/roles', '/apis/rbac.authorization.k8s.io/v1/rolebindings',
      '/apis/rbac.authorization.k8s.io/v1/clusterroles', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings',
      '/apis/monitoring.coreos.com/v1/servicemonitors', '/apis/monitoring.coreos.com/v1/prometheusrules', '/apis/meshery.io/v1alpha1/meshsyncs']) {
      const left = (await cluster.ok(`${collection}?labelSelector=${encodeURIComponent('app.kubernetes.io/name=meshsync,app.kubernetes.io/managed-by=Helm')}`)).items;
      expect(left.map((o: { metadata: { namespace?: string; name: string } }) => `${o.metadata.namespace ?? ''}/${o.metadata.name}`), collection).to.deep.equal([]);
    }
    expect((await cluster.request(CRD)).status).to.equal(200);
  });
});
