// The Kubernetes API simulator over real HTTP: the semantics the rest of the
// project relies on when it tests against it.
import * as k8s from '@kubernetes/client-node';
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_FIXTURES_DIR, KubeApiError, startSimulator } from '../../testing/simulator/index.ts';
import type { KubeSimulator } from '../../testing/simulator/index.ts';
import { makePod, seedDemoCluster, startChurn } from '../../testing/simulator/demo.ts';

const fixture = (dir: string, name: string) => JSON.parse(readFileSync(join(DEFAULT_FIXTURES_DIR, dir, name), 'utf8'));
const AGGREGATED = 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList';
const PARTIAL_LIST = 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1';
const PARTIAL = 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1';

async function call(sim: KubeSimulator, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(sim.url + path, {
    method,
    headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
}

/** Reads a watch stream line by line; `events` fills as lines arrive. */
class Watch {
  events: any[] = [];
  raw: string[] = [];
  ended = false;
  error?: unknown;
  private readonly ac = new AbortController();
  private done!: Promise<void>;

  static async open(sim: KubeSimulator, path: string, headers: Record<string, string> = {}): Promise<Watch> {
    const w = new Watch();
    const res = await fetch(sim.url + path, { headers, signal: w.ac.signal });
    expect(res.status).to.equal(200);
    w.done = w.read(res);
    return w;
  }

  private async read(res: Response): Promise<void> {
    const decoder = new TextDecoder();
    let buf = '';
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buf += decoder.decode(chunk, { stream: true });
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          this.raw.push(line);
          try {
            this.events.push(JSON.parse(line));
          } catch {
            this.events.push({ type: 'MALFORMED', line });
          }
        }
      }
    } catch (e) {
      this.error = e;
    }
    this.ended = true;
  }

  async waitFor(pred: (events: any[]) => boolean, timeoutMs = 4000): Promise<any[]> {
    const start = Date.now();
    while (!pred(this.events)) {
      if (Date.now() - start > timeoutMs) throw new Error(`watch condition not met; events: ${JSON.stringify(this.events.map((e) => [e.type, e.object?.metadata?.name]))}`);
      if (this.ended && !pred(this.events)) throw new Error(`watch ended early; events: ${JSON.stringify(this.events.map((e) => [e.type, e.object?.metadata?.name]))}`);
      await sleep(10);
    }
    return this.events;
  }

  async waitEnded(timeoutMs = 4000): Promise<void> {
    await Promise.race([this.done, sleep(timeoutMs).then(() => Promise.reject(new Error('watch did not end')))]);
  }

  named(type?: string): string[] {
    return this.events.filter((e) => !type || e.type === type).map((e) => e.object?.metadata?.name);
  }

  close(): void {
    this.ac.abort();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const cm = (name: string, namespace = 'default', labels: Record<string, string> = {}, data: Record<string, string> = { a: '1' }) => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name, namespace, labels },
  data,
});

