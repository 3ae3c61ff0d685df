import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_RESOURCES } from '../../plugins/kubernetes/defaults.ts';
import { MeshSyncError } from '../../core/errors.ts';
import { KubeRequestError, LineSplitter, loadKubeConfig, parseBody, type KubeClient, type WatchHandlers } from '../../kubernetes/client.ts';
import { addAggregated, addResourceList, closeMatches, resolveResources, type Catalog } from '../../plugins/kubernetes/discovery.ts';
import { editDistance } from '../../core/suggest.ts';
import { forbiddenMessage, kubernetes, scopesFor } from '../../plugins/kubernetes/index.ts';
import { collectionPath, Reflector } from '../../kubernetes/reflector.ts';
import { ObjectStore } from '../../kubernetes/store.ts';
import { Backoff } from '../../kubernetes/backoff.ts';
import { until } from '../support/wait.ts';
import { isKeptBySource, knownJsonBytes } from '../../core/serialized.ts';
import { makeObject, POD } from '../../testing/index.ts';
import { DEFAULT_FIXTURES_DIR } from '../../testing/simulator/index.ts';

const FIXTURES = join(DEFAULT_FIXTURES_DIR, 'discovery');
const fixture = (name: string) => JSON.parse(readFileSync(join(FIXTURES, name), 'utf8'));

/** The catalog a server with these discovery documents serves: core from /api/v1, named groups either aggregated or per group-version. */
function catalogFromFixtures(aggregated: boolean): Catalog {
  const catalog: Catalog = new Map();
  addResourceList(catalog, fixture('api__v1.json'), true);
  if (aggregated) addAggregated(catalog, fixture('aggregated_v2.json'));
  else {
    for (const group of fixture('apis.json').groups as { name: string; preferredVersion: { version: string }; versions: { version: string }[] }[]) {
      for (const { version } of group.versions) {
        try {
          addResourceList(catalog, fixture(`apis__${group.name}__${version}.json`), version === group.preferredVersion.version);
        } catch {
          // only some group-versions are stored as fixtures
        }
      }
    }
  }
  return catalog;
}

