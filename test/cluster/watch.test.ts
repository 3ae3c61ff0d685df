import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MESHSYNC_USER } from '../support/kube-cluster.ts';
import { startChurn, type Churn } from '../support/kube-churn.ts';
import { startMeshsync, type MeshsyncProcess } from '../support/meshsync-process.ts';
import { sleep } from '../support/wait.ts';
import { cluster } from './setup.ts';

/** A config that syncs the ConfigMaps of one namespace and prints them (stdout sink), with quick retries. */
const configMapsIn = (namespace: string, kubernetes: Record<string, unknown> = {}) => ({
  clusterId: 'watch-test',
  plugins: [
    ['meshsync:kubernetes', { resources: ['configmaps.v1.'], namespaces: { include: [namespace] }, backoffInitialMs: 200, backoffMaxMs: 2000, ...kubernetes }],
    ['meshsync:stdout', { format: 'json' }],
  ],
});

const versions = (objects: Iterable<{ metadata: { uid: string; resourceVersion: string } }>) =>
  new Map([...objects].map((o) => [o.metadata.uid, o.metadata.resourceVersion]));

describe('watching a real kube-apiserver, through faults', function () {
  this.timeout(180_000);
  let dir: string;
  let meshsync: MeshsyncProcess | undefined;
  let churn: Churn | undefined;
  let namespace: string;
  let serial = 0;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'meshsync-watch-'));
    namespace = `watch-test-${++serial}`;
    await cluster.apply([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } }]);
  });
  afterEach(async () => {
    await churn?.stop();
    churn = undefined;
    await meshsync?.kill();
    meshsync = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  const collection = () => `/api/v1/namespaces/${namespace}/configmaps`;

  async function startSynced(kubernetes: Record<string, unknown> = {}): Promise<MeshsyncProcess> {
    meshsync = startMeshsync({ dir, config: configMapsIn(namespace, kubernetes), env: { KUBECONFIG: cluster.meshsyncKubeconfig } });
    await meshsync.waitForLog(/kubernetes initial sync complete/);
    return meshsync;
  }

  /** Waits until the published view is the server's state (uids and resourceVersions), read through `server`. */
  async function converged(process: MeshsyncProcess, server?: string): Promise<void> {
    let expected = new Map<string, string>();
    const deadline = Date.now() + 60_000;
    for (;;) {
      expected = versions(await cluster.listAll(collection(), server));
      const seen = versions(process.view().values());
      if (JSON.stringify([...seen].sort()) === JSON.stringify([...expected].sort())) return;
      if (Date.now() > deadline) expect(seen, 'the published view').to.deep.equal(expected);
      await sleep(250);
    }
  }

  it('asks for bookmarks and resumes each watch from the last one: no replay, no relist', async () => {
    await cluster.createMany(collection(), [{ metadata: { name: 'only' } }]);
    const since = Date.now();
    const process = await startSynced({ minWatchTimeoutSeconds: 4 });
    const listedAt = await cluster.etcdRevision();
    // Changes elsewhere move the resourceVersion on; only bookmarks can tell this watch about it.
    const elsewhere = `watch-test-${++serial}`;
    await cluster.apply([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: elsewhere } }]);
    await cluster.createMany(`/api/v1/namespaces/${elsewhere}/configmaps`, Array.from({ length: 20 }, (_, i) => ({ metadata: { name: `other-${i}` } })));
    const watches = () => cluster.audit({ user: MESHSYNC_USER, since }).filter((e) => e.verb === 'watch' && e.path === collection() && e.stage === 'ResponseStarted');
    await process.waitFor(() => watches().length >= 3, 'two resumed watches', 60_000);
    const [first, ...resumed] = watches();
    expect(first.query).to.include({ sendInitialEvents: 'true', allowWatchBookmarks: 'true' });
    for (const watch of resumed) {
      expect(watch.query.allowWatchBookmarks).to.equal('true');
      expect(watch.query.sendInitialEvents, 'resumed, not relisted').to.equal(undefined);
    }
    expect(Number(resumed.at(-1)!.query.resourceVersion), 'resumed past the changes elsewhere: from a bookmark').to.be.greaterThan(listedAt);
    expect(process.events.map((e) => `${e.type} ${e.object.metadata.name}`).sort()).to.deep.equal(['ADDED kube-root-ca.crt', 'ADDED only']);
  });

  it('relists after a real 410 Gone (the API server restarted, etcd compacted during churn): DELETED for objects removed meanwhile', async () => {
    const seeded = await cluster.createMany(collection(), Array.from({ length: 200 }, (_, i) => ({ metadata: { name: `seed-${i}` }, data: { i: String(i) } })));
    const process = await startSynced();
    const writer = await cluster.startExtraApiserver();
    churn = startChurn(cluster, collection(), { server: writer });
    await sleep(1000);
    await cluster.stopApiserver();
    // While meshsync's API server is down: deletions it can only learn of by relisting, then history compacted away.
    const removed = seeded.slice(0, 30);
    for (const object of removed) await cluster.ok(`${collection()}/${object.metadata.name}`, { method: 'DELETE', server: writer });
    await sleep(500);
    await cluster.compact();
    await cluster.startApiserver();
    await sleep(2000);
    const { writes, failed } = await churn.stop();
    churn = undefined;
    expect(failed, `of ${writes} churn writes`).to.equal(0);
    await converged(process);
    expect(process.logs().some((l) => /too old resource version/.test(String(l.msg))), 'the 410 Gone').to.equal(true);
    const deleted = new Set(process.events.filter((e) => e.type === 'DELETED').map((e) => e.object.metadata.uid));
    for (const object of removed) expect(deleted.has(object.metadata.uid), `DELETED for ${object.metadata.name}`).to.equal(true);
  });

  it('converges after the API server is killed (SIGKILL) and started again during churn', async () => {
    await cluster.createMany(collection(), Array.from({ length: 100 }, (_, i) => ({ metadata: { name: `seed-${i}` } })));
    const process = await startSynced();
    const writer = await cluster.startExtraApiserver();
    churn = startChurn(cluster, collection(), { server: writer });
    await sleep(1000);
    await cluster.killApiserver();
    await sleep(2000);
    await cluster.startApiserver();
    await sleep(2000);
    await churn.stop();
    churn = undefined;
    await converged(process);
    expect(process.child.exitCode, 'still running').to.equal(null);
  });

  it('converges after etcd is restarted during churn', async () => {
    await cluster.createMany(collection(), Array.from({ length: 100 }, (_, i) => ({ metadata: { name: `seed-${i}` } })));
    const process = await startSynced();
    churn = startChurn(cluster, collection());
    await sleep(1000);
    await cluster.stopEtcd();
    await sleep(2000);
    await cluster.startEtcd();
    await sleep(3000);
    const { writes, failed } = await churn.stop();
    churn = undefined;
    expect(writes - failed, 'writes went through after etcd returned').to.be.greaterThan(0);
    await converged(process);
    expect(process.child.exitCode, 'still running').to.equal(null);
  });
});