describe('Kubernetes API simulator', function () {
  this.timeout(20_000);
  let sim: KubeSimulator;
  const watches: Watch[] = [];
  const watch = async (path: string, headers?: Record<string, string>) => {
    const w = await Watch.open(sim, path, headers);
    watches.push(w);
    return w;
  };

  beforeEach(async () => {
    sim = await startSimulator({ bookmarkIntervalMs: 100 });
  });
  afterEach(async () => {
    for (const w of watches.splice(0)) w.close();
    await sim.close();
  });

  describe('discovery', () => {
    it('serves the recorded legacy documents verbatim', async () => {
      expect((await call(sim, 'GET', '/api')).body).to.deep.equal(fixture('discovery', 'api.json'));
      expect((await call(sim, 'GET', '/api/v1')).body).to.deep.equal(fixture('discovery', 'api__v1.json'));
      expect((await call(sim, 'GET', '/apis')).body).to.deep.equal(fixture('discovery', 'apis.json'));
      expect((await call(sim, 'GET', '/apis/apps/v1')).body).to.deep.equal(fixture('discovery', 'apis__apps__v1.json'));
      expect((await call(sim, 'GET', '/apis/nope/v1')).status).to.equal(404);
    });

    it('builds /apis/<g>/<v> from aggregated discovery when nothing was recorded', async () => {
      const r = await call(sim, 'GET', '/apis/node.k8s.io/v1');
      expect(r.body.kind).to.equal('APIResourceList');
      expect(r.body.resources.map((x: any) => x.name)).to.include('runtimeclasses');
    });

    it('serves aggregated discovery v2 (and v2beta1) with the right content type', async () => {
      const r = await call(sim, 'GET', '/apis', undefined, { accept: `${AGGREGATED},application/json` });
      expect(r.headers.get('content-type')).to.equal(AGGREGATED);
      expect(r.body).to.deep.equal(fixture('discovery', 'aggregated_v2.json'));
      const core = await call(sim, 'GET', '/api', undefined, { accept: AGGREGATED });
      const pods = core.body.items[0].versions[0].resources.find((x: any) => x.resource === 'pods');
      expect(pods.scope).to.equal('Namespaced');
      expect(pods.subresources.map((s: any) => s.subresource)).to.include('status');
      const beta = await call(sim, 'GET', '/apis', undefined, { accept: AGGREGATED.replace('v=v2', 'v=v2beta1') });
      expect(beta.body.apiVersion).to.equal('apidiscovery.k8s.io/v2beta1');
    });

    it('answers /version like a v1.32 server', async () => {
      expect((await call(sim, 'GET', '/version')).body.gitVersion).to.match(/^v1\.32\.\d+$/);
    });
  });

  describe('CRUD', () => {
    it('creates, reads, updates, patches and deletes with real Status errors', async () => {
      const created = await call(sim, 'POST', '/api/v1/namespaces/default/configmaps', cm('c1'));
      expect(created.status).to.equal(201);
      const meta = created.body.metadata;
      expect(meta.uid).to.match(/^[0-9a-f-]{36}$/);
      expect(Number(meta.resourceVersion)).to.be.greaterThan(0);
      expect(meta.creationTimestamp).to.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);

      const dup = await call(sim, 'POST', '/api/v1/namespaces/default/configmaps', cm('c1'));
      expect(dup.status).to.equal(409);
      expect(dup.body).to.include({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'AlreadyExists', code: 409 });
      expect(dup.body.details).to.deep.equal({ name: 'c1', kind: 'configmaps' });
      expect(dup.body.message).to.equal('configmaps "c1" already exists');

      const got = await call(sim, 'GET', '/api/v1/namespaces/default/configmaps/c1');
      expect(got.body).to.deep.equal(created.body);

      const updated = await call(sim, 'PUT', '/api/v1/namespaces/default/configmaps/c1', { ...got.body, data: { a: '2' } });
      expect(updated.status).to.equal(200);
      expect(Number(updated.body.metadata.resourceVersion)).to.be.greaterThan(Number(meta.resourceVersion));
      expect(updated.body.metadata.uid).to.equal(meta.uid);

      const stale = await call(sim, 'PUT', '/api/v1/namespaces/default/configmaps/c1', { ...got.body, data: { a: '3' } });
      expect(stale.status).to.equal(409);
      expect(stale.body.reason).to.equal('Conflict');

      const merged = await call(sim, 'PATCH', '/api/v1/namespaces/default/configmaps/c1', { data: { b: 'x' } }, { 'content-type': 'application/merge-patch+json' });
      expect(merged.body.data).to.deep.equal({ a: '2', b: 'x' });
      const strategic = await call(sim, 'PATCH', '/api/v1/namespaces/default/configmaps/c1', { metadata: { labels: { tier: 'web' } } }, { 'content-type': 'application/strategic-merge-patch+json' });
      expect(strategic.body.metadata.labels).to.deep.equal({ tier: 'web' });
      const removed = await call(sim, 'PATCH', '/api/v1/namespaces/default/configmaps/c1', { data: { a: null } }, { 'content-type': 'application/merge-patch+json' });
      expect(removed.body.data).to.deep.equal({ b: 'x' });

      const del = await call(sim, 'DELETE', '/api/v1/namespaces/default/configmaps/c1');
      expect(del.status).to.equal(200);
      // As kube-apiserver answers for a ConfigMap: a Success Status naming what went.
      expect(del.body).to.deep.include({ kind: 'Status', status: 'Success', details: { name: 'c1', kind: 'configmaps', uid: meta.uid } });
      const gone = await call(sim, 'GET', '/api/v1/namespaces/default/configmaps/c1');
      expect(gone.status).to.equal(404);
      expect(gone.body).to.include({ kind: 'Status', reason: 'NotFound', code: 404, message: 'configmaps "c1" not found' });
    });

    it('requires the namespace to exist, and serves cluster-scoped and group resources', async () => {
      const r = await call(sim, 'POST', '/api/v1/namespaces/nowhere/configmaps', cm('c1', 'nowhere'));
      expect(r.status).to.equal(404);
      expect(r.body.message).to.equal('namespaces "nowhere" not found');
      const ns = await call(sim, 'GET', '/api/v1/namespaces/kube-system');
      expect(ns.body.metadata.uid).to.equal((await startSimulatorUid()));
      const node = await call(sim, 'POST', '/api/v1/nodes', { metadata: { name: 'n1' } });
      expect(node.status).to.equal(201);
      expect(node.body.metadata).to.not.have.property('namespace');
      const dep = fixture('objects', 'deployment.json');
      delete dep.metadata.resourceVersion;
      const d = await call(sim, 'POST', `/apis/apps/v1/namespaces/default/deployments`, { ...dep, metadata: { ...dep.metadata, namespace: 'default' } });
      expect(d.status).to.equal(201);
      expect(d.body.metadata.generation).to.equal(1);
      const scaled = await call(sim, 'PATCH', `/apis/apps/v1/namespaces/default/deployments/${dep.metadata.name}`, { spec: { replicas: 5 } }, { 'content-type': 'application/merge-patch+json' });
      expect(scaled.body.metadata.generation).to.equal(2);
      expect((await call(sim, 'GET', '/apis/apps/v1/deployments')).body.items).to.have.length(1);
    });

    it('an update that changes nothing keeps the resourceVersion and emits no event', async () => {
      const c = await call(sim, 'POST', '/api/v1/namespaces/default/configmaps', cm('same'));
      const w = await watch(`/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=${c.body.metadata.resourceVersion}`);
      const again = await call(sim, 'PUT', '/api/v1/namespaces/default/configmaps/same', c.body);
      expect(again.body.metadata.resourceVersion).to.equal(c.body.metadata.resourceVersion);
      const noop = await call(sim, 'PATCH', '/api/v1/namespaces/default/configmaps/same', { data: { a: '1' } }, { 'content-type': 'application/merge-patch+json' });
      expect(noop.body.metadata.resourceVersion).to.equal(c.body.metadata.resourceVersion);
      await call(sim, 'PATCH', '/api/v1/namespaces/default/configmaps/same', { data: { a: 'changed' } }, { 'content-type': 'application/merge-patch+json' });
      await w.waitFor((e) => e.length >= 1);
      await sleep(50);
      expect(w.events.map((e) => [e.type, e.object.data.a])).to.deep.equal([['MODIFIED', 'changed']]);
    });

    it('decodes protobuf request bodies (k8s\\0 + runtime.Unknown)', async () => {
      const raw = pbMessage([
        [1, pbMessage([[1, 'pb'], [3, 'default'], [11, pbMessage([[1, 'app'], [2, 'proto']])], [7, 0]])],
        [2, pbMessage([[1, 'k'], [2, 'v']])],
      ]);
      const unknown = pbMessage([[1, pbMessage([[1, 'v1'], [2, 'ConfigMap']])], [2, raw]]);
      const body = Buffer.concat([Buffer.from([0x6b, 0x38, 0x73, 0]), unknown]);
      const res = await fetch(`${sim.url}/api/v1/namespaces/default/configmaps`, {
        method: 'POST',
        headers: { 'content-type': 'application/vnd.kubernetes.protobuf', accept: 'application/vnd.kubernetes.protobuf, */*' },
        body,
      });
      expect(res.status).to.equal(201);
      expect(res.headers.get('content-type')).to.equal('application/json');
      const obj = (await res.json()) as any;
      expect(obj.data).to.deep.equal({ k: 'v' });
      expect(obj.metadata.labels).to.deep.equal({ app: 'proto' });
    });
  });

  describe('lists', () => {
    it('renders built-in items without kind/apiVersion and the current resourceVersion', async () => {
      await call(sim, 'POST', '/api/v1/namespaces/default/configmaps', cm('a'));
      const r = await call(sim, 'GET', '/api/v1/namespaces/default/configmaps');
      expect(r.body).to.include({ kind: 'ConfigMapList', apiVersion: 'v1' });
      expect(r.body.metadata.resourceVersion).to.equal(sim.resourceVersion());
      expect(r.body.items[0]).to.not.have.any.keys('kind', 'apiVersion');
    });

    it('paginates with limit/continue consistently, across namespaces', async () => {
      sim.create('namespaces.v1.', { metadata: { name: 'other' } });
      for (let i = 0; i < 25; i++) sim.create('pods.v1.', makePod(i, i % 2 ? 'default' : 'other'));
      const names: string[] = [];
      let cont = '';
      let pages = 0;
      let firstRv = '';
      do {
        const r = await call(sim, 'GET', `/api/v1/pods?limit=10${cont ? `&continue=${encodeURIComponent(cont)}` : ''}`);
        expect(r.status).to.equal(200);
        if (!pages) {
          firstRv = r.body.metadata.resourceVersion;
          // created after the first page: must not show up in later pages
          sim.create('pods.v1.', { metadata: { name: 'zzz-late', namespace: 'other' }, spec: { containers: [{ name: 'c', image: 'x' }] } });
        } else expect(r.body.metadata.resourceVersion).to.equal(firstRv);
        names.push(...r.body.items.map((p: any) => `${p.metadata.namespace}/${p.metadata.name}`));
        cont = r.body.metadata.continue ?? '';
        pages++;
      } while (cont);
      expect(pages).to.equal(3);
      expect(names).to.have.length(25);
      expect(new Set(names).size).to.equal(25);
      expect(names).to.not.include('other/zzz-late');
      expect([...names].sort()).to.deep.equal(names);
      const logged = sim.requests().filter((r) => r.resource === 'pods.v1.' && r.verb === 'list');
      expect(logged.map((r) => r.query.limit)).to.deep.equal(['10', '10', '10']);
    });

    it('expires continue tokens after compact()', async () => {
      for (let i = 0; i < 5; i++) sim.create('configmaps.v1.', cm(`c${i}`));
      const first = await call(sim, 'GET', '/api/v1/configmaps?limit=2');
      sim.create('configmaps.v1.', cm('later'));
      sim.compact();
      const next = await call(sim, 'GET', `/api/v1/configmaps?limit=2&continue=${first.body.metadata.continue}`);
      expect(next.status).to.equal(410);
      expect(next.body.reason).to.equal('Expired');
    });

    it('filters by label selector (=, ==, !=, in, notin, exists, !exists)', async () => {
      sim.create('configmaps.v1.', cm('a', 'default', { app: 'web', tier: 'front' }));
      sim.create('configmaps.v1.', cm('b', 'default', { app: 'db' }));
      sim.create('configmaps.v1.', cm('c', 'default', { app: 'cache', tier: 'back' }));
      sim.create('configmaps.v1.', cm('d', 'default', {}));
      const sel = async (s: string) =>
        (await call(sim, 'GET', `/api/v1/namespaces/default/configmaps?labelSelector=${encodeURIComponent(s)}`)).body.items.map((x: any) => x.metadata.name);
      expect(await sel('app=web')).to.deep.equal(['a']);
      expect(await sel('app==db')).to.deep.equal(['b']);
      expect(await sel('app!=web')).to.deep.equal(['b', 'c', 'd']);
      expect(await sel('app in (web, cache)')).to.deep.equal(['a', 'c']);
      expect(await sel('app notin (web,cache)')).to.deep.equal(['b', 'd']);
      expect(await sel('tier')).to.deep.equal(['a', 'c']);
      expect(await sel('!tier')).to.deep.equal(['b', 'd']);
      expect(await sel('app,tier=back')).to.deep.equal(['c']);
      expect((await call(sim, 'GET', '/api/v1/configmaps?labelSelector=a%20in%20b')).status).to.equal(400);
      expect(sim.requests().some((r) => r.query.labelSelector === 'tier')).to.equal(true);
    });

    it('filters by field selector (metadata.*, status.phase, spec.nodeName, !=)', async () => {
      sim.create('namespaces.v1.', { metadata: { name: 'ns2' } });
      const mk = (name: string, namespace: string, node: string, phase: string) =>
        sim.create('pods.v1.', { metadata: { name, namespace }, spec: { nodeName: node, containers: [{ name: 'c', image: 'i' }] }, status: { phase } });
      mk('p1', 'default', 'n1', 'Running');
      mk('p2', 'default', 'n2', 'Pending');
      mk('p3', 'ns2', 'n1', 'Running');
      const sel = async (s: string) =>
        (await call(sim, 'GET', `/api/v1/pods?fieldSelector=${encodeURIComponent(s)}`)).body.items.map((x: any) => x.metadata.name);
      expect(await sel('metadata.name=p2')).to.deep.equal(['p2']);
      expect(await sel('metadata.namespace=ns2')).to.deep.equal(['p3']);
      expect(await sel('status.phase=Running')).to.deep.equal(['p1', 'p3']);
      expect(await sel('spec.nodeName=n1,metadata.namespace!=ns2')).to.deep.equal(['p1']);
      expect(await sel('status.phase!=Running')).to.deep.equal(['p2']);
    });
  });

  describe('watch', () => {
    it('starts with synthetic ADDED, then streams changes with kind/apiVersion', async () => {
      sim.create('configmaps.v1.', cm('pre'));
      const w = await watch('/api/v1/namespaces/default/configmaps?watch=true');
      await w.waitFor((e) => e.length === 1);
      sim.patch('configmaps.v1.', 'default', 'pre', { data: { a: '2' } });
      sim.create('configmaps.v1.', cm('post'));
      sim.delete('configmaps.v1.', 'default', 'pre');
      await w.waitFor((e) => e.length === 4);
      expect(w.events.map((e) => [e.type, e.object.metadata.name])).to.deep.equal([
        ['ADDED', 'pre'],
        ['MODIFIED', 'pre'],
        ['ADDED', 'post'],
        ['DELETED', 'pre'],
      ]);
      for (const e of w.events) expect(e.object).to.include({ kind: 'ConfigMap', apiVersion: 'v1' });
      const rvs = w.events.slice(1).map((e) => Number(e.object.metadata.resourceVersion));
      expect(rvs).to.deep.equal([...rvs].sort((a, b) => a - b));
    });

    it('resumes from a resourceVersion without duplicates', async () => {
      const a = sim.create('configmaps.v1.', cm('a'));
      sim.patch('configmaps.v1.', 'default', 'a', { data: { a: '2' } });
      const mid = sim.resourceVersion();
      sim.create('configmaps.v1.', cm('b'));
      sim.delete('configmaps.v1.', 'default', 'a');
      const w = await watch(`/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=${mid}`);
      await w.waitFor((e) => e.length === 2);
      expect(w.events.map((e) => [e.type, e.object.metadata.name])).to.deep.equal([
        ['ADDED', 'b'],
        ['DELETED', 'a'],
      ]);
      expect(Number(w.events[1].object.metadata.resourceVersion)).to.be.greaterThan(Number(a.metadata.resourceVersion));
      sim.create('configmaps.v1.', cm('c'));
      await w.waitFor((e) => e.length === 3);
      await sleep(50);
      expect(w.named()).to.deep.equal(['b', 'a', 'c']);
    });

    it('sends BOOKMARKs when allowed, and honours timeoutSeconds', async () => {
      const w = await watch(`/api/v1/configmaps?watch=true&allowWatchBookmarks=true&resourceVersion=${sim.resourceVersion()}&timeoutSeconds=1`);
      await w.waitFor((e) => e.filter((x) => x.type === 'BOOKMARK').length >= 2);
      const bm = w.events.find((e) => e.type === 'BOOKMARK');
      expect(bm.object).to.deep.equal({ kind: 'ConfigMap', apiVersion: 'v1', metadata: { resourceVersion: sim.resourceVersion() } });
      await w.waitEnded(3000);
      const plain = await watch(`/api/v1/configmaps?watch=true&resourceVersion=${sim.resourceVersion()}&timeoutSeconds=1`);
      await plain.waitEnded(3000);
      expect(plain.events).to.have.length(0);
    });

    it('answers a too-old resourceVersion with an ERROR 410 Expired event (after compact() or history overflow)', async () => {
      const old = sim.resourceVersion();
      sim.create('configmaps.v1.', cm('x'));
      sim.compact();
      const w = await watch(`/api/v1/configmaps?watch=true&resourceVersion=${old}`);
      await w.waitEnded();
      expect(w.events).to.have.length(1);
      expect(w.events[0].type).to.equal('ERROR');
      expect(w.events[0].object).to.include({ kind: 'Status', status: 'Failure', reason: 'Expired', code: 410 });
      expect(w.events[0].object.message).to.match(/^too old resource version: \d+/);

      const small = await startSimulator({ historyLimit: 3 });
      try {
        const start = small.resourceVersion();
        for (let i = 0; i < 5; i++) small.create('configmaps.v1.', cm(`c${i}`));
        const expired = await Watch.open(small, `/api/v1/configmaps?watch=true&resourceVersion=${start}`);
        await expired.waitEnded();
        expect(expired.events[0].object.code).to.equal(410);
        const recent = await Watch.open(small, `/api/v1/configmaps?watch=true&resourceVersion=${Number(small.resourceVersion()) - 2}`);
        await recent.waitFor((e) => e.length === 2);
        recent.close();
      } finally {
        await small.close();
      }
    });

    it('applies selectors: objects leaving the selection are DELETED, entering ones ADDED', async () => {
      sim.create('configmaps.v1.', cm('m', 'default', { app: 'a' }));
      const w = await watch('/api/v1/namespaces/default/configmaps?watch=true&labelSelector=app%3Da');
      await w.waitFor((e) => e.length === 1);
      sim.create('configmaps.v1.', cm('other', 'default', { app: 'b' }));
      sim.patch('configmaps.v1.', 'default', 'm', { metadata: { labels: { app: 'b' } } });
      const leftRv = sim.resourceVersion();
      sim.patch('configmaps.v1.', 'default', 'm', { data: { a: 'unseen' } });
      sim.patch('configmaps.v1.', 'default', 'm', { metadata: { labels: { app: 'a' } } });
      await w.waitFor((e) => e.length === 3);
      expect(w.events.map((e) => [e.type, e.object.metadata.name])).to.deep.equal([
        ['ADDED', 'm'],
        ['DELETED', 'm'],
        ['ADDED', 'm'],
      ]);
      // the DELETED carries the last matching state at the event's resourceVersion
      expect(w.events[1].object.metadata.labels).to.deep.equal({ app: 'a' });
      expect(w.events[1].object.metadata.resourceVersion).to.equal(leftRv);

      const fw = await watch('/api/v1/pods?watch=true&fieldSelector=status.phase%3DRunning');
      sim.create('pods.v1.', { metadata: { name: 'p', namespace: 'default' }, spec: { containers: [{ name: 'c', image: 'i' }] }, status: { phase: 'Pending' } });
      sim.patch('pods.v1.', 'default', 'p', { status: { phase: 'Running' } });
      sim.patch('pods.v1.', 'default', 'p', { status: { phase: 'Succeeded' } });
      await fw.waitFor((e) => e.length === 2);
      expect(fw.events.map((e) => e.type)).to.deep.equal(['ADDED', 'DELETED']);
    });
  });

  describe('CRDs', () => {
    it('a created CRD appears in discovery, is servable, and its deletion removes both', async () => {
      const crd = fixture('objects', 'crd-volumegroupsnapshotclasses.groupsnapshot.storage.k8s.io.json');
      const created = await call(sim, 'POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', crd);
      expect(created.status).to.equal(201);
      expect(created.body.status.conditions.map((c: any) => c.type)).to.include('Established');

      const groups = (await call(sim, 'GET', '/apis')).body.groups.map((g: any) => g.name);
      expect(groups).to.include('groupsnapshot.storage.k8s.io');
      const gv = (await call(sim, 'GET', '/apis/groupsnapshot.storage.k8s.io/v1beta1')).body;
      expect(gv.resources.map((r: any) => r.name)).to.include('volumegroupsnapshotclasses');
      const agg = (await call(sim, 'GET', '/apis', undefined, { accept: AGGREGATED })).body;
      const g = agg.items.find((i: any) => i.metadata.name === 'groupsnapshot.storage.k8s.io');
      expect(g.versions[0].resources[0]).to.include({ resource: 'volumegroupsnapshotclasses', scope: 'Cluster' });

      const path = '/apis/groupsnapshot.storage.k8s.io/v1beta1/volumegroupsnapshotclasses';
      const w = await watch(`${path}?watch=true`);
      const obj = { apiVersion: 'groupsnapshot.storage.k8s.io/v1beta1', kind: 'VolumeGroupSnapshotClass', metadata: { name: 'c1' }, driver: 'd', deletionPolicy: 'Delete' };
      expect((await call(sim, 'POST', path, obj)).status).to.equal(201);
      const list = (await call(sim, 'GET', path)).body;
      expect(list.kind).to.equal('VolumeGroupSnapshotClassList');
      // custom resource list items keep kind/apiVersion, like the real server's unstructured lists
      expect(list.items[0]).to.include({ kind: 'VolumeGroupSnapshotClass', driver: 'd' });

      await call(sim, 'DELETE', `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd.metadata.name}`);
      await w.waitEnded();
      expect(w.events.map((e) => e.type)).to.deep.equal(['ADDED', 'DELETED']);
      expect((await call(sim, 'GET', path)).status).to.equal(404);
      expect((await call(sim, 'GET', '/apis')).body.groups.map((x: any) => x.name)).to.not.include('groupsnapshot.storage.k8s.io');
    });
  });

  describe('PartialObjectMetadata', () => {
    it('reduces get, list and watch to metadata when asked', async () => {
      sim.create('configmaps.v1.', cm('pm', 'default', { a: 'b' }));
      const list = await call(sim, 'GET', '/api/v1/namespaces/default/configmaps', undefined, { accept: `application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,${PARTIAL_LIST},application/json` });
      expect(list.body).to.include({ kind: 'PartialObjectMetadataList', apiVersion: 'meta.k8s.io/v1' });
      expect(list.body.items[0]).to.have.all.keys('kind', 'apiVersion', 'metadata');
      expect(list.body.items[0].metadata.labels).to.deep.equal({ a: 'b' });
      const one = await call(sim, 'GET', '/api/v1/namespaces/default/configmaps/pm', undefined, { accept: PARTIAL });
      expect(one.body).to.have.all.keys('kind', 'apiVersion', 'metadata');
      expect(one.body.kind).to.equal('PartialObjectMetadata');
      const w = await watch('/api/v1/configmaps?watch=true', { accept: PARTIAL });
      await w.waitFor((e) => e.some((x: any) => x.object.metadata.name === 'pm'));
      expect(w.events[0].object).to.have.all.keys('kind', 'apiVersion', 'metadata');
      const table = await call(sim, 'GET', '/api/v1/namespaces/default/configmaps', undefined, { accept: 'application/json;as=Table;g=meta.k8s.io;v=v1' });
      expect(table.status).to.equal(406);
    });
  });

  describe('fault controls', () => {
    it('dropWatches() cuts every open watch', async () => {
      const a = await watch('/api/v1/configmaps?watch=true');
      const b = await watch('/api/v1/pods?watch=true');
      await sleep(50);
      expect(sim.openWatchCount()).to.equal(2);
      sim.dropWatches();
      await a.waitEnded();
      await b.waitEnded();
      expect(a.error ?? b.error).to.exist;
      expect(sim.openWatchCount()).to.equal(0);
    });

    it('stallWatches() silences events and bookmarks until released', async () => {
      const w = await watch(`/api/v1/configmaps?watch=true&allowWatchBookmarks=true&resourceVersion=${sim.resourceVersion()}`);
      sim.stallWatches(true);
      sim.create('configmaps.v1.', cm('s1'));
      await sleep(300);
      expect(w.events).to.have.length(0);
      sim.stallWatches(false);
      await w.waitFor((e) => e.some((x) => x.type === 'ADDED'));
      expect(w.named('ADDED')).to.deep.equal(['s1']);
    });

    it('injectMalformedLine() corrupts the next line of matching watches', async () => {
      const w = await watch(`/api/v1/configmaps?watch=true&resourceVersion=${sim.resourceVersion()}`);
      const other = await watch(`/api/v1/pods?watch=true&resourceVersion=${sim.resourceVersion()}`);
      await sleep(50);
      sim.injectMalformedLine('configmaps.v1.');
      sim.create('configmaps.v1.', cm('m1'));
      await w.waitFor((e) => e.length === 2);
      expect(w.events[0].type).to.equal('MALFORMED');
      expect(w.events[1].type).to.equal('ADDED');
      expect(other.events).to.have.length(0);
    });

    it('forbid() answers 403 like the real RBAC denial, unforbid() restores', async () => {
      sim.forbid('pods.v1.');
      const r = await call(sim, 'GET', '/api/v1/pods');
      expect(r.status).to.equal(403);
      expect(r.body).to.include({ kind: 'Status', reason: 'Forbidden', code: 403 });
      expect(r.body.message).to.equal('pods is forbidden: User "system:serviceaccount:meshsync:meshsync" cannot list resource "pods" in API group "" at the cluster scope');
      const ns = await call(sim, 'GET', '/api/v1/namespaces/default/pods?watch=true');
      expect(ns.body.message).to.match(/cannot watch resource "pods" in API group "" in the namespace "default"$/);
      expect((await call(sim, 'GET', '/api/v1/configmaps')).status).to.equal(200);
      sim.unforbid('pods.v1.');
      expect((await call(sim, 'GET', '/api/v1/pods')).status).to.equal(200);
    });
  });

  describe('programmatic API', () => {
    it('shares semantics with HTTP: errors are KubeApiErrors, events reach watchers', async () => {
      expect(() => sim.create('configmaps.v1.', cm('x', 'missing'))).to.throw(KubeApiError).with.property('code', 404);
      const w = await watch(`/api/v1/configmaps?watch=true&resourceVersion=${sim.resourceVersion()}`);
      const c = sim.create('configmaps.v1.', cm('x'));
      expect(c).to.include({ kind: 'ConfigMap', apiVersion: 'v1' });
      c.data.a = 'mutating the copy does not touch the store';
      expect(sim.get('configmaps.v1.', 'default', 'x')!.data.a).to.equal('1');
      expect(() => sim.update('configmaps.v1.', { ...c, metadata: { ...c.metadata, resourceVersion: '1' } })).to.throw(KubeApiError).with.property('code', 409);
      await w.waitFor((e) => e.length === 1);
      expect(sim.list('configmaps.v1.', 'default').map((x) => x.metadata.name)).to.deep.equal(['x']);
    });

    it('serves @kubernetes/client-node (typed list, informer with list+watch)', async () => {
      const kc = new k8s.KubeConfig();
      kc.loadFromString(sim.kubeconfig());
      const core = kc.makeApiClient(k8s.CoreV1Api);
      sim.create('pods.v1.', { metadata: { name: 'p0', namespace: 'default' }, spec: { containers: [{ name: 'c', image: 'i' }] } });
      const list = await core.listNamespacedPod({ namespace: 'default' });
      expect(list.items.map((p) => p.metadata?.name)).to.deep.equal(['p0']);
      const informer = k8s.makeInformer(kc, '/api/v1/pods', () => core.listPodForAllNamespaces());
      const seen: string[] = [];
      informer.on('add', (p) => seen.push(`add ${p.metadata?.name}`));
      informer.on('update', (p) => seen.push(`update ${p.metadata?.name}`));
      informer.on('delete', (p) => seen.push(`delete ${p.metadata?.name}`));
      await informer.start();
      try {
        sim.create('pods.v1.', { metadata: { name: 'p1', namespace: 'default' }, spec: { containers: [{ name: 'c', image: 'i' }] } });
        sim.patch('pods.v1.', 'default', 'p1', { metadata: { labels: { a: 'b' } } });
        sim.delete('pods.v1.', 'default', 'p1');
        const start = Date.now();
        while (seen.length < 4 && Date.now() - start < 4000) await sleep(20);
        expect(seen).to.deep.equal(['add p0', 'add p1', 'update p1', 'delete p1']);
      } finally {
        await informer.stop();
      }
    });

    it('writes a kubeconfig pointing at the server', () => {
      const kc = sim.kubeconfig();
      expect(kc).to.contain(`server: ${sim.url}`).and.contain('insecure-skip-tls-verify: true').and.contain('current-context:');
    });
  });

  describe('demo cluster', () => {
    it('seeds a realistic cluster and churns it', async () => {
      seedDemoCluster(sim);
      const pods = sim.list('pods.v1.');
      expect(pods.length).to.be.greaterThanOrEqual(6);
      expect(pods[0].metadata.ownerReferences[0].kind).to.equal('ReplicaSet');
      const secret = sim.get('secrets.v1.', 'shop', 'db-credentials')!;
      expect(secret.metadata.annotations['kubectl.kubernetes.io/last-applied-configuration']).to.contain(secret.data.password);
      expect(sim.list('volumegroupsnapshotclasses.v1beta1.groupsnapshot.storage.k8s.io')).to.have.length(2);
      expect(JSON.stringify(makePod(1)).length).to.be.within(3000, 6000);

      const w = await watch(`/api/v1/pods?watch=true&resourceVersion=${sim.resourceVersion()}`);
      const stop = startChurn(sim, { intervalMs: 10 });
      try {
        await w.waitFor((e) => new Set(e.map((x) => x.type)).size === 3, 8000);
      } finally {
        stop();
      }
    });
  });
});

async function startSimulatorUid(): Promise<string> {
  const { KUBE_SYSTEM_UID } = await import('../../testing/simulator/index.ts');
  return KUBE_SYSTEM_UID;
}

// ---- a tiny protobuf encoder, only for building test bodies -------------------

type PbValue = string | number | Buffer;
function varint(n: number): Buffer {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n = Math.floor(n / 128);
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return Buffer.from(out);
}
function pbMessage(fields: [number, PbValue][]): Buffer {
  return Buffer.concat(
    fields.map(([num, v]) => {
      if (typeof v === 'number') return Buffer.concat([varint(num << 3), varint(v)]);
      const bytes = typeof v === 'string' ? Buffer.from(v) : v;
      return Buffer.concat([varint((num << 3) | 2), varint(bytes.length), bytes]);
    }),
  );
}
