import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { DEPLOYMENT, makeObject, SECRET } from '../../testing/index.ts';
import type { EventType, KubeObject, ResourceRef, SyncEvent } from '../../core/types.ts';
import { goJson, goString } from '../../plugins/nats/meshery/gojson.ts';
import { kubernetesResource, serviceMetadata } from '../../plugins/nats/meshery/model.ts';
import { encodeMesheryEvent, envelope } from '../../plugins/nats/meshery/wire.ts';
import { Announced } from '../../plugins/nats/meshery/announced.ts';
import { natsOptionsSchema, resolveProtocol } from '../../plugins/nats/options.ts';
import { urlCredentials } from '../../plugins/nats/options.ts';
import { createRedactor, REDACTED } from '../../plugins/redact-secrets/index.ts';

const fixture = (name: string) => readFileSync(new URL(`../fixtures/meshery/${name}`, import.meta.url), 'utf8');
const SERVICE: ResourceRef = { group: '', version: 'v1', resource: 'services', kind: 'Service', namespaced: true };
const KUBE_SYSTEM_UID = '0e4c8a3b-1f2d-4c5e-9a7b-6d5e4f3a2b1c';
const eventOf = (type: EventType, object: KubeObject, resource: ResourceRef = DEPLOYMENT): SyncEvent => ({ type, resource, object, clusterId: KUBE_SYSTEM_UID, observedAt: 0 });
const text = (payload: string | Uint8Array) => (typeof payload === 'string' ? payload : Buffer.from(payload).toString('utf8'));
const modelOf = (object: KubeObject, type: EventType = 'ADDED') => JSON.parse(kubernetesResource(object, type, 'c1')) as Record<string, any>;

