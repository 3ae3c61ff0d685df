import { expect } from 'chai';
import { makeObject, POD } from '../../testing/index.ts';
import type { ResourceRef, SyncEvent } from '../../core/types.ts';
import nats, { natsOptionsSchema, resolveServers } from '../../plugins/nats/index.ts';
import { encodeEvent, messageId, LAST_APPLIED } from '../../plugins/nats/encode.ts';
import { compileSubject, markerSubject, streamSubjects, subjectToken, validateSubjectTemplate } from '../../plugins/nats/subject.ts';
import { ReferenceConsumer } from '../../testing/consumer.ts';
import { serializeForPipeline } from '../../core/serialized.ts';
import { natsMetrics } from '../../plugins/nats/metrics.ts';
import { Registry } from 'prom-client';
import { bucketName, entryKey, identityOf, Ledger, publishedHash, resourceOf } from '../../plugins/nats/ledger.ts';
import { objectKey, silentLogger } from '../../core/index.ts';

const text = (payload: string | Uint8Array) => (typeof payload === 'string' ? payload : Buffer.from(payload).toString('utf8'));

const INGRESS: ResourceRef = { group: 'networking.k8s.io', version: 'v1', resource: 'ingresses', kind: 'Ingress', namespaced: true };
const event = (type: SyncEvent['type'], object = makeObject(POD, 'web', { namespace: 'shop' }), resource: ResourceRef = POD): SyncEvent =>
  ({ type, resource, object, clusterId: 'c1', observedAt: 0 });

describe('nats options', () => {
  const parse = (input: object) => natsOptionsSchema.parse(input);

  it('resolves the server URL: BROKER_URL, then servers/url, then broker.custom, then broker.native, then the default', () => {
    expect(resolveServers(parse({ url: 'nats://file:4222' }), { BROKER_URL: 'nats://env:4222,nats://env2:4222' })).to.deep.equal(['nats://env:4222', 'nats://env2:4222']);
    expect(resolveServers(parse({ url: 'nats://file:4222' }), {})).to.deep.equal(['nats://file:4222']);
    expect(resolveServers(parse({ broker: { custom: { url: 'nats://custom:4222' } } }), {})).to.deep.equal(['nats://custom:4222']);
    expect(resolveServers(parse({ broker: { native: { name: 'meshery-nats', namespace: 'meshery' } } }), {}))
      .to.deep.equal(['nats://meshery-nats.meshery.svc.cluster.local:4222']);
    expect(resolveServers(parse({}), {})).to.deep.equal(['nats://localhost:4222']);
  });

  it('rejects a bad subject and two auth methods, reporting both at once', () => {
    const error = (() => {
      try {
        nats({ subject: 'a.{nope}', auth: { token: 't', user: 'u' }, requestSubject: 'a.{nope}' } as never);
      } catch (e) {
        return e as Error & { problems: { path: string }[] };
      }
    })();
    expect(error?.problems.map((p) => p.path)).to.include.members(['meshsync:nats options.subject', 'meshsync:nats options.auth']);
    expect(validateSubjectTemplate('a..b')).to.match(/empty tokens/);
    expect(validateSubjectTemplate('a.*')).to.match(/wildcards/);
    expect(validateSubjectTemplate('meshsync.{cluster}.{resource}.{type}')).to.equal(undefined);
  });
});

describe('nats subjects', () => {
  it('makes each value exactly one token', () => {
    expect(subjectToken('networking.k8s.io')).to.equal('networking_k8s_io');
    expect(subjectToken('a b*c>d')).to.equal('a_b_c_d');
    expect(subjectToken('')).to.equal('_');
  });

  it('renders templates per event and a constant subject without placeholders', () => {
    const subject = compileSubject('ms.{cluster}.{group}.{resource}.{namespace}.{type}', 'prod.eu');
    expect(subject(event('ADDED', makeObject(INGRESS, 'i', { namespace: 'web' }), INGRESS))).to.equal('ms.prod_eu.networking_k8s_io.ingresses.web.ADDED');
    expect(subject(event('DELETED'))).to.equal('ms.prod_eu.core.pods.shop.DELETED');
    expect(compileSubject('meshery.meshsync.request', 'c')(event('ADDED'))).to.equal('meshery.meshsync.request');
    expect(markerSubject('ms.{cluster}.{resource}.{type}', 'c1', 'RESYNC_END')).to.equal('ms.c1._.RESYNC_END');
    expect(streamSubjects('ms.{cluster}.{resource}.{type}')).to.deep.equal(['ms.*.*.*']);
  });
});

