import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_RESOURCES } from '../../plugins/kubernetes/defaults.ts';
import { collect, createTestCore, type TestCore } from '../../testing/index.ts';
import { jsonOf, knownJsonBytes, ObjectView, wholeObject } from '../../core/serialized.ts';
import redactSecrets, { REDACTED } from '../../plugins/redact-secrets/index.ts';
import type { ErrorReport, SyncEvent } from '../../core/types.ts';
import { createLogger, type Logger } from '../../core/log.ts';
import kubernetes from '../../plugins/kubernetes/index.ts';
import { startSimulator, type KubeSimulator } from '../../testing/simulator/index.ts';

type KubeOptions = NonNullable<Parameters<typeof kubernetes>[0]>;

const POD_ID = 'pods.v1.';
const CRD_ID = 'customresourcedefinitions.v1.apiextensions.k8s.io';

const pod = (name: string, namespace = 'default', labels: Record<string, string> = {}) => ({
  metadata: { name, namespace, labels },
  spec: { containers: [{ name: 'app', image: 'nginx:1.27', ports: [{ containerPort: 80 }] }] },
});

const widgetCrd = {
  metadata: { name: 'widgets.example.com' },
  spec: {
    group: 'example.com',
    scope: 'Namespaced',
    names: { plural: 'widgets', singular: 'widget', kind: 'Widget', listKind: 'WidgetList' },
    versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } } }],
  },
};

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls until `check` holds (the events flow asynchronously through the core). */
async function until(check: () => boolean | Promise<boolean>, timeoutMs = 8000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

async function metricValue(t: TestCore, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = t.core.metrics.getSingleMetric(name);
  if (!metric) return 0;
  const { values } = await metric.get();
  return values
    .filter((v) => Object.entries(labels).every(([key, value]) => (v.labels as Record<string, unknown>)[key] === value))
    .reduce((sum, v) => sum + v.value, 0);
}

const named = (events: SyncEvent[], resource: string, type?: string) =>
  events.filter((e) => e.resource.resource === resource && (type === undefined || e.type === type)).map((e) => e.object.metadata.name);

describe('kubernetes source (against the API simulator)', function () {
  this.timeout(30_000);
  let sim: KubeSimulator;
  let dir: string;
  let kubeconfig: string;
  let t: TestCore | undefined;
  let errors: ErrorReport[];

  beforeEach(async () => {
    sim = await startSimulator({ bookmarkIntervalMs: 100 });
    dir = mkdtempSync(join(tmpdir(), 'meshsync-kube-'));
    kubeconfig = join(dir, 'kubeconfig');
    await sim.writeKubeconfig(kubeconfig);
    errors = [];
  });

  afterEach(async () => {
    await t?.stop();
    t = undefined;
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /**
   * A test core with the kubernetes source, quick retries and error capture. These cases look at
   * paginated lists (the request log, pages, continue tokens): streaming lists have their own below.
   */
  async function start(options: Partial<KubeOptions> = {}, coreOptions: { clusterId?: string; logger?: Logger } = {}): Promise<TestCore> {
    t = createTestCore({
      ...coreOptions,
      plugins: [kubernetes({ kubeconfig, streamingList: 'off', backoffInitialMs: 20, backoffMaxMs: 200, minWatchTimeoutSeconds: 60, ...options } as KubeOptions)],
    });
    t.core.hooks.error.tap('test:errors', (report) => {
      errors.push(report);
    });
    await t.start();
    await t.core.whenReady();
    return t;
  }

  const requestsFor = (resource: string, verb: string) => sim.requests().filter((r) => r.resource === resource && r.verb === verb);
  /** Deletes a pod where no watch sees it, and has the watch resumed with 410 Gone: only a relist finds out. */
  const deleteUnwatched = (name: string) => {
    sim.stallWatches(true);
    sim.delete(POD_ID, 'default', name);
    sim.dropWatches();
    sim.compact();
    sim.stallWatches(false);
  };

  it('finding 6 (LOW): a watch event larger than limits.maxLineBytes is skipped, counted and reported, and the watch reads on', async () => {
    const core = await start({ resources: [POD_ID], limits: { maxLineBytes: 64 * 1024 } });
    sim.create(POD_ID, { ...pod('huge'), metadata: { ...pod('huge').metadata, annotations: { filler: 'x'.repeat(256 * 1024) } } });
    sim.create(POD_ID, pod('small'));
    await core.sink.waitFor((events) => named(events, 'pods').includes('small'));
    expect(named(core.sink.events, 'pods')).to.not.include('huge');
    const reported = errors.find((report) => /skipped a watch event of \d+ bytes .* larger than limits.maxLineBytes \(65536\)/.test(report.error.message));
    expect(reported, 'reported').to.not.equal(undefined);
    expect((reported!.error as { code?: string }).code).to.equal('MESHSYNC_EVENT_INVALID');
  });

  it('finding 6 (LOW): a list page larger than limits.maxBodyBytes fails the list (retried), never read whole', async () => {
    for (let i = 0; i < 5; i++) sim.create(POD_ID, { ...pod(`big-${i}`), metadata: { ...pod(`big-${i}`).metadata, annotations: { filler: 'x'.repeat(64 * 1024) } } });
    t = createTestCore({ plugins: [kubernetes({ kubeconfig, streamingList: 'off', backoffInitialMs: 20, backoffMaxMs: 200, resources: [POD_ID], limits: { maxBodyBytes: 128 * 1024 } } as KubeOptions)] });
    t.core.hooks.error.tap('test:errors', (report) => void errors.push(report));
    await t.start();
    await until(() => errors.some((report) => /larger than maxBodyBytes \(131072 bytes\); not read/.test(report.error.message)), 5000, 'the oversized page reported');
    expect(t.sink.events).to.have.length(0);
  });

  it('lists and watches the 15 default resources and streams later changes', async () => {
    const before = pod('before');
    sim.create(POD_ID, { ...before, metadata: { ...before.metadata, managedFields: [{ manager: 'kubectl', operation: 'Update', fieldsV1: { 'f:metadata': { 'f:labels': {} } } }] } });
    const core = await start({}, { clusterId: '' });
    for (const id of DEFAULT_RESOURCES) {
      expect(requestsFor(id, 'list'), `list of ${id}`).to.have.length.greaterThan(0);
      await until(() => requestsFor(id, 'watch').length > 0, 5000, `watch of ${id}`);
    }
    expect(core.core.clusterId).to.equal(sim.get('namespaces.v1.', undefined, 'kube-system')!.metadata.uid, 'cluster id is the kube-system uid');
    sim.create('deployments.v1.apps', { metadata: { name: 'web', namespace: 'default' }, spec: { replicas: 1, selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'a', image: 'nginx' }] } } } });
    sim.create('configmaps.v1.', { metadata: { name: 'settings', namespace: 'default' }, data: { a: '1' } });
    sim.patch(POD_ID, 'default', 'before', { metadata: { labels: { touched: 'yes' } } });
    await core.sink.waitFor((events) => named(events, 'deployments').includes('web') && named(events, 'configmaps').includes('settings')
      && named(events, 'pods', 'MODIFIED').includes('before'));
    await core.drain();
    for (const event of core.sink.events) {
      expect(event.object.kind, `kind of ${event.resource.resource}`).to.equal(event.resource.kind);
      expect(event.object.apiVersion).to.equal(event.resource.group ? `${event.resource.group}/${event.resource.version}` : event.resource.version);
      expect(event.object.metadata.managedFields).to.equal(undefined);
      // The bytes the sinks send (cut from the watch line, or serialised) are this very object.
      const bytes = knownJsonBytes(event.object);
      if (bytes) expect(JSON.parse(Buffer.from(bytes).toString('utf8')), `bytes of ${event.resource.resource}`).to.deep.equal(event.object);
    }
    expect(knownJsonBytes(core.sink.events.find((e) => e.type === 'MODIFIED' && e.object.metadata.name === 'before')!.object)).to.not.equal(undefined);
    expect(named(core.sink.events, 'namespaces', 'ADDED')).to.include.members(['default', 'kube-system']);
    const counts = core.core.state.resourceCounts();
    expect(counts[POD_ID]).to.equal(1);
    expect(Object.keys(counts)).to.have.members([...DEFAULT_RESOURCES]);
  });

  it('picks up a CRD installed at runtime, sees its objects, and deletes them when the CRD goes', async () => {
    const core = await start({ resources: [POD_ID, '*.*.example.com', 'volumegroupsnapshotclasses.v1beta1.groupsnapshot.storage.k8s.io'] });
    const unknown = errors.find((e) => (e.error as { code?: string }).code === 'MESHSYNC_KUBE_UNKNOWN_RESOURCE');
    expect(unknown?.error.message).to.contain('volumegroupsnapshotclasses.v1beta1.groupsnapshot.storage.k8s.io');
    sim.create(CRD_ID, widgetCrd);
    await until(() => requestsFor('widgets.v1.example.com', 'watch').length > 0, 5000, 'a watch of widgets');
    sim.create('widgets.v1.example.com', { metadata: { name: 'w1', namespace: 'default' }, spec: { size: 3 } });
    await core.sink.waitFor((events) => named(events, 'widgets', 'ADDED').includes('w1'));
    const added = core.sink.events.find((e) => e.object.metadata.name === 'w1')!;
    expect(added.object.kind).to.equal('Widget');
    expect(added.object.apiVersion).to.equal('example.com/v1');
    sim.delete(CRD_ID, undefined, 'widgets.example.com');
    await core.sink.waitFor((events) => named(events, 'widgets', 'DELETED').includes('w1'));
    await until(() => !('widgets.v1.example.com' in core.core.state.resourceCounts()), 5000, 'widgets to be unwatched');
  });

  it('sends label and field selectors and namespace choices to the API server', async () => {
    for (const ns of ['a', 'b', 'c']) sim.create('namespaces.v1.', { metadata: { name: ns } });
    for (const ns of ['a', 'b', 'c']) {
      sim.create(POD_ID, pod('web-1', ns, { app: 'web' }));
      sim.create(POD_ID, pod('web-2', ns, { app: 'web' }));
      sim.create(POD_ID, pod('db-1', ns, { app: 'db' }));
    }
    const core = await start({
      resources: [{ id: POD_ID, fieldSelector: 'metadata.name!=web-2' }, 'namespaces.v1.'],
      labelSelector: 'app!=db',
      namespaces: { include: ['a', 'b'], exclude: [] },
    });
    await core.drain();
    const pods = core.sink.events.filter((e) => e.resource.resource === 'pods').map((e) => `${e.object.metadata.namespace}/${e.object.metadata.name}`);
    expect(pods).to.have.members(['a/web-1', 'b/web-1']);
    const lists = requestsFor(POD_ID, 'list');
    expect(lists.map((r) => r.path)).to.have.members(['/api/v1/namespaces/a/pods', '/api/v1/namespaces/b/pods']);
    for (const r of lists) {
      expect(r.query.labelSelector).to.equal('app!=db');
      expect(r.query.fieldSelector).to.equal('metadata.name!=web-2');
      expect(r.query.limit).to.equal('500');
    }
    expect(named(core.sink.events, 'namespaces')).to.have.members(['a', 'b']);
  });

  it('excludes namespaces with a field selector sent to the server', async () => {
    sim.create('namespaces.v1.', { metadata: { name: 'noisy' } });
    sim.create(POD_ID, pod('keep', 'default'));
    sim.create(POD_ID, pod('drop', 'noisy'));
    const core = await start({ resources: [POD_ID], namespaces: { include: [], exclude: ['noisy', 'kube-system'] } });
    await core.drain();
    expect(named(core.sink.events, 'pods')).to.deep.equal(['keep']);
    expect(requestsFor(POD_ID, 'list')[0].query.fieldSelector).to.equal('metadata.namespace!=noisy,metadata.namespace!=kube-system');
  });

  it('relists after 410 Gone and emits DELETED for objects removed during the gap, nothing for unchanged ones', async () => {
    for (const name of ['stay', 'change', 'vanish']) sim.create(POD_ID, pod(name));
    const core = await start({ resources: [POD_ID] });
    await core.drain();
    core.sink.clear();
    sim.stallWatches(true);
    sim.delete(POD_ID, 'default', 'vanish');
    sim.patch(POD_ID, 'default', 'change', { metadata: { labels: { v: '2' } } });
    sim.create(POD_ID, pod('fresh'));
    sim.dropWatches();
    sim.compact();
    sim.stallWatches(false);
    await core.sink.waitFor((events) => events.length >= 3);
    await until(async () => (await metricValue(core, 'meshsync_relists_total', { resource: POD_ID })) >= 1, 5000, 'a relist');
    await sleep(200);
    await core.drain();
    const seen = core.sink.events.map((e) => `${e.type} ${e.object.metadata.name}`);
    expect(seen).to.have.members(['DELETED vanish', 'MODIFIED change', 'ADDED fresh']);
    expect(requestsFor(POD_ID, 'list').length).to.be.greaterThanOrEqual(2);
  });

  for (const resident of ['fingerprints', 'objects'] as const) {
    it(`keeps ${resident}: a snapshot gives the current objects (${resident === 'fingerprints' ? 'listed afresh' : 'from memory'}), a relist's DELETED carries ${resident === 'fingerprints' ? 'the identity' : 'the last state'}`, async () => {
      for (const name of ['stay', 'vanish']) sim.create(POD_ID, { ...pod(name), status: { phase: 'Running' } });
      const core = await start({ resources: [POD_ID], resident });
      await core.drain();
      sim.patch(POD_ID, 'default', 'stay', { metadata: { labels: { v: '2' } } });
      await core.sink.waitFor((events) => events.some((e) => e.type === 'MODIFIED'));
      const listsBefore = requestsFor(POD_ID, 'list').length;
      const snapshot = await collect(core.core.snapshot());
      expect(requestsFor(POD_ID, 'list').length - listsBefore, 'lists made by the snapshot').to.equal(resident === 'fingerprints' ? 1 : 0);
      const current = sim.list(POD_ID).map(({ metadata: { managedFields: _dropped, ...metadata }, ...rest }) => ({ ...rest, kind: 'Pod', apiVersion: 'v1', metadata }));
      expect(snapshot.map((event) => JSON.parse(jsonOf(event.object))).sort((a, b) => a.metadata.name.localeCompare(b.metadata.name))).to.deep.equal(current);
      const vanishing = sim.get(POD_ID, 'default', 'vanish')!.metadata;
      core.sink.clear();
      deleteUnwatched('vanish');
      const [deleted] = await core.sink.waitFor((events) => events.some((e) => e.type === 'DELETED'));
      expect(JSON.parse(jsonOf(deleted.object))).to.deep.equal(resident === 'fingerprints'
        ? { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'vanish', namespace: 'default', uid: vanishing.uid, resourceVersion: vanishing.resourceVersion } }
        : current.find((object) => object.metadata.name === 'vanish'));
    });
  }

  it('emits DELETED for the old object and ADDED for the new one when a name was re-created during the gap', async () => {
    const first = sim.create(POD_ID, pod('web-0'));
    const core = await start({ resources: [POD_ID] });
    await core.drain();
    core.sink.clear();
    sim.stallWatches(true);
    sim.delete(POD_ID, 'default', 'web-0');
    const second = sim.create(POD_ID, pod('web-0'));
    sim.dropWatches();
    sim.compact();
    sim.stallWatches(false);
    await core.sink.waitFor((events) => events.length >= 2);
    await core.drain();
    expect(core.sink.events.map((e) => `${e.type} ${e.object.metadata.uid}`)).to.deep.equal([
      `DELETED ${first.metadata.uid}`,
      `ADDED ${second.metadata.uid}`,
    ]);
    expect(core.sink.view().has(String(first.metadata.uid))).to.equal(false);
  });

  it('resumes dropped watches with no duplicate and no missed event', async () => {
    const core = await start({ resources: [POD_ID] });
    for (let i = 0; i < 200; i++) {
      sim.create(POD_ID, pod(`p${i}`));
      if (i % 20 === 10) {
        sim.dropWatches();
        await sleep(5);
      }
    }
    await core.sink.waitFor((events) => named(events, 'pods').length >= 200, 10_000);
    await sleep(200);
    await core.drain();
    const names = named(core.sink.events, 'pods', 'ADDED');
    expect(names).to.have.length(200);
    expect(new Set(names).size).to.equal(200);
    expect(named(core.sink.events, 'pods', 'MODIFIED')).to.deep.equal([]);
    expect(requestsFor(POD_ID, 'list')).to.have.length(1, 'resumed from the resourceVersion, no relist');
    const watches = requestsFor(POD_ID, 'watch');
    expect(watches.length).to.be.greaterThan(1);
    for (const w of watches) expect(w.query.resourceVersion).to.match(/^\d+$/);
    expect(await metricValue(core, 'meshsync_watch_restarts_total', { resource: POD_ID })).to.be.greaterThan(0);
  });

  it('advances the resourceVersion with bookmarks, so a resumed watch does not replay', async () => {
    sim.create(POD_ID, pod('only'));
    const core = await start({ resources: [POD_ID] });
    await until(() => requestsFor(POD_ID, 'watch').length === 1, 5000, 'the first watch');
    const firstWatchRv = Number(requestsFor(POD_ID, 'watch')[0].query.resourceVersion);
    for (let i = 0; i < 5; i++) sim.create('configmaps.v1.', { metadata: { name: `cm${i}`, namespace: 'default' } });
    const latest = Number(sim.resourceVersion());
    await sleep(350); // a few bookmark intervals
    sim.dropWatches();
    await until(() => requestsFor(POD_ID, 'watch').length >= 2, 5000, 'a resumed watch');
    const resumedRv = Number(requestsFor(POD_ID, 'watch')[1].query.resourceVersion);
    expect(resumedRv).to.be.greaterThan(firstWatchRv);
    expect(resumedRv).to.equal(latest);
    await sleep(100);
    await core.drain();
    expect(core.sink.events.map((e) => `${e.type} ${e.object.metadata.name}`)).to.deep.equal(['ADDED only']);
  });

  it('skips and counts a malformed watch line and goes on', async () => {
    const core = await start({ resources: [POD_ID] });
    sim.injectMalformedLine(POD_ID);
    sim.create(POD_ID, pod('after-garbage'));
    await core.sink.waitFor((events) => named(events, 'pods').includes('after-garbage'));
    expect(await metricValue(core, 'meshsync_malformed_lines_total', { resource: POD_ID })).to.equal(1);
    expect(errors.some((e) => (e.error as { code?: string }).code === 'MESHSYNC_EVENT_INVALID' && e.error.message.includes('pods.v1.'))).to.equal(true);
  });

  it('keeps the other resources flowing when one is forbidden, names the RBAC rule, and picks it up once allowed', async () => {
    sim.forbid('secrets.v1.');
    sim.create('secrets.v1.', { metadata: { name: 'hidden', namespace: 'default' }, type: 'Opaque', data: { k: 'dg==' } });
    sim.create(POD_ID, pod('visible'));
    const core = await start({ resources: [POD_ID, 'secrets.v1.'] });
    await core.sink.waitFor((events) => named(events, 'pods').includes('visible'));
    const forbidden = errors.find((e) => (e.error as { code?: string }).code === 'MESHSYNC_KUBE_FORBIDDEN');
    expect(forbidden?.error.message).to.contain('list and watch on resource "secrets" in API group ""');
    sim.create(POD_ID, pod('still-flowing'));
    await core.sink.waitFor((events) => named(events, 'pods').includes('still-flowing'));
    sim.unforbid('secrets.v1.');
    await core.sink.waitFor((events) => named(events, 'secrets').includes('hidden'));
    expect(await metricValue(core, 'meshsync_watch_errors_total', { resource: 'secrets.v1.', reason: 'forbidden' })).to.be.greaterThan(0);
  });

  it('syncs 20k objects page by page, all ADDED', async () => {
    for (let i = 0; i < 20_000; i++) sim.create(POD_ID, pod(`bulk-${i}`, i % 2 ? 'default' : 'kube-system'));
    const core = await start({ resources: [POD_ID], pageSize: 500 });
    await core.drain();
    const added = core.sink.events.filter((e) => e.type === 'ADDED');
    expect(added).to.have.length(20_000);
    expect(core.sink.events).to.have.length(20_000);
    expect(new Set(added.map((e) => `${e.object.metadata.namespace}/${e.object.metadata.name}`)).size).to.equal(20_000);
    expect(added.every((e) => e.object.kind === 'Pod' && e.object.apiVersion === 'v1')).to.equal(true);
    const lists = requestsFor(POD_ID, 'list');
    expect(lists).to.have.length(40);
    expect(lists.filter((r) => r.query.continue)).to.have.length(39);
    expect(core.core.state.resourceCounts()[POD_ID]).to.equal(20_000);
  });

  it('lists through a streaming watch (sendInitialEvents) where the server serves it, then goes on watching on it', async () => {
    for (let i = 0; i < 50; i++) sim.create(POD_ID, pod(`s-${i}`));
    const core = await start({ resources: [POD_ID], streamingList: 'auto' });
    await core.drain();
    expect(named(core.sink.events, 'pods', 'ADDED')).to.have.length(50);
    expect(requestsFor(POD_ID, 'list')).to.deep.equal([], 'no LIST request');
    const [stream] = requestsFor(POD_ID, 'watch');
    expect(stream.query).to.include({ sendInitialEvents: 'true', resourceVersionMatch: 'NotOlderThan', allowWatchBookmarks: 'true' });
    expect(stream.query.resourceVersion, 'a consistent read: no resourceVersion').to.equal(undefined);
    sim.create(POD_ID, pod('later'));
    await core.sink.waitFor((events) => named(events, 'pods', 'ADDED').includes('later'));
    expect(requestsFor(POD_ID, 'watch'), 'the same watch delivered the later change').to.have.length(1);
  });

  it('relists through a streaming watch after 410 Gone: DELETED for objects removed during the gap', async () => {
    for (const name of ['stay', 'vanish']) sim.create(POD_ID, pod(name));
    const core = await start({ resources: [POD_ID], streamingList: 'auto' });
    await core.drain();
    core.sink.clear();
    deleteUnwatched('vanish');
    await core.sink.waitFor((events) => events.length >= 1);
    await until(async () => (await metricValue(core, 'meshsync_relists_total', { resource: POD_ID })) >= 1, 5000, 'a relist');
    await sleep(200);
    await core.drain();
    expect(core.sink.events.map((e) => `${e.type} ${e.object.metadata.name}`)).to.deep.equal(['DELETED vanish']);
    expect(requestsFor(POD_ID, 'watch').filter((r) => r.query.sendInitialEvents === 'true')).to.have.length(2);
  });

  for (const streamingList of ['off', 'auto'] as const) {
    it(`emits objects no plugin reads whole as views: metadata parsed, the bytes of the whole object as a full parse gives them (${streamingList === 'off' ? 'paged list' : 'streaming list'}, then watch)`, async () => {
      const managedFields = [{ manager: 'kubectl', operation: 'Update', fieldsV1: { 'f:metadata': { 'f:labels': {} } } }];
      const listed = pod('listed', 'default', { app: 'a' });
      sim.create(POD_ID, { ...listed, metadata: { ...listed.metadata, managedFields }, status: { phase: 'Running' } });
      sim.create('secrets.v1.', { metadata: { name: 'token', namespace: 'default' }, data: { password: 'c2VjcmV0' } });
      t = createTestCore({
        plugins: [kubernetes({ kubeconfig, streamingList, resources: [POD_ID, 'secrets.v1.'], backoffInitialMs: 20, backoffMaxMs: 200 } as KubeOptions), redactSecrets()],
        sink: { wholeObjects: false },
      });
      await t.start();
      await t.core.whenReady();
      sim.create(POD_ID, pod('watched'));
      await t.sink.waitFor((events) => named(events, 'pods').includes('watched'));
      sim.patch(POD_ID, 'default', 'listed', { metadata: { labels: { touched: 'yes' } } });
      await t.sink.waitFor((events) => named(events, 'pods', 'MODIFIED').includes('listed'));
      await t.drain();
      const pods = t.sink.events.filter((event) => event.resource.resource === 'pods');
      expect(pods.map((event) => `${event.type} ${event.object.metadata.name}`)).to.deep.equal(['ADDED listed', 'ADDED watched', 'MODIFIED listed']);
      for (const event of pods) {
        const { namespace, name } = event.object.metadata;
        const { managedFields: _dropped, ...metadata } = sim.get(POD_ID, namespace, name!)!.metadata;
        expect(event.object).to.be.instanceOf(ObjectView);
        expect(event.object.spec, 'only the metadata is parsed').to.equal(undefined);
        expect(event.object.metadata.managedFields).to.equal(undefined);
        const whole = JSON.parse(jsonOf(event.object));
        expect(whole.metadata.name).to.equal(name);
        expect(whole.spec).to.deep.equal(sim.get(POD_ID, namespace, name!)!.spec);
        expect(whole).to.deep.equal(wholeObject(event.object));
        expect(JSON.parse(JSON.stringify(event.object)), 'JSON.stringify writes the whole object').to.deep.equal(whole);
        if (event.type !== 'MODIFIED' && name === 'listed') continue;
        expect(event.object.metadata).to.deep.equal(metadata);
      }
      // The redactor declared it reads Secrets whole: they are parsed, and redacted.
      const secret = t.sink.events.find((event) => event.resource.resource === 'secrets')!;
      expect(secret.object).to.not.be.instanceOf(ObjectView);
      expect(secret.object.data).to.deep.equal({ password: REDACTED });
      expect(jsonOf(secret.object)).to.not.include('c2VjcmV0');
    });
  }

  it('lists in pages where the server refuses streaming lists (422), says so once, and never asks again', async () => {
    await sim.close();
    sim = await startSimulator({ bookmarkIntervalMs: 100, watchList: false });
    await sim.writeKubeconfig(kubeconfig);
    for (let i = 0; i < 30; i++) sim.create(POD_ID, pod(`p-${i}`));
    const lines: string[] = [];
    const logger = createLogger({ level: 'info', pretty: false, destination: { write: (line: string) => lines.push(line) } as never });
    const core = await start({ resources: [POD_ID, 'configmaps.v1.'], streamingList: 'auto', pageSize: 10 }, { logger });
    await core.drain();
    expect(named(core.sink.events, 'pods', 'ADDED')).to.have.length(30);
    expect(requestsFor(POD_ID, 'list')).to.have.length(3);
    sim.stallWatches(true);
    sim.create(POD_ID, pod('during-the-gap'));
    sim.dropWatches();
    sim.compact();
    sim.stallWatches(false);
    await until(async () => (await metricValue(core, 'meshsync_relists_total', { resource: POD_ID })) >= 1, 5000, 'a relist');
    await until(() => requestsFor(POD_ID, 'list').length >= 7, 5000, 'the relist in pages');
    await core.sink.waitFor((events) => named(events, 'pods', 'ADDED').includes('during-the-gap'));
    expect(requestsFor(POD_ID, 'watch').filter((r) => r.query.sendInitialEvents !== undefined), 'one refused streaming list').to.have.length(1);
    expect(errors.map((e) => e.error.message).filter((m) => /sendInitialEvents|422/.test(m)), 'a refusal is not an error').to.deep.equal([]);
    expect(lines.filter((line) => line.includes('does not serve streaming lists')), 'said once for the source').to.have.length(1);
  });

  /** Starts a core whose sink takes a batch of 50 every `sinkDelayMs`, pausing sources above 100; reads the lane's largest backlog. */
  async function startSlowSink(options: Partial<KubeOptions>, sinkDelayMs: number): Promise<{ maxBacklog: () => number }> {
    t = createTestCore({
      batchSize: 50, sourcePauseAbove: 100,
      plugins: [kubernetes({ kubeconfig, streamingList: 'off', resources: [POD_ID], minWatchTimeoutSeconds: 60, ...options } as KubeOptions)],
    });
    t.sink.delayMs = sinkDelayMs;
    let maxBacklog = 0;
    t.core.hooks.batch.tap('test:backlog', () => {
      const [lane] = t!.core.state.lanes();
      maxBacklog = Math.max(maxBacklog, lane.pending + lane.inFlight);
    });
    await t.start();
    await t.core.whenReady();
    return { maxBacklog: () => maxBacklog };
  }

  it('lists no faster than the sink takes: between pages it waits while the sink holds more than sourcePauseAbove', async () => {
    for (let i = 0; i < 600; i++) sim.create(POD_ID, pod(`slow-${i}`));
    const lane = await startSlowSink({ pageSize: 50 }, 10);
    await t!.drain();
    expect(t!.sink.events.filter((e) => e.type === 'ADDED')).to.have.length(600);
    // Without the pause the whole list (600) would wait in the lane; with it, at most the mark plus a page.
    expect(lane.maxBacklog()).to.be.within(50, 100 + 50);
  });

  it('starts a list over when its continue token expires while it waits for the sinks, and emits each object once', async () => {
    for (let i = 0; i < 300; i++) sim.create(POD_ID, pod(`paged-${i}`));
    t = createTestCore({ batchSize: 50, sourcePauseAbove: 100, plugins: [kubernetes({ kubeconfig, streamingList: 'off', resources: [POD_ID], pageSize: 50 })] });
    t.sink.delayMs = 20;
    await t.start();
    await until(() => requestsFor(POD_ID, 'list').length >= 2, 8000, 'the second page');
    // A write, then a compaction: every continue token handed out so far is now too old (410).
    sim.create(POD_ID, pod('late'));
    sim.compact();
    await t.core.whenReady();
    await t.drain();
    const lists = requestsFor(POD_ID, 'list');
    expect(lists.filter((r) => !r.query.continue), 'lists started from the top').to.have.length(2);
    const names = t.sink.events.map((e) => `${e.type} ${e.object.metadata.name}`);
    expect(names.filter((n) => n.startsWith('ADDED'))).to.have.length(301);
    expect(new Set(names).size).to.equal(names.length, 'no object emitted twice');
    // Nothing deleted and re-added on the way, not even in pairs the lane cancelled out.
    expect(t.core.counters.received).to.equal(301);
  });

  it('asks for a list page that was throttled again with the same continue token, after the Retry-After, without starting over', async () => {
    for (let i = 0; i < 300; i++) sim.create(POD_ID, pod(`throttled-${i}`));
    // The second page is refused twice, as API Priority and Fairness refuses.
    sim.failRequests({ resourceId: POD_ID, verbs: ['list'], status: 429, retryAfterSeconds: 1, times: 2, when: (r) => Boolean(r.query.continue) });
    // A quick backoff: only the Retry-After can explain a wait of a second.
    t = createTestCore({ plugins: [kubernetes({ kubeconfig, streamingList: 'off', resources: [POD_ID], pageSize: 50, backoffInitialMs: 10 })] });
    t.core.hooks.error.tap('test', (report) => errors.push(report));
    await t.start();
    await t.core.whenReady();
    await t.drain();
    const lists = requestsFor(POD_ID, 'list');
    expect(lists.filter((r) => !r.query.continue), 'lists started from the top').to.have.length(1);
    expect(lists, '6 pages, 2 of them asked twice').to.have.length(8);
    const tokens = lists.map((r) => r.query.continue ?? '');
    for (const i of [1, 2]) {
      expect(tokens[i + 1], 'the refused page asked again').to.equal(tokens[i]);
      expect(lists[i + 1].at - lists[i].at, 'waited out the Retry-After').to.be.at.least(990);
    }
    const names = t.sink.events.map((e) => `${e.type} ${e.object.metadata.name}`);
    expect(names.filter((n) => n.startsWith('ADDED'))).to.have.length(300);
    expect(t.core.counters.received, 'each object emitted once').to.equal(300);
    expect(errors.map((e) => e.error.message).filter((m) => m.includes('HTTP 429')), 'a 429 or two is the server pacing us: not reported').to.deep.equal([]);
    expect(await metricValue(t, 'meshsync_watch_errors_total', { resource: POD_ID, reason: 'http' })).to.equal(2);
  });

  it('reports 429s once they persist: from the fourth in a row on', async () => {
    sim.create(POD_ID, pod('first'));
    sim.failRequests({ resourceId: POD_ID, verbs: ['list'], status: 429, times: 5 });
    await start({ resources: [POD_ID], backoffInitialMs: 5, backoffMaxMs: 20 });
    await t!.drain();
    expect(named(t!.sink.events, 'pods', 'ADDED')).to.deep.equal(['first']);
    expect(errors.map((e) => e.error.message).filter((m) => m.includes('HTTP 429'))).to.have.length(2);
    expect(await metricValue(t!, 'meshsync_watch_errors_total', { resource: POD_ID, reason: 'http' })).to.equal(5);
  });

  it('retries a first list that fails with server errors, and resumes a refused watch from its resourceVersion without relisting', async () => {
    sim.create(POD_ID, pod('first'));
    sim.failRequests({ resourceId: POD_ID, verbs: ['list'], status: 500, times: 2 });
    await start({ resources: [POD_ID] });
    expect(requestsFor(POD_ID, 'list')).to.have.length(3);
    await until(() => requestsFor(POD_ID, 'watch').length === 1, 8000, 'the watch');
    // The watch ends and the server refuses the next two; what changes meanwhile still arrives, once.
    sim.failRequests({ resourceId: POD_ID, verbs: ['watch'], status: 503, times: 2 });
    sim.dropWatches();
    sim.create(POD_ID, pod('while-refused'));
    await until(() => named(t!.sink.events, 'pods').includes('while-refused'), 8000, 'the pod created while watches were refused');
    const watches = requestsFor(POD_ID, 'watch');
    expect(watches.length).to.be.at.least(4);
    expect(watches.every((w) => w.query.resourceVersion), 'every watch resumes from a resourceVersion').to.equal(true);
    expect(requestsFor(POD_ID, 'list'), 'no relist').to.have.length(3);
    expect(named(t!.sink.events, 'pods', 'ADDED')).to.deep.equal(['first', 'while-refused']);
    expect(errors.map((e) => e.error.message).filter((m) => / HTTP 50[03]: /.test(m))).to.have.length(4);
  });

  it('relists when the server refuses to resume a watch with an error retrying cannot cure (400 invalid resource version)', async () => {
    sim.create(POD_ID, pod('before'));
    await start({ resources: [POD_ID] });
    await until(() => requestsFor(POD_ID, 'watch').length === 1, 8000, 'the watch');
    sim.failRequests({ resourceId: POD_ID, verbs: ['watch'], status: 400, times: 1 });
    sim.dropWatches();
    sim.delete(POD_ID, 'default', 'before');
    sim.create(POD_ID, pod('after'));
    await until(() => requestsFor(POD_ID, 'list').length === 2, 8000, 'a relist after the 400');
    await until(() => named(t!.sink.events, 'pods').includes('after'), 8000, 'the pod created meanwhile');
    expect(named(t!.sink.events, 'pods', 'DELETED')).to.deep.equal(['before']);
    // The refused resourceVersion is not asked for again: the watches after the relist start from the list's.
    const [, refused, ...later] = requestsFor(POD_ID, 'watch');
    expect(later.length).to.be.at.least(1);
    expect(later.every((w) => w.query.resourceVersion !== refused.query.resourceVersion)).to.equal(true);
  });

  it('on standby with fingerprints resident, the lane keeps each object\'s own bytes and parses them on release', async () => {
    for (let i = 0; i < 10; i++) sim.create(POD_ID, pod(`held-${i}`));
    t = createTestCore({ plugins: [kubernetes({ kubeconfig, streamingList: 'off', resources: [POD_ID], watchCustomResourceDefinitions: false })] });
    const seen = new Map<string, object[]>();
    t.core.hooks.filter.tap('test:seen', (e) => void seen.set(e.object.metadata.name, [...(seen.get(e.object.metadata.name) ?? []), e.object]));
    t.core.holdDelivery('test:standby', true);
    await t.start();
    await t.core.whenReady();
    sim.patch(POD_ID, 'default', 'held-0', { metadata: { labels: { changed: 'yes' } } });
    await until(() => (seen.get('held-0') ?? []).length === 2, 8000, 'the change');
    t.core.holdDelivery('test:standby', false);
    await t.drain();
    expect(t.sink.events.map((e) => e.object.metadata.name).sort()).to.deep.equal(sim.list(POD_ID).map((o) => o.metadata.name).sort());
    for (const event of t.sink.events) {
      const { managedFields: _dropped, ...metadata } = sim.get(POD_ID, 'default', event.object.metadata.name)!.metadata;
      const name = event.object.metadata.name;
      expect(seen.get(name)!.length, `${name}: seen when emitted (twice for the changed one) and when read again`).to.equal(name === 'held-0' ? 3 : 2);
      expect(seen.get(name)!.at(-1), 'parsed again from the held bytes, through the pipeline again').to.equal(event.object);
      expect(event.object.metadata).to.deep.equal(metadata);
      expect(event.object.spec).to.deep.equal(sim.get(POD_ID, 'default', event.object.metadata.name)!.spec);
    }
  });

  it('on standby (delivery held) keeps the store\'s records in the lane, and on release delivers the cluster as it is then (objects resident)', async () => {
    for (let i = 0; i < 40; i++) sim.create(POD_ID, pod(`standby-${i}`));
    // Only a store that keeps objects has records to read again; one of fingerprints lists afresh.
    t = createTestCore({ plugins: [kubernetes({ kubeconfig, streamingList: 'off', resources: [POD_ID], watchCustomResourceDefinitions: false, resident: 'objects' })] });
    // Every object the pipeline sees, in order: an event held by reference goes through it twice.
    const seen = new Map<string, object[]>();
    t.core.hooks.filter.tap('test:seen', (e) => void seen.set(e.object.metadata.name, [...(seen.get(e.object.metadata.name) ?? []), e.object]));
    t.core.holdDelivery('test:standby', true);
    await t.start();
    await t.core.whenReady();
    await until(() => requestsFor(POD_ID, 'watch').length === 1, 8000, 'the watch');
    for (let i = 0; i < 10; i++) sim.patch(POD_ID, 'default', `standby-${i}`, { metadata: { labels: { changed: 'yes' } } });
    for (let i = 10; i < 15; i++) sim.delete(POD_ID, 'default', `standby-${i}`);
    // Deleted and created again under the same name while held: a new uid in the store's record.
    sim.delete(POD_ID, 'default', 'standby-15');
    sim.create(POD_ID, pod('standby-15', 'default', { again: 'yes' }));
    await until(() => t!.core.state.resourceCounts()[POD_ID] === 35 && t!.core.state.lanes()[0].pending === 35, 8000, 'the held lane to catch up with the cluster');
    // The same again, but unseen by the watch: a relist finds standby-16 under a new uid and the
    // store rewrites that object's record in place.
    sim.stallWatches(true);
    sim.delete(POD_ID, 'default', 'standby-16');
    sim.create(POD_ID, pod('standby-16', 'default', { relisted: 'yes' }));
    sim.compact();
    sim.dropWatches();
    sim.stallWatches(false);
    await until(() => (seen.get('standby-16') ?? []).some((o) => (o as { metadata: { labels?: Record<string, string> } }).metadata.labels?.relisted === 'yes'), 8000, 'the relist');
    expect(t.sink.events).to.have.length(0);
    const seenBeforeRelease = [...seen.values()].flat().length;
    t.core.holdDelivery('test:standby', false);
    await t.drain();
    expect(t.sink.events.every((e) => e.type === 'ADDED')).to.equal(true);
    expect([...seen.values()].flat().length - seenBeforeRelease, 'each delivered object read again and filtered again').to.equal(t.sink.events.length);
    const delivered = new Map(t.sink.events.map((e) => [e.object.metadata.name, e.object]));
    const cluster = sim.list(POD_ID).map((o) => o.metadata);
    expect([...delivered.keys()].sort()).to.deep.equal(cluster.map((m) => m.name).sort());
    for (const meta of cluster) {
      const object = delivered.get(meta.name)!;
      expect([object.metadata.uid, object.metadata.resourceVersion], meta.name).to.deep.equal([meta.uid, meta.resourceVersion]);
      expect(seen.get(meta.name)!.at(-1), `${meta.name}: the object read again, as the pipeline saw it`).to.equal(object);
    }
    expect(delivered.get('standby-0')!.metadata.labels).to.deep.equal({ changed: 'yes' });
    expect(delivered.get('standby-15')!.metadata.labels).to.deep.equal({ again: 'yes' });
    expect(delivered.get('standby-16')!.metadata.labels).to.deep.equal({ relisted: 'yes' });
  });

  it('reads a watch burst no faster than the sink takes, and a stream it holds back is not taken for a silent one', async () => {
    // The sink takes longer than the silence timeout (bookmarks come every 100 ms): the held stream is silent that long.
    const lane = await startSlowSink({ watchSilenceTimeoutMs: 250 }, 300);
    await until(() => requestsFor(POD_ID, 'watch').length === 1, 8000, 'the watch');
    for (let i = 0; i < 600; i++) sim.create(POD_ID, pod(`burst-${i}`));
    await until(() => t!.sink.events.length === 600, 15_000, 'the burst');
    // Without the hold the whole burst (600) would wait in the lane; with it, the mark plus what one read brought.
    expect(lane.maxBacklog()).to.be.within(100, 300);
    expect(await metricValue(t!, 'meshsync_watch_restarts_total', { resource: POD_ID })).to.equal(0);
    expect(requestsFor(POD_ID, 'watch')).to.have.length(1);
  });

  it('reads on once a hold runs out, while the only sink keeps failing, and delivers it all when the sink is back', async () => {
    await startSlowSink({ watchHoldMaxMs: 200 }, 0);
    t!.sink.failing = true;
    await until(() => requestsFor(POD_ID, 'watch').length === 1, 8000, 'the watch');
    // 600 pods of ~4 KB: ~40 reads of the stream. Holding 200 ms before each would take 8 s.
    const blob = 'x'.repeat(4000);
    for (let i = 0; i < 600; i++) {
      const p = pod(`held-${i}`);
      sim.create(POD_ID, { ...p, metadata: { ...p.metadata, annotations: { blob } } });
    }
    await until(() => t!.core.state.resourceCounts()[POD_ID] === 600, 3000, 'the store to have read the whole burst');
    expect(t!.core.state.lanes()[0].pending + t!.core.state.lanes()[0].inFlight).to.equal(600);
    t!.sink.failing = false;
    await until(() => t!.sink.events.length === 600, 8000, 'delivery after the sink is back');
  });

  it('emits nothing for an update that changes nothing', async () => {
    sim.create(POD_ID, pod('same'));
    const core = await start({ resources: [POD_ID] });
    await core.drain(); // so the core does not coalesce ADDED and MODIFIED into one event
    const current = sim.get(POD_ID, 'default', 'same')!;
    sim.update(POD_ID, { ...current, metadata: { ...current.metadata, resourceVersion: undefined } });
    sim.patch(POD_ID, 'default', 'same', { metadata: { labels: { real: 'change' } } });
    await core.sink.waitFor((events) => events.some((e) => e.type === 'MODIFIED'));
    await sleep(100);
    await core.drain();
    expect(core.sink.events.map((e) => e.type)).to.deep.equal(['ADDED', 'MODIFIED']);
  });

  it('keeps metadata only when asked, with the real kind and apiVersion', async () => {
    sim.create(POD_ID, pod('slim'));
    const core = await start({ resources: [{ id: POD_ID, metadataOnly: true }] });
    sim.create(POD_ID, pod('slim-2'));
    await core.sink.waitFor((events) => named(events, 'pods').includes('slim-2'));
    for (const event of core.sink.events) {
      expect(event.object.kind).to.equal('Pod');
      expect(event.object.apiVersion).to.equal('v1');
      expect(event.object.spec).to.equal(undefined);
      expect(event.object.metadata.uid).to.be.a('string');
    }
    expect(requestsFor(POD_ID, 'list')[0].accept).to.contain('as=PartialObjectMetadataList');
    expect(requestsFor(POD_ID, 'watch')[0].accept).to.contain('as=PartialObjectMetadata');
  });

  it('restarts a watch that stays silent past the deadline', async () => {
    const core = await start({ resources: [POD_ID], watchSilenceTimeoutMs: 400 });
    await sleep(600); // bookmarks every 100 ms keep a healthy watch alive
    expect(requestsFor(POD_ID, 'watch')).to.have.length(1, 'no restart while bookmarks arrive');
    sim.stallWatches(true);
    await until(async () => (await metricValue(core, 'meshsync_watch_errors_total', { resource: POD_ID, reason: 'stalled' })) >= 1, 5000, 'a stall restart');
    sim.stallWatches(false);
    sim.create(POD_ID, pod('after-stall'));
    await core.sink.waitFor((events) => named(events, 'pods').includes('after-stall'));
    expect(requestsFor(POD_ID, 'watch').length).to.be.greaterThanOrEqual(2);
    await sleep(100);
    expect(named(core.sink.events, 'pods')).to.deep.equal(['after-stall']);
  });

  it('reports an unreachable server and keeps retrying until it comes up', async () => {
    const port = Number(new URL(sim.url).port);
    await sim.close();
    t = createTestCore({ plugins: [kubernetes({ kubeconfig, streamingList: 'off', resources: [POD_ID], backoffInitialMs: 20, backoffMaxMs: 100 })] });
    t.core.hooks.error.tap('test:errors', (report) => {
      errors.push(report);
    });
    await t.start();
    await until(() => errors.filter((e) => (e.error as { code?: string }).code === 'MESHSYNC_KUBE_UNREACHABLE').length >= 2, 5000, 'unreachable reports');
    expect(errors[0].error.message).to.contain(`127.0.0.1:${port}`);
    sim = await startSimulator({ port, bookmarkIntervalMs: 100 });
    sim.create(POD_ID, pod('late'));
    await t.core.whenReady();
    await t.sink.waitFor((events) => named(events, 'pods').includes('late'));
  });

  it('stops cleanly: no request stays open after stop', async () => {
    const core = await start({ resources: [POD_ID, 'configmaps.v1.'] });
    expect(sim.openWatchCount()).to.be.greaterThan(0);
    await core.stop();
    t = undefined;
    await until(() => sim.openWatchCount() === 0, 2000, 'watches to close');
  });
});
