import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MESHSYNC_USER } from '../support/kube-cluster.ts';
import { readSnapshot, startMeshsync, type MeshsyncProcess, type PublishedEvent } from '../support/meshsync-process.ts';
import { cluster } from './setup.ts';

const NS = 'sync-test';
const OBJECTS = 5_000;
const COLLECTION = `/api/v1/namespaces/${NS}/configmaps`;

/** A config that syncs the ConfigMaps of NS and prints them (stdout sink), with quick retries. */
const configMapsConfig = (kubernetes: Record<string, unknown> = {}) => ({
  clusterId: 'sync-test',
  plugins: [
    ['meshsync:kubernetes', { resources: ['configmaps.v1.'], namespaces: { include: [NS] }, backoffInitialMs: 200, backoffMaxMs: 2000, ...kubernetes }],
    ['meshsync:stdout', { format: 'json' }],
  ],
});

/** uid → resourceVersion, the identity of a state. */
const versions = (objects: Iterable<{ metadata: { uid: string; resourceVersion: string } }>) =>
  new Map([...objects].map((o) => [o.metadata.uid, o.metadata.resourceVersion]));

const serverState = async () => versions(await cluster.listAll(COLLECTION));

describe('initial sync on a real kube-apiserver', function () {
  this.timeout(180_000);
  let dir: string;
  let meshsync: MeshsyncProcess | undefined;

  before(async function () {
    this.timeout(300_000);
    await cluster.apply([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } }]);
    const started = Date.now();
    await cluster.createMany(COLLECTION, Array.from({ length: OBJECTS }, (_, i) => ({ metadata: { name: `cm-${i}`, labels: { batch: String(i % 10) } }, data: { index: String(i) } })));
    console.log(`      created ${OBJECTS} ConfigMaps through the API in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  });
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'meshsync-sync-'));
  });
  afterEach(async () => {
    await meshsync?.kill();
    meshsync = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  /** `meshsync snapshot` with the config, against `kubeconfig`; the events it wrote. */
  async function snapshot(kubernetes: Record<string, unknown>, kubeconfig = cluster.meshsyncKubeconfig): Promise<PublishedEvent[]> {
    const out = join(dir, `snapshot-${Date.now()}.jsonl`);
    meshsync = startMeshsync({ dir, args: ['snapshot', '--out', out], config: configMapsConfig(kubernetes), env: { KUBECONFIG: kubeconfig } });
    const code = await meshsync.exited;
    expect(code, meshsync.stderr().slice(-3000)).to.equal(0);
    return readSnapshot(out);
  }

  it(`snapshots ${OBJECTS} objects read in pages of limit/continue: exactly the server's uids and resourceVersions`, async () => {
    const since = Date.now();
    const events = await snapshot({ streamingList: 'off', pageSize: 250 });
    const expected = await serverState();
    expect(expected.size).to.be.greaterThan(OBJECTS); // and the kube-root-ca.crt ConfigMap
    expect(versions(events.map((e) => e.object))).to.deep.equal(expected);
    expect(events.every((e) => e.type === 'ADDED' && e.object.kind === 'ConfigMap' && e.object.apiVersion === 'v1')).to.equal(true);
    const pages = cluster.audit({ user: MESHSYNC_USER, since }).filter((e) => e.verb === 'list' && e.path === COLLECTION && e.stage === 'ResponseComplete');
    expect(pages).to.have.length(Math.ceil(expected.size / 250));
    expect(pages.every((p) => p.query.limit === '250' && p.responseStatus?.code === 200)).to.equal(true);
    expect(pages.filter((p) => p.query.continue)).to.have.length(pages.length - 1);
  });

  it('gives the same snapshot from a streaming list as from pages, where the server has no streaming lists', async () => {
    const since = Date.now();
    const streamed = await snapshot({ streamingList: 'auto' });
    const mine = cluster.audit({ user: MESHSYNC_USER, since }).filter((e) => e.path === COLLECTION && e.stage === 'ResponseStarted');
    expect(mine.map((e) => `${e.verb} ${e.query.sendInitialEvents ?? ''} ${e.query.resourceVersionMatch ?? ''}`)).to.deep.equal(['watch true NotOlderThan']);

    const legacy = await cluster.startExtraApiserver({ featureGates: 'WatchList=false' });
    const sinceLegacy = Date.now();
    const paged = await snapshot({ streamingList: 'auto', pageSize: 1000 }, cluster.meshsyncKubeconfigFor(legacy));
    const requests = cluster.audit({ user: MESHSYNC_USER, server: legacy, since: sinceLegacy }).filter((e) => e.path === COLLECTION && e.stage === 'ResponseComplete');
    expect(requests[0].verb).to.equal('watch');
    expect(requests[0].responseStatus?.code, 'the streaming list refused').to.equal(422);
    expect(requests.slice(1).filter((e) => e.verb === 'list').length).to.be.greaterThan(1);

    const expected = await serverState();
    expect(versions(streamed.map((e) => e.object))).to.deep.equal(expected);
    expect(versions(paged.map((e) => e.object))).to.deep.equal(expected);
    const byUid = new Map(paged.map((e) => [e.object.metadata.uid, e.object]));
    for (const event of streamed) expect(event.object, event.object.metadata.name).to.deep.equal(byUid.get(event.object.metadata.uid));
  });

  it('relists from the top when a continue token expired (410 after an etcd compaction), and publishes each object once', async () => {
    const since = Date.now();
    meshsync = startMeshsync({ dir, config: configMapsConfig({ streamingList: 'off', pageSize: 10 }), env: { KUBECONFIG: cluster.meshsyncKubeconfig } });
    const lists = () => cluster.audit({ user: MESHSYNC_USER, since }).filter((e) => e.verb === 'list' && e.path === COLLECTION && e.stage === 'ResponseComplete');
    await meshsync.waitFor(() => lists().some((e) => e.query.continue), 'the second page');
    // The cache of a restarted API server no longer holds the list's snapshot: the token goes to etcd, which compacted it.
    await cluster.stopApiserver();
    await cluster.compact();
    await cluster.startApiserver();
    await meshsync.waitForLog(/kubernetes initial sync complete/, 120_000);
    const expired = lists().findIndex((e) => e.query.continue && e.responseStatus?.code === 410);
    expect(expired, 'a continue answered 410 Gone').to.be.greaterThan(0);
    expect(lists().slice(expired + 1)[0]?.query.continue, 'then a list from the top').to.equal(undefined);
    const expected = await serverState();
    expect(versions(meshsync.view().values())).to.deep.equal(expected);
    expect(meshsync.events.filter((e) => e.type === 'ADDED'), 'each object once').to.have.length(expected.size);
    expect(meshsync.events).to.have.length(expected.size);
  });

  for (const streamingList of ['auto', 'off'] as const) {
    it(`keeps metadata only (PartialObjectMetadata) in lists and watches (streamingList: ${streamingList})`, async () => {
      meshsync = startMeshsync({ dir, config: configMapsConfig({ metadataOnly: true, streamingList }), env: { KUBECONFIG: cluster.meshsyncKubeconfig } });
      await meshsync.waitForLog(/kubernetes initial sync complete/);
      expect(versions(meshsync.view().values())).to.deep.equal(await serverState());
      const changed = await cluster.ok(`${COLLECTION}/cm-7`, { method: 'PATCH', contentType: 'application/merge-patch+json', body: { metadata: { labels: { touched: streamingList } }, data: { index: 'seven' } } });
      await meshsync.waitFor(() => meshsync!.events.some((e) => e.type === 'MODIFIED' && e.object.metadata.resourceVersion === changed.metadata.resourceVersion), 'the MODIFIED of cm-7');
      for (const event of meshsync.events) {
        expect(Object.keys(event.object).sort(), event.object.metadata.name).to.deep.equal(['apiVersion', 'kind', 'metadata']);
        expect(event.object).to.include({ kind: 'ConfigMap', apiVersion: 'v1' });
        expect(event.object.metadata.managedFields).to.equal(undefined);
      }
      const modified = meshsync.events.find((e) => e.type === 'MODIFIED')!;
      expect(modified.object.metadata.labels).to.deep.equal({ batch: '7', touched: streamingList });
    });
  }
});