describe('kubernetes discovery', () => {
  for (const aggregated of [true, false]) {
    describe(aggregated ? 'from aggregated discovery (v2)' : 'from the per group-version documents', () => {
      const catalog = catalogFromFixtures(aggregated);

      it('resolves every default resource with its kind and scope', () => {
        const { resources, unknown } = resolveResources(catalog, DEFAULT_RESOURCES);
        expect(unknown).to.deep.equal([]);
        expect(resources.map((r) => r.id)).to.deep.equal([...DEFAULT_RESOURCES]);
        const byId = new Map(resources.map((r) => [r.id, r]));
        expect(byId.get('pods.v1.')).to.include({ kind: 'Pod', namespaced: true, group: '' });
        expect(byId.get('deployments.v1.apps')).to.include({ kind: 'Deployment', namespaced: true, group: 'apps' });
        expect(byId.get('nodes.v1.')).to.include({ kind: 'Node', namespaced: false });
        expect(byId.get('storageclasses.v1.storage.k8s.io')).to.include({ kind: 'StorageClass', namespaced: false });
        expect(byId.get('ingresses.v1.networking.k8s.io')).to.include({ kind: 'Ingress' });
      });

      it('leaves out subresources and resources that cannot be listed and watched', () => {
        expect(catalog.has('bindings.v1.')).to.equal(false, 'bindings only supports create');
        expect([...catalog.keys()].some((id) => id.includes('/'))).to.equal(false);
        expect(catalog.has('componentstatuses.v1.')).to.equal(false, 'componentstatuses cannot be watched');
      });

      it('expands a wildcard over a group-version', () => {
        const ids = resolveResources(catalog, ['*.v1.apps']).resources.map((r) => r.id);
        expect(ids).to.have.members(['deployments.v1.apps', 'statefulsets.v1.apps', 'daemonsets.v1.apps', 'replicasets.v1.apps', 'controllerrevisions.v1.apps']);
      });
    });
  }

  it('takes the preferred version when the version is a wildcard', () => {
    const catalog = catalogFromFixtures(true);
    const ids = resolveResources(catalog, ['*.*.coordination.k8s.io']).resources.map((r) => r.id);
    expect(ids).to.include('leases.v1.coordination.k8s.io');
    expect(ids.every((id) => id.includes('.v1.'))).to.equal(true, `only the preferred version: ${ids.join(', ')}`);
  });

  it('resolves each resource once when ids and patterns overlap', () => {
    const catalog = catalogFromFixtures(true);
    const ids = resolveResources(catalog, ['deployments.v1.apps', '*.v1.apps']).resources.map((r) => r.id);
    expect(ids.filter((id) => id === 'deployments.v1.apps')).to.have.length(1);
    expect(ids[0]).to.equal('deployments.v1.apps');
  });

  it('names close matches for an id the server does not serve', () => {
    const catalog = catalogFromFixtures(true);
    const { unknown } = resolveResources(catalog, ['deployment.v1.apps', 'deployments.v1beta1.apps', 'ingresses.v1.extensions', 'widgets.v1.example.com']);
    expect(unknown.map((u) => u.id)).to.deep.equal(['deployment.v1.apps', 'deployments.v1beta1.apps', 'ingresses.v1.extensions', 'widgets.v1.example.com']);
    expect(unknown[0].suggestions[0]).to.equal('deployments.v1.apps');
    expect(unknown[1].suggestions).to.include('deployments.v1.apps');
    expect(unknown[2].suggestions).to.include('ingresses.v1.networking.k8s.io');
    expect(unknown[3].suggestions).to.deep.equal([]);
  });

  it('does not warn about a pattern that matches nothing yet (a CRD may come)', () => {
    expect(resolveResources(catalogFromFixtures(true), ['*.*.example.com']).unknown).to.deep.equal([]);
  });

  it('computes edit distances', () => {
    expect(editDistance('pods', 'pods')).to.equal(0);
    expect(editDistance('pod', 'pods')).to.equal(1);
    expect(editDistance('kitten', 'sitting')).to.equal(3);
    expect(closeMatches('secret.v1.', ['secrets.v1.', 'services.v1.', 'nodes.v1.'])).to.deep.equal(['secrets.v1.']);
  });
});

describe('kubernetes reflector helpers', () => {
  it('builds collection paths for core and named groups, namespaced or not', () => {
    expect(collectionPath({ group: '', version: 'v1', resource: 'pods' })).to.equal('/api/v1/pods');
    expect(collectionPath({ group: '', version: 'v1', resource: 'pods' }, 'shop')).to.equal('/api/v1/namespaces/shop/pods');
    expect(collectionPath({ group: 'apps', version: 'v1', resource: 'deployments' }, 'a b')).to.equal('/apis/apps/v1/namespaces/a%20b/deployments');
  });

  it('backs off exponentially from the initial delay up to the cap, with jitter, and resets', () => {
    const mid = new Backoff(800, 30_000, () => 0.5);
    expect([1, 2, 3, 4, 5, 6, 7].map(() => mid.next())).to.deep.equal([800, 1600, 3200, 6400, 12_800, 25_600, 30_000]);
    mid.reset();
    expect(mid.next()).to.equal(800);
    const low = new Backoff(800, 30_000, () => 0);
    expect(low.next()).to.equal(400);
    const high = new Backoff(800, 30_000, () => 0.999);
    for (let i = 0; i < 10; i++) high.next();
    expect(high.next()).to.equal(30_000, 'jitter never goes above the cap');
  });

  it('waits at least what the server asked (Retry-After), jittered above it, capped at the longest backoff', () => {
    const backoff = new Backoff(800, 30_000, () => 0.5);
    expect(backoff.next(5_000)).to.equal(5_500, 'the server asked for more than the backoff: up to a fifth more');
    expect(backoff.next(1_000)).to.equal(1_600, 'the backoff asks for more than the server');
    expect(backoff.next(3_600_000)).to.equal(30_000, 'an hour is capped');
  });
});

