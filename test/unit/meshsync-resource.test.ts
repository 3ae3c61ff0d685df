import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultPluginEntries } from '../../config/load.ts';
import { createTestCore } from '../../testing/index.ts';
import { makeObject, POD, DEPLOYMENT } from '../../testing/index.ts';
import {
  brokerSpecOf, configFilesLayer, configMapLayer, customResourceLayer, environmentLayer, NATS_SERVICE, nextCondition, publishingTo, rejectionMessage, resolve, serviceEndpoints,
} from '../../plugins/meshsync-resource/index.ts';
import watchList from '../../plugins/watch-list/index.ts';

const WL = '[{"Resource":"pods.v1.","Events":["ADDED"]}]';

describe('meshsync-resource settings', () => {
  it('reads the watch-list from the custom resource, and the broker its spec.broker resolved to', () => {
    const cr = { metadata: { name: 'meshery-meshsync' }, spec: { broker: { native: { name: 'meshery-broker', namespace: 'meshery' } }, 'watch-list': { data: { whitelist: WL, blacklist: '' } } } };
    expect(customResourceLayer(cr, 'nats://10.96.0.20:4222')).to.deep.equal({ watchList: { whitelist: WL }, broker: 'nats://10.96.0.20:4222' });
    expect(customResourceLayer(cr)).to.deep.equal({ watchList: { whitelist: WL } });
    expect(brokerSpecOf(cr)).to.deep.equal({ native: { name: 'meshery-broker', namespace: 'meshery' } });
  });

  it('takes a native broker over the custom url, as the Meshery operator does; blank fields name nothing', () => {
    const spec = (broker: object) => ({ metadata: { name: 'x' }, spec: { broker } });
    expect(brokerSpecOf(spec({ custom: { url: 'nats://b:4222' }, native: { name: 'n', namespace: 'ns' } }))).to.deep.equal({ native: { name: 'n', namespace: 'ns' } });
    expect(brokerSpecOf(spec({ custom: { url: ' nats://b:4222 ' }, native: { name: '', namespace: '' } }))).to.deep.equal({ custom: 'nats://b:4222' });
    expect(brokerSpecOf(spec({ custom: { url: '  ' } }))).to.equal(undefined);
    expect(brokerSpecOf(undefined)).to.equal(undefined);
  });

  it('derives a native broker\'s endpoints from its Service as the operator does: the client port, the ClusterIP inside, a load balancer or node port outside', () => {
    const service = (spec: object, status: object = {}) => ({ metadata: { name: NATS_SERVICE, namespace: 'meshery' }, spec, status });
    const ports = [{ name: 'monitor', port: 8222, nodePort: 30822 }, { name: 'client', port: 4222, nodePort: 30422 }];
    expect(serviceEndpoints(service({ type: 'ClusterIP', clusterIP: '10.96.0.20', ports }), undefined)).to.deep.equal({ internal: '10.96.0.20:4222' });
    expect(serviceEndpoints(service({ clusterIP: 'None', ports: [{ port: 7422 }] }), undefined)).to.deep.equal({ internal: 'meshery-nats.meshery.svc.cluster.local:7422' });
    expect(serviceEndpoints(service({ type: 'LoadBalancer', clusterIP: '10.96.0.20', ports }), undefined)).to.deep.equal({ internal: '10.96.0.20:4222' });
    expect(serviceEndpoints(service({ type: 'LoadBalancer', clusterIP: '10.96.0.20', ports }, { loadBalancer: { ingress: [{ hostname: 'nats.example' }] } }), undefined))
      .to.deep.equal({ internal: '10.96.0.20:4222', external: 'nats.example:4222' });
    expect(serviceEndpoints(service({ type: 'NodePort', clusterIP: 'fd00::20', ports }), 'https://203.0.113.5:6443')).to.deep.equal({ internal: '[fd00::20]:4222', external: '203.0.113.5:30422' });
    expect(serviceEndpoints(service({ ports: [] }), undefined)).to.deep.equal({});
  });

  it('ranks environment > custom resource > ConfigMap > /config files, a watch-list taken whole from one layer', () => {
    const dir = mkdtempSync(join(tmpdir(), 'msr-unit-'));
    try {
      writeFileSync(join(dir, 'blacklist'), '["secrets.v1."]');
      const layers = {
        environment: environmentLayer({ BROKER_URL: 'nats://env:4222' }),
        'custom-resource': customResourceLayer({ metadata: { name: 'x' }, spec: { broker: { custom: { url: 'nats://cr:4222' } } } }, 'nats://cr:4222'),
        configmap: configMapLayer({ metadata: { name: 'cm' }, data: { whitelist: WL } }),
        'config-files': configFilesLayer(dir),
      };
      expect(resolve(layers)).to.deep.equal({ broker: 'nats://env:4222', brokerFrom: 'environment', watchList: { whitelist: WL }, watchListFrom: 'configmap' });
      expect(resolve({ ...layers, environment: undefined }).brokerFrom).to.equal('custom-resource');
      expect(resolve({ ...layers, configmap: undefined })).to.include({ watchListFrom: 'config-files' });
      expect(resolve({})).to.deep.equal({});
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('shows the broker without credentials', () => {
    expect(publishingTo({ broker: 'nats://u:p@h:4222,nats://h2:4222' })).to.equal('nats://u:[redacted]@h:4222,nats://h2:4222');
  });

  it('moves lastTransitionTime only when the status flips', () => {
    const t0 = new Date('2026-01-01T00:00:00Z');
    const first = nextCondition(undefined, { type: 'Ready', status: 'True', reason: 'MeshSyncRunning', message: 'm' }, t0);
    const same = nextCondition([first], { type: 'Ready', status: 'True', reason: 'MeshSyncRunning', message: 'other' }, new Date('2026-01-02T00:00:00Z'));
    const flipped = nextCondition([same], { type: 'Ready', status: 'False', reason: 'InvalidWatchList', message: 'x' }, new Date('2026-01-03T00:00:00Z'));
    expect(same.lastTransitionTime).to.equal('2026-01-01T00:00:00Z');
    expect(flipped.lastTransitionTime).to.equal('2026-01-03T00:00:00Z');
  });

  it('adds a pass-through watch-list and the MeshSync resource to the defaults everywhere, the Lease in a cluster; NATS when BROKER_URL or the resource names a broker', () => {
    // Outside a cluster the resource is read, its status left to the MeshSync running in the cluster.
    expect(defaultPluginEntries({})).to.deep.include(['meshsync:meshsync-resource', { writeStatus: false }]);
    expect(defaultPluginEntries({})).to.include.members(['meshsync:watch-list', 'meshsync:stdout']).and.not.include('meshsync:leader-election');
    expect(defaultPluginEntries({ KUBERNETES_SERVICE_HOST: '10.96.0.1' })).to.include.members(['meshsync:meshsync-resource', 'meshsync:leader-election']);
    expect(defaultPluginEntries({}, true)).to.include('meshsync:nats').and.not.include('meshsync:stdout');
    expect(defaultPluginEntries({ BROKER_URL: 'nats://n:4222' })).to.include('meshsync:nats').and.not.include('meshsync:stdout');
  });
});

describe('watch-list reconfigure', () => {
  it('swaps the rules live and rejects a bad change, keeping the rules in force', async () => {
    // The operator allows deployments too (finding 10: live rules cannot go beyond allowedResources).
    const t = createTestCore({ plugins: [watchList({ include: [{ resource: 'pods.v1.' }], allowedResources: ['pods.v1.', 'deployments.v1.apps'] })] });
    await t.start();
    t.source.emit('ADDED', DEPLOYMENT, makeObject(DEPLOYMENT, 'd1'));
    t.source.emit('ADDED', POD, makeObject(POD, 'p1'));
    await t.drain();
    expect(t.sink.events.map((e) => e.object.metadata.name)).to.deep.equal(['p1']);

    let error: unknown;
    try {
      t.core.reconfigure({ watchList: { whitelist: '[{"Resource":"deployments","Events":["ADDED"]}]' } });
    } catch (caught) {
      error = caught;
    }
    expect(rejectionMessage(error)).to.match(/^watchList\.whitelist\[0\]\.resource: "deployments" is not a resource id/);
    t.source.emit('ADDED', DEPLOYMENT, makeObject(DEPLOYMENT, 'd2'));
    await t.drain();
    expect(t.sink.events.map((e) => e.object.metadata.name)).to.deep.equal(['p1']);

    t.core.reconfigure({ watchList: { whitelist: '[{"Resource":"deployments.v1.apps","Events":["ADDED"]}]' } });
    t.source.emit('ADDED', DEPLOYMENT, makeObject(DEPLOYMENT, 'd3'));
    t.source.emit('ADDED', POD, makeObject(POD, 'p2'));
    await t.drain();
    expect(t.sink.events.map((e) => e.object.metadata.name)).to.deep.equal(['p1', 'd3']);
    await t.stop();
  });
});

describe('meshsync-resource options', () => {
  it('looks for the custom resource in meshsync\'s own namespace (POD_NAMESPACE), else in meshery', async () => {
    const { default: meshsyncResource } = await import('../../plugins/meshsync-resource/index.ts');
    const saved = process.env.POD_NAMESPACE;
    try {
      process.env.POD_NAMESPACE = 'ops';
      expect((meshsyncResource().options as { namespace: string }).namespace).to.equal('ops');
      delete process.env.POD_NAMESPACE;
      expect((meshsyncResource().options as { namespace: string }).namespace).to.equal('meshery');
      expect((meshsyncResource({ namespace: 'custom' }).options as { namespace: string }).namespace).to.equal('custom');
    } finally {
      if (saved === undefined) delete process.env.POD_NAMESPACE;
      else process.env.POD_NAMESPACE = saved;
    }
  });
});
