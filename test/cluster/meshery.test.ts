/**
 * Meshery mode on a real kube-apiserver: Meshery's own Go code (test/meshery) decodes what
 * `meshsync run` publishes during churn, and the cluster_id is the real kube-system uid.
 */
import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startChurn } from '../support/kube-churn.ts';
import { mesheryCheckBinary, mesheryId, startMesheryCheck, type CheckLine } from '../support/meshery-check.ts';
import { ROOT, startMeshsync } from '../support/meshsync-process.ts';
import { startNatsServer } from '../support/nats-server.ts';
import { sleep, untilAsync } from '../support/wait.ts';
import { cluster } from './setup.ts';

const NS = 'meshery-test';
const COLLECTION = `/api/v1/namespaces/${NS}/configmaps`;
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

describe('meshery wire mode on a real kube-apiserver, checked by Meshery\'s own Go code', function () {
  this.timeout(180_000);

  before(function () {
    this.timeout(20 * 60_000);
    mesheryCheckBinary();
  });

  it('accepts every message of a churn run, keyed by the real kube-system uid; store, resync and meta answered', async () => {
    await cluster.apply([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } }]);
    const kubeSystem = (await cluster.request('/api/v1/namespaces/kube-system')).json as { metadata: { uid: string } };
    const clusterId = kubeSystem.metadata.uid;
    const nats = await startNatsServer();
    const dir = mkdtempSync(join(tmpdir(), 'meshsync-meshery-cluster-'));
    const check = await startMesheryCheck(nats.url);
    const meshsync = startMeshsync({
      dir,
      config: { plugins: [['meshsync:kubernetes', { resources: ['configmaps.v1.'], namespaces: { include: [NS] } }], ['meshsync:nats', { protocol: 'meshery', meshery: { resyncDebounceMs: 300 } }]] },
      env: { KUBECONFIG: cluster.meshsyncKubeconfig, BROKER_URL: nats.url },
    });
    try {
      await meshsync.waitForLog(/answering Meshery requests/, 60_000);
      const churn = startChurn(cluster, COLLECTION, { intervalMs: 30, prefix: 'meshery' });
      await sleep(4000);
      const { writes } = await churn.stop();
      expect(writes).to.be.greaterThan(20);

      const expected = new Set((await cluster.listAll(COLLECTION)).map((o) => mesheryId(clusterId, { kind: 'ConfigMap', apiVersion: 'v1', metadata: o.metadata })));
      await untilAsync(async () => {
        const verdict = await check.verdict();
        return verdict.view.length === expected.size && verdict.view.every((row) => expected.has(row.id));
      }, 'Meshery\'s table to hold exactly the server\'s ConfigMaps', 60_000);
      const verdict = await check.verdict();
      expect(verdict.core.errors).to.deep.equal([]);
      expect(verdict.core.decoded).to.equal(verdict.core.messages);
      expect(Object.keys(verdict.core.byEventType)).to.have.members(['ADDED', 'MODIFIED', 'DELETED']);
      expect(verdict.unstableIds).to.deep.equal([]);
      expect(new Set(verdict.view.map((row) => row.cluster_id))).to.deep.equal(new Set([clusterId]));

      await check.send('store');
      await untilAsync(async () => (await check.verdict()).storeIds.length >= expected.size, 'the store reply', 30_000);
      await sleep(300);
      expect(new Set((await check.verdict()).storeIds)).to.deep.equal(expected);

      const from = check.lines.length;
      await check.send('resync');
      const added = () => check.lines.slice(from).filter((l): l is Extract<CheckLine, { kind: 'event' }> => l.kind === 'event' && l.eventType === 'ADDED');
      await untilAsync(async () => added().length >= expected.size, 'the resync', 30_000);
      expect(new Set(added().map((e) => e.object.id))).to.deep.equal(expected);

      await check.send('meta');
      await untilAsync(async () => check.lines.some((l) => l.kind === 'meta'), 'the meta reply');
      expect(check.lines.find((l) => l.kind === 'meta')).to.deep.include({ version: VERSION });
    } finally {
      await meshsync.stop();
      await check.stop();
      await nats.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