describe('kubernetes watch line splitting', () => {
  const stream = ['{"type":"ADDED","object":{"name":"é✓😀"}}', '', '{"type":"BOOKMARK"}', '{"a":"\\n"}'].join('\n') + '\n{"last":"no newline ✓"}';

  it('gives every line whole, whatever the chunks, characters split across them included', () => {
    const bytes = Buffer.from(stream);
    const expected = stream.split('\n').filter((line) => line.length > 0);
    for (const size of [1, 2, 3, 5, 7, 64, bytes.length]) {
      const splitter = new LineSplitter();
      const lines: string[] = [];
      for (let at = 0; at < bytes.length; at += size) splitter.push(bytes.subarray(at, at + size), (line) => lines.push(line.toString('utf8')) > 0);
      lines.push(splitter.end()!.toString('utf8'));
      expect(lines, `chunks of ${size}`).to.deep.equal(expected);
    }
  });

  it('finding 6 (LOW): skips a line longer than maxLineBytes without holding it, reports its size, and reads the lines after it', () => {
    const oversized: number[] = [];
    const splitter = new LineSplitter(1024, (bytes) => oversized.push(bytes));
    const lines: string[] = [];
    const big = Buffer.from(`${'y'.repeat(10_000)}\nafter\n`);
    splitter.push(Buffer.from('before\n'), (line) => lines.push(line.toString()) > 0);
    for (let at = 0; at < big.length; at += 100) {
      splitter.push(big.subarray(at, at + 100), (line) => lines.push(line.toString()) > 0);
      expect((splitter as unknown as { restBytes: number }).restBytes, 'bytes held').to.be.at.most(1024);
    }
    expect(lines).to.deep.equal(['before', 'after']);
    expect(oversized).to.deep.equal([10_000]);
  });

  it('stops when told to, and keeps no view of a chunk for an unfinished line', () => {
    const splitter = new LineSplitter();
    const seen: string[] = [];
    splitter.push(Buffer.from('a\nb\nc\n'), (line) => seen.push(line.toString()) < 2);
    expect(seen).to.deep.equal(['a', 'b']);
    const chunk = Buffer.allocUnsafeSlow(9); // a chunk of its own, as a socket read gives
    chunk.write('x\npartial');
    splitter.push(chunk, () => true);
    expect(splitter.end()!.buffer).to.not.equal(chunk.buffer);
  });
});

describe('kubernetes object store', () => {
  const decode = (bytes: Uint8Array | undefined) => JSON.parse(new TextDecoder().decode(bytes));
  const bufferOf = (stored: unknown) => (stored as { buffer: ArrayBuffer }).buffer;

  it('rewrites an object\'s buffer in place on a change, never the bytes an emitted object carries', () => {
    const store = new ObjectStore('bytes');
    const v1 = makeObject(POD, 'web', { namespace: 'default', uid: 'u1', resourceVersion: '9' }, { spec: { image: 'a' } });
    const stored = store.set(v1);
    const buffer = bufferOf(stored);
    const [read] = store.values();
    const v2 = makeObject(POD, 'web', { namespace: 'default', uid: 'u1', resourceVersion: '10' }, { spec: { image: 'b' } });
    expect(store.set(v2)).to.equal(stored);
    expect(bufferOf(stored), 'the same buffer, rewritten').to.equal(buffer);
    expect([...store.values()]).to.deep.equal([v2]);
    // The event of the first version and an object read before the change keep their own bytes.
    expect(decode(knownJsonBytes(v1))).to.deep.equal(v1);
    expect(decode(knownJsonBytes(read))).to.deep.equal(v1);
    expect(decode(knownJsonBytes(v2))).to.deep.equal(v2);
  });

  it('takes a new buffer when a change outgrows the room or would waste half of it', () => {
    const store = new ObjectStore('bytes');
    const stored = store.set(makeObject(POD, 'web', { uid: 'u1', resourceVersion: '1' }, { spec: { blob: 'x'.repeat(1000) } }));
    const small = bufferOf(stored);
    const grown = makeObject(POD, 'web', { uid: 'u1', resourceVersion: '2' }, { spec: { blob: 'x'.repeat(1200) } });
    store.set(grown);
    expect(bufferOf(stored)).to.not.equal(small);
    const large = bufferOf(stored);
    const shrunk = makeObject(POD, 'web', { uid: 'u1', resourceVersion: '3' }, { spec: { blob: 'x' } });
    store.set(shrunk);
    expect(bufferOf(stored)).to.not.equal(large);
    expect(bufferOf(stored).byteLength).to.be.below(200);
    expect([...store.values()]).to.deep.equal([shrunk]);
  });

  it('marks what it stores, and what it gives back, as kept by the source (resyncs read it there)', () => {
    const store = new ObjectStore('bytes');
    const object = makeObject(POD, 'web', { uid: 'u1' });
    store.set(object);
    expect(isKeptBySource(object)).to.equal(true);
    expect(isKeptBySource([...store.values()][0])).to.equal(true);
    expect(isKeptBySource(makeObject(POD, 'other'))).to.equal(false);
    const metadataOnly = makeObject(POD, 'meta', { uid: 'u2' });
    new ObjectStore('objects').set(metadataOnly);
    expect(isKeptBySource(metadataOnly), 'a metadata-only store too').to.equal(true);
  });
});

