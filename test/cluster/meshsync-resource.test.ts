import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kubectlEnv, kubectlOk, type KubectlEnv } from '../support/kubectl.ts';
import { runMeshsyncCommand, startMeshsync, type MeshsyncProcess } from '../support/meshsync-process.ts';
import { startNatsServer, subscriber, type NatsServerHandle } from '../support/nats-server.ts';
import { untilAsync } from '../support/wait.ts';
import { cluster } from './setup.ts';

const NS = 'meshsync-resource-test';
const CRD_FILE = join(import.meta.dirname, '..', '..', 'deploy', 'crd', 'meshsync.yaml');
const CR = `/apis/meshery.io/v1alpha1/namespaces/${NS}/meshsyncs/meshery-meshsync`;
const CONFIG_MAP = `/api/v1/namespaces/${NS}/configmaps/meshery-meshsync-config`;
const BROKER = 'nats://broker.meshery.example:4222';

/** MeshSync's whitelist JSON string: every event of each resource. */
const whitelist = (...ids: string[]) => JSON.stringify(ids.map((id) => ({ Resource: id, Events: ['ADDED', 'MODIFIED', 'DELETED'] })));
const cr = (spec: object) => ({ apiVersion: 'meshery.io/v1alpha1', kind: 'MeshSync', metadata: { name: 'meshery-meshsync', namespace: NS }, spec });
const mergePatch = { contentType: 'application/merge-patch+json' };

const CRD = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/meshsyncs.meshery.io';

/** A config whose NATS sink names no broker: the MeshSync resource's is used (BROKER_URL would win). */
const natsConfig = (nats: object = {}) => ({
  clusterId: 'meshsync-resource-test',
  plugins: [
    ['meshsync:kubernetes', { resources: ['services.v1.'], backoffInitialMs: 200, backoffMaxMs: 1000 }],
    'meshsync:watch-list',
    ['meshsync:meshsync-resource', { namespace: NS, statusIntervalSeconds: 1, configDir: '/nonexistent' }],
    ['meshsync:nats', { reconnectInitialMs: 50, reconnectMaxMs: 500, ...nats }],
  ],
});

/** Subscribes to meshsync's default subject on `server`; `got(name)`: a Service of NS by that name was published there. */
async function natsConsumer(server: NatsServerHandle) {
  const sub = await subscriber(server.url, 'meshery.meshsync.request');
  return {
    sub,
    got: (name: string) => sub.json().some((m) => m.object?.metadata?.namespace === NS && m.object?.metadata?.name === name),
  };
}

describe('the MeshSync resource without its CRD on a real kube-apiserver', function () {
  this.timeout(120_000);
  let dir: string;
  let meshsync: MeshsyncProcess | undefined;

  before(async () => {
    // An earlier suite may have left the CRD installed; the next suite below applies it again.
    await cluster.request(CRD, { method: 'DELETE' });
    await untilAsync(async () => (await cluster.request(CRD)).status === 404, 'the CRD gone');
    await untilAsync(async () => (await cluster.request('/apis/meshery.io/v1alpha1')).status === 404, 'meshery.io/v1alpha1 no longer served');
    await cluster.apply([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } }]);
    dir = mkdtempSync(join(tmpdir(), 'meshsync-resource-nocrd-'));
  });
  after(async () => {
    await meshsync?.kill();
    rmSync(dir, { recursive: true, force: true });
  });

  it('is skipped quietly: one info line, no warning or error, and the sync goes on', async () => {
    meshsync = startMeshsync({ dir, config, env: { KUBECONFIG: cluster.meshsyncKubeconfig } });
    await meshsync.waitForLog(/initial sync complete/);
    await meshsync.waitFor(() => [...meshsync!.view('namespaces.v1.').values()].some((o) => o.metadata.name === NS), 'the namespace published');
    const own = meshsync.logs().filter((line) => line.plugin === 'meshsync:meshsync-resource');
    expect(own.filter((line) => /CRD is not installed/.test(line.msg)), JSON.stringify(own)).to.have.length(1);
    expect(own.filter((line) => line.level >= 40), 'warnings or errors of the plugin').to.deep.equal([]);
    // The print-config of the defaults asks too, and quietly picks stdout: no resource names a broker.
    const printed = await runMeshsyncCommand(dir, ['print-config'], { KUBECONFIG: cluster.meshsyncKubeconfig, POD_NAMESPACE: NS });
    expect(printed.code, printed.stderr).to.equal(0);
    expect(JSON.parse(printed.stdout).plugins.map((p: { name: string }) => p.name)).to.include.members(['meshsync:meshsync-resource', 'meshsync:stdout']).and.not.include('meshsync:nats');
  });
});

