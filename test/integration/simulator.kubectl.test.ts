// The simulator must convince the real kubectl (v1.32): aggregated discovery,
// protobuf request bodies, client-side apply, label, delete and watch.
import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_FIXTURES_DIR, startSimulator } from '../../testing/simulator/index.ts';
import type { KubeSimulator } from '../../testing/simulator/index.ts';
import { findKubectl, kubectl, kubectlEnv, kubectlOk, kubectlSpawn } from '../support/kubectl.ts';
import type { KubectlEnv } from '../support/kubectl.ts';

describe('Kubernetes API simulator with the real kubectl', function () {
  this.timeout(30_000);
  let sim: KubeSimulator;
  let dir: string;
  let k: KubectlEnv;

  before(() => {
    // fails (not skips) with a clear message when kubectl is missing
    findKubectl();
  });

  beforeEach(async () => {
    sim = await startSimulator();
    dir = mkdtempSync(join(tmpdir(), 'sim-kubectl-'));
    await sim.writeKubeconfig(join(dir, 'kubeconfig'));
    k = kubectlEnv(join(dir, 'kubeconfig'));
  });

  afterEach(async () => {
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
    rmSync(k.home, { recursive: true, force: true });
  });

  it('kubectl api-resources lists built-ins through aggregated discovery, and CRDs once registered', async () => {
    const out = await kubectlOk(k, ['api-resources', '--no-headers']);
    expect(out).to.match(/^pods\s+po\s+v1\s+true\s+Pod$/m);
    expect(out).to.match(/^deployments\s+deploy\s+apps\/v1\s+true\s+Deployment$/m);
    const discovery = sim.requests().filter((r) => r.verb === 'discovery' && r.path === '/apis');
    expect(discovery.some((r) => r.accept.includes('as=APIGroupDiscoveryList'))).to.equal(true);

    await kubectlOk(k, ['apply', '-f', join(DEFAULT_FIXTURES_DIR, 'objects', 'crd-volumegroupsnapshotclasses.groupsnapshot.storage.k8s.io.json')]);
    const after = await kubectlOk(k, ['api-resources', '--no-headers', '--api-group=groupsnapshot.storage.k8s.io']);
    expect(after).to.match(/^volumegroupsnapshotclasses\s+vgsclass,vgsclasses\s+groupsnapshot\.storage\.k8s\.io\/v1beta1\s+false\s+VolumeGroupSnapshotClass$/m);
  });

  it('kubectl create namespace/configmap/deployment (protobuf bodies), get -A -o json, label, delete', async () => {
    expect(await kubectlOk(k, ['create', 'namespace', 'x'])).to.contain('namespace/x created');
    expect(await kubectlOk(k, ['create', 'configmap', 'c', '--from-literal=a=b', '-n', 'x'])).to.contain('configmap/c created');
    expect(await kubectlOk(k, ['create', 'deployment', 'd', '--image=nginx', '-n', 'x'])).to.contain('deployment.apps/d created');
    const creates = sim.requests().filter((r) => r.verb === 'create');
    expect(creates.map((r) => r.contentType)).to.deep.equal(Array(3).fill('application/vnd.kubernetes.protobuf'));

    expect(sim.get('configmaps.v1.', 'x', 'c')!.data).to.deep.equal({ a: 'b' });
    const d = sim.get('deployments.v1.apps', 'x', 'd')!;
    expect(d.spec.replicas).to.equal(1);
    expect(d.spec.template.spec.containers[0]).to.deep.equal({ name: 'nginx', image: 'nginx' });
    expect(d.spec.selector).to.deep.equal({ matchLabels: { app: 'd' } });

    expect(await kubectlOk(k, ['scale', 'deployment', 'd', '-n', 'x', '--replicas=3'])).to.contain('deployment.apps/d scaled');
    expect(sim.get('deployments.v1.apps', 'x', 'd')!.spec.replicas).to.equal(3);

    sim.create('pods.v1.', { metadata: { name: 'p1', namespace: 'x', labels: { app: 'd' } }, spec: { containers: [{ name: 'nginx', image: 'nginx' }] } });
    const all = JSON.parse(await kubectlOk(k, ['get', 'pods', '-A', '-o', 'json']));
    expect(all.items.map((p: any) => `${p.metadata.namespace}/${p.metadata.name}`)).to.deep.equal(['x/p1']);
    expect(all.items[0]).to.include({ kind: 'Pod', apiVersion: 'v1' });

    expect(await kubectlOk(k, ['label', 'pod', 'p1', '-n', 'x', 'tier=web'])).to.contain('pod/p1 labeled');
    expect(sim.get('pods.v1.', 'x', 'p1')!.metadata.labels).to.deep.equal({ app: 'd', tier: 'web' });
    expect(await kubectlOk(k, ['annotate', 'pod', 'p1', '-n', 'x', 'note=hi'])).to.contain('pod/p1 annotated');

    expect(await kubectlOk(k, ['delete', 'pod', 'p1', '-n', 'x'])).to.contain('pod "p1" deleted');
    expect(sim.get('pods.v1.', 'x', 'p1')).to.equal(undefined);
    const missing = await kubectl(k, ['get', 'configmap', 'nope', '-n', 'x']);
    expect(missing.code).to.not.equal(0);
    expect(missing.stderr).to.contain('Error from server (NotFound): configmaps "nope" not found');
  });

  it('kubectl apply --server-side (apply-patch+yaml)', async () => {
    writeFileSync(join(dir, 'ssa.json'), JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'ssa', namespace: 'default' }, data: { k: 'v' } }));
    expect(await kubectlOk(k, ['apply', '--server-side', '-f', join(dir, 'ssa.json')])).to.contain('configmap/ssa serverside-applied');
    expect(sim.get('configmaps.v1.', 'default', 'ssa')!.data).to.deep.equal({ k: 'v' });
  });

  it('kubectl apply -f (create, then a patch of the change)', async () => {
    const manifest = (v: string) => JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'applied', namespace: 'default' }, data: { k: v } });
    writeFileSync(join(dir, 'cm.json'), manifest('v1'));
    expect(await kubectlOk(k, ['apply', '-f', join(dir, 'cm.json')])).to.contain('configmap/applied created');
    writeFileSync(join(dir, 'cm.json'), manifest('v2'));
    expect(await kubectlOk(k, ['apply', '-f', join(dir, 'cm.json')])).to.contain('configmap/applied configured');
    const cm = sim.get('configmaps.v1.', 'default', 'applied')!;
    expect(cm.data).to.deep.equal({ k: 'v2' });
    expect(JSON.parse(cm.metadata.annotations['kubectl.kubernetes.io/last-applied-configuration']).data).to.deep.equal({ k: 'v2' });
    expect(sim.requests().some((r) => r.method === 'PATCH' && r.contentType === 'application/strategic-merge-patch+json')).to.equal(true);
  });

  it('answers injected failures as kube-apiserver does: kubectl waits out a 429 Retry-After and retries, and reports a 503', async () => {
    sim.create('configmaps.v1.', { metadata: { name: 'c', namespace: 'default' }, data: { a: 'b' } });
    sim.failRequests({ resourceId: 'configmaps.v1.', verbs: ['list'], status: 429, retryAfterSeconds: 1 });
    expect(await kubectlOk(k, ['get', 'configmaps', '-n', 'default', '-o', 'name'])).to.contain('configmap/c');
    const lists = sim.requests().filter((r) => r.resource === 'configmaps.v1.' && r.verb === 'list');
    expect(lists).to.have.length(2);
    expect(lists[1].at - lists[0].at, 'kubectl honoured the Retry-After').to.be.at.least(990);

    sim.failRequests({ resourceId: 'configmaps.v1.', verbs: ['list'], status: 503 });
    const refused = await kubectl(k, ['get', 'configmaps', '-n', 'default']);
    expect(refused.code).to.not.equal(0);
    expect(refused.stderr).to.contain('Error from server (ServiceUnavailable): the server is currently unable to handle the request');
  });

  it('kubectl get pods -w prints changes as they happen', async () => {
    const w = kubectlSpawn(k, ['get', 'pods', '-n', 'default', '-w', '--output-watch-events']);
    try {
      const deadline = Date.now() + 10_000;
      while (sim.openWatchCount() === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(sim.openWatchCount(), `kubectl never opened a watch:\n${w.output()}`).to.equal(1);
      sim.create('pods.v1.', { metadata: { name: 'watched', namespace: 'default' }, spec: { containers: [{ name: 'c', image: 'i' }] } });
      await w.waitFor(/ADDED\s+watched/);
      sim.patch('pods.v1.', 'default', 'watched', { metadata: { labels: { x: 'y' } } });
      await w.waitFor(/MODIFIED\s+watched/);
      sim.delete('pods.v1.', 'default', 'watched');
      await w.waitFor(/DELETED\s+watched/);
    } finally {
      w.stop();
    }
  });
});
