import { expect } from 'chai';
import { Writable } from 'node:stream';
import { createTestCore, DEPLOYMENT, makeObject, POD, type TestCore } from '../../testing/index.ts';
import { createLogger } from '../../core/log.ts';
import { serializeForPipeline } from '../../core/serialized.ts';
import { definePlugin } from '../../core/plugin.ts';
import { z } from 'zod';
import type { ResourceRef } from '../../core/types.ts';
import nats, { type NatsOptionsInput } from '../../plugins/nats/index.ts';
import { ReferenceConsumer, wireKey } from '../../testing/consumer.ts';
import { RegressionTracker } from '../support/convergence.ts';
import { startAnnounced, startNatsServer, subscriber, type NatsServerHandle } from '../support/nats-server.ts';
import kubernetes from '../../plugins/kubernetes/index.ts';
import redactSecrets from '../../plugins/redact-secrets/index.ts';
import watchList from '../../plugins/watch-list/index.ts';
import { startSimulator } from '../../testing/simulator/index.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const INGRESS: ResourceRef = Object.freeze({ group: 'networking.k8s.io', version: 'v1', resource: 'ingresses', kind: 'Ingress', namespaced: true });
const NODE: ResourceRef = Object.freeze({ group: '', version: 'v1', resource: 'nodes', kind: 'Node', namespaced: false });

function natsCore(options: NatsOptionsInput, extra: Parameters<typeof createTestCore>[0] = {}): TestCore {
  return createTestCore({ ...extra, plugins: [...(extra.plugins ?? []), nats({ reconnectInitialMs: 20, reconnectMaxMs: 200, ...options })] });
}

/** A transform that copies every object (as an enricher would), so no object is the source's own. */
function copyEveryObject() {
  return definePlugin({
    name: 'test:copy', description: 'Copies every object.', options: z.object({}),
    setup: () => (core) => void core.hooks.transform.tap('test:copy', (event) => ({ ...event, object: { ...event.object } })),
  })();
}

function memoryLog() {
  const lines: string[] = [];
  const destination = new Writable({ write(chunk, _, done) { lines.push(String(chunk)); done(); } });
  return { logger: createLogger({ level: 'debug', destination, pretty: false }), lines };
}

