/**
 * The simulator's fidelity, measured: every row is one API case run against the project's
 * simulator (testing/simulator) and against the real kube-apiserver, and what each answers is
 * compared. A row whose answers differ fails, unless it is a documented difference (the
 * simulator's README, "Known gaps"), which must still differ: a gap closed shows up too.
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { startSimulator, type KubeSimulator } from '../../testing/simulator/index.ts';
import { kubeRequest, kubeWatch, type Connection, type KubeResponse, type KubeWatch, type RequestOptions } from '../support/kube-http.ts';
import { untilAsync } from '../support/wait.ts';
import { cluster } from './setup.ts';

const AGGREGATED = 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList';
const PARTIAL_LIST = 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1';
const TABLE = 'application/json;as=Table;v=v1;g=meta.k8s.io';
const MERGE = 'application/merge-patch+json';

/** One API server under test: requests, watches, and the one thing each does its own way (a caller without rights). */
interface Target {
  readonly name: 'simulator' | 'real';
  /** The namespace the rows work in (created before the first row). */
  readonly ns: string;
  request(path: string, options?: RequestOptions): Promise<KubeResponse>;
  watch(path: string, options?: RequestOptions): Promise<KubeWatch>;
  /** Runs `run` with request options under which listing ConfigMaps is forbidden. */
  forbidden<T>(run: (options: RequestOptions) => Promise<T>): Promise<T>;
  /** Makes resourceVersion 1 older than what the server keeps (the simulator forgets its history; the real server's window starts after its start). */
  forgetHistory(): Promise<unknown>;
}

interface Row {
  name: string;
  /** What the target answers, reduced to what the project relies on (no timestamps, uids or versions). */
  observe(t: Target, id: string): Promise<unknown>;
  /** Why the simulator differs here, as its README says; the row then asserts that they differ. */
  documented?: string;
}

const cm = (name: string, extra: Record<string, unknown> = {}) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, ...extra }, data: { k: 'v' } });
const configMaps = (t: Target) => `/api/v1/namespaces/${t.ns}/configmaps`;
/** A Status reduced to its stable parts. */
const status = (r: KubeResponse) => ({ http: r.status, kind: r.json?.kind, status: r.json?.status, reason: r.json?.reason, code: r.json?.code, details: r.json?.details && { name: r.json.details.name, kind: r.json.details.kind, group: r.json.details.group } });
const isVersion = (v: unknown) => typeof v === 'string' && /^[1-9][0-9]*$/.test(v);
async function create(t: Target, path: string, body: unknown): Promise<any> {
  const r = await t.request(path, { method: 'POST', body });
  if (r.status !== 201) throw new Error(`${t.name}: POST ${path}: ${r.status} ${r.body.slice(0, 300)}`);
  return r.json;
}
const deployment = (name: string) => ({
  apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name, labels: { app: name } },
  spec: { replicas: 1, selector: { matchLabels: { app: name } }, template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'c', image: 'example.invalid/c:1' }] } } },
});