describe('nats wire format', () => {
  it('writes the MeshSync payload with the object serialised once, in MeshSync\'s key order', () => {
    const e = event('MODIFIED');
    const { payload, headers, truncation } = encodeEvent(e, { withHeaders: true, maxPayload: 1 << 20 });
    expect(text(payload)).to.equal(`{"object":${JSON.stringify(e.object)},"type":"MODIFIED","cluster_id":"c1"}`);
    expect(truncation).to.equal('none');
    expect([...headers!.keys()]).to.deep.equal(['Meshsync-Type', 'Meshsync-Resource', 'Meshsync-Cluster', 'Meshsync-Format-Version']);
    expect(encodeEvent(e, { withHeaders: false, maxPayload: 1 << 20, resyncId: 'r1' }).payload).to.match(/,"resync_id":"r1"}$/);
  });

  it('frames the bytes a source already made for the object as they are, with the same result', () => {
    const e = event('MODIFIED', makeObject(POD, 'é', { labels: { app: 'ü' } }));
    const expected = `{"object":${JSON.stringify(e.object)},"type":"MODIFIED","cluster_id":"c1"}`;
    const bytes = serializeForPipeline(e.object);
    const { payload } = encodeEvent(e, { withHeaders: false, maxPayload: 1 << 20 });
    expect(payload).to.be.an.instanceOf(Uint8Array);
    expect(text(payload)).to.equal(expected);
    expect(Buffer.from(payload as Uint8Array).indexOf(Buffer.from(bytes))).to.equal('{"object":'.length);
    expect(encodeEvent(e, { withHeaders: false, maxPayload: 1 << 20 }).objectBytes).to.equal(bytes, 'what the sink keeps as confirmed: the same bytes');
    const fresh = event('ADDED', makeObject(POD, 'n'));
    expect(text(encodeEvent(fresh, { withHeaders: false, maxPayload: 1 << 20 }).objectBytes)).to.equal(JSON.stringify(fresh.object));
  });

  it('strips, then cuts to metadata, what does not fit max_payload, never exceeding it', () => {
    const big = 'x'.repeat(3000);
    const managed = event('ADDED', makeObject(POD, 'm', { managedFields: [{ big }], annotations: { [LAST_APPLIED]: big, keep: '1' } }));
    const stripped = encodeEvent(managed, { withHeaders: true, maxPayload: 2048 });
    expect(stripped.truncation).to.equal('stripped');
    expect(JSON.parse(text(stripped.payload)).object.metadata.annotations).to.deep.equal({ keep: '1' });
    const huge = encodeEvent(event('ADDED', makeObject(POD, 'h', {}, { spec: { big } })), { withHeaders: true, maxPayload: 2048 });
    expect(huge.truncation).to.equal('metadata-only');
    expect(JSON.parse(text(huge.payload))).to.include({ truncated: true });
    expect(Buffer.byteLength(text(huge.payload))).to.be.below(2048);
    expect(managed.object.metadata.managedFields, 'the event is never mutated').to.have.length(1);
  });

  it('shares headers between messages of one type, resource and cluster only where asked, and never changes shared ones', () => {
    const options = { withHeaders: true, maxPayload: 1 << 20, sharedHeaders: true };
    const first = encodeEvent(event('MODIFIED'), options).headers!;
    expect(encodeEvent(event('MODIFIED', makeObject(POD, 'other')), options).headers).to.equal(first);
    for (const other of [event('ADDED'), event('MODIFIED', makeObject(POD, 'x'), INGRESS), { ...event('MODIFIED'), clusterId: 'c2' }]) {
      const headers = encodeEvent(other, options).headers!;
      expect(headers).to.not.equal(first);
      expect([headers.get('Meshsync-Type'), headers.get('Meshsync-Resource'), headers.get('Meshsync-Cluster')])
        .to.deep.equal([other.type, other.resource === INGRESS ? 'ingresses.v1.networking.k8s.io' : 'pods.v1.', other.clusterId]);
    }
    expect(encodeEvent(event('MODIFIED'), { ...options, sharedHeaders: false }).headers, 'a JetStream publish adds to its headers').to.not.equal(first);
    expect(encodeEvent(event('MODIFIED'), { ...options, resyncId: 'r' }).headers).to.not.equal(first);
    const big = event('MODIFIED', makeObject(POD, 'h', {}, { spec: { big: 'x'.repeat(3000) } }));
    const truncated = encodeEvent(big, { ...options, maxPayload: 2048 }).headers!;
    expect(truncated.get('Meshsync-Truncated')).to.equal('true');
    expect(first.has('Meshsync-Truncated'), 'the shared headers are left as they were').to.equal(false);
  });

  it('gives the same change the same JetStream message id', () => {
    expect(messageId(event('ADDED'))).to.equal('uid-pods-web:1:ADDED');
    expect(messageId(event('ADDED'), 'R')).to.equal('uid-pods-web:1:ADDED:R');
  });
});

