import { expect } from 'chai';
import { Writable } from 'node:stream';
import { collect, createTestCore, makeObject, POD, SECRET } from '../../testing/index.ts';
import { createLogger } from '../../core/log.ts';
import { ConfigError } from '../../core/errors.ts';
import type { KubeObject, ResourceRef, SyncEvent } from '../../core/types.ts';
import redactSecretsDefault, { redactSecrets, createRedactor, LAST_APPLIED, REDACTED } from '../../plugins/redact-secrets/index.ts';

const KEY = 'k3y-for-tests-0123456789abcdef';
const b64 = (text: string) => Buffer.from(text).toString('base64');

function secretObject(name = 'db', data: Record<string, string> = { password: b64('hunter2'), user: b64('app') }, annotations?: Record<string, string>): KubeObject {
  return makeObject(SECRET, name, {
    namespace: 'shop',
    annotations,
    managedFields: [{ manager: 'kubectl', operation: 'Update' }],
  }, { type: 'Opaque', data });
}

const eventOf = (resource: ResourceRef, object: KubeObject): SyncEvent => ({ type: 'ADDED', resource, object, clusterId: 'c', observedAt: 1 });

/** Deep-freezes a value, so any mutation by the code under test throws (ESM is strict mode). */
function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

function lastAppliedOf(object: KubeObject): string {
  return JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: object.metadata.name, namespace: 'shop' }, stringData: { password: 'hunter2' }, data: { user: b64('app') } }) + '\n';
}