describe('nats sink (real nats-server)', function () {
  this.timeout(20_000);
  let server: NatsServerHandle;
  const cleanups: (() => Promise<unknown>)[] = [];

  beforeEach(async () => {
    server = await startNatsServer();
  });
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
    await server.dispose();
  });

  it('publishes MeshSync payloads and Meshsync-* headers to meshery.meshsync.request', async () => {
    const sub = await subscriber(server.url, 'meshery.meshsync.request');
    cleanups.push(sub.close);
    const t = natsCore({ url: server.url });
    cleanups.push(t.stop);
    await startAnnounced(t.start, sub);
    const pod = makeObject(POD, 'web-1', { namespace: 'shop' }, { spec: { nodeName: 'n1' } });
    t.source.emit('ADDED', POD, pod);
    t.source.emit('DELETED', DEPLOYMENT, makeObject(DEPLOYMENT, 'api'));
    await t.drain();
    await sub.waitFor((m) => m.length === 2);
    expect(sub.messages[0].string()).to.equal(`{"object":${JSON.stringify(pod)},"type":"ADDED","cluster_id":"test-cluster"}`);
    const headers = sub.messages[0].headers!;
    expect(headers.get('Meshsync-Type')).to.equal('ADDED');
    expect(headers.get('Meshsync-Resource')).to.equal('pods.v1.');
    expect(headers.get('Meshsync-Cluster')).to.equal('test-cluster');
    expect(headers.get('Meshsync-Format-Version')).to.equal('1');
    expect(sub.messages[1].json<any>().type).to.equal('DELETED');
    expect(sub.messages[1].headers!.get('Meshsync-Resource')).to.equal('deployments.v1.apps');
    expect(t.core.readiness().broker).to.equal(true);
    const metrics = await t.core.metrics.getSingleMetricAsString('meshsync_events_published_total');
    expect(metrics).to.match(/meshsync_events_published_total\{type="ADDED"\} 1/);
    expect(metrics).to.match(/meshsync_events_published_total\{type="DELETED"\} 1/);
  });

  it('sends what the kubernetes source serialised once, except what a transform changed: Secrets leave redacted, live and in a resync', async () => {
    const sim = await startSimulator();
    const dir = mkdtempSync(join(tmpdir(), 'meshsync-nats-kube-'));
    cleanups.push(async () => {
      await sim.close();
      rmSync(dir, { recursive: true, force: true });
    });
    const kubeconfig = join(dir, 'kubeconfig');
    await sim.writeKubeconfig(kubeconfig);
    sim.create('secrets.v1.', { metadata: { name: 'db', namespace: 'default' }, type: 'Opaque', data: { password: Buffer.from('hunter2').toString('base64') } });
    sim.create('pods.v1.', { metadata: { name: 'web', namespace: 'default' }, spec: { containers: [{ name: 'a', image: 'nginx' }] } });
    const sub = await subscriber(server.url, 'meshery.meshsync.request');
    cleanups.push(sub.close);
    const t = createTestCore({ plugins: [kubernetes({ kubeconfig, resources: ['secrets.v1.', 'pods.v1.'] }), redactSecrets(), nats({ url: server.url })] });
    cleanups.push(t.stop);
    await t.start();
    // The start's frame (RESYNC_BEGIN, both objects, RESYNC_END), then the requested one.
    await sub.waitFor((m) => m.length === 4);
    const reply = await sub.nc.request('meshery.meshsync.control', 'resync', { timeout: 2000 });
    expect(reply.json<any>().count).to.equal(2);
    await sub.waitFor((m) => m.length === 8);
    const wire = sub.messages.map((m) => m.string()).join('\n');
    expect(wire).to.not.include(Buffer.from('hunter2').toString('base64'));
    const objects = sub.json().filter((p: any) => p.object !== undefined);
    expect(objects).to.have.length(4);
    expect(objects.every((p: any) => p.resync_id !== undefined), 'both frames carry every object').to.equal(true);
    for (const payload of objects) {
      if (payload.object.kind === 'Secret') expect(payload.object.data).to.deep.equal({ password: '<redacted>' });
      else expect(payload.object).to.deep.include({ kind: 'Pod', apiVersion: 'v1' });
    }
  });

  it('republishes in a resync what a filter let through only as MODIFIED: the filters see the type each object was confirmed as', async () => {
    const sub = await subscriber(server.url, 'meshery.meshsync.request');
    cleanups.push(sub.close);
    const t = natsCore({ url: server.url }, { plugins: [watchList({ include: [{ resource: 'pods.v1.', events: ['MODIFIED'] }] })] });
    cleanups.push(t.stop);
    await startAnnounced(t.start, sub);
    for (const name of ['web', 'api']) {
      t.source.emit('ADDED', POD, makeObject(POD, name, { resourceVersion: '1' })); // filtered out
      t.source.emit('MODIFIED', POD, makeObject(POD, name, { resourceVersion: '2' })); // published
    }
    await t.drain();
    await sub.waitFor((m) => m.length === 2);
    const reply = await sub.nc.request('meshery.meshsync.control', 'resync', { timeout: 2000 });
    expect(reply.json<any>().count).to.equal(2);
    await sub.waitFor((m) => m.length === 6);
    const frame = sub.json().slice(3, 5);
    expect(frame.map((p: any) => [p.type, p.object.metadata.name, p.object.metadata.resourceVersion]).sort()).to.deep.equal([['ADDED', 'api', '2'], ['ADDED', 'web', '2']]);
  });

  it('renders subject templates with one token per value (dots in groups become _)', async () => {
    const sub = await subscriber(server.url, 'ms.>');
    cleanups.push(sub.close);
    const t = natsCore({ url: server.url, subject: 'ms.{cluster}.{group}.{version}.{resource}.{kind}.{namespace}.{type}' }, { clusterId: 'eu.west 1' });
    cleanups.push(t.stop);
    await startAnnounced(t.start, sub);
    t.source.emit('ADDED', INGRESS, makeObject(INGRESS, 'shop', { namespace: 'web' }));
    t.source.emit('MODIFIED', NODE, makeObject(NODE, 'n1'));
    t.source.emit('ADDED', POD, makeObject(POD, 'p', { namespace: 'kube-system' }));
    await t.drain();
    await sub.waitFor((m) => m.length === 3);
    expect(sub.messages.map((m) => m.subject)).to.have.members([
      'ms.eu_west_1.networking_k8s_io.v1.ingresses.Ingress.web.ADDED',
      'ms.eu_west_1.core.v1.nodes.Node._.MODIFIED',
      'ms.eu_west_1.core.v1.pods.Pod.kube-system.ADDED',
    ]);
  });

  it('holds events while the broker is down at start and delivers them once it is up', async () => {
    await server.stop();
    const t = natsCore({ url: server.url });
    cleanups.push(t.stop);
    await t.start();
    expect(t.core.readiness().broker).to.equal(false);
    for (let i = 0; i < 20; i++) t.source.emit('ADDED', POD, makeObject(POD, `p${i}`));
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(t.core.counters.sinks['meshsync:nats'].failedAttempts).to.be.greaterThan(0);
    await server.restart();
    const sub = await subscriber(server.url, 'meshery.meshsync.request');
    cleanups.push(sub.close);
    // The subscriber may come up after the first delivery: the consumer asks for the state then.
    await t.drain();
    expect(t.core.counters.sinks['meshsync:nats'].delivered).to.equal(20, 'the server confirmed every held event');
    await sub.nc.request('meshery.meshsync.control', 'resync', { timeout: 5000 });
    await sub.waitFor((m) => m.filter((x) => x.json<any>().resync_id !== undefined && x.json<any>().object).length === 20);
    expect(t.core.readiness().broker).to.equal(true);
  });

  it('sends what failed while the broker was down as soon as it is back, not when the batch\'s backoff ends', async () => {
    await server.stop();
    const t = natsCore({ url: server.url }, { retryInitialMs: 60_000, retryMaxMs: 60_000 });
    cleanups.push(t.stop);
    await t.start();
    for (let i = 0; i < 5; i++) t.source.emit('ADDED', POD, makeObject(POD, `p${i}`));
    while (t.core.counters.sinks['meshsync:nats'].failedAttempts === 0) await new Promise((resolve) => setTimeout(resolve, 10));
    await server.restart();
    const backAt = Date.now();
    await t.drain(); // a backoff of 30-90 s would outlast this test's 20 s
    expect(t.core.counters.sinks['meshsync:nats'].delivered).to.equal(5);
    expect(Date.now() - backAt).to.be.below(10_000);
  });
});

