import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startSimulator, type KubeSimulator } from '../../testing/simulator/index.ts';
import { ReferenceConsumer } from '../../testing/consumer.ts';
import { feedConsumer, startNatsServer, subscriber, type NatsServerHandle } from '../support/nats-server.ts';
import { sleep, until } from '../support/wait.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'cli', 'main.ts');
const TSX = import.meta.resolve('tsx');
const LEASE_ID = 'leases.v1.coordination.k8s.io';
const SUBJECT = 'meshery.meshsync.request';
const LEASE = { leaseDurationSeconds: 3, renewDeadlineSeconds: 2, retryPeriodSeconds: 0.5 };


interface Replica {
  readonly identity: string;
  readonly child: ChildProcess;
  log: string;
  readonly exited: Promise<number | null>;
}

const pod = (name: string, image = 'nginx:1') => ({ metadata: { name, namespace: 'default', labels: { app: 'churn' } }, spec: { containers: [{ name: 'app', image }] } });

describe('leader-election (two meshsync processes, one Lease, a real nats-server)', function () {
  this.timeout(90_000);
  let sim: KubeSimulator;
  let nats: NatsServerHandle;
  let dir: string;
  const replicas: Replica[] = [];

  beforeEach(async () => {
    sim = await startSimulator({ bookmarkIntervalMs: 200 });
    nats = await startNatsServer();
    dir = mkdtempSync(join(tmpdir(), 'leader-election-'));
    await sim.writeKubeconfig(join(dir, 'kubeconfig'));
    for (let i = 0; i < 20; i++) sim.create('pods.v1.', pod(`seed-${i}`));
  });

  afterEach(async () => {
    for (const replica of replicas.splice(0)) {
      replica.child.kill('SIGKILL');
      await replica.exited;
    }
    await nats.dispose();
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function startReplica(identity: string): Replica {
    const config = join(dir, `${identity}.json`);
    writeFileSync(config, JSON.stringify({
      clusterId: 'ha-cluster',
      logLevel: 'info',
      plugins: [
        ['meshsync:kubernetes', { kubeconfig: join(dir, 'kubeconfig'), resources: ['pods.v1.'], watchCustomResourceDefinitions: false, backoffInitialMs: 100, backoffMaxMs: 1000 }],
        ['meshsync:leader-election', { kubeconfig: join(dir, 'kubeconfig'), namespace: 'default', identity, ...LEASE }],
        ['meshsync:nats', { url: nats.url, requestSubject: '' }],
        'meshsync:redact-secrets',
      ],
      pipeline: { batchMaxWaitMs: 20 },
    }));
    const child = spawn(process.execPath, ['--conditions=source', '--import', TSX, CLI, 'run', '--config', config], {
      cwd: dir,
      env: { PATH: process.env.PATH ?? '', HOME: dir },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const replica: Replica = { identity, child, log: '', exited: new Promise((resolve) => child.on('exit', (code) => resolve(code))) };
    child.stderr!.on('data', (chunk: Buffer) => (replica.log += chunk.toString()));
    replicas.push(replica);
    return replica;
  }

  const holder = () => (sim.get(LEASE_ID, 'default', 'meshsync-leader')?.spec as { holderIdentity?: string } | undefined)?.holderIdentity;

  /** True when the consumer's view holds exactly the simulator's pods, each at its current resourceVersion. */
  function converged(consumer: ReferenceConsumer): boolean {
    const view = consumer.view('ha-cluster');
    const pods = sim.list('pods.v1.');
    if (view.size !== pods.length) return false;
    return pods.every((p) => view.get(p.metadata.uid!)?.metadata.resourceVersion === p.metadata.resourceVersion);
  }

  it('a standby takes over within the lease duration when the leader is killed, and the consumer converges', async () => {
    const consumer = new ReferenceConsumer();
    const sub = await subscriber(nats.url, SUBJECT);
    const stopFeeding = feedConsumer(sub, consumer);
    try {
      const a = startReplica('replica-a');
      await until(() => holder() === 'replica-a', 'replica-a to lead', 30_000);
      await until(() => converged(consumer), 'the first view');
      const b = startReplica('replica-b');
      await until(() => b.log.includes('initial sync complete'), 'replica-b to sync', 30_000);
      expect(b.log).to.include('standing by');
      expect(holder()).to.equal('replica-a');

      // Churn: creations, edits and deletions, before, during and after the handover.
      let n = 0;
      const churn = setInterval(() => {
        n++;
        const pods = sim.list('pods.v1.');
        if (n % 3 === 0 || pods.length === 0) sim.create('pods.v1.', pod(`churn-${n}`));
        else if (n % 3 === 1) sim.patch('pods.v1.', 'default', pods[n % pods.length].metadata.name, { metadata: { labels: { tick: String(n) } } });
        else sim.delete('pods.v1.', 'default', pods[(n * 7) % pods.length].metadata.name);
      }, 30);
      await sleep(500);
      const leaseBefore = sim.get(LEASE_ID, 'default', 'meshsync-leader')!.spec as { leaseTransitions: number };
      a.child.kill('SIGKILL');
      await a.exited;
      // Within the lease duration after the last renewal (plus a retry period to notice).
      await until(() => holder() === 'replica-b', 'replica-b to take over', (LEASE.leaseDurationSeconds + 3 * LEASE.retryPeriodSeconds) * 1000 + 2000);
      const leaseAfter = sim.get(LEASE_ID, 'default', 'meshsync-leader')!.spec as { leaseTransitions: number };
      expect(leaseAfter.leaseTransitions).to.equal(leaseBefore.leaseTransitions + 1);
      await sleep(800);
      clearInterval(churn);

      await until(() => converged(consumer), 'the consumer to converge on the simulator\'s pods', 20_000);
      expect(b.log).to.include('became the leader');
      // The new leader announced the state (no ledger here: a frame that lets the consumer drop what the old leader published and is gone).
      expect(b.log).to.match(/"reason":"leader","mode":"frame".*"msg":"state announced"/);
    } finally {
      stopFeeding();
      await sub.close();
    }
  });

  it('a leader that stops gracefully releases the lease, so the standby takes over at once', async () => {
    const a = startReplica('replica-a');
    await until(() => holder() === 'replica-a', 'replica-a to lead', 30_000);
    const b = startReplica('replica-b');
    await until(() => b.log.includes('standing by'), 'replica-b to stand by', 30_000);
    a.child.kill('SIGTERM');
    expect(await a.exited).to.equal(0);
    expect(a.log, a.log.slice(-3000)).to.include('released the lease');
    // Released: the standby needs one retry period, not a lease duration.
    await until(() => holder() === 'replica-b', 'replica-b to take over', LEASE.leaseDurationSeconds * 1000);
  });
});