describe('kubernetes reflector, on what the server sends', () => {
  const TIMING = { pageSize: 500, minWatchTimeoutSeconds: 60, watchSilenceTimeoutMs: 0, watchHoldMaxMs: 0, backoffInitialMs: 1, backoffMaxMs: 5 };
  const POD_REF = { group: '', version: 'v1', resource: 'pods', kind: 'Pod', namespaced: true } as const;
  const page = (items: string, rv = '9') => `{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"${rv}"},"items":${items}}\n`;
  const listedPod = (name: string) => `{"metadata":{"name":"${name}","namespace":"d","uid":"uid-${name}","resourceVersion":"1"},"spec":{"nodeName":"n"}}`;

  /** A server scripted request by request: list pages in turn (the last one again), watches in turn (then silence until stopped). */
  function scripted(pages: string[], watches: ((handlers: WatchHandlers) => void)[]) {
    const requests: string[] = [];
    const client = {
      async getBytes(path: string) {
        requests.push(path);
        return Buffer.from(pages.length > 1 ? pages.shift()! : pages[0]);
      },
      async watch(path: string, handlers: WatchHandlers, options: { signal?: AbortSignal }) {
        requests.push(path);
        const script = watches.shift();
        if (script !== undefined) return script(handlers);
        await new Promise((resolve) => options.signal?.addEventListener('abort', resolve));
      },
    };
    return { client: client as unknown as KubeClient, requests };
  }

  function run(client: KubeClient) {
    const events: { type: string; object: any }[] = [];
    const failures: KubeRequestError[] = [];
    const reflector = new Reflector(client, POD_REF, {}, TIMING, {
      emit: (type, object) => events.push({ type, object }),
      listed() {}, relisted() {}, watchRestarted() {},
      failed: (error) => failures.push(error),
      malformedLine: (_line, error) => failures.push(new KubeRequestError('malformed', 0, String(error))),
    });
    reflector.start(new AbortController().signal);
    return { reflector, events, failures };
  }

  it('takes a list page whose items are not an array as malformed, and deletes nothing for it', async () => {
    const gone = () => {
      throw new KubeRequestError('gone', 410, 'too old resource version');
    };
    const { client, requests } = scripted([page(`[${listedPod('a')}]`), page('{}'), page(`[${listedPod('a')}]`)], [gone]);
    const { reflector, events, failures } = run(client);
    await until(() => requests.filter((path) => !path.includes('watch=1')).length >= 3 && requests.at(-1)!.includes('watch=1'), 'three lists and a watch');
    await reflector.stop();
    expect(events.map((e) => `${e.type} ${e.object.metadata.name}`)).to.deep.equal(['ADDED a']);
    expect(failures.map((f) => f.reason)).to.deep.equal(['gone', 'malformed']);
  });

  it('stores and emits a watched object as the server sent it, kind and apiVersion added where it had none', async () => {
    const lines = [
      // No kind or apiVersion: its bytes as sent would lack what the emitted object has.
      '{"type":"ADDED","object":{"metadata":{"name":"bare","namespace":"d","uid":"u1","resourceVersion":"2"}}}',
      // managedFields first in metadata: the comma after it goes with it.
      '{"type":"ADDED","object":{"kind":"Pod","apiVersion":"v1","metadata":{"managedFields":[{"manager":"m"}],"name":"first","namespace":"d","uid":"u2","resourceVersion":"3"}}}',
      '{"type":"MODIFIED","object":{"kind":"Pod","apiVersion":"v1","metadata":{"name":"first","namespace":"d","uid":"u2","resourceVersion":"4","managedFields":[{"manager":"m"}],"labels":{"a":"\\u003c"}}}}',
    ];
    const { client } = scripted([page('[]')], [(handlers) => lines.forEach((line) => handlers.line(Buffer.from(line)))]);
    const { reflector, events, failures } = run(client);
    await until(() => events.length === 3, 'three events');
    await reflector.stop();
    expect(failures).to.deep.equal([]);
    for (const { object } of events) {
      expect([object.kind, object.apiVersion, object.metadata.managedFields]).to.deep.equal(['Pod', 'v1', undefined]);
      const bytes = knownJsonBytes(object);
      expect(bytes, object.metadata.name).to.not.equal(undefined);
      expect(JSON.parse(Buffer.from(bytes!).toString('utf8')), object.metadata.name).to.deep.equal(object);
    }
    expect(events[2].object.metadata.labels).to.deep.equal({ a: '<' });
  });
});