describe('nats reference consumer', () => {
  const payload = (type: string, name: string, extra: object = {}) => JSON.stringify({ object: makeObject(POD, name), type, cluster_id: 'c1', ...extra });

  it('drops objects a complete resync did not mention, and only those of that cluster', () => {
    const consumer = new ReferenceConsumer();
    consumer.apply(payload('ADDED', 'a'));
    consumer.apply(payload('ADDED', 'gone'));
    consumer.apply(JSON.stringify({ object: makeObject(POD, 'other'), type: 'ADDED', cluster_id: 'c2' }));
    consumer.apply('{"type":"RESYNC_BEGIN","resync_id":"r","cluster_id":"c1"}');
    consumer.apply(payload('ADDED', 'a', { resync_id: 'r' }));
    consumer.apply(payload('ADDED', 'b', { resync_id: 'r' }));
    consumer.apply('{"type":"RESYNC_END","resync_id":"r","count":2,"cluster_id":"c1"}');
    expect([...consumer.view('c1').keys()]).to.deep.equal(['uid-pods-a', 'uid-pods-b']);
    expect(consumer.view('c2').size).to.equal(1);
  });

  it('keeps its view when a resync frame arrived incomplete', () => {
    const consumer = new ReferenceConsumer();
    consumer.apply(payload('ADDED', 'a'));
    consumer.apply('{"type":"RESYNC_BEGIN","resync_id":"r","cluster_id":"c1"}');
    consumer.apply('{"type":"RESYNC_END","resync_id":"r","count":1,"cluster_id":"c1"}');
    expect(consumer.view('c1').size).to.equal(1);
    expect(consumer.incompleteResyncs).to.equal(1);
  });
});

describe('nats metrics', () => {
  it('reports the broker connected only while every NATS sink of the registry is', async () => {
    const registry = new Registry();
    let first = true;
    let second = true;
    natsMetrics(registry, () => first);
    natsMetrics(registry, () => second);
    const gauge = async () => (await registry.getSingleMetric('meshsync_broker_connected')!.get()).values[0].value;
    expect(await gauge()).to.equal(1);
    second = false;
    expect(await gauge(), 'the second broker is down').to.equal(0);
    second = true;
    first = false;
    expect(await gauge(), 'the first broker is down').to.equal(0);
    first = true;
    expect(await gauge()).to.equal(1);
  });
});

