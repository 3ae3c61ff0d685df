import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { parseAllDocuments } from 'yaml';
import { DEFAULT_RESOURCES } from '../../plugins/kubernetes/defaults.ts';
import { loadConfig } from '../../cli/config.ts';
import { rbacOptionsFromConfig, runInstallCommand } from '../../cli/install/index.ts';

const docs = (yaml: string) => parseAllDocuments(yaml).map((d) => d.toJS());
const watched = (objects: any[]) => objects.filter((o) => o.kind === 'ClusterRole' || o.kind === 'Role')
  .flatMap((o) => o.rules).filter((r: any) => r.verbs.includes('watch'));

describe('meshsync install / rbac command', () => {
  let dir: string;
  beforeEach(async () => (dir = await mkdtemp(join(tmpdir(), 'meshsync-install-cmd-'))));
  afterEach(() => rm(dir, { recursive: true, force: true }));

  async function load(yaml: string) {
    await writeFile(join(dir, 'meshsync.config.yaml'), yaml);
    return (await loadConfig({ cwd: dir, env: {} })).config;
  }

  it('grants exactly the resources the config watches, after the watch-list narrows them', async () => {
    const config = await load([
      'plugins:',
      '  - [meshsync:kubernetes, { resources: [pods.v1., deployments.v1.apps, secrets.v1.], watchCustomResourceDefinitions: false }]',
      '  - [meshsync:watch-list, { exclude: [secrets.v1.] }]',
      '  - meshsync:stdout',
    ].join('\n'));
    expect(rbacOptionsFromConfig(config)).to.deep.include({ resources: ['pods.v1.', 'deployments.v1.apps'], namespaces: undefined, crds: false, ha: false, meshSyncResource: false });
    expect(watched(docs(runInstallCommand('rbac', [], config)))).to.deep.equal([
      { apiGroups: [''], resources: ['pods'], verbs: ['list', 'watch'] },
      { apiGroups: ['apps'], resources: ['deployments'], verbs: ['list', 'watch'] },
    ]);
  });

  it('keeps a resource whose watch-list exclusion drops only some event types', async () => {
    const config = await load('plugins:\n  - meshsync:kubernetes\n  - [meshsync:watch-list, { include: [pods.v1., { resource: nodes.v1., events: [ADDED] }], exclude: [{ resource: pods.v1., events: [DELETED] }] }]\n');
    expect(rbacOptionsFromConfig(config).resources).to.deep.equal(['pods.v1.', 'nodes.v1.']);
  });

  it('uses the default resources and CRD discovery when the config names no kubernetes options', async () => {
    expect(rbacOptionsFromConfig(await load('logLevel: warn\n'))).to.deep.include({ resources: [...DEFAULT_RESOURCES], namespaces: undefined, crds: true });
    expect(rbacOptionsFromConfig(undefined).resources).to.deep.equal([...DEFAULT_RESOURCES]);
  });

  it('limits watching to the configured namespaces', async () => {
    const config = await load('plugins:\n  - [meshsync:kubernetes, { resources: [pods.v1., nodes.v1.], namespaces: { include: [shop] } }]\n');
    const objects = docs(runInstallCommand('rbac', ['--namespace', 'ops'], config));
    expect(objects.filter((o) => o.kind === 'Role').map((o) => o.metadata.namespace)).to.deep.equal(['shop']);
    expect(objects.find((o) => o.kind === 'ClusterRoleBinding').subjects).to.deep.equal([{ kind: 'ServiceAccount', name: 'meshsync', namespace: 'ops' }]);
  });

  it('applies the install flags and puts the config file into the ConfigMap', async () => {
    const text = 'logLevel: debug\n';
    const yaml = runInstallCommand('install', ['--namespace', 'ops', '--broker-url', 'nats://n:4222', '--cluster-id', 'c1',
      '--image', 'registry.local/meshsync:1.0.0', '--replicas', '2', '--no-crd', '--config', 'x.yaml'], await load(text), { text });
    const objects = docs(yaml);
    expect(objects.map((o) => o.kind)).to.not.include('CustomResourceDefinition');
    const deployment = objects.find((o) => o.kind === 'Deployment');
    expect(deployment.metadata.namespace).to.equal('ops');
    expect(deployment.spec.replicas).to.equal(2);
    expect(deployment.spec.template.spec.containers[0].image).to.equal('registry.local/meshsync:1.0.0');
    expect(deployment.spec.template.spec.containers[0].env).to.deep.include.members([{ name: 'BROKER_URL', value: 'nats://n:4222' }, { name: 'CLUSTER_ID', value: 'c1' }]);
    expect(objects.find((o) => o.kind === 'ConfigMap').data['meshsync.config.yaml']).to.equal(text);
    // The in-cluster defaults elect a leader (two replicas, or two pods during a rolling update).
    expect(objects.find((o) => o.kind === 'Role').rules).to.deep.include.members([
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'update'], resourceNames: ['meshsync-leader'] },
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
    ]);
  });

  it('grants the leader election lease and the MeshSync resource by name when those plugins are configured', async () => {
    const config = await load([
      'plugins:',
      '  - [meshsync:kubernetes, { resources: [pods.v1.] }]',
      '  - [meshsync:leader-election, { leaseName: sync-lock }]',
      '  - [meshsync:meshsync-resource, { name: my-sync, configMap: my-list, writeStatus: false }]',
      '  - meshsync:stdout',
    ].join('\n'));
    const role = docs(runInstallCommand('rbac', ['--namespace', 'meshery'], config)).find((o) => o.kind === 'Role');
    expect(role.rules).to.deep.equal([
      { apiGroups: ['meshery.io'], resources: ['meshsyncs'], verbs: ['get', 'list', 'watch'], resourceNames: ['my-sync'] },
      { apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch'], resourceNames: ['my-list'] },
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'update'], resourceNames: ['sync-lock'] },
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
    ]);
  });

  it('grants the MeshSync resource and the leader lease when the config leaves the plugins to the in-cluster defaults', async () => {
    const text = 'logLevel: info\n';
    const role = docs(runInstallCommand('rbac', [], await load(text), { text })).find((o) => o.kind === 'Role');
    expect(role.rules.map((r: any) => r.resources[0])).to.deep.equal(['meshsyncs', 'configmaps', 'meshsyncs/status', 'leases', 'leases']);
    const explicit = 'plugins: [meshsync:kubernetes, meshsync:stdout]\n';
    expect(docs(runInstallCommand('rbac', [], await load(explicit), { text: explicit })).map((o) => o.kind)).to.not.include('Role');
  });

  it('rejects unknown flags and bad values with a message', () => {
    expect(() => runInstallCommand('install', ['--replica', '2'])).to.throw(/replica/);
    expect(() => runInstallCommand('install', ['--replicas', 'two'])).to.throw(/--replicas must be a whole number/);
    expect(() => runInstallCommand('rbac', ['extra'])).to.throw(/unexpected arguments: extra/);
  });
});