describe('nats sink delivery guarantees (real nats-server)', function () {
  this.timeout(20_000);
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  });
  const server = async (options: Parameters<typeof startNatsServer>[0] = {}) => {
    const handle = await startNatsServer(options);
    cleanups.push(handle.dispose);
    return handle;
  };

  it('with JetStream on the server, a restart publishes the diff against the ledger: DELETED for an object gone, MODIFIED for a changed one, ADDED for a new one, nothing for an unchanged one', async () => {
    const nats = await server({ jetstream: true });
    const sub = await subscriber(nats.url, 'meshery.meshsync.request');
    cleanups.push(sub.close);
    const pod = (name: string, resourceVersion: string, image = 'nginx') => makeObject(POD, name, { uid: `uid-${name}`, resourceVersion }, { spec: { image } });
    const first = natsCore({ url: nats.url }, { source: { syncedAtStart: false } });
    await first.start();
    for (const name of ['same', 'changed', 'gone', 'edited']) first.source.emit('ADDED', POD, pod(name, '1'));
    first.source.synced();
    await sub.waitFor((m) => m.length === 4);
    expect(first.core.state.statuses()['meshsync:nats']).to.deep.equal({ ledger: 'available', converge: 'every consumer' });
    await first.stop();
    expect(sub.messages.every((m) => m.json<any>().resync_id === undefined), 'with a ledger the start is no frame').to.equal(true);
    sub.messages.length = 0;

    // Started again: 'gone' was deleted meanwhile, 'changed' has a new resourceVersion, 'edited' the
    // same resourceVersion but other content (a transform changed, say), 'new' is new.
    const second = natsCore({ url: nats.url }, { source: { syncedAtStart: false } });
    cleanups.push(second.stop);
    await second.start();
    second.source.emit('ADDED', POD, pod('same', '1'));
    second.source.emit('ADDED', POD, pod('changed', '2'));
    second.source.emit('ADDED', POD, pod('edited', '1', 'nginx:2'));
    second.source.emit('ADDED', POD, pod('new', '1'));
    second.source.synced();
    await sub.waitFor((m) => m.length === 4);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(sub.json().map((p) => `${p.type} ${p.object.metadata.name}`).sort()).to.deep.equal(['ADDED new', 'DELETED gone', 'MODIFIED changed', 'MODIFIED edited']);
    const deleted = sub.json().find((p) => p.type === 'DELETED')!;
    expect(deleted.object).to.deep.equal({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'gone', namespace: 'default', uid: 'uid-gone', resourceVersion: '1' } });
  });

  it('in Meshery mode too, a restart with the ledger publishes only the diff: Meshery gets a DELETED for the object deleted while meshsync was down', async () => {
    const nats = await server({ jetstream: true });
    const sub = await subscriber(nats.url, 'meshery.meshsync.core');
    cleanups.push(sub.close);
    const pod = (name: string) => makeObject(POD, name, { uid: `uid-${name}`, resourceVersion: '1' });
    const first = natsCore({ url: nats.url, protocol: 'meshery' }, { source: { syncedAtStart: false } });
    await first.start();
    for (const name of ['kept', 'gone']) first.source.emit('ADDED', POD, pod(name));
    first.source.synced();
    await sub.waitFor((m) => m.length === 2);
    await first.stop();
    sub.messages.length = 0;
    const second = natsCore({ url: nats.url, protocol: 'meshery' }, { source: { syncedAtStart: false } });
    cleanups.push(second.stop);
    await second.start();
    second.source.emit('ADDED', POD, pod('kept'));
    second.source.synced();
    await sub.waitFor((m) => m.length === 1);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(sub.json().map((m) => [m.EventType, m.Object.metadata.name])).to.deep.equal([['DELETED', 'gone']]);
    expect(sub.json()[0].Object).to.include({ kind: 'Pod', apiVersion: 'v1' });
  });

  it('without JetStream on the server, a start is a frame around its events, and the sink says only framed consumers converge', async () => {
    const nats = await server();
    const sub = await subscriber(nats.url, 'meshery.meshsync.request');
    cleanups.push(sub.close);
    const { logger, lines } = memoryLog();
    const t = natsCore({ url: nats.url }, { logger, source: { syncedAtStart: false } });
    cleanups.push(t.stop);
    await t.start();
    t.source.emit('ADDED', POD, makeObject(POD, 'a'));
    t.source.emit('ADDED', POD, makeObject(POD, 'b'));
    t.source.emit('DELETED', POD, makeObject(POD, 'b'));
    t.source.synced();
    await sub.waitFor((m) => m.some((x) => x.json<any>().type === 'RESYNC_END'));
    const payloads = sub.json();
    expect(payloads[0].type).to.equal('RESYNC_BEGIN');
    const resyncId = payloads[0].resync_id;
    const end = payloads.find((p) => p.type === 'RESYNC_END')!;
    expect(payloads.filter((p) => p.object).every((p) => p.resync_id === resyncId)).to.equal(true);
    expect(end).to.include({ resync_id: resyncId, count: new Set(payloads.filter((p) => p.object).map((p) => p.object.metadata.name)).size });
    // A consumer that held objects of a previous run drops them at the end marker.
    const consumer = new ReferenceConsumer();
    consumer.apply(JSON.stringify({ type: 'ADDED', object: makeObject(POD, 'from-before'), cluster_id: 'test-cluster' }));
    for (const m of sub.messages) consumer.apply(m.data);
    expect([...consumer.view('test-cluster').values()].map((o) => o.metadata.name)).to.deep.equal(['a']);
    expect(t.core.state.statuses()['meshsync:nats']).to.deep.equal({ ledger: 'unavailable', converge: 'only consumers that apply resync framing' });
    expect(lines.some((line) => line.includes('only consumers that apply resync framing converge'))).to.equal(true);
  });

  it('never sends an object back to an older resourceVersion: events the lane took before a resync, delivered after it, are left out where the frame sent a newer one', async () => {
    const nats = await server();
    const sub = await subscriber(nats.url, 'meshery.meshsync.request');
    cleanups.push(sub.close);
    const t = natsCore({ url: nats.url }, { batchSize: 1 });
    cleanups.push(t.stop);
    await startAnnounced(t.start, sub);
    const count = 2000;
    const at = (i: number, resourceVersion: string) => makeObject(POD, `p${i}`, { uid: `uid-${i}`, resourceVersion });
    for (let i = 0; i < count; i++) t.source.emit('ADDED', POD, at(i, '1'));
    await t.drain();
    for (let i = 0; i < count; i++) t.source.emit('MODIFIED', POD, at(i, '2'));
    // The lane takes them all now (going out one per batch); then the store moves on, and a
    // resync reads it while they are still going out.
    await new Promise((resolve) => setImmediate(resolve));
    for (let i = 0; i < count; i++) t.source.emit('MODIFIED', POD, at(i, '3'));
    await sub.waitFor((m) => m.length >= count + 100);
    const reply = await sub.nc.request('meshery.meshsync.control', 'resync', { timeout: 10_000 });
    await t.drain();
    await sub.nc.flush();
    await new Promise((resolve) => setTimeout(resolve, 200));
    const events = sub.json().filter((payload) => payload.object !== undefined);
    const inFrame = events.filter((payload) => payload.resync_id === reply.json<any>().resync_id);
    expect(inFrame.length, 'the frame went out while the taken events did').to.equal(count);
    expect(events.indexOf(inFrame[0]), 'the frame came after some of the taken events').to.be.above(0);
    const tracker = new RegressionTracker();
    for (const payload of events) tracker.observe(payload.object);
    expect(tracker.regressions, 'no resourceVersion went backwards').to.deep.equal([]);
    const consumer = new ReferenceConsumer();
    for (const m of sub.messages) consumer.apply(m.data);
    expect([...consumer.view('test-cluster').values()].every((object) => object.metadata.resourceVersion === '3')).to.equal(true);
    expect(consumer.view('test-cluster').size).to.equal(count);
  });

  // Two ways a resync finds what to republish: the source's snapshot for objects the source keeps,
  // the sink's own confirmed bytes for a transform's copies. Both must converge.
  const variants = [
    { name: 'objects the source keeps (the resync reads its snapshot)', plugins: [] },
    { name: 'objects a transform copied (the resync sends the bytes it confirmed)', plugins: [copyEveryObject()] },
  ];
  for (const variant of variants) it(`converges to the source state after the broker is killed and restarted during churn: ${variant.name}`, async () => {
    const nats1 = await server();
    const consumer = new ReferenceConsumer();
    // A consumer asks for a resync whenever its own connection comes back (PROTOCOL.md).
    const sub = await subscriber(nats1.url, 'meshery.meshsync.request', { maxReconnectAttempts: -1, reconnectTimeWait: 20 });
    cleanups.push(sub.close);
    sub.nc.subscribe('meshery.meshsync.request', { callback: (_, msg) => consumer.apply(msg.data) });
    void (async () => {
      for await (const status of sub.nc.status()) {
        if (status.type !== 'reconnect') continue;
        // Until meshsync is back too, nobody answers: retry.
        for (let answered = false; !answered && !sub.nc.isClosed();) {
          answered = await sub.nc.request('meshery.meshsync.control', 'resync', { timeout: 1000 }).then(() => true, () => false);
          if (!answered) await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
    })();
    const t = natsCore({ url: nats1.url }, { plugins: variant.plugins });
    cleanups.push(t.stop);
    await t.start();
    let n = 0;
    const churn = () => {
      for (let i = 0; i < 10; i++) {
        const name = `p${Math.floor(Math.random() * 60)}`;
        const exists = [...t.source.objects.values()].some((o) => o.object.metadata.name === name);
        if (!exists) t.source.emit('ADDED', POD, makeObject(POD, name, { resourceVersion: String(++n) }));
        else if (Math.random() < 0.4) t.source.emit('DELETED', POD, makeObject(POD, name));
        else t.source.emit('MODIFIED', POD, makeObject(POD, name, { resourceVersion: String(++n) }));
      }
    };
    const churning = setInterval(churn, 5);
    try {
      await new Promise((resolve) => setTimeout(resolve, 100));
      await nats1.kill();
      await new Promise((resolve) => setTimeout(resolve, 150));
      await nats1.restart();
      await new Promise((resolve) => setTimeout(resolve, 150));
    } finally {
      clearInterval(churning);
    }
    await t.drain();
    const expected = () => new Map([...t.source.objects.values()].map(({ object }) => [wireKey(object), object.metadata.resourceVersion]));
    const actual = () => new Map([...consumer.view('test-cluster').entries()].map(([key, object]) => [key, object.metadata.resourceVersion]));
    const deadline = Date.now() + 8000;
    while (JSON.stringify([...actual()].sort()) !== JSON.stringify([...expected()].sort()) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect([...actual()].sort()).to.deep.equal([...expected()].sort(), `incomplete resyncs: ${consumer.incompleteResyncs}`);
    expect(await t.core.metrics.getSingleMetricAsString('meshsync_resyncs_total')).to.match(/reason="reconnect"/);
  });

  it('publishes to JetStream with message ids the server uses to drop duplicates', async () => {
    const js1 = await server({ jetstream: true });
    const t = natsCore({ url: js1.url, jetstream: { stream: 'MESHSYNC', create: true } });
    cleanups.push(t.stop);
    await t.start();
    for (let i = 0; i < 50; i++) t.source.emit('ADDED', POD, makeObject(POD, `p${i}`));
    await t.drain();
    const { jetstreamManager, jetstream } = await import('@nats-io/jetstream');
    const { connect } = await import('@nats-io/transport-node');
    const nc = await connect({ servers: js1.url });
    cleanups.push(() => nc.close());
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info('MESHSYNC');
    expect(info.state.messages).to.equal(50);
    expect(info.config.subjects).to.deep.equal(['meshery.meshsync.request']);
    const first = await jsm.streams.getMessage('MESHSYNC', { seq: 1 });
    expect(first!.header.get('Nats-Msg-Id')).to.equal('uid-pods-p0:1:ADDED');
    expect(first!.header.get('Meshsync-Resource')).to.equal('pods.v1.');
    const again = await jetstream(nc).publish('meshery.meshsync.request', first!.data, { msgID: 'uid-pods-p0:1:ADDED' });
    expect(again.duplicate).to.equal(true);
    expect((await jsm.streams.info('MESHSYNC')).state.messages).to.equal(50);
  });

  it('cuts oversized objects down to fit max_payload and marks them truncated', async () => {
    const small = await server({ config: 'max_payload: 4096' });
    const sub = await subscriber(small.url, 'meshery.meshsync.request');
    cleanups.push(sub.close);
    const t = natsCore({ url: small.url });
    cleanups.push(t.stop);
    await startAnnounced(t.start, sub);
    const big = 'x'.repeat(5000);
    t.source.emit('ADDED', POD, makeObject(POD, 'fine'));
    t.source.emit('ADDED', POD, makeObject(POD, 'managed', { managedFields: [{ manager: big }], annotations: { 'kubectl.kubernetes.io/last-applied-configuration': big, keep: 'me' } }));
    t.source.emit('ADDED', POD, makeObject(POD, 'huge', { labels: { app: 'a' } }, { spec: { blob: big } }));
    await t.drain();
    await sub.waitFor((m) => m.length === 3);
    const byName = new Map(sub.messages.map((m) => [m.json<any>().object.metadata.name, m]));
    expect(byName.get('fine')!.json<any>().truncated).to.equal(undefined);
    const managed = byName.get('managed')!.json<any>();
    expect(managed.truncated).to.equal(true);
    expect(managed.object.metadata.managedFields).to.equal(undefined);
    expect(managed.object.metadata.annotations).to.deep.equal({ keep: 'me' });
    const huge = byName.get('huge')!;
    expect(huge.json<any>()).to.deep.include({ truncated: true, type: 'ADDED' });
    expect(Object.keys(huge.json<any>().object)).to.deep.equal(['apiVersion', 'kind', 'metadata']);
    expect(huge.headers!.get('Meshsync-Truncated')).to.equal('true');
    expect(await t.core.metrics.getSingleMetricAsString('meshsync_messages_truncated_total')).to.match(/ 2$/m);
    expect(t.core.state.lanes()[0].pending).to.equal(0);
  });
});

describe('nats sink: finding 2 (HIGH), a poison event cannot stop the lane (real nats-server)', function () {
  this.timeout(20_000);
  it('finding 2: an object nested 20,000 levels, kept as its source\'s bytes and too large for max_payload (the truncation path), is dead-lettered; the events around it are published', async () => {
    const server = await startNatsServer({ config: 'max_payload: 8192' });
    const sub = await subscriber(server.url, 'meshery.meshsync.request');
    const t = natsCore({ url: server.url }, { retryInitialMs: 1, retryMaxMs: 10 });
    try {
      await startAnnounced(t.start, sub);
      // As the kubernetes source keeps it: parsed from the server's text, the text remembered as bytes.
      const depth = 20_000;
      const text = `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"deep","namespace":"default","uid":"uid-deep","resourceVersion":"1"},"spec":${'{"a":'.repeat(depth)}{}${'}'.repeat(depth)}}`;
      const deep = JSON.parse(text);
      serializeForPipeline(deep, text);
      t.source.emit('ADDED', POD, makeObject(POD, 'before'));
      t.source.emit('ADDED', POD, deep);
      t.source.emit('ADDED', POD, makeObject(POD, 'after'));
      await t.drain();
      t.source.emit('ADDED', POD, makeObject(POD, 'later'));
      await t.drain();
      await sub.waitFor((m) => m.length === 3);
      expect(sub.json().map((payload) => payload.object.metadata.name)).to.have.members(['before', 'after', 'later']);
      expect(t.core.counters.sinks['meshsync:nats'].deadLettered).to.equal(1);
      // A resync then leaves it out (it was never confirmed), and goes through.
      sub.messages.length = 0;
      const reply = await sub.nc.request('meshery.meshsync.control', 'resync', { timeout: 5000 });
      expect(reply.json<any>()).to.include({ ok: true, count: 3 });
      // A snapshot reply leaves it out too, instead of failing.
      const replies = await sub.nc.requestMany('meshery.meshsync.control', 'snapshot', { strategy: 'sentinel', maxWait: 3000 });
      const names: string[] = [];
      for await (const msg of replies) if (msg.data.length > 0) names.push(...msg.json<any>().objects.map((o: any) => o.object.metadata.name));
      expect(names).to.have.members(['before', 'after', 'later']);
    } finally {
      await t.stop();
      await sub.close();
      await server.dispose();
    }
  });
});

describe('nats sink requests (real nats-server)', function () {
  this.timeout(20_000);
  let server: NatsServerHandle;
  let t: TestCore;
  let sub: Awaited<ReturnType<typeof subscriber>>;
  beforeEach(async () => {
    server = await startNatsServer({ config: 'max_payload: 8192' });
    sub = await subscriber(server.url, 'meshery.meshsync.request');
    t = natsCore({ url: server.url });
    await startAnnounced(t.start, sub);
    for (let i = 0; i < 40; i++) t.source.emit('ADDED', POD, makeObject(POD, `p${i}`, {}, { spec: { filler: 'y'.repeat(300) } }));
    t.source.emit('ADDED', DEPLOYMENT, makeObject(DEPLOYMENT, 'api'));
    await t.drain();
    await sub.waitFor((m) => m.length === 41);
    sub.messages.length = 0;
  });
  afterEach(async () => {
    await t.stop();
    await sub.close();
    await server.dispose();
  });

  it('answers meta with the version, the cluster id and object counts per resource', async () => {
    const reply = await sub.nc.request('meshery.meshsync.control', '{"command":"meta"}', { timeout: 2000 });
    const meta = reply.json<any>();
    expect(meta).to.deep.include({ version: '0.1.0', cluster_id: 'test-cluster', format_version: 1 });
    expect(meta.counts).to.deep.equal({ 'pods.v1.': 40, 'deployments.v1.apps': 1 });
    expect(meta.resources).to.deep.equal(['deployments.v1.apps', 'pods.v1.']);
  });

  it('replies to snapshot with numbered chunks under max_payload, then an empty sentinel', async () => {
    const replies = await sub.nc.requestMany('meshery.meshsync.control', 'snapshot', { strategy: 'sentinel', maxWait: 3000 });
    const chunks: any[] = [];
    for await (const msg of replies) {
      expect(msg.data.length).to.be.at.most(8192);
      if (msg.data.length > 0) chunks.push(msg.json<any>());
    }
    expect(chunks.length).to.be.greaterThan(1, 'the state does not fit one 8 KiB message');
    expect(chunks.map((c) => c.chunk)).to.deep.equal(chunks.map((_, i) => i + 1));
    for (const chunk of chunks) expect(chunk).to.deep.include({ of: chunks.length, cluster_id: 'test-cluster', snapshot_id: chunks[0].snapshot_id });
    const objects = chunks.flatMap((c) => c.objects);
    expect(objects).to.have.length(41);
    expect(objects.find((o) => o.object.metadata.name === 'api').resource).to.equal('deployments.v1.apps');
  });

  it('republishes everything between RESYNC_BEGIN and RESYNC_END on a resync request', async () => {
    const reply = await sub.nc.request('meshery.meshsync.control', 'resync', { timeout: 2000 });
    const { resync_id: resyncId, count } = reply.json<any>();
    expect(count).to.equal(41);
    await sub.waitFor((m) => m.length === 43);
    const payloads = sub.json();
    expect(payloads[0]).to.deep.equal({ type: 'RESYNC_BEGIN', resync_id: resyncId, cluster_id: 'test-cluster' });
    expect(payloads[42]).to.deep.equal({ type: 'RESYNC_END', resync_id: resyncId, count: 41, cluster_id: 'test-cluster' });
    for (const event of payloads.slice(1, 42)) expect(event).to.deep.include({ type: 'ADDED', resync_id: resyncId, cluster_id: 'test-cluster' });
    expect(sub.messages[1].headers!.get('Meshsync-Resync-Id')).to.equal(resyncId);
    expect(await t.core.metrics.getSingleMetricAsString('meshsync_resyncs_total')).to.match(/reason="request"\} 1/);
  });

  it('stays silent while delivery is held (a standby): no reply to requests, no resync frames', async () => {
    t.core.holdDelivery('test:standby', true);
    const answered = await sub.nc.request('meshery.meshsync.control', 'resync', { timeout: 500 }).then(() => true, () => false);
    t.core.requestResync('test');
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(answered).to.equal(false);
    expect(sub.messages).to.have.length(0);
    t.core.holdDelivery('test:standby', false);
    const reply = await sub.nc.request('meshery.meshsync.control', 'meta', { timeout: 2000 });
    expect(reply.json<any>().cluster_id).to.equal('test-cluster');
  });

  it('answers an unknown command with an error naming the commands', async () => {
    const reply = await sub.nc.request('meshery.meshsync.control', '{"command":"explode"}', { timeout: 2000 });
    expect(reply.json<any>()).to.deep.equal({ error: 'unknown command "explode"', commands: ['resync', 'snapshot', 'meta'] });
  });
});