/** A TCP server that speaks just enough NATS to receive a client's CONNECT line, which it records. */
async function connectRecorder(): Promise<{ url: string; connects: string[]; close(): Promise<void> }> {
  const { createServer } = await import('node:net');
  const connects: string[] = [];
  const sockets = new Set<import('node:net').Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.write('INFO {"server_id":"fake","version":"2.10.0","proto":1,"max_payload":1048576,"auth_required":true,"headers":true}\r\n');
    let buffered = '';
    socket.on('data', (data) => {
      buffered += data.toString();
      for (const line of buffered.split('\r\n').slice(0, -1)) if (line.startsWith('CONNECT ')) connects.push(line);
      buffered = buffered.slice(buffered.lastIndexOf('\r\n') + 2);
      socket.write('-ERR \'Authorization Violation\'\r\n');
      socket.end();
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as import('node:net').AddressInfo;
  return {
    url: `nats://127.0.0.1:${port}`,
    connects,
    close: () => new Promise((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    }),
  };
}

describe('nats sink: the broker named by the MeshSync resource (finding 4)', function () {
  this.timeout(10_000);
  const SECRET_PASSWORD = 'configured-broker-s3cret';
  let saved: string | undefined;
  beforeEach(() => {
    saved = process.env.BROKER_URL;
    delete process.env.BROKER_URL;
  });
  afterEach(() => {
    if (saved !== undefined) process.env.BROKER_URL = saved;
  });

  async function runWithResourceBroker(options: Record<string, unknown>, wait: (recorder: Awaited<ReturnType<typeof connectRecorder>>) => Promise<void>) {
    const { default: nats } = await import('../../plugins/nats/index.ts');
    const { createTestCore } = await import('../../testing/index.ts');
    const recorder = await connectRecorder();
    const t = createTestCore({ plugins: [nats({ reconnectInitialMs: 20, reconnectMaxMs: 50, auth: { user: 'meshsync', password: SECRET_PASSWORD }, ...options })] });
    try {
      // What the meshsync-resource plugin does with spec.broker.custom.url, before the sink connects.
      t.core.reconfigure({ broker: recorder.url });
      void t.start().catch(() => undefined);
      await wait(recorder);
    } finally {
      await t.stop().catch(() => undefined);
      await recorder.close();
    }
    return recorder.connects;
  }

  it('finding 4 (MEDIUM): a broker URL from the CR does not replace the broker the config names, nor receive its credentials', async () => {
    const connects = await runWithResourceBroker({ url: 'nats://127.0.0.1:1' }, () => new Promise((resolve) => setTimeout(resolve, 500)));
    expect(connects, 'the CR\'s broker was dialled').to.deep.equal([]);
  });

  it('finding 4 (MEDIUM): with brokerFromResource the CR may choose the broker, but the configured credentials never go to its host', async () => {
    const connects = await runWithResourceBroker({ url: 'nats://127.0.0.1:1', brokerFromResource: true }, async (recorder) => {
      const deadline = Date.now() + 5000;
      while (recorder.connects.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    });
    expect(connects.length).to.be.greaterThan(0);
    for (const line of connects) {
      expect(line).to.not.contain(SECRET_PASSWORD);
      expect(JSON.parse(line.slice('CONNECT '.length))).to.not.have.any.keys('user', 'pass', 'auth_token', 'nkey', 'sig', 'jwt');
    }
  });

  it('finding 4 (MEDIUM): a config that names no broker follows the CR (as MeshSync does), still without the configured credentials', async () => {
    const connects = await runWithResourceBroker({}, async (recorder) => {
      const deadline = Date.now() + 5000;
      while (recorder.connects.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    });
    expect(connects.length).to.be.greaterThan(0);
    for (const line of connects) expect(line).to.not.contain(SECRET_PASSWORD);
  });
});

describe('nats ledger', () => {
  it('names one bucket per cluster, in the characters a bucket name may hold, distinct for ids that differ only in others', () => {
    expect(bucketName('meshsync-ledger-{cluster}', 'prod_eu-1')).to.equal('meshsync-ledger-prod_eu-1');
    const dotted = bucketName('meshsync-ledger-{cluster}', 'prod.eu');
    expect(dotted).to.match(/^meshsync-ledger-prod_eu-[\w-]{8}$/);
    expect(dotted).to.not.equal(bucketName('meshsync-ledger-{cluster}', 'prod eu'));
  });

  it('hashes an object the same whether a list item (kind and apiVersion appended) or a watch event (written first) carried it', () => {
    const body = '"metadata":{"name":"a","uid":"u1","resourceVersion":"7"},"data":{"k":"v"}';
    const watched = publishedHash(Buffer.from(`{"kind":"ConfigMap","apiVersion":"v1",${body}}`));
    const listed = publishedHash(Buffer.from(`{${body},"kind":"ConfigMap","apiVersion":"v1"}`));
    expect(listed).to.equal(watched);
    expect(publishedHash(Buffer.from(`{${body.replace('"v"', '"w"')},"kind":"ConfigMap","apiVersion":"v1"}`))).to.not.equal(watched);
  });

  it('keeps of an object only what a DELETED needs, and finds it again under the key the sink uses', () => {
    const ledger = new Ledger({ enabled: true, bucket: 'b-{cluster}', storage: 'file', replicas: 1 }, silentLogger());
    ledger.clusterResolved('c1');
    const object = makeObject(POD, 'web', { namespace: 'shop', resourceVersion: '9' }, { spec: { big: 'x'.repeat(1000) } });
    const write = ledger.confirmed(event('MODIFIED', object), 'hash');
    expect(write.subject).to.equal(`$KV.b-c1.${object.metadata.uid}`);
    const entry = JSON.parse(write.payload);
    expect(write.payload.length).to.be.below(200);
    expect(entryKey(entry)).to.equal(objectKey({ resource: POD, object }));
    expect(identityOf(entry)).to.deep.equal({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web', namespace: 'shop', uid: object.metadata.uid, resourceVersion: '9' } });
    expect(resourceOf(entry)).to.deep.equal(POD);
    expect(ledger.intent(event('ADDED', object)).payload).to.include('"rv":""');
    expect(ledger.confirmed(event('DELETED', object), '')).to.include({ deleted: true, subject: write.subject });
  });
});