describe('meshery wire mode: the KubernetesResource model', () => {
  it('reproduces the worked example of the wire protocol byte for byte', () => {
    const object = JSON.parse(fixture('deployment.input.json')) as KubeObject;
    const message = encodeMesheryEvent(eventOf('ADDED', object), { maxPayload: 1024 * 1024 });
    expect(text(message.payload)).to.equal(fixture('deployment.added.wire'));
    expect(Buffer.byteLength(text(message.payload))).to.equal(1395);
    expect(message.headers).to.equal(undefined);
  });

  it('sends MODIFIED and DELETED as the same bytes but for the EventType', () => {
    const object = JSON.parse(fixture('deployment.input.json')) as KubeObject;
    const added = fixture('deployment.added.wire');
    for (const type of ['MODIFIED', 'DELETED'] as const) {
      expect(text(encodeMesheryEvent(eventOf(type, object), { maxPayload: 1 << 20 }).payload)).to.equal(added.replace('"EventType":"ADDED"', `"EventType":"${type}"`));
    }
  });

  it('escapes strings as Go does: HTML characters, U+2028/U+2029, control characters, lone surrogates', () => {
    expect(goString('<a href="x">&</a>')).to.equal('"\\u003ca href=\\"x\\"\\u003e\\u0026\\u003c/a\\u003e"');
    expect(goString('\u2028\u2029')).to.equal('"\\u2028\\u2029"');
    expect(goString('\b\f\n\r\t\u0001\u007f')).to.equal('"\\b\\f\\n\\r\\t\\u0001\u007f"');
    expect(goString('x\ud800y')).to.equal('"x\ufffdy"');
    expect(goString('😀')).to.equal('"😀"');
    // Keys sorted by UTF-8 bytes at every level; an astral character sorts after U+FFFF.
    expect(goJson({ b: [{ z: 1, a: null }], a: true, '\uffff': 1, '😀': 2 })).to.equal('{"a":true,"b":[{"a":null,"z":1}],"\uffff":1,"😀":2}');
  });

  it('writes labels and annotations as key-sorted rows, leaving empty values out, and ownerReferences and finalizers as JSON text', () => {
    const model = modelOf(makeObject(DEPLOYMENT, 'web', {
      labels: { 'z-last': 'x', 'node-role.kubernetes.io/control-plane': '', a: 'b<c' },
      finalizers: ['kubernetes'],
      ownerReferences: [{ uid: 'u1', kind: 'ReplicaSet', apiVersion: 'apps/v1', name: 'rs' }],
      deletionGracePeriodSeconds: 0,
      generation: 0,
    }));
    expect(model.metadata.labels).to.deep.equal([
      { id: '', unique_id: '', kind: 'label', key: 'a', value: 'b\\u003cc' },
      { id: '', unique_id: '', kind: 'label', key: 'node-role.kubernetes.io/control-plane' },
      { id: '', unique_id: '', kind: 'label', key: 'z-last', value: 'x' },
    ]);
    expect(model.metadata.finalizers).to.equal('["kubernetes"]');
    expect(model.metadata.ownerReferences).to.equal('[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"rs","uid":"u1"}]');
    expect(model.metadata.deletionGracePeriodSeconds).to.equal(0);
    expect(model.metadata).to.not.have.property('generation');
    expect(model.metadata).to.not.have.property('annotations');
    expect(model).to.not.have.property('spec');
  });

  it('keeps Go MeshSync\'s design-label quirk: a 36-character id becomes the nil UUID, 16 bytes are read as a UUID', () => {
    expect(modelOf(makeObject(DEPLOYMENT, 'd', { labels: { 'design.meshery.io/id': '6f1c2a7e-3b4d-4e5f-8a9b-0c1d2e3f4a5b' } })).pattern_resource).to.equal('00000000-0000-0000-0000-000000000000');
    expect(modelOf(makeObject(DEPLOYMENT, 'd', { labels: { 'design.meshery.io/id': '0123456789abcdef' } })).pattern_resource).to.equal('30313233-3435-3637-3839-616263646566');
    expect(modelOf(makeObject(DEPLOYMENT, 'd')).pattern_resource).to.equal(null);
  });

  it('copies a string id of the spec into spec.id, as Go\'s decoder does', () => {
    expect(modelOf(makeObject(DEPLOYMENT, 'd', {}, { spec: { ID: 'x', id: 'y', other: 1 } })).spec).to.deep.equal({ id: 'y', attribute: '{"ID":"x","id":"y","other":1}' });
    expect(modelOf(makeObject(DEPLOYMENT, 'd', {}, { spec: { id: 7 } })).spec.id).to.equal('');
  });

  it('writes ConfigMap and Secret fields as raw text: data as JSON, type as the string body, immutable as its literal', () => {
    const model = modelOf({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', namespace: 'n', uid: 'u' }, data: { b: 'x&y', a: '1' }, binaryData: { k: 'AQI=' }, immutable: false });
    expect(model.data).to.equal('{"a":"1","b":"x\\u0026y"}');
    expect(model.binaryData).to.equal('{"k":"AQI="}');
    expect(model.immutable).to.equal('false');
    const secret = modelOf(makeObject(SECRET, 's', {}, { type: 'kubernetes.io/tls', data: {} }));
    expect(secret.type).to.equal('kubernetes.io/tls');
    expect(secret.data).to.equal('{}');
  });

  it('keeps Secrets redacted: data and stringData carry only the marker', () => {
    const secret = makeObject(SECRET, 'db', { namespace: 'shop' }, { type: 'Opaque', data: { password: Buffer.from('hunter2').toString('base64') }, stringData: { token: 's3cr3t' } });
    const redacted = createRedactor({ redactSecrets: true, stripManagedFields: true })(eventOf('ADDED', secret, SECRET));
    const wire = text(encodeMesheryEvent(redacted, { maxPayload: 1 << 20 }).payload);
    const model = JSON.parse(wire).Object;
    expect(JSON.parse(model.data)).to.deep.equal({ password: REDACTED });
    expect(JSON.parse(model.stringData)).to.deep.equal({ token: REDACTED });
    expect(wire).to.not.include(Buffer.from('hunter2').toString('base64')).and.not.include('s3cr3t');
  });

  it('gives a Service component_metadata as meshkit GetEndpoint does, and none on DELETED', () => {
    const service = (spec: object, status: object = {}) => makeObject(SERVICE, 'prometheus', { namespace: 'monitoring' }, { spec, status });
    const urls = (object: KubeObject) => JSON.parse(serviceMetadata(object)).capabilities.urls as string[];
    // The last port wins; NodePort: localhost outside, the cluster IP inside.
    expect(urls(service({ clusterIP: '10.0.0.5', ports: [{ port: 80, nodePort: 30080 }, { port: 9090, nodePort: 30090 }] }))).to.deep.equal(['http://localhost:30090', 'http://10.0.0.5:9090']);
    expect(urls(service({ clusterIP: '10.0.0.5', ports: [{ port: 443 }] }))).to.deep.equal(['https://10.0.0.5:443']);
    expect(urls(service({ clusterIP: 'None', ports: [{ port: 80 }] }))).to.deep.equal([]);
    expect(urls(service({ clusterIP: '10.0.0.5', ports: [{ port: 80, nodePort: 31000 }] }, { loadBalancer: { ingress: [{ hostname: 'lb.example' }] } }))).to.deep.equal(['http://lb.example:80', 'http://10.0.0.5:80']);
    expect(urls(service({ clusterIP: '10.0.0.5', ports: [{ port: 80, nodePort: 31000 }] }, { loadBalancer: { ingress: [{ ip: '<pending>' }] } }))).to.deep.equal(['http://10.0.0.5:80', 'http://10.0.0.5:80']);
    const object = service({ clusterIP: '10.0.0.5', ports: [{ port: 80 }] });
    expect(modelOf(object, 'ADDED').component_metadata).to.deep.equal({ capabilities: { connection: true, urls: ['http://10.0.0.5:80'] } });
    expect(modelOf(object, 'DELETED').component_metadata).to.equal(null);
    expect(modelOf(makeObject(DEPLOYMENT, 'd')).component_metadata).to.equal(null);
  });

  it('cuts an object too large for max_payload down to what Meshery keys rows by, never past it', () => {
    const object = makeObject(DEPLOYMENT, 'big', { annotations: { huge: 'x'.repeat(5000) } }, { spec: { blob: 'y'.repeat(5000) } });
    const small = encodeMesheryEvent(eventOf('MODIFIED', object), { maxPayload: 2000 });
    expect(small.truncation).to.equal('metadata-only');
    const decoded = JSON.parse(text(small.payload));
    expect(decoded).to.include({ ObjectType: 'meshsync-data', EventType: 'MODIFIED', Request: null });
    expect(decoded.Object).to.include({ kind: 'Deployment', apiVersion: 'apps/v1', cluster_id: KUBE_SYSTEM_UID });
    expect(decoded.Object.metadata).to.include({ name: 'big', namespace: 'default' });
    expect(encodeMesheryEvent(eventOf('MODIFIED', object), { maxPayload: 100 }).truncation).to.equal('dropped');
    expect(envelope('', '', '"v"')).to.equal('{"ObjectType":"","EventType":"","Request":null,"Object":"v"}');
  });
});

describe('meshery wire mode: what was announced', () => {
  const obj = (name: string) => makeObject(DEPLOYMENT, name);
  it('names the objects announced or deleted since the last announce that a new one does not mention', () => {
    const announced = new Announced();
    announced.record([eventOf('ADDED', obj('a')), eventOf('ADDED', obj('b')), eventOf('ADDED', obj('c'))]);
    announced.record([eventOf('DELETED', obj('b'))]);
    const gone = [...announced.goneFrom(new Set(['uid-deployments-a']))].map((identity) => identity.object.metadata.name);
    expect(gone).to.have.members(['b', 'c']);
    announced.announcedExactly(new Set(['uid-deployments-a']));
    expect([...announced.goneFrom(new Set())].map((identity) => identity.object.metadata.name)).to.deep.equal(['a']);
    expect([...announced.goneFrom(new Set(['uid-deployments-a']))]).to.deep.equal([]);
  });
});

describe('meshery wire mode: selection and connection', () => {
  it('is chosen by the protocol option, and MESHSYNC_PROTOCOL wins; the seed format stays the default', () => {
    expect(resolveProtocol(natsOptionsSchema.parse({}), {})).to.equal('meshsync');
    expect(resolveProtocol(natsOptionsSchema.parse({ protocol: 'meshery' }), {})).to.equal('meshery');
    expect(resolveProtocol(natsOptionsSchema.parse({}), { MESHSYNC_PROTOCOL: 'Meshery' })).to.equal('meshery');
    expect(() => resolveProtocol(natsOptionsSchema.parse({}), { MESHSYNC_PROTOCOL: 'grpc' })).to.throw(/MESHSYNC_PROTOCOL.*meshsync, meshery.*grpc/);
    expect(natsOptionsSchema.safeParse({ protocol: 'meshery', jetstream: { stream: 's' } }).success).to.equal(false);
  });

  it('takes credentials from a server URL as Go\'s client does: a token, or a user and password', () => {
    expect(urlCredentials(['nats://s3cr3t@meshery-nats:4222'], undefined).credentials).to.deep.equal({ token: 's3cr3t' });
    expect(urlCredentials(['nats://h:4222', 'nats://me:p%40ss@h2:4222'], undefined).credentials).to.deep.equal({ user: 'me', pass: 'p@ss' });
    expect(urlCredentials(['nats://h:4222'], undefined).credentials).to.equal(undefined);
  });
});
