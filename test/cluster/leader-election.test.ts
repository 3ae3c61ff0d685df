import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ReferenceConsumer } from '../../testing/consumer.ts';
import { startMeshsync, type MeshsyncProcess } from '../support/meshsync-process.ts';
import { feedConsumer, startNatsServer, subscriber, type NatsServerHandle } from '../support/nats-server.ts';
import { sleep, untilAsync } from '../support/wait.ts';
import { cluster } from './setup.ts';

const NS = 'leader-election-test';
const LEASE = `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases/meshsync-leader`;
const SUBJECT = 'meshery.meshsync.request';
const CLUSTER_ID = 'ha-real';
// The plugin's defaults, as a Deployment with two replicas runs them.
const LEASE_TIMING = { leaseDurationSeconds: 15, renewDeadlineSeconds: 10, retryPeriodSeconds: 2 };

const configMap = (name: string, data: Record<string, string> = {}) => ({ metadata: { name }, data });

describe('leader election with two meshsync processes on a real Lease (coordination.k8s.io/v1)', function () {
  this.timeout(180_000);
  let nats: NatsServerHandle;
  let dir: string;
  const replicas: MeshsyncProcess[] = [];

  before(async () => {
    await cluster.apply([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } }]);
    await cluster.createMany(`/api/v1/namespaces/${NS}/configmaps`, Array.from({ length: 50 }, (_, i) => configMap(`seed-${i}`)));
    nats = await startNatsServer();
    dir = mkdtempSync(join(tmpdir(), 'meshsync-leader-'));
  });
  after(async () => {
    for (const replica of replicas.splice(0)) await replica.kill();
    await nats?.dispose();
    await cluster.request(`/api/v1/namespaces/${NS}`, { method: 'DELETE' });
    rmSync(dir, { recursive: true, force: true });
  });

  const start = (identity: string) => {
    const replica = startMeshsync({
      dir,
      config: {
        clusterId: CLUSTER_ID,
        plugins: [
          ['meshsync:kubernetes', { resources: ['configmaps.v1.'], namespaces: { include: [NS] }, watchCustomResourceDefinitions: false, backoffInitialMs: 200, backoffMaxMs: 1000 }],
          ['meshsync:leader-election', { namespace: NS, identity, ...LEASE_TIMING }],
          ['meshsync:nats', { url: nats.url, requestSubject: '' }],
        ],
        pipeline: { batchMaxWaitMs: 20 },
      },
      env: { KUBECONFIG: cluster.meshsyncKubeconfig },
    });
    replicas.push(replica);
    return replica;
  };
  const lease = async () => (await cluster.request(LEASE)).json?.spec as { holderIdentity?: string; leaseTransitions?: number } | undefined;
  const serverView = async () => new Map((await cluster.listAll(`/api/v1/namespaces/${NS}/configmaps`)).map((o) => [o.metadata.uid as string, o.metadata.resourceVersion as string]));
  /** The consumer holds exactly the server's ConfigMaps of the namespace, each at its current resourceVersion. */
  const converged = async (consumer: ReferenceConsumer) => {
    const server = await serverView();
    const view = [...consumer.view(CLUSTER_ID).values()].filter((o) => o.metadata.namespace === NS);
    return view.length === server.size && view.every((o) => server.get(o.metadata.uid!) === o.metadata.resourceVersion);
  };

  it('one replica publishes; the leader killed, the other takes over once the lease expires and the consumer converges', async () => {
    const consumer = new ReferenceConsumer();
    const sub = await subscriber(nats.url, SUBJECT);
    const stopFeeding = feedConsumer(sub, consumer);
    let churn: NodeJS.Timeout | undefined;
    try {
      const a = start('replica-a');
      await untilAsync(async () => (await lease())?.holderIdentity === 'replica-a', 'replica-a to hold the Lease');
      await untilAsync(() => converged(consumer), 'the first view');
      const b = start('replica-b');
      await b.waitForLog(/standing by/);
      const publishedBeforeB = sub.messages.length;
      await sleep(2 * LEASE_TIMING.retryPeriodSeconds * 1000);
      expect((await lease())?.holderIdentity).to.equal('replica-a');
      expect(b.logs().some((l) => /became the leader/.test(String(l.msg))), 'the standby does not lead').to.equal(false);
      expect(sub.messages.length, 'no change, nothing published by either').to.equal(publishedBeforeB);

      // Churn through the handover: creations, edits and deletions.
      let n = 0;
      const names = Array.from({ length: 50 }, (_, i) => `seed-${i}`);
      churn = setInterval(() => {
        n++;
        const name = names[n % names.length];
        const path = `/api/v1/namespaces/${NS}/configmaps`;
        const change = n % 3 === 0
          ? cluster.request(path, { method: 'POST', body: configMap(`churn-${n}`) }).then(() => names.push(`churn-${n}`))
          : n % 3 === 1
            ? cluster.request(`${path}/${name}`, { method: 'PATCH', body: { data: { tick: String(n) } }, contentType: 'application/merge-patch+json' })
            : cluster.request(`${path}/${name}`, { method: 'DELETE' });
        change.catch(() => {}); // a change to a ConfigMap already deleted is a 404, as in a real cluster
      }, 50);
      await sleep(1000);
      const before = await lease();
      await a.kill();
      const killedAt = Date.now();
      await untilAsync(async () => (await lease())?.holderIdentity === 'replica-b', 'replica-b to take over',
        (LEASE_TIMING.leaseDurationSeconds + 5 * LEASE_TIMING.retryPeriodSeconds) * 1000, 250);
      const takeoverSeconds = (Date.now() - killedAt) / 1000;
      // The standby counts the lease duration from when it saw the last renewal (client-go's rule,
      // immune to clock skew): it saw it up to one retry period late, and notices the expiry up to
      // one retry period late; three seconds of slack for timers on a loaded 2-core machine
      // (measured: 15.3 s idle, 17.6 and 18.8 s with a parallel test run).
      const bound = LEASE_TIMING.leaseDurationSeconds + 2 * LEASE_TIMING.retryPeriodSeconds + 3;
      expect(takeoverSeconds, 'takeover within the lease duration plus two retry periods').to.be.below(bound);
      expect((await lease())?.leaseTransitions).to.equal((before?.leaseTransitions ?? 0) + 1);
      await sleep(1000);
      clearInterval(churn);
      churn = undefined;
      await untilAsync(() => converged(consumer), 'the consumer to converge on the server\'s ConfigMaps', 60_000, 500);
      expect(b.logs().some((l) => /became the leader/.test(String(l.msg)))).to.equal(true);
      console.log(`      (takeover after the leader was killed: ${takeoverSeconds.toFixed(1)} s with a ${LEASE_TIMING.leaseDurationSeconds} s lease)`);
    } finally {
      if (churn) clearInterval(churn);
      stopFeeding();
      await sub.close();
    }
  });

  it('a leader stopped with SIGTERM releases the Lease: the standby takes over in about one retry period', async () => {
    // The previous test's leader stops gracefully, so the Lease is free for a fresh pair.
    for (const replica of replicas.splice(0)) await replica.stop();
    const a = start('replica-c');
    await untilAsync(async () => (await lease())?.holderIdentity === 'replica-c', 'replica-c to hold the Lease', 60_000, 250);
    const b = start('replica-d');
    await b.waitForLog(/standing by/);
    const stoppedAt = Date.now();
    expect(await a.stop()).to.equal(0);
    expect(a.logs().some((l) => /released the lease/.test(String(l.msg)))).to.equal(true);
    await untilAsync(async () => (await lease())?.holderIdentity === 'replica-d', 'replica-d to take over', (3 * LEASE_TIMING.retryPeriodSeconds + 5) * 1000, 250);
    expect((Date.now() - stoppedAt) / 1000, 'well before a lease duration').to.be.below(LEASE_TIMING.leaseDurationSeconds);
  });
});