const config = {
  clusterId: 'meshsync-resource-test',
  plugins: [
    ['meshsync:kubernetes', { backoffInitialMs: 200, backoffMaxMs: 1000 }],
    'meshsync:watch-list',
    ['meshsync:meshsync-resource', { namespace: NS, statusIntervalSeconds: 1, configDir: '/nonexistent' }],
    ['meshsync:stdout', { format: 'json' }],
  ],
};

describe('the MeshSync CRD and CR on a real kube-apiserver: status subresource, live reload from the CR and the ConfigMap', function () {
  this.timeout(120_000);
  let dir: string;
  let kube: KubectlEnv;
  let meshsync: MeshsyncProcess | undefined;

  const condition = async (type: string) => ((await cluster.ok(CR)).status?.conditions ?? []).find((c: { type: string }) => c.type === type);
  const inNamespace = (run: MeshsyncProcess, resource: string) => [...run.view(resource).values()].filter((o) => o.metadata.namespace === NS).map((o) => o.metadata.name).sort();

  before(async () => {
    kube = kubectlEnv(cluster.kubeconfig);
    // The CRD exactly as the project ships it (the file `meshsync install` embeds).
    await kubectlOk(kube, ['apply', '-f', CRD_FILE]);
    await kubectlOk(kube, ['wait', '--for=condition=Established', 'crd/meshsyncs.meshery.io', '--timeout=60s']);
    await cluster.apply([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } }]);
    await cluster.createMany(`/api/v1/namespaces/${NS}/services`, [{ metadata: { name: 'web' }, spec: { ports: [{ port: 80 }] } }]);
    await cluster.createMany(`/api/v1/namespaces/${NS}/secrets`, [{ metadata: { name: 'token' }, stringData: { token: 'not-for-logs' } }]);
    await cluster.createMany(`/api/v1/namespaces/${NS}/configmaps`, [{ metadata: { name: 'settings' }, data: { a: '1' } }]);
    // A freshly established CRD's storage may still answer 429 / 404 for a moment.
    await untilAsync(async () => (await cluster.request(`/apis/meshery.io/v1alpha1/namespaces/${NS}/meshsyncs`)).status === 200, 'the MeshSync CRD served');
  });
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'meshsync-resource-'));
  });
  afterEach(async () => {
    await meshsync?.kill();
    meshsync = undefined;
    await cluster.request(CR, { method: 'DELETE' });
    await cluster.request(CONFIG_MAP, { method: 'DELETE' });
    await untilAsync(async () => (await cluster.request(CR)).status === 404, 'the CR gone');
    rmSync(dir, { recursive: true, force: true });
  });
  after(async () => {
    await cluster.request(`/api/v1/namespaces/${NS}`, { method: 'DELETE' });
  });

  it('writes Ready and publishing-to through the real status subresource; kubectl get meshsync shows them', async () => {
    await cluster.apply([cr({ broker: { custom: { url: BROKER } }, 'watch-list': { data: { whitelist: whitelist('services.v1.') } } })]);
    meshsync = startMeshsync({ dir, config, env: { KUBECONFIG: cluster.meshsyncKubeconfig } });
    await untilAsync(async () => (await condition('Ready'))?.status === 'True', 'Ready=True on the CR');
    const written = await cluster.ok(CR);
    expect(written.status['publishing-to']).to.equal(BROKER);
    expect(await condition('Ready')).to.include({ reason: 'MeshSyncRunning', observedGeneration: written.metadata.generation });
    expect(await condition('Degraded')).to.include({ status: 'False', reason: 'AllResourcesReadable' });
    // The real server keeps status apart from spec: a status in a main-resource patch is dropped.
    await cluster.ok(CR, { method: 'PATCH', body: { status: { 'publishing-to': 'nats://elsewhere:4222' } }, ...mergePatch });
    expect((await cluster.ok(CR)).status['publishing-to']).to.equal(BROKER);
    const [header, row] = (await kubectlOk(kube, ['get', 'meshsync', '-n', NS])).trim().split('\n').map((line) => line.trim().split(/\s+/));
    expect(header).to.deep.equal(['NAME', 'READY', 'PUBLISHING-TO', 'AGE']);
    expect(row.slice(0, 3)).to.deep.equal(['meshery-meshsync', 'True', BROKER]);
    // Only what the CR's whitelist names was published.
    await meshsync.waitFor(() => inNamespace(meshsync!, 'services.v1.').includes('web'), 'the Service published');
    expect(meshsync.events.filter((e) => e.resource !== 'services.v1.')).to.deep.equal([]);
  });

  it('reloads the watch-list live from a CR edit; an invalid edit sets Ready=False InvalidWatchList and keeps the last good one', async () => {
    await cluster.apply([cr({ 'watch-list': { data: { whitelist: whitelist('services.v1.') } } })]);
    meshsync = startMeshsync({ dir, config, env: { KUBECONFIG: cluster.meshsyncKubeconfig } });
    const run = meshsync;
    await run.waitForLog(/initial sync complete/);
    await run.waitFor(() => inNamespace(run, 'services.v1.').includes('web'), 'the Service published');
    expect(run.events.some((e) => e.resource === 'configmaps.v1.')).to.equal(false);

    await cluster.ok(CR, { method: 'PATCH', body: { spec: { 'watch-list': { data: { whitelist: whitelist('services.v1.', 'configmaps.v1.') } } } }, ...mergePatch });
    await run.waitFor(() => inNamespace(run, 'configmaps.v1.').includes('settings'), 'ConfigMaps published after the CR edit');
    const servicesAdded = run.events.filter((e) => e.resource === 'services.v1.' && e.object.metadata.name === 'web').length;
    expect(servicesAdded, 'a resource that stays is not emitted again').to.equal(1);

    await cluster.ok(CR, { method: 'PATCH', body: { spec: { 'watch-list': { data: { whitelist: '[{"Resource":"configmaps","Events":["ADDED"]}]' } } } }, ...mergePatch });
    await untilAsync(async () => (await condition('Ready'))?.status === 'False', 'Ready=False on the CR');
    const rejected = await condition('Ready');
    expect(rejected.reason).to.equal('InvalidWatchList');
    expect(rejected.observedGeneration).to.equal((await cluster.ok(CR)).metadata.generation);
    // The last good watch-list still holds: ConfigMaps keep flowing.
    await cluster.createMany(`/api/v1/namespaces/${NS}/configmaps`, [{ metadata: { name: 'after-invalid' }, data: {} }]);
    await run.waitFor(() => inNamespace(run, 'configmaps.v1.').includes('after-invalid'), 'a ConfigMap created after the invalid edit');

    await cluster.ok(CR, { method: 'PATCH', body: { spec: { 'watch-list': { data: { whitelist: whitelist('secrets.v1.') } } } }, ...mergePatch });
    await untilAsync(async () => (await condition('Ready'))?.status === 'True', 'Ready=True after a valid edit');
    await run.waitFor(() => inNamespace(run, 'secrets.v1.').includes('token'), 'Secrets published after the valid edit');
    const secret = run.view('secrets.v1.').get([...run.view('secrets.v1.').entries()].find(([, o]) => o.metadata.name === 'token')![0])!;
    expect(JSON.stringify(secret)).not.to.include('not-for-logs');
    await cluster.createMany(`/api/v1/namespaces/${NS}/configmaps`, [{ metadata: { name: 'after-narrowing' }, data: {} }]);
    await cluster.createMany(`/api/v1/namespaces/${NS}/secrets`, [{ metadata: { name: 'after-narrowing' }, stringData: { k: 'v' } }]);
    await run.waitFor(() => inNamespace(run, 'secrets.v1.').includes('after-narrowing'), 'the new Secret');
    expect(run.events.some((e) => e.object.metadata.name === 'after-narrowing' && e.resource === 'configmaps.v1.'), 'ConfigMaps left the whitelist').to.equal(false);
    await cluster.request(`/api/v1/namespaces/${NS}/secrets/after-narrowing`, { method: 'DELETE' });
    await cluster.request(`/api/v1/namespaces/${NS}/configmaps/after-narrowing`, { method: 'DELETE' });
    await cluster.request(`/api/v1/namespaces/${NS}/configmaps/after-invalid`, { method: 'DELETE' });
  });

  it('falls back to the ConfigMap meshery-meshsync-config when the CR names no watch-list, and reloads it on edit', async () => {
    await cluster.apply([
      cr({}),
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'meshery-meshsync-config', namespace: NS }, data: { whitelist: whitelist('services.v1.') } },
    ]);
    meshsync = startMeshsync({ dir, config, env: { KUBECONFIG: cluster.meshsyncKubeconfig } });
    const run = meshsync;
    await run.waitForLog(/initial sync complete/);
    await run.waitFor(() => inNamespace(run, 'services.v1.').includes('web'), 'the Service published');
    expect(run.events.filter((e) => e.resource !== 'services.v1.')).to.deep.equal([]);
    expect((await run.waitForLog(/watch-list applied/)).from).to.equal('configmap');

    // Meshery's Helm values quote a blacklist as a JSON array of resource ids.
    await cluster.ok(CONFIG_MAP, { method: 'PATCH', body: { data: { whitelist: null, blacklist: '["services.v1.","secrets.v1."]' } }, ...mergePatch });
    await run.waitFor(() => inNamespace(run, 'configmaps.v1.').includes('settings'), 'ConfigMaps published after the ConfigMap edit');
    expect(run.events.some((e) => e.resource === 'secrets.v1.')).to.equal(false);
  });

  describe('the broker it names, with no BROKER_URL (real nats-servers)', () => {
    const servers: NatsServerHandle[] = [];
    const consumers: { sub: { close(): Promise<void> } }[] = [];
    const nats = async () => {
      const server = await startNatsServer();
      servers.push(server);
      const consumer = await natsConsumer(server);
      consumers.push(consumer);
      return { server, ...consumer };
    };
    afterEach(async () => {
      for (const consumer of consumers.splice(0)) await consumer.sub.close();
      for (const server of servers.splice(0)) await server.dispose();
      await cluster.request(`/api/v1/namespaces/${NS}/services/meshery-nats`, { method: 'DELETE' });
    });

    it('spec.broker.custom.url: events reach that nats-server, and the defaults publish to NATS instead of stdout', async () => {
      const broker = await nats();
      await cluster.apply([cr({ broker: { custom: { url: broker.server.url } } })]);
      // No config file: the defaults read the resource (through the kubeconfig) and pick the NATS sink.
      const printed = await runMeshsyncCommand(dir, ['print-config'], { KUBECONFIG: cluster.meshsyncKubeconfig, POD_NAMESPACE: NS });
      expect(printed.code, printed.stderr).to.equal(0);
      expect(JSON.parse(printed.stdout).plugins.map((p: { name: string }) => p.name)).to.include.members(['meshsync:meshsync-resource', 'meshsync:nats']).and.not.include('meshsync:stdout');

      meshsync = startMeshsync({ dir, config: natsConfig(), env: { KUBECONFIG: cluster.meshsyncKubeconfig } });
      await meshsync.waitFor(() => broker.got('web'), 'the Service published on the resource\'s broker');
      await untilAsync(async () => (await cluster.ok(CR)).status?.['publishing-to'] === broker.server.url, 'publishing-to on the CR');
    });

    it('spec.broker.native: the client port of the Broker\'s Service meshery-nats, at its load balancer from outside the cluster', async () => {
      const broker = await nats();
      await cluster.createMany(`/api/v1/namespaces/${NS}/services`, [{
        metadata: { name: 'meshery-nats' },
        spec: { type: 'LoadBalancer', ports: [{ name: 'monitor', port: 8222 }, { name: 'client', port: broker.server.port }] },
      }]);
      // What a cloud's load-balancer controller writes once it has an address.
      await cluster.ok(`/api/v1/namespaces/${NS}/services/meshery-nats/status`, { method: 'PATCH', body: { status: { loadBalancer: { ingress: [{ ip: '127.0.0.1' }] } } }, ...mergePatch });
      await cluster.apply([cr({ broker: { native: { name: 'meshery-broker', namespace: NS } } })]);
      meshsync = startMeshsync({ dir, config: natsConfig(), env: { KUBECONFIG: cluster.meshsyncKubeconfig } });
      const resolved = await meshsync.waitForLog(/native broker of the MeshSync resource resolved/);
      expect(resolved).to.deep.include({ broker: `nats://127.0.0.1:${broker.server.port}`, native: { name: 'meshery-broker', namespace: NS } });
      await meshsync.waitFor(() => broker.got('web'), 'the Service published on the native broker');
      await untilAsync(async () => (await cluster.ok(CR)).status?.['publishing-to'] === `nats://127.0.0.1:${broker.server.port}`, 'publishing-to on the CR');
    });

    it('precedence: BROKER_URL > the resource > the config file (which the resource replaces only with brokerFromResource)', async () => {
      const brokers = [await nats(), await nats(), await nats()];
      const [fromEnv, fromResource, fromFile] = brokers;
      await cluster.apply([cr({ broker: { custom: { url: fromResource.server.url } } })]);
      /** Runs meshsync until `expected` has the Service; what every other broker received meanwhile. */
      const runTo = async (env: Record<string, string>, natsOptions: object, expected: typeof fromEnv) => {
        const before = brokers.map((broker) => broker.sub.messages.length);
        const run = startMeshsync({ dir, config: natsConfig(natsOptions), env: { KUBECONFIG: cluster.meshsyncKubeconfig, ...env } });
        meshsync = run;
        await run.waitFor(() => expected.got('web'), `the Service published on ${expected.server.url}`);
        await run.stop();
        meshsync = undefined;
        return brokers.filter((broker) => broker !== expected).map((broker) => broker.sub.messages.length - before[brokers.indexOf(broker)]);
      };
      expect(await runTo({ BROKER_URL: fromEnv.server.url }, { url: fromFile.server.url, brokerFromResource: true }, fromEnv), 'messages elsewhere').to.deep.equal([0, 0]);
      expect(await runTo({}, { url: fromFile.server.url, brokerFromResource: true }, fromResource), 'messages elsewhere').to.deep.equal([0, 0]);
      // A config that names a broker keeps it unless it lets the resource choose (SECURITY.md, finding 4).
      expect(await runTo({}, { url: fromFile.server.url }, fromFile), 'messages elsewhere').to.deep.equal([0, 0]);
    });
  });
});