describe('kubernetes selection scopes', () => {
  const pods = { group: '', version: 'v1', resource: 'pods', kind: 'Pod', namespaced: true };
  const nodes = { group: '', version: 'v1', resource: 'nodes', kind: 'Node', namespaced: false };
  const namespaces = { group: '', version: 'v1', resource: 'namespaces', kind: 'Namespace', namespaced: false };
  const base = { namespaces: { include: [] as string[], exclude: [] as string[] }, metadataOnly: false };

  it('combines global and per-resource selectors', () => {
    expect(scopesFor(pods, { ...base, labelSelector: 'team=a', fieldSelector: 'status.phase=Running' }, { labelSelector: 'app=web', metadataOnly: true }))
      .to.deep.equal([{ labelSelector: 'team=a,app=web', fieldSelector: 'status.phase=Running', metadataOnly: true }]);
  });

  it('runs one scope per included namespace, minus excluded ones', () => {
    const scopes = scopesFor(pods, { ...base, namespaces: { include: ['a', 'b', 'c'], exclude: ['c'] } });
    expect(scopes.map((s) => s.namespace)).to.deep.equal(['a', 'b']);
    expect(scopesFor(nodes, { ...base, namespaces: { include: ['a'], exclude: [] } })).to.deep.equal([{ labelSelector: undefined, fieldSelector: undefined, metadataOnly: false }]);
    expect(scopesFor(namespaces, { ...base, namespaces: { include: ['a', 'b'], exclude: [] } }).map((s) => s.fieldSelector)).to.deep.equal(['metadata.name=a', 'metadata.name=b']);
  });

  it('excludes namespaces with a field selector', () => {
    expect(scopesFor(pods, { ...base, fieldSelector: 'spec.nodeName=n1', namespaces: { include: [], exclude: ['x', 'y'] } })[0].fieldSelector)
      .to.equal('spec.nodeName=n1,metadata.namespace!=x,metadata.namespace!=y');
    expect(scopesFor(namespaces, { ...base, namespaces: { include: [], exclude: ['x'] } })[0].fieldSelector).to.equal('metadata.name!=x');
  });

  it('names the missing RBAC rule in a 403', () => {
    const message = forbiddenMessage({ group: 'apps', version: 'v1', resource: 'deployments', kind: 'Deployment', namespaced: true }, 'shop', 'nope');
    expect(message).to.contain('list and watch on resource "deployments" in API group "apps"');
    expect(message).to.contain('in namespace shop');
  });
});