describe('nats sink requests: finding 3 (HIGH/MEDIUM), the control subject is no amplifier (real nats-server)', function () {
  this.timeout(30_000);
  let server: NatsServerHandle;
  let t: TestCore;
  let sub: Awaited<ReturnType<typeof subscriber>>;
  async function setUp(options: NatsOptionsInput = {}, extra: Parameters<typeof createTestCore>[0] = {}): Promise<void> {
    server = await startNatsServer({ config: 'max_payload: 8192' });
    sub = await subscriber(server.url, 'meshery.meshsync.request');
    t = natsCore({ url: server.url, ...options }, extra);
    await startAnnounced(t.start, sub);
    for (let i = 0; i < 40; i++) t.source.emit('ADDED', POD, makeObject(POD, `p${i}`, {}, { spec: { filler: 'y'.repeat(300) } }));
    await t.drain();
    await sub.waitFor((m) => m.length === 40);
    sub.messages.length = 0;
  }
  afterEach(async () => {
    await t?.stop();
    await sub?.close();
    await server?.dispose();
  });
  const ask = (body: string, timeout = 10_000) => sub.nc.request('meshery.meshsync.control', body, { timeout }).then((reply) => reply.json<any>());

  it('finding 3: 30 concurrent resync requests run at most two resyncs (one running, one shared by all who asked meanwhile)', async () => {
    await setUp({ requestRatePerMinute: 1000 });
    const replies = await Promise.all(Array.from({ length: 30 }, () => ask('resync')));
    for (const reply of replies) expect(reply).to.include({ ok: true, count: 40 });
    expect(new Set(replies.map((reply) => reply.resync_id)).size).to.be.at.most(2);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const begins = sub.json().filter((payload) => payload.type === 'RESYNC_BEGIN');
    expect(begins.length).to.be.within(1, 2);
    expect(await t.core.metrics.getSingleMetricAsString('meshsync_nats_requests_total')).to.match(/command="resync",outcome="joined"\} (2[0-9])/);
  });

  it('finding 3: 20 concurrent snapshot requests share at most two builds of the state', async () => {
    // A source whose state takes 300 ms to read, as a fresh LIST does: the requests arrive while
    // the first build runs, whatever the machine's load (a build read from memory ends before the
    // next request is even read off the socket, and then sharing is moot: it costs nothing).
    let builds = 0;
    const slowSource = definePlugin({
      name: 'test:slow-snapshot', description: 'A source whose snapshot takes 300 ms.', options: z.object({}),
      setup: () => (core) => core.hooks.source.tapPromise('test:slow-snapshot', async (ctx) => {
        ctx.provideSnapshot(async function* () {
          builds++;
          await new Promise((resolve) => setTimeout(resolve, 300));
          yield { resource: DEPLOYMENT, object: makeObject(DEPLOYMENT, 'slow') };
        }, () => ({ 'deployments.v1.apps': 1 }));
        ctx.synced();
      }),
    })();
    await setUp({ requestRatePerMinute: 1000 }, { plugins: [slowSource] });
    builds = 0;
    const ids = await Promise.all(Array.from({ length: 20 }, async () => {
      const replies = await sub.nc.requestMany('meshery.meshsync.control', 'snapshot', { strategy: 'sentinel', maxWait: 10_000 });
      const seen = new Set<string>();
      let objects = 0;
      for await (const msg of replies) {
        if (msg.data.length === 0) continue;
        const chunk = msg.json<any>();
        seen.add(chunk.snapshot_id);
        objects += chunk.objects.length;
      }
      expect(objects).to.equal(41);
      return [...seen];
    }));
    expect(new Set(ids.flat()).size).to.be.at.most(2);
    expect(builds, 'reads of the state').to.be.within(1, 2);
  });

  it('finding 3: a rate limit refuses requests past requestRatePerMinute, with an error reply, and counts them', async () => {
    await setUp({ requestRatePerMinute: 5 });
    const replies = await Promise.all(Array.from({ length: 12 }, () => ask('meta')));
    expect(replies.filter((reply) => reply.cluster_id === 'test-cluster')).to.have.length(5);
    expect(replies.filter((reply) => /rate limited: at most 5 requests a minute/.test(reply.error))).to.have.length(7);
    expect(await t.core.metrics.getSingleMetricAsString('meshsync_nats_requests_total')).to.match(/command="meta",outcome="rate-limited"\} 7/);
  });

  it('finding 3: a snapshot larger than snapshotMaxBytes is refused, naming resync, instead of held in memory', async () => {
    await setUp({ snapshotMaxBytes: 4096 });
    const replies = await sub.nc.requestMany('meshery.meshsync.control', 'snapshot', { strategy: 'sentinel', maxWait: 3000 });
    const bodies: any[] = [];
    for await (const msg of replies) {
      if (msg.data.length > 0) bodies.push(msg.json<any>());
      else break;
      if (bodies[0]?.error) break;
    }
    expect(bodies[0].error).to.match(/larger than snapshotMaxBytes \(4096 bytes\); ask for a resync instead/);
  });

  it('finding 3: requestCommands is an allow-list: a command left out gets an error reply and does nothing', async () => {
    await setUp({ requestCommands: ['meta'] });
    expect((await ask('resync')).error).to.match(/command resync is not allowed here \(requestCommands: meta\)/);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(sub.messages).to.have.length(0);
    expect((await ask('meta')).cluster_id).to.equal('test-cluster');
  });
});
