import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { createTestCore, type TestCore } from '../../testing/index.ts';
import type { KubeObject, SyncEvent } from '../../core/types.ts';
import kubernetes from '../../plugins/kubernetes/index.ts';
import { startSimulator, type KubeSimulator } from '../../testing/simulator/index.ts';
import meshsyncResource from '../../plugins/meshsync-resource/index.ts';
import watchList from '../../plugins/watch-list/index.ts';
import { sleep, until } from '../support/wait.ts';

const CR_ID = 'meshsyncs.v1alpha1.meshery.io';
const CRD_ID = 'customresourcedefinitions.v1.apiextensions.k8s.io';
const crdManifest = parse(readFileSync(new URL('../../deploy/crd/meshsync.yaml', import.meta.url), 'utf8')) as KubeObject;


const whitelist = (...ids: string[]) => JSON.stringify(ids.map((id) => ({ Resource: id, Events: ['ADDED', 'MODIFIED', 'DELETED'] })));
const meshsyncCr = (data: Record<string, string>, broker: object = { native: { name: 'meshery-broker', namespace: 'meshery' } }) => ({
  apiVersion: 'meshery.io/v1alpha1',
  kind: 'MeshSync',
  metadata: { name: 'meshery-meshsync', namespace: 'meshery' },
  spec: { size: 1, broker, 'watch-list': { data } },
});
const named = (events: SyncEvent[], resource: string) => events.filter((e) => e.resource.resource === resource).map((e) => e.object.metadata.name);
const readyCondition = (sim: KubeSimulator) => ((sim.get(CR_ID, 'meshery', 'meshery-meshsync')?.status as any)?.conditions ?? []).find((c: any) => c.type === 'Ready');