const rows: Row[] = [
  {
    name: 'GET /version: a version document',
    observe: async (t) => {
      const r = await t.request('/version');
      return { http: r.status, fields: ['gitVersion', 'major', 'minor', 'platform'].filter((k) => typeof r.json?.[k] === 'string') };
    },
  },
  {
    name: 'legacy discovery: /api lists v1, /apis lists apps with v1 preferred',
    observe: async (t) => {
      const api = (await t.request('/api')).json;
      const apps = (await t.request('/apis')).json.groups.find((g: any) => g.name === 'apps');
      return { api: { kind: api.kind, versions: api.versions }, apps: { versions: apps.versions, preferred: apps.preferredVersion } };
    },
  },
  {
    name: 'aggregated discovery (v2): content type and the apps/v1 deployments entry',
    observe: async (t) => {
      const r = await t.request('/apis', { accept: AGGREGATED });
      const apps = r.json.items.find((g: any) => g.metadata.name === 'apps');
      const deployments = apps.versions.find((v: any) => v.version === 'v1').resources.find((x: any) => x.resource === 'deployments');
      return {
        contentType: r.contentType.includes('as=APIGroupDiscoveryList'), kind: r.json.kind, apiVersion: r.json.apiVersion,
        deployments: { scope: deployments.scope, kind: deployments.responseKind.kind, verbs: [...deployments.verbs].sort(), subresources: deployments.subresources.map((s: any) => s.subresource).sort() },
      };
    },
  },
  {
    name: 'group-version discovery: /apis/apps/v1 resources, verbs and subresources',
    observe: async (t) => {
      const r = (await t.request('/apis/apps/v1')).json;
      const deployments = r.resources.find((x: any) => x.name === 'deployments');
      return { kind: r.kind, groupVersion: r.groupVersion, namespaced: deployments.namespaced, kind2: deployments.kind, verbs: [...deployments.verbs].sort(), status: r.resources.some((x: any) => x.name === 'deployments/status') };
    },
  },
  {
    name: 'list: kind, apiVersion, items without kind/apiVersion, a numeric resourceVersion',
    observe: async (t, id) => {
      await create(t, configMaps(t), cm(`${id}-a`));
      const r = (await t.request(`${configMaps(t)}?labelSelector=missing%3Dnone`)).json;
      const all = (await t.request(configMaps(t))).json;
      const item = all.items.find((i: any) => i.metadata.name === `${id}-a`);
      return { kind: r.kind, apiVersion: r.apiVersion, emptyItems: r.items, rv: isVersion(r.metadata.resourceVersion), itemKind: item.kind ?? null, itemApiVersion: item.apiVersion ?? null, itemRv: isVersion(item.metadata.resourceVersion) };
    },
  },
  {
    name: 'list pages: limit and continue, in name order, the token kept until the last page',
    observe: async (t, id) => {
      for (const n of [3, 1, 4, 0, 2]) await create(t, configMaps(t), cm(`${id}-${n}`, { labels: { row: id } }));
      const pages: { names: string[]; more: boolean }[] = [];
      let token = '';
      do {
        const page = (await t.request(`${configMaps(t)}?labelSelector=row%3D${id}&limit=2${token ? `&continue=${encodeURIComponent(token)}` : ''}`)).json;
        pages.push({ names: page.items.map((i: any) => i.metadata.name), more: Boolean(page.metadata.continue) });
        token = page.metadata.continue ?? '';
      } while (token);
      return pages;
    },
  },
  {
    name: 'list pages: remainingItemCount on a page with more to come',
    documented: 'no remainingItemCount',
    observe: async (t, id) => {
      for (let n = 0; n < 3; n++) await create(t, configMaps(t), cm(`${id}-${n}`));
      const page = (await t.request(`${configMaps(t)}?limit=1`)).json;
      return page.metadata.remainingItemCount !== undefined;
    },
  },
  {
    name: 'list pages: an object created after the first page stays out of later pages',
    observe: async (t, id) => {
      for (let n = 0; n < 3; n++) await create(t, configMaps(t), cm(`${id}-${n}`, { labels: { row: id } }));
      const first = (await t.request(`${configMaps(t)}?labelSelector=row%3D${id}&limit=1`)).json;
      await create(t, configMaps(t), cm(`${id}-9`, { labels: { row: id } }));
      const rest = (await t.request(`${configMaps(t)}?labelSelector=row%3D${id}&continue=${encodeURIComponent(first.metadata.continue)}`)).json;
      return [...first.items, ...rest.items].map((i: any) => i.metadata.name);
    },
  },
  {
    name: 'list pages: an object modified after the first page shows its state as of the first page',
    documented: 'pagination without MVCC: later pages show the newer state',
    observe: async (t, id) => {
      for (let n = 0; n < 2; n++) await create(t, configMaps(t), cm(`${id}-${n}`, { labels: { row: id } }));
      const first = (await t.request(`${configMaps(t)}?labelSelector=row%3D${id}&limit=1`)).json;
      await t.request(`${configMaps(t)}/${id}-1`, { method: 'PATCH', body: { data: { k: 'changed' } }, contentType: MERGE });
      const rest = (await t.request(`${configMaps(t)}?labelSelector=row%3D${id}&continue=${encodeURIComponent(first.metadata.continue)}`)).json;
      return rest.items.map((i: any) => i.data.k);
    },
  },
  {
    name: 'selectors: label (equality, set, existence) and field (metadata.name, metadata.namespace)',
    observe: async (t, id) => {
      await create(t, configMaps(t), cm(`${id}-web`, { labels: { row: id, tier: 'web' } }));
      await create(t, configMaps(t), cm(`${id}-db`, { labels: { row: id, tier: 'db' } }));
      await create(t, configMaps(t), cm(`${id}-none`, { labels: { row: id } }));
      const names = async (query: string) => (await t.request(`${configMaps(t)}?${query}`)).json.items.map((i: any) => i.metadata.name).sort();
      return {
        equality: await names(`labelSelector=${encodeURIComponent(`row=${id},tier=web`)}`),
        set: await names(`labelSelector=${encodeURIComponent(`row=${id},tier in (web,db)`)}`),
        absent: await names(`labelSelector=${encodeURIComponent(`row=${id},!tier`)}`),
        name: await names(`fieldSelector=${encodeURIComponent(`metadata.name=${id}-db`)}`),
        namespace: await names(`labelSelector=${encodeURIComponent(`row=${id}`)}&fieldSelector=${encodeURIComponent(`metadata.namespace=${t.ns}`)}`),
      };
    },
  },
  {
    name: 'a field selector on an unsupported field: 400 BadRequest',
    observe: async (t) => status(await t.request(`${configMaps(t)}?fieldSelector=${encodeURIComponent('data.k=v')}`)),
  },
  {
    name: 'GET of a missing object: 404 NotFound Status with its name and kind',
    observe: async (t, id) => status(await t.request(`${configMaps(t)}/${id}-missing`)),
  },
  {
    name: 'a create in a namespace that does not exist: 404 NotFound naming the namespace',
    observe: async (t, id) => status(await t.request(`/api/v1/namespaces/${id}-nowhere/configmaps`, { method: 'POST', body: cm(`${id}-a`) })),
  },
  {
    name: 'a second create of one name: 409 AlreadyExists',
    observe: async (t, id) => {
      await create(t, configMaps(t), cm(`${id}-a`));
      return status(await t.request(configMaps(t), { method: 'POST', body: cm(`${id}-a`) }));
    },
  },
  {
    name: 'an update with a stale resourceVersion: 409 Conflict',
    observe: async (t, id) => {
      const created = await create(t, configMaps(t), cm(`${id}-a`));
      await t.request(`${configMaps(t)}/${id}-a`, { method: 'PATCH', body: { data: { k: 'newer' } }, contentType: MERGE });
      return status(await t.request(`${configMaps(t)}/${id}-a`, { method: 'PUT', body: { ...created, data: { k: 'stale' } } }));
    },
  },
  {
    name: 'an invalid name: 422 Invalid',
    documented: 'no schema validation',
    observe: async (t, id) => status(await t.request(configMaps(t), { method: 'POST', body: cm(`${id}_Not_A_DNS_Name`) })),
  },
  {
    name: 'a merge patch merges and moves the resourceVersion forward; metadata.generation stays absent on a ConfigMap',
    observe: async (t, id) => {
      const created = await create(t, configMaps(t), cm(`${id}-a`));
      const patched = (await t.request(`${configMaps(t)}/${id}-a`, { method: 'PATCH', body: { data: { other: 'x' } }, contentType: MERGE })).json;
      return { data: patched.data, forward: BigInt(patched.metadata.resourceVersion) > BigInt(created.metadata.resourceVersion), generation: patched.metadata.generation ?? null };
    },
  },
  {
    name: 'a DELETE answers 200 with a Status (ConfigMap, Deployment) or with the object (Service, ServiceAccount)',
    observe: async (t, id) => {
      const answers: unknown[] = [];
      for (const [path, body] of [
        [configMaps(t), cm(`${id}-a`)],
        [`/apis/apps/v1/namespaces/${t.ns}/deployments`, deployment(`${id}-a`)],
        [`/api/v1/namespaces/${t.ns}/services`, { apiVersion: 'v1', kind: 'Service', metadata: { name: `${id}-a` }, spec: { ports: [{ port: 80 }] } }],
        [`/api/v1/namespaces/${t.ns}/serviceaccounts`, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: `${id}-a` } }],
      ] as const) {
        await create(t, path, body);
        const r = await t.request(`${path}/${id}-a`, { method: 'DELETE' });
        answers.push({ http: r.status, kind: r.json.kind, status: r.json.kind === 'Status' ? r.json.status : null, details: r.json.details ? Object.keys(r.json.details).sort() : null, after: (await t.request(`${path}/${id}-a`)).status });
      }
      return answers;
    },
  },
  {
    name: 'metadata.managedFields on written objects',
    documented: 'no managedFields',
    observe: async (t, id) => Array.isArray((await create(t, configMaps(t), cm(`${id}-a`))).metadata.managedFields),
  },
  {
    name: 'metadata.generation: 1 at create, unchanged by a label, +1 by a spec change (Deployment)',
    observe: async (t, id) => {
      const path = `/apis/apps/v1/namespaces/${t.ns}/deployments`;
      const created = await create(t, path, deployment(`${id}-d`));
      const labelled = (await t.request(`${path}/${id}-d`, { method: 'PATCH', body: { metadata: { labels: { extra: 'yes' } } }, contentType: MERGE })).json;
      const scaled = (await t.request(`${path}/${id}-d`, { method: 'PATCH', body: { spec: { replicas: 2 } }, contentType: MERGE })).json;
      return [created.metadata.generation, labelled.metadata.generation, scaled.metadata.generation];
    },
  },
  {
    name: 'status sent to the main resource of a kind with a status subresource is ignored',
    documented: 'a write to the main resource may change status',
    observe: async (t, id) => {
      const path = `/apis/apps/v1/namespaces/${t.ns}/deployments`;
      await create(t, path, deployment(`${id}-d`));
      const r = await t.request(`${path}/${id}-d`, { method: 'PATCH', body: { status: { observedGeneration: 42 } }, contentType: MERGE });
      return r.json.status?.observedGeneration === 42;
    },
  },
  {
    name: 'PartialObjectMetadataList: metadata only, kinds from meta.k8s.io/v1',
    observe: async (t, id) => {
      await create(t, configMaps(t), cm(`${id}-a`, { labels: { row: id } }));
      const r = (await t.request(`${configMaps(t)}?labelSelector=row%3D${id}`, { accept: PARTIAL_LIST })).json;
      return { kind: r.kind, apiVersion: r.apiVersion, items: r.items.map((i: any) => ({ kind: i.kind, apiVersion: i.apiVersion, name: i.metadata.name, data: i.data ?? null })), rv: isVersion(r.metadata.resourceVersion) };
    },
  },
  {
    name: 'a list asked for as a Table only',
    documented: 'no Table encoding (406)',
    observe: async (t) => (await t.request(configMaps(t), { accept: TABLE })).json?.kind ?? null,
  },
  {
    name: 'watch from a list\'s resourceVersion: ADDED, MODIFIED, DELETED, each with kind and apiVersion',
    observe: async (t, id) => {
      const rv = (await t.request(configMaps(t))).json.metadata.resourceVersion;
      const watch = await t.watch(`${configMaps(t)}?watch=1&resourceVersion=${rv}`);
      try {
        await create(t, configMaps(t), cm(`${id}-a`));
        await t.request(`${configMaps(t)}/${id}-a`, { method: 'PATCH', body: { data: { k: 'w' } }, contentType: MERGE });
        await t.request(`${configMaps(t)}/${id}-a`, { method: 'DELETE' });
        const mine = (events: any[]) => events.filter((e) => e.object?.metadata?.name === `${id}-a`);
        await watch.until((events) => mine(events).length === 3, 'three events');
        return { http: watch.status, events: mine(watch.events).map((e) => [e.type, e.object.kind, e.object.apiVersion, e.object.data.k]) };
      } finally {
        watch.close();
      }
    },
  },
  {
    name: 'watch with resourceVersion=0: the current objects first, as ADDED',
    observe: async (t, id) => {
      await create(t, configMaps(t), cm(`${id}-a`, { labels: { row: id } }));
      await create(t, configMaps(t), cm(`${id}-b`, { labels: { row: id } }));
      const watch = await t.watch(`${configMaps(t)}?watch=1&resourceVersion=0&labelSelector=row%3D${id}`);
      try {
        await watch.until((events) => events.length >= 2, 'two events');
        return watch.events.map((e) => [e.type, e.object.metadata.name]).sort();
      } finally {
        watch.close();
      }
    },
  },
  {
    name: 'streaming list (sendInitialEvents): ADDED for each object, then the initial-events-end BOOKMARK',
    observe: async (t, id) => {
      await create(t, configMaps(t), cm(`${id}-a`, { labels: { row: id } }));
      const watch = await t.watch(`${configMaps(t)}?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&labelSelector=row%3D${id}`);
      try {
        await watch.until((events) => events.some((e) => e.type === 'BOOKMARK'), 'the bookmark');
        const bookmark = watch.events.find((e) => e.type === 'BOOKMARK');
        return {
          before: watch.events.slice(0, watch.events.indexOf(bookmark)).map((e) => [e.type, e.object.metadata.name]),
          bookmark: { kind: bookmark.object.kind, apiVersion: bookmark.object.apiVersion, annotations: bookmark.object.metadata.annotations, rv: isVersion(bookmark.object.metadata.resourceVersion), keys: Object.keys(bookmark.object.metadata).sort() },
        };
      } finally {
        watch.close();
      }
    },
  },
  {
    name: 'sendInitialEvents without resourceVersionMatch=NotOlderThan: 422 Invalid',
    observe: async (t) => status(await t.request(`${configMaps(t)}?watch=1&sendInitialEvents=true`)),
  },
  {
    // The real server answers either way from one run to the next (whether its watch cache or etcd
    // serves the watch): a 410 the client must relist after, or the objects replayed. The project's
    // reflector handles both; the simulator, its history forgotten, takes the 410 branch.
    name: 'a watch from a resourceVersion older than the server keeps: 200, then an ERROR event 410 Expired (or, from the real server, the objects replayed)',
    observe: async (t) => {
      await t.forgetHistory();
      const watch = await t.watch(`${configMaps(t)}?watch=1&resourceVersion=1`);
      try {
        await watch.until((events) => events.length > 0, 'an event');
        const event = watch.events[0];
        const expired = event.type === 'ERROR' && event.object.kind === 'Status' && event.object.code === 410 && event.object.reason === 'Expired';
        const replayed = event.type === 'ADDED' && event.object.kind === 'ConfigMap';
        return { http: watch.status, first: expired || replayed ? 'ERROR 410 Expired, or the objects replayed' : { type: event.type, kind: event.object.kind, code: event.object.code } };
      } finally {
        watch.close();
      }
    },
  },
  {
    name: 'a watch with a label selector: an object leaving the selection is a DELETED, entering it an ADDED',
    observe: async (t, id) => {
      await create(t, configMaps(t), cm(`${id}-a`, { labels: { row: id, in: 'yes' } }));
      const rv = (await t.request(configMaps(t))).json.metadata.resourceVersion;
      const watch = await t.watch(`${configMaps(t)}?watch=1&resourceVersion=${rv}&labelSelector=${encodeURIComponent(`row=${id},in=yes`)}`);
      try {
        await t.request(`${configMaps(t)}/${id}-a`, { method: 'PATCH', body: { metadata: { labels: { in: 'no' } } }, contentType: MERGE });
        await t.request(`${configMaps(t)}/${id}-a`, { method: 'PATCH', body: { metadata: { labels: { in: 'yes' } } }, contentType: MERGE });
        await watch.until((events) => events.length >= 2, 'two events');
        return watch.events.map((e) => [e.type, e.object.metadata.labels.in]);
      } finally {
        watch.close();
      }
    },
  },
  {
    name: 'listing without the right: 403 Forbidden naming the verb, resource and group',
    observe: async (t) => t.forbidden(async (options) => {
      const r = await t.request(configMaps(t), options);
      return { ...status(r), names: /cannot list resource "configmaps" in API group "" in the namespace/.test(r.json?.message ?? '') };
    }),
  },
  {
    name: 'deleting a namespace: it stays, Terminating, until its contents are gone',
    documented: 'a namespace and its contents go at once',
    observe: async (t, id) => {
      await create(t, '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: `${id}-ns` } });
      const r = await t.request(`/api/v1/namespaces/${id}-ns`, { method: 'DELETE' });
      return r.json?.status?.phase ?? null;
    },
  },
  {
    name: 'a CRD: served once Established, its list items carry kind and apiVersion, gone from discovery once deleted',
    observe: async (t, id) => {
      const group = `${id}.fidelity.example`;
      const crd = {
        apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', metadata: { name: `widgets.${group}` },
        spec: { group, scope: 'Namespaced', names: { plural: 'widgets', singular: 'widget', kind: 'Widget' }, versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } } }] },
      };
      await create(t, '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', crd);
      const widgets = `/apis/${group}/v1/namespaces/${t.ns}/widgets`;
      await untilAsync(async () => (await t.request(widgets)).status === 200, `${t.name}: widgets served`, 30_000);
      await untilAsync(async () => (await t.request(widgets, { method: 'POST', body: { apiVersion: `${group}/v1`, kind: 'Widget', metadata: { name: 'w' }, spec: { size: 1 } } })).status === 201, `${t.name}: a widget created`, 30_000);
      const item = (await t.request(widgets)).json.items[0];
      const discovered = async () => ((await t.request('/apis')).json.groups as any[]).some((g) => g.name === group);
      const inDiscovery = await discovered();
      const deleted = (await t.request(`${widgets}/w`, { method: 'DELETE' })).json.kind;
      await t.request(`/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.${group}`, { method: 'DELETE' });
      await untilAsync(async () => !(await discovered()), `${t.name}: the group gone from discovery`, 30_000);
      return { item: [item.kind, item.apiVersion, item.spec], inDiscovery, deleted };
    },
  },
];

