import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { installObjects, renderInstall } from '../../cli/install/index.ts';
import { startSimulator } from '../../testing/simulator/index.ts';
import type { KubeSimulator } from '../../testing/simulator/index.ts';

/** kubectl with stdin; async, since the simulator answers from this same process. */
function kubectl(args: string[], input: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile('kubectl', args, { maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
    child.stdin!.end(input);
  });
}

describe('install manifests applied with kubectl', function () {
  this.timeout(60_000);
  let sim: KubeSimulator;
  let dir: string;
  let kubeconfig: string;

  beforeEach(async () => {
    sim = await startSimulator();
    dir = await mkdtemp(join(tmpdir(), 'meshsync-install-'));
    kubeconfig = join(dir, 'kubeconfig');
    await sim.writeKubeconfig(kubeconfig);
  });
  afterEach(async () => {
    await sim.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('applies cleanly to the API server and creates every object', async () => {
    const options = { clusterId: 'k8s-cluster-01', namespaces: ['apps'], crds: true, ha: true, crStatus: true };
    sim.create('namespaces.v1.', { metadata: { name: 'apps' } }); // watched namespaces are the user's, not installed
    const result = await kubectl(['--kubeconfig', kubeconfig, 'apply', '-f', '-'], renderInstall(options));
    expect(result.stderr).to.equal('');
    expect(result.code).to.equal(0);
    const objects = installObjects(options);
    expect(result.stdout.trim().split('\n')).to.have.length(objects.length);
    expect(result.stdout).to.not.match(/unchanged|configured/);
    const ids: Record<string, string> = {
      CustomResourceDefinition: 'customresourcedefinitions.v1.apiextensions.k8s.io', Namespace: 'namespaces.v1.', ServiceAccount: 'serviceaccounts.v1.',
      ClusterRole: 'clusterroles.v1.rbac.authorization.k8s.io', ClusterRoleBinding: 'clusterrolebindings.v1.rbac.authorization.k8s.io',
      Role: 'roles.v1.rbac.authorization.k8s.io', RoleBinding: 'rolebindings.v1.rbac.authorization.k8s.io', ConfigMap: 'configmaps.v1.',
      Deployment: 'deployments.v1.apps', Service: 'services.v1.', NetworkPolicy: 'networkpolicies.v1.networking.k8s.io', Secret: 'secrets.v1.',
    };
    for (const obj of objects) {
      const stored = sim.get(ids[obj.kind], obj.metadata.namespace, obj.metadata.name);
      expect(stored, `${obj.kind} ${obj.metadata.name}`).to.not.equal(undefined);
      if ('rules' in obj) expect(stored!.rules).to.deep.equal(obj.rules);
    }
  });

  it('applies an install whose config goes into a Secret', async () => {
    const options = { config: 'plugins:\n  - [meshsync:nats, { auth: { token: t0k } }]\n', configSecret: true };
    const result = await kubectl(['--kubeconfig', kubeconfig, 'apply', '-f', '-'], renderInstall(options));
    expect(result.stderr).to.equal('');
    expect(result.code).to.equal(0);
    expect(result.stdout).to.contain('secret/meshsync created');
    expect(sim.get('secrets.v1.', 'meshery', 'meshsync')).to.not.equal(undefined);
    expect(sim.get('configmaps.v1.', 'meshery', 'meshsync')).to.equal(undefined);
  });

  it('is idempotent: applying again changes nothing', async () => {
    const yaml = renderInstall();
    expect((await kubectl(['--kubeconfig', kubeconfig, 'apply', '-f', '-'], yaml)).code).to.equal(0);
    const again = await kubectl(['--kubeconfig', kubeconfig, 'apply', '-f', '-'], yaml);
    expect(again.code).to.equal(0);
    expect(again.stdout.trim().split('\n').every((line) => line.endsWith(' unchanged')), again.stdout).to.equal(true);
  });

  it('serves the MeshSync CRD so a MeshSync resource can be created', async () => {
    expect((await kubectl(['--kubeconfig', kubeconfig, 'apply', '-f', '-'], renderInstall())).code).to.equal(0);
    const cr = {
      apiVersion: 'meshery.io/v1alpha1', kind: 'MeshSync', metadata: { name: 'meshery-meshsync', namespace: 'meshery' },
      spec: { broker: { native: { name: 'meshery-broker', namespace: 'meshery' } }, 'watch-list': { data: { whitelist: '[]', blacklist: '' } } },
    };
    const result = await kubectl(['--kubeconfig', kubeconfig, 'apply', '-f', '-'], JSON.stringify(cr));
    expect(result.stderr).to.equal('');
    expect(result.stdout).to.match(/meshsync.meshery.io\/meshery-meshsync created/);
  });
});