describe('meshsync-resource (MeshSync CR, ConfigMap and /config against the API simulator)', function () {
  this.timeout(40_000);
  let sim: KubeSimulator;
  let dir: string;
  let kubeconfig: string;
  let configDir: string;
  let t: TestCore | undefined;

  beforeEach(async () => {
    sim = await startSimulator({ bookmarkIntervalMs: 200 });
    dir = mkdtempSync(join(tmpdir(), 'meshsync-resource-'));
    configDir = join(dir, 'config');
    writeFileSync(join(dir, '.keep'), '');
    kubeconfig = join(dir, 'kubeconfig');
    await sim.writeKubeconfig(kubeconfig);
    sim.create(CRD_ID, crdManifest);
    sim.create('namespaces.v1.', { metadata: { name: 'meshery' } });
    sim.create('pods.v1.', { metadata: { name: 'web-1', namespace: 'default' }, spec: { containers: [{ name: 'app', image: 'nginx' }] } });
    sim.create('configmaps.v1.', { metadata: { name: 'settings', namespace: 'default' }, data: { a: '1' } });
    sim.create('services.v1.', { metadata: { name: 'api', namespace: 'default' }, spec: { ports: [{ port: 80 }] } });
  });

  afterEach(async () => {
    await t?.stop();
    t = undefined;
    delete process.env.BROKER_URL;
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function createCore(watchListOptions: Parameters<typeof watchList>[0] = {}): TestCore {
    t = createTestCore({
      plugins: [
        kubernetes({ kubeconfig, resources: ['pods.v1.', 'configmaps.v1.', 'services.v1.'], watchCustomResourceDefinitions: false, backoffInitialMs: 50, backoffMaxMs: 200 }),
        watchList(watchListOptions),
        meshsyncResource({ kubeconfig, configDir, statusIntervalSeconds: 0.2 }),
      ],
    });
    return t;
  }

  it('finding 10 (LOW): a CR whitelist naming a resource beyond allowedResources is rejected, says so in the CR status, and is never listed', async () => {
    sim.create('secrets.v1.', { metadata: { name: 'db', namespace: 'default' }, data: { password: 'aHVudGVyMg==' } });
    sim.create(CR_ID, meshsyncCr({ whitelist: whitelist('pods.v1.', 'secrets.v1.') }));
    t = createTestCore({
      plugins: [
        kubernetes({ kubeconfig, resources: ['pods.v1.', 'configmaps.v1.', 'services.v1.', 'secrets.v1.'], watchCustomResourceDefinitions: false, backoffInitialMs: 50, backoffMaxMs: 200 }),
        watchList({ allowedResources: ['pods.v1.', 'configmaps.v1.', 'services.v1.'] }),
        meshsyncResource({ kubeconfig, configDir, statusIntervalSeconds: 0.2 }),
      ],
    });
    await t.start();
    await t.core.whenReady();
    await until(() => readyCondition(sim)?.reason === 'InvalidWatchList', 'the InvalidWatchList condition');
    expect(readyCondition(sim).message).to.match(/beyond the allowed ones \(allowedResources\): secrets\.v1\./);
    expect(sim.requests().some((r) => r.path.startsWith('/api/v1/secrets'))).to.equal(false);
    expect(named(t.sink.events, 'secrets')).to.deep.equal([]);
  });

  it('finding 10 (LOW): without allowedResources, a CR whitelist cannot widen the watch beyond the configured resources', async () => {
    sim.create('secrets.v1.', { metadata: { name: 'db', namespace: 'default' }, data: { password: 'aHVudGVyMg==' } });
    sim.create(CR_ID, meshsyncCr({ whitelist: whitelist('pods.v1.') }));
    const t = createCore();
    await t.start();
    await t.core.whenReady();
    // A live edit after start names a resource the config does not watch.
    sim.patch(CR_ID, 'meshery', 'meshery-meshsync', { spec: { 'watch-list': { data: { whitelist: whitelist('pods.v1.', 'secrets.v1.') } } } });
    await until(() => readyCondition(sim)?.reason === 'InvalidWatchList', 'the InvalidWatchList condition');
    expect(readyCondition(sim).message).to.match(/beyond the allowed ones \(this config's own rules\): secrets\.v1\./);
    await sleep(300);
    expect(sim.requests().some((r) => r.path.startsWith('/api/v1/secrets'))).to.equal(false);
  });

  it('applies the watch-list of the MeshSync resource before the first list', async () => {
    sim.create(CR_ID, meshsyncCr({ whitelist: whitelist('pods.v1.') }));
    const t = createCore();
    await t.start();
    await t.core.whenReady();
    await t.drain();
    expect(named(t.sink.events, 'pods')).to.deep.equal(['web-1']);
    expect(named(t.sink.events, 'configmaps')).to.deep.equal([]);
    // Not even listed: the selection was narrowed before the source started.
    expect(sim.requests().some((r) => r.path.startsWith('/api/v1/configmaps'))).to.equal(false);
  });

  it('starts and stops watchers on a live edit without emitting unchanged objects again', async () => {
    sim.create(CR_ID, meshsyncCr({ whitelist: whitelist('pods.v1.') }));
    const t = createCore();
    await t.start();
    await t.core.whenReady();
    await t.sink.waitFor((events) => named(events, 'pods').length === 1);

    sim.patch(CR_ID, 'meshery', 'meshery-meshsync', { spec: { 'watch-list': { data: { whitelist: whitelist('pods.v1.', 'configmaps.v1.') } } } });
    await t.sink.waitFor((events) => named(events, 'configmaps').includes('settings'), 10_000);
    await t.drain();
    expect(named(t.sink.events, 'pods'), 'pods are not emitted again').to.deep.equal(['web-1']);

    // Pods leave the whitelist: their watch stops, a new pod is not seen.
    sim.patch(CR_ID, 'meshery', 'meshery-meshsync', { spec: { 'watch-list': { data: { whitelist: whitelist('configmaps.v1.') } } } });
    await until(() => !t.core.state.resourceCounts()['pods.v1.'], 'the pod watch to stop');
    sim.create('pods.v1.', { metadata: { name: 'web-2', namespace: 'default' }, spec: { containers: [{ name: 'app', image: 'nginx' }] } });
    sim.create('configmaps.v1.', { metadata: { name: 'later', namespace: 'default' }, data: {} });
    await t.sink.waitFor((events) => named(events, 'configmaps').includes('later'));
    expect(named(t.sink.events, 'pods')).to.deep.equal(['web-1']);
  });

  it('rejects an invalid edit with a False Ready condition and keeps the last good watch-list', async () => {
    sim.create(CR_ID, meshsyncCr({ whitelist: whitelist('pods.v1.') }));
    const t = createCore();
    await t.start();
    await t.core.whenReady();
    await until(() => readyCondition(sim)?.status === 'True', 'Ready=True');

    sim.patch(CR_ID, 'meshery', 'meshery-meshsync', { spec: { 'watch-list': { data: { whitelist: '[{"Resource":"pods","Events":["ADDED"]}]' } } } });
    await until(() => readyCondition(sim)?.status === 'False', 'Ready=False');
    const condition = readyCondition(sim);
    expect(condition.reason).to.equal('InvalidWatchList');
    expect(condition.message).to.include('"pods" is not a resource id');
    // The last good watch-list still runs: pods pass, configmaps do not.
    sim.create('pods.v1.', { metadata: { name: 'web-3', namespace: 'default' }, spec: { containers: [{ name: 'app', image: 'nginx' }] } });
    await t.sink.waitFor((events) => named(events, 'pods').includes('web-3'));
    expect(named(t.sink.events, 'configmaps')).to.deep.equal([]);

    // A good edit clears the condition.
    sim.patch(CR_ID, 'meshery', 'meshery-meshsync', { spec: { 'watch-list': { data: { whitelist: whitelist('pods.v1.', 'services.v1.') } } } });
    await until(() => readyCondition(sim)?.status === 'True', 'Ready=True again');
    await t.sink.waitFor((events) => named(events, 'services').includes('api'));
  });

  it('writes Ready and publishing-to on the status subresource; lastTransitionTime moves only on transitions', async () => {
    process.env.BROKER_URL = 'nats://user:secret@broker.example:4222';
    sim.create(CR_ID, meshsyncCr({ whitelist: whitelist('pods.v1.') }));
    const t = createCore();
    await t.start();
    await t.core.whenReady();
    await until(() => readyCondition(sim)?.status === 'True', 'Ready=True');
    const cr = sim.get(CR_ID, 'meshery', 'meshery-meshsync')!;
    const status = cr.status as any;
    expect(status['publishing-to']).to.equal('nats://user:[redacted]@broker.example:4222');
    expect(readyCondition(sim)).to.include({ status: 'True', reason: 'MeshSyncRunning' });
    expect(JSON.stringify(status)).not.to.include('secret');
    const first = readyCondition(sim).lastTransitionTime;
    const writes = () => sim.requests().filter((r) => r.method === 'PATCH' && r.path.endsWith('/status')).length;
    const before = writes();
    await sleep(1200); // several status intervals
    expect(writes(), 'an unchanged status is not written again').to.equal(before);
    expect(readyCondition(sim).lastTransitionTime).to.equal(first);
    // What an operator sees, through the real kubectl.
    const { kubectlEnv, kubectlOk } = await import('../support/kubectl.ts');
    const shown = JSON.parse(await kubectlOk(kubectlEnv(kubeconfig), ['get', 'meshsync', 'meshery-meshsync', '-n', 'meshery', '-o', 'json']));
    expect(shown.status['publishing-to']).to.equal('nats://user:[redacted]@broker.example:4222');
    expect(shown.status.conditions.find((c: any) => c.type === 'Ready')).to.include({ status: 'True', reason: 'MeshSyncRunning' });
  });

  it('falls back to the ConfigMap, then to the /config files, when the CR names no watch-list', async () => {
    sim.create('configmaps.v1.', { metadata: { name: 'meshery-meshsync-config', namespace: 'meshery' }, data: { blacklist: '["pods.v1.","services.v1."]' } });
    const { mkdirSync } = await import('node:fs');
    mkdirSync(configDir);
    writeFileSync(join(configDir, 'whitelist'), whitelist('pods.v1.'));
    const t = createCore();
    await t.start();
    await t.core.whenReady();
    await t.drain();
    expect(named(t.sink.events, 'pods'), 'the ConfigMap beats /config').to.deep.equal([]);
    expect(named(t.sink.events, 'configmaps')).to.include('settings');

    // The ConfigMap loses its keys: the /config files apply.
    sim.update('configmaps.v1.', { metadata: { name: 'meshery-meshsync-config', namespace: 'meshery' }, data: {} });
    await t.sink.waitFor((events) => named(events, 'pods').includes('web-1'));
    sim.create('configmaps.v1.', { metadata: { name: 'after', namespace: 'default' }, data: {} });
    sim.create('pods.v1.', { metadata: { name: 'web-4', namespace: 'default' }, spec: { containers: [{ name: 'app', image: 'nginx' }] } });
    await t.sink.waitFor((events) => named(events, 'pods').includes('web-4'));
    expect(named(t.sink.events, 'configmaps')).not.to.include('after');
  });

  it('the CR beats the ConfigMap, and a ConfigMap edit then changes nothing', async () => {
    sim.create(CR_ID, meshsyncCr({ whitelist: whitelist('services.v1.') }));
    sim.create('configmaps.v1.', { metadata: { name: 'meshery-meshsync-config', namespace: 'meshery' }, data: { whitelist: whitelist('pods.v1.') } });
    const t = createCore();
    await t.start();
    await t.core.whenReady();
    await t.sink.waitFor((events) => named(events, 'services').includes('api'));
    sim.patch('configmaps.v1.', 'meshery', 'meshery-meshsync-config', { data: { whitelist: whitelist('configmaps.v1.') } });
    sim.create('services.v1.', { metadata: { name: 'api-2', namespace: 'default' }, spec: { ports: [{ port: 81 }] } });
    await t.sink.waitFor((events) => named(events, 'services').includes('api-2'));
    await t.drain();
    expect(named(t.sink.events, 'pods')).to.deep.equal([]);
    expect(named(t.sink.events, 'configmaps')).to.deep.equal([]);
  });

  it('publishes to the broker the MeshSync resource names when BROKER_URL is not set', async () => {
    const { startNatsServer, subscriber } = await import('../support/nats-server.ts');
    const { default: nats } = await import('../../plugins/nats/index.ts');
    const server = await startNatsServer();
    const sub = await subscriber(server.url, 'meshery.meshsync.request');
    try {
      sim.create(CR_ID, meshsyncCr({ whitelist: whitelist('pods.v1.') }, { custom: { url: server.url } }));
      t = createTestCore({
        plugins: [
          kubernetes({ kubeconfig, resources: ['pods.v1.'], watchCustomResourceDefinitions: false }),
          watchList(),
          // Listed before the resource plugin, and configured with a server nobody listens on; the
          // config lets the resource choose (finding 4: without brokerFromResource it could not).
          nats({ url: 'nats://127.0.0.1:1', brokerFromResource: true, reconnectInitialMs: 20, reconnectMaxMs: 200 }),
          meshsyncResource({ kubeconfig, configDir, statusIntervalSeconds: 0.2 }),
        ],
      });
      await t.start();
      await sub.waitFor((messages) => messages.some((m) => m.json<any>().object?.metadata?.name === 'web-1'), 15_000);
      await until(() => (sim.get(CR_ID, 'meshery', 'meshery-meshsync')?.status as any)?.['publishing-to'] === server.url, 'publishing-to');
    } finally {
      await t?.stop();
      t = undefined;
      await sub.close();
      await server.dispose();
    }
  });

  it('resolves a native broker as the operator does: the Service meshery-nats at its ClusterIP in a pod, its DNS name in a pod while there is none, nothing outside without one', async () => {
    const { KubeClient, loadKubeConfig } = await import('../../kubernetes/index.ts');
    const { resolveBroker } = await import('../../plugins/meshsync-resource/index.ts');
    const client = new KubeClient(loadKubeConfig({ kubeconfig }));
    try {
      const native = { native: { name: 'meshery-broker', namespace: 'meshery' } };
      expect(await resolveBroker(native, { client, inPod: true })).to.deep.include({ url: 'nats://meshery-nats.meshery.svc.cluster.local:4222' });
      expect(await resolveBroker(native, { client, inPod: false })).to.have.property('problem').that.contains('has no Service meshery/meshery-nats');
      sim.create('services.v1.', { metadata: { name: 'meshery-nats', namespace: 'meshery' }, spec: { clusterIP: '10.96.7.7', ports: [{ name: 'monitor', port: 8222 }, { name: 'client', port: 4222 }] } });
      sim.create('services.v1.', { metadata: { name: 'meshery-broker', namespace: 'meshery' }, spec: { clusterIP: '10.96.9.9', ports: [{ port: 4222 }] } });
      expect(await resolveBroker(native, { client, inPod: true })).to.deep.include({ url: 'nats://10.96.7.7:4222' });
      // Outside the cluster, a ClusterIP Service has no external endpoint: its internal one is the best there is.
      expect(await resolveBroker(native, { client, inPod: false })).to.deep.include({ url: 'nats://10.96.7.7:4222' });
      expect(await resolveBroker({ custom: 'nats://b:4222' }, { client, inPod: false })).to.deep.include({ url: 'nats://b:4222' });
    } finally {
      client.close();
    }
  });
});