describe('meshsync:redact-secrets', () => {
  it('is exported as a named and a default export', () => {
    expect(redactSecretsDefault).to.equal(redactSecrets);
    expect(redactSecrets.pluginName).to.equal('meshsync:redact-secrets');
  });

  it('replaces every data and stringData value of a Secret by the marker and keeps the keys', async () => {
    const t = createTestCore({ plugins: [redactSecrets()] });
    await t.start();
    const object = secretObject();
    (object as Record<string, unknown>).stringData = { token: 'plain-token' };
    t.source.emit('ADDED', SECRET, object);
    await t.drain();
    const [out] = t.sink.events;
    expect(out.object.data).to.deep.equal({ password: REDACTED, user: REDACTED });
    expect(out.object.stringData).to.deep.equal({ token: REDACTED });
    expect(out.object.type).to.equal('Opaque');
    expect(JSON.stringify(out)).not.to.include(b64('hunter2')).and.not.to.include('plain-token');
    await t.stop();
  });

  it('never mutates the event or object it is given', () => {
    const redact = createRedactor({ redactSecrets: true, stripManagedFields: true, key: KEY });
    const object = secretObject('db', undefined, { [LAST_APPLIED]: 'x', team: 'a' });
    const event = deepFreeze(eventOf(SECRET, object));
    const before = JSON.stringify(event);
    const out = redact(event);
    expect(out).not.to.equal(event);
    expect(JSON.stringify(event)).to.equal(before);
  });

  it('passes a non-Secret without managedFields on as the very same object (no copy)', () => {
    const redact = createRedactor({ redactSecrets: true, stripManagedFields: true });
    const event = eventOf(POD, makeObject(POD, 'web', {}, { spec: { containers: [] } }));
    expect(redact(event)).to.equal(event);
  });

  it('strips managedFields from any kind, copying only the event, object and metadata', () => {
    const redact = createRedactor({ redactSecrets: true, stripManagedFields: true });
    const spec = { containers: [{ name: 'web' }] };
    const labels = { app: 'web' };
    const event = deepFreeze(eventOf(POD, makeObject(POD, 'web', { labels, managedFields: [{ manager: 'kubelet' }] }, { spec })));
    const out = redact(event);
    expect(out.object.metadata).not.to.have.property('managedFields');
    expect(out.object.metadata.name).to.equal('web');
    expect(out.object.spec).to.equal(spec, 'unchanged parts are shared, not copied');
    expect(out.object.metadata.labels).to.equal(labels);
  });

  it('keeps managedFields when stripManagedFields is false', () => {
    const redact = createRedactor({ redactSecrets: true, stripManagedFields: false });
    const event = eventOf(POD, makeObject(POD, 'web', { managedFields: [{ manager: 'kubelet' }] }));
    expect(redact(event)).to.equal(event);
  });

  it('treats only core-group secrets as Secrets', () => {
    const redact = createRedactor({ redactSecrets: true, stripManagedFields: false });
    const other: ResourceRef = { group: 'example.com', version: 'v1', resource: 'secrets', kind: 'Secret', namespaced: true };
    const event = eventOf(other, makeObject(other, 'x', {}, { data: { a: 'b' } }));
    expect(redact(event)).to.equal(event);
  });

  it('redacts the Secret inside the last-applied-configuration annotation and keeps other annotations', () => {
    const redact = createRedactor({ redactSecrets: true, stripManagedFields: true });
    const object = secretObject('db');
    object.metadata.annotations = { [LAST_APPLIED]: lastAppliedOf(object), team: 'payments' };
    const out = redact(eventOf(SECRET, object));
    const annotation = out.object.metadata.annotations![LAST_APPLIED];
    expect(annotation.endsWith('\n')).to.equal(true, 'kubectl\'s trailing newline is kept');
    const applied = JSON.parse(annotation);
    expect(applied.stringData).to.deep.equal({ password: REDACTED });
    expect(applied.data).to.deep.equal({ user: REDACTED });
    expect(applied.metadata.name).to.equal('db');
    expect(out.object.metadata.annotations!.team).to.equal('payments');
    expect(annotation).not.to.include('hunter2');
  });

  it('replaces a last-applied annotation that does not parse as a whole', () => {
    const redact = createRedactor({ redactSecrets: true, stripManagedFields: true });
    const object = secretObject('db', undefined, { [LAST_APPLIED]: '{"stringData":{"password":"hunter2"' });
    expect(redact(eventOf(SECRET, object)).object.metadata.annotations![LAST_APPLIED]).to.equal(REDACTED);
  });

  it('redacts a last-applied annotation nested in the applied Secret, and data or stringData that is not a map', () => {
    const redact = createRedactor({ redactSecrets: true, stripManagedFields: true });
    const inner = JSON.stringify({ apiVersion: 'v1', kind: 'Secret', data: { password: b64('inner-S3CRET') } });
    const outer = JSON.stringify({ apiVersion: 'v1', kind: 'Secret', stringData: 'password=outer-S3CRET', metadata: { name: 'db', annotations: { [LAST_APPLIED]: inner } } });
    const object = secretObject('db', undefined, { [LAST_APPLIED]: outer });
    (object as { stringData?: unknown }).stringData = 'password=live-S3CRET';
    const out = redact(eventOf(SECRET, object));
    const text = JSON.stringify(out);
    for (const secret of ['inner-S3CRET', b64('inner-S3CRET'), 'outer-S3CRET', 'live-S3CRET', 'hunter2', b64('hunter2')]) expect(text).to.not.include(secret);
    const applied = JSON.parse(out.object.metadata.annotations![LAST_APPLIED]);
    expect(applied.stringData).to.equal(REDACTED);
    expect(JSON.parse(applied.metadata.annotations[LAST_APPLIED]).data).to.deep.equal({ password: REDACTED });
    expect((out.object as { stringData?: unknown }).stringData).to.equal(REDACTED);
  });

  it('keeps every key, even one named __proto__', () => {
    const redact = createRedactor({ redactSecrets: true, stripManagedFields: true });
    const object = secretObject('db', JSON.parse(`{"password":"${b64('x')}","__proto__":"${b64('y')}"}`));
    const data = redact(eventOf(SECRET, object)).object.data as Record<string, string>;
    expect(Object.keys(data)).to.deep.equal(['password', '__proto__']);
    expect(JSON.parse(JSON.stringify(data))).to.deep.equal(JSON.parse(`{"password":"${REDACTED}","__proto__":"${REDACTED}"}`));
  });

  it('adds a keyed fingerprint that changes when a value changes and is not a plain hash', () => {
    const redact = createRedactor({ redactSecrets: true, stripManagedFields: true, key: KEY });
    const first = redact(eventOf(SECRET, secretObject('db', { password: b64('hunter2'), user: b64('app') }))).object.data as Record<string, string>;
    const again = redact(eventOf(SECRET, secretObject('db', { password: b64('hunter2'), user: b64('app') }))).object.data as Record<string, string>;
    const changed = redact(eventOf(SECRET, secretObject('db', { password: b64('hunter3'), user: b64('app') }))).object.data as Record<string, string>;
    expect(first.password).to.match(/^<redacted:hmac-sha256:[0-9a-f]{32}>$/);
    expect(again.password).to.equal(first.password);
    expect(changed.password).not.to.equal(first.password);
    expect(changed.user).to.equal(first.user);
    const otherKey = createRedactor({ redactSecrets: true, stripManagedFields: true, key: `${KEY}-other` });
    expect((otherKey(eventOf(SECRET, secretObject('db'))).object.data as Record<string, string>).password).not.to.equal(first.password, 'the marker depends on the key');
  });

  it('gives a value the same fingerprint in data (base64) and in the last-applied stringData (plain)', () => {
    const redact = createRedactor({ redactSecrets: true, stripManagedFields: true, key: KEY });
    const object = secretObject('db');
    object.metadata.annotations = { [LAST_APPLIED]: lastAppliedOf(object) };
    const out = redact(eventOf(SECRET, object));
    const applied = JSON.parse(out.object.metadata.annotations![LAST_APPLIED]);
    expect(applied.stringData.password).to.equal((out.object.data as Record<string, string>).password);
  });

  it('does not show equal values in two different Secrets as equal', () => {
    const redact = createRedactor({ redactSecrets: true, stripManagedFields: true, key: KEY });
    const a = redact(eventOf(SECRET, secretObject('a'))).object.data as Record<string, string>;
    const b = redact(eventOf(SECRET, secretObject('b'))).object.data as Record<string, string>;
    expect(a.password).not.to.equal(b.password);
  });

  it('reads the fingerprint key from the environment variable named by keyEnv', () => {
    process.env.MESHSYNC_TEST_FINGERPRINT_KEY = KEY;
    try {
      const plugin = redactSecrets({ fingerprint: { keyEnv: 'MESHSYNC_TEST_FINGERPRINT_KEY' } });
      const direct = createRedactor({ redactSecrets: true, stripManagedFields: true, key: KEY });
      const t = createTestCore({ plugins: [plugin] });
      const viaEnv = t.core.hooks.transform.call(eventOf(SECRET, secretObject('db')));
      expect(viaEnv.object.data).to.deep.equal(direct(eventOf(SECRET, secretObject('db'))).object.data);
    } finally {
      delete process.env.MESHSYNC_TEST_FINGERPRINT_KEY;
    }
  });

  it('reports a missing key variable and a short key as config problems without the key in them', () => {
    expect(() => redactSecrets({ fingerprint: { keyEnv: 'MESHSYNC_TEST_UNSET_VARIABLE' } })).to.throw(ConfigError, /fingerprint\.keyEnv: environment variable MESHSYNC_TEST_UNSET_VARIABLE is not set/);
    let error: unknown;
    try {
      redactSecrets({ fingerprint: { key: 'short-s3cret' } });
    } catch (caught) {
      error = caught;
    }
    expect(error).to.be.instanceOf(ConfigError);
    expect((error as ConfigError).problems.map((problem) => problem.path)).to.deep.equal(['meshsync:redact-secrets options.fingerprint.key']);
    expect(JSON.stringify({ message: (error as Error).message, problems: (error as ConfigError).problems })).not.to.include('short-s3cret');
    expect(() => redactSecrets({ fingerprint: {} })).to.throw(ConfigError, /exactly one of `key` and `keyEnv`/);
  });

  it('keeps the key out of the options it exposes and out of its logs', async () => {
    const plugin = redactSecrets({ fingerprint: { key: KEY } });
    expect(JSON.stringify(plugin.options)).not.to.include(KEY);
    let logged = '';
    const destination = new Writable({ write(chunk, _encoding, done) { logged += String(chunk); done(); } });
    const t = createTestCore({ plugins: [plugin], logger: createLogger({ level: 'trace', destination, pretty: false }) });
    await t.start();
    t.source.emit('ADDED', SECRET, secretObject('db'));
    await t.drain();
    await t.stop();
    expect(logged).to.include('Secret values are redacted');
    expect(logged).not.to.include(KEY);
  });

  it('lets Secrets through in clear only with enabled: false, and warns at start', async () => {
    let logged = '';
    const destination = new Writable({ write(chunk, _encoding, done) { logged += String(chunk); done(); } });
    const t = createTestCore({ plugins: [redactSecrets({ enabled: false })], logger: createLogger({ level: 'info', destination, pretty: false }) });
    await t.start();
    t.source.emit('ADDED', SECRET, secretObject('db'));
    await t.drain();
    expect(t.sink.events[0].object.data).to.deep.equal({ password: b64('hunter2'), user: b64('app') });
    expect(t.sink.events[0].object.metadata).not.to.have.property('managedFields');
    const warning = logged.split('\n').filter(Boolean).map((line) => JSON.parse(line)).find((record) => record.level === 40);
    expect(warning?.msg).to.match(/Secret redaction is disabled/);
    await t.stop();
  });

  it('redacts DELETED events and snapshots of Secrets too', async () => {
    const t = createTestCore({ plugins: [redactSecrets()] });
    await t.start();
    t.source.emit('ADDED', SECRET, secretObject('kept'));
    t.source.emit('MODIFIED', SECRET, secretObject('gone'));
    t.source.emit('DELETED', SECRET, secretObject('gone'));
    await t.drain();
    for (const event of [...t.sink.events, ...await collect(t.core.snapshot())]) {
      expect(event.object.data).to.deep.equal({ password: REDACTED, user: REDACTED }, `${event.type} ${event.object.metadata.name}`);
    }
    expect(t.sink.events.map((event) => event.type)).to.include('DELETED');
    await t.stop();
  });
});