describe('kubernetes options and configuration', () => {
  let dir: string;
  const savedEnv = { ...process.env };
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'meshsync-kubecfg-'));
  });
  afterEach(() => {
    process.env = { ...savedEnv };
    rmSync(dir, { recursive: true, force: true });
  });

  it('defaults to the fifteen MeshSync resources and accepts per-resource options', () => {
    expect(kubernetes().options).to.deep.include({ resources: [...DEFAULT_RESOURCES], pageSize: 500 });
    expect(() => kubernetes({ resources: ['pods.v1.', { id: 'deployments.v1.apps', labelSelector: 'a=b', metadataOnly: true }] })).not.to.throw();
    expect(() => kubernetes({ pageSize: 0 })).to.throw(/pageSize/);
  });

  it('reports a missing configuration as MESHSYNC_KUBE_CONFIG instead of falling back to localhost', () => {
    process.env.HOME = dir;
    delete process.env.KUBECONFIG;
    delete process.env.KUBERNETES_SERVICE_HOST;
    try {
      loadKubeConfig({}, process.env);
      expect.fail('expected an error');
    } catch (error) {
      expect((error as MeshSyncError).code).to.equal('MESHSYNC_KUBE_CONFIG');
    }
  });

  it('names the kubeconfig file that cannot be read and an unknown context', () => {
    expect(() => loadKubeConfig({ kubeconfig: join(dir, 'missing') })).to.throw(MeshSyncError, /missing/);
    const path = join(dir, 'config');
    writeFileSync(path, [
      'apiVersion: v1', 'kind: Config',
      'clusters: [{name: c, cluster: {server: "http://127.0.0.1:1", insecure-skip-tls-verify: true}}]',
      'users: [{name: u, user: {token: t}}]',
      'contexts: [{name: one, context: {cluster: c, user: u}}]',
      'current-context: one', '',
    ].join('\n'));
    expect(loadKubeConfig({ kubeconfig: path }).getCurrentCluster()?.server).to.equal('http://127.0.0.1:1');
    expect(() => loadKubeConfig({ kubeconfig: path, context: 'two' })).to.throw(MeshSyncError, /no context "two" \(contexts: one\)/);
  });

  it('reports a body that is not JSON without the text the parser quotes from it (it may be a Secret\'s)', () => {
    const error = (() => {
      try {
        parseBody('{"items":[{"data":{"password":UzNDUkVULVZBTFVF}}]}', 'GET /api/v1/secrets');
      } catch (thrown) {
        return thrown as KubeRequestError;
      }
    })();
    expect(error?.reason).to.equal('malformed');
    expect(error?.message).to.match(/^GET \/api\/v1\/secrets: the server sent a body that is not JSON \(Unexpected token/);
    expect(error?.message).to.not.include('UzNDUk');
    expect(error?.cause).to.equal(undefined);
  });

  it('says where a kubeconfig fails to parse, without quoting its lines (they hold credentials)', () => {
    const path = join(dir, 'broken');
    writeFileSync(path, ['apiVersion: v1', 'users:', '- name: u', '  user:', '    password: KubePwSecret1', '   bad: [', ''].join('\n'));
    const error = (() => {
      try {
        loadKubeConfig({ kubeconfig: path });
      } catch (thrown) {
        return thrown as MeshSyncError;
      }
    })();
    expect(error?.code).to.equal('MESHSYNC_KUBE_CONFIG');
    expect(error?.message).to.match(/broken: .*\(6:4\)$/);
    expect(error?.message).to.not.include('KubePwSecret1');
    expect(error?.cause, 'the parser error (which quotes the file) is not kept either').to.equal(undefined);
  });
});