describe('the simulator against the real kube-apiserver: one table of API cases', function () {
  this.timeout(120_000);
  let sim: KubeSimulator;
  let simulator: Target;
  let real: Target;
  const NS = 'fidelity-test';

  before(async () => {
    sim = await startSimulator({ bookmarkIntervalMs: 100 });
    const simConnection: Connection = { server: sim.url };
    simulator = {
      name: 'simulator', ns: NS,
      request: (path, options) => kubeRequest(simConnection, path, options),
      watch: (path, options) => kubeWatch(simConnection, path, options),
      async forbidden(run) {
        sim.forbid('configmaps.v1.', ['list']);
        try { return await run({}); } finally { sim.unforbid('configmaps.v1.'); }
      },
      forgetHistory: async () => sim.compact(),
    };
    real = {
      name: 'real', ns: NS,
      request: (path, options) => cluster.request(path, options),
      watch: (path, options) => kubeWatch(cluster.connection, path, options),
      // A ServiceAccount bound to nothing.
      forbidden: async (run) => run({ token: await cluster.token(NS, 'nobody') }),
      forgetHistory: async () => undefined,
    };
    for (const t of [simulator, real]) await create(t, '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
    await cluster.apply([{ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'nobody', namespace: NS } }]);
  });
  after(async () => {
    await sim?.close();
    await cluster.request(`/api/v1/namespaces/${NS}`, { method: 'DELETE' });
  });

  rows.forEach((row, index) => {
    it(`${row.documented ? '[documented difference] ' : ''}${row.name}`, async () => {
      const id = `row${index}`;
      const [onSimulator, onReal] = [await row.observe(simulator, id), await row.observe(real, id)];
      if (row.documented) expect(onSimulator, `documented as differing (${row.documented}); the real server answers ${JSON.stringify(onReal)}`).not.to.deep.equal(onReal);
      else expect(onSimulator, `the simulator (left) against the real server (right)`).to.deep.equal(onReal);
    });
  });

  it('has every documented difference in the simulator\'s README', () => {
    const readme = readFileSync(new URL('../../testing/simulator/README.md', import.meta.url), 'utf8');
    for (const row of rows.filter((r) => r.documented)) expect(readme, row.name).to.include(row.documented!);
  });
});