describe('meshsync:redact-secrets: an allow-list (finding 5)', () => {
  const redact = createRedactor({ redactSecrets: true, stripManagedFields: true });
  const VALUE = 'hunter2-s3cret';
  const leaves = (object: KubeObject) => {
    const text = JSON.stringify(redact(eventOf(SECRET, object)).object);
    return text.includes(VALUE) || text.includes(b64(VALUE));
  };

  it('finding 5 (LOW): a last-applied copy spelled StringData (which the API server accepts) leaves no value', () => {
    const applied = JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'db' }, StringData: { password: VALUE } });
    expect(leaves(secretObject('db', { password: b64(VALUE) }, { [LAST_APPLIED]: applied }))).to.equal(false);
  });

  it('finding 5 (LOW): a last-applied kind: List of Secrets leaves no value', () => {
    const applied = JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [{ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'db' }, stringData: { password: VALUE } }] });
    const out = redact(eventOf(SECRET, secretObject('db', { password: b64(VALUE) }, { [LAST_APPLIED]: applied }))).object;
    expect(JSON.stringify(out)).to.not.contain(VALUE);
    expect(out.metadata.annotations![LAST_APPLIED]).to.equal(REDACTED);
  });

  it('finding 5 (LOW): a Secret field it does not know (any spelling, any later API field) is left out, not passed on', () => {
    const object = { ...secretObject('db', { password: b64(VALUE) }), Data: { password: b64(VALUE) }, extra: { copy: VALUE } } as KubeObject;
    const out = redact(eventOf(SECRET, object)).object as Record<string, unknown>;
    expect(leaves(object)).to.equal(false);
    expect(Object.keys(out).sort()).to.deep.equal(['apiVersion', 'data', 'kind', 'metadata', 'type']);
    expect(out.data).to.deep.equal({ password: REDACTED });
  });

  it('finding 5 (LOW): keeps what a consumer needs: metadata, type and the keys', () => {
    const out = redact(eventOf(SECRET, secretObject('db', { password: b64(VALUE), user: b64('app') }, { team: 'payments' }))).object as Record<string, any>;
    expect(out).to.deep.include({ apiVersion: 'v1', kind: 'Secret', type: 'Opaque', data: { password: REDACTED, user: REDACTED } });
    expect(out.metadata).to.deep.include({ name: 'db', namespace: 'shop', uid: 'uid-secrets-db', resourceVersion: '1', annotations: { team: 'payments' } });
    expect(out.metadata).to.not.have.key('managedFields');
  });
});
