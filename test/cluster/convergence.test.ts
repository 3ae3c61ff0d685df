/**
 * Chaos against the real control plane: meshsync killed, replaced by a new leader, stopped with the
 * broker down, or the broker restarted, all during churn. Two consumers read the event subject from
 * the first event to the last: a plain one (applies events in order, knows no framing, as Meshery
 * and the seed's do) and a framed one (the ReferenceConsumer of PROTOCOL.md). Each case ends with
 * both views equal to the API server's (no object missing, extra or stale) and no resourceVersion
 * that went backwards at either. Without JetStream on the broker there is no ledger: only the framed
 * consumer is promised to converge, and the plain one's ghosts are exactly objects deleted while
 * no meshsync published (what the README's table says).
 */
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstream, jetstreamManager, StorageType } from '@nats-io/jetstream';
import type { KubeObject } from '../../core/index.ts';
import { ReferenceConsumer } from '../../testing/consumer.ts';
import { compareWithCluster, PlainConsumer, RegressionTracker, summarize, type ConvergenceReport, type Regression } from '../support/convergence.ts';
import { startChurn } from '../support/kube-churn.ts';
import { startMeshsync, type MeshsyncProcess } from '../support/meshsync-process.ts';
import { startNatsServer, subscriber, type NatsServerHandle } from '../support/nats-server.ts';
import { sleep, untilAsync } from '../support/wait.ts';
import { cluster } from './setup.ts';

/** Each case has a namespace of its own, so each meshsync lists only that case's ConfigMaps. */
const namespaceOf = (prefix: string) => `chaos-${prefix}`;
const collectionOf = (prefix: string) => `/api/v1/namespaces/${namespaceOf(prefix)}/configmaps`;
const SUBJECT = 'meshery.meshsync.request';
const CONTROL = 'meshery.meshsync.control';
const CLUSTER_ID = 'chaos';
/** Short leases, so a killed leader is replaced in seconds (the default 15 s is measured in leader-election.test.ts). */
const LEASE = { leaseDurationSeconds: 3, renewDeadlineSeconds: 2, retryPeriodSeconds: 0.5 };
/** ~100 changes a second through one API server (creates, patches, deletes). */
const CHURN_INTERVAL_MS = 5;
/** ConfigMaps each case starts with, which the churn leaves alone: most of a real cluster does not change. */
const SEEDED = 150;
/** ConfigMaps the consumers hold that each case deletes while nothing is published. */
const DELETED_WHILE_DOWN = 25;

/** How the broker is set up: no JetStream (no ledger), JetStream on the server with core NATS publishing, JetStream publishing. */
type Broker = 'core' | 'core+ledger' | 'jetstream';
const BROKERS: readonly Broker[] = ['core', 'core+ledger', 'jetstream'];

/** The framed consumer: the ReferenceConsumer, and a regression tracker over the same messages; it asks for a resync whenever it (re)connects, as PROTOCOL.md says. */
class FramedConsumer {
  readonly reference = new ReferenceConsumer();
  readonly tracker = new RegressionTracker();

  apply(payload: Uint8Array): void {
    this.reference.apply(payload);
    const message = JSON.parse(new TextDecoder().decode(payload)) as { object?: KubeObject };
    if (message.object?.metadata) this.tracker.observe(message.object);
  }

  get view(): Iterable<KubeObject> {
    return this.reference.view(CLUSTER_ID).values();
  }
}

describe('convergence under chaos: restart, failover, shutdown with the broker down, broker restart (real control plane)', function () {
  this.timeout(180_000);
  let dir: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'meshsync-chaos-'));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  /** One case's broker, consumers and meshsync processes. */
  async function setUp(broker: Broker, prefix: string) {
    const ns = namespaceOf(prefix);
    await cluster.apply([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }]);
    await cluster.createMany(collectionOf(prefix), Array.from({ length: SEEDED }, (_, i) => ({ metadata: { name: `seed-${i}` }, data: { n: String(i) } })));
    const closers: (() => Promise<unknown>)[] = [() => cluster.request(`/api/v1/namespaces/${ns}`, { method: 'DELETE' })];
    const nats = await startNatsServer({ jetstream: broker !== 'core' });
    const sub = await subscriber(nats.url, SUBJECT, { reconnectTimeWait: 20, reconnectJitter: 0, maxReconnectAttempts: -1 });
    const plain = new PlainConsumer();
    const framed = new FramedConsumer();
    const stream = `CHAOS_${prefix.replace(/\W/g, '_')}`;
    // With JetStream publishing the plain consumer reads the stream (what it is for: nothing is
    // lost while the consumer or the broker is away); otherwise the subject, as Meshery does.
    const plainMessages: { data: Uint8Array }[] = broker === 'jetstream' ? [] : sub.messages;
    let streamReader: Promise<void> | undefined;
    if (broker === 'jetstream') {
      const jsm = await jetstreamManager(sub.nc);
      await jsm.streams.add({ name: stream, subjects: [SUBJECT], storage: StorageType.File });
      // Short pulls: after a broker restart the reader notices the lost pull in seconds, not 30.
      const messages = await (await jetstream(sub.nc).consumers.get(stream)).consume({ expires: 2000 });
      streamReader = (async () => {
        for await (const message of messages) plainMessages.push({ data: message.data });
      })().catch(() => undefined);
      closers.push(() => messages.close());
    }
    let applied = 0;
    let appliedPlain = 0;
    const feed = setInterval(() => {
      for (; applied < sub.messages.length; applied++) framed.apply(sub.messages[applied].data);
      for (; appliedPlain < plainMessages.length; appliedPlain++) plain.apply(plainMessages[appliedPlain].data);
    }, 10);
    const askForResync = async () => {
      for (let i = 0; i < 100; i++) {
        try {
          await sub.nc.request(CONTROL, 'resync', { timeout: 2000 });
          return;
        } catch {
          await sleep(200);
        }
      }
    };
    void (async () => {
      for await (const status of sub.nc.status()) if (status.type === 'reconnect') void askForResync();
    })();
    const processes: MeshsyncProcess[] = [];
    const start = (identity?: string) => {
      const replica = startMeshsync({
        dir,
        config: {
          clusterId: CLUSTER_ID,
          stopTimeoutMs: 1000,
          plugins: [
            ['meshsync:kubernetes', { resources: ['configmaps.v1.'], namespaces: { include: [ns] }, watchCustomResourceDefinitions: false, backoffInitialMs: 200, backoffMaxMs: 1000 }],
            ...(identity === undefined ? [] : [['meshsync:leader-election', { namespace: ns, leaseName: `lease-${prefix}`, identity, ...LEASE }]]),
            ['meshsync:nats', {
              url: nats.url, reconnectInitialMs: 100, reconnectMaxMs: 1000,
              ...(broker === 'jetstream' ? { jetstream: { stream } } : {}),
            }],
          ],
          pipeline: { batchMaxWaitMs: 20 },
        },
        env: { KUBECONFIG: cluster.meshsyncKubeconfig },
      });
      processes.push(replica);
      return replica;
    };
    const report = async (consumer: { view: Iterable<KubeObject> }, regressions: readonly Regression[]): Promise<ConvergenceReport> => {
      const truth = await cluster.listAll(collectionOf(prefix));
      const ours = (object: KubeObject) => object.metadata.namespace === ns;
      return compareWithCluster(consumer.view, truth, { include: ours, regressions });
    };
    return {
      nats, sub, plain, framed, start,
      churn: () => startChurn(cluster, collectionOf(prefix), { intervalMs: CHURN_INTERVAL_MS, prefix }),
      plainReport: () => report({ view: plain.view.values() }, plain.regressions),
      framedReport: () => report(framed, framed.tracker.regressions),
      async dispose() {
        clearInterval(feed);
        for (const replica of processes) await replica.kill();
        for (const close of closers) await close().catch(() => undefined);
        await streamReader;
        await sub.close();
        await nats.dispose();
      },
    };
  }
  type Case = Awaited<ReturnType<typeof setUp>>;

  /**
   * What the plain consumer is promised: to converge, or (no ledger) to keep as ghosts only objects
   * it held when publishing stopped, and all of those deleted meanwhile, or (core NATS across a
   * broker restart, which drops what is published while a subscriber is away) to miss nothing
   * current.
   */
  type PlainPromise = 'converges' | { heldWhenStopped: ReadonlySet<string>; deletedMeanwhile: readonly string[] } | 'nothing current missing';

  /** Waits for the consumers to converge, then asserts all four counts (the plain one's as promised). */
  async function expectConverged(c: Case, promise: PlainPromise): Promise<void> {
    let framed: ConvergenceReport | undefined;
    let plain: ConvergenceReport | undefined;
    await untilAsync(async () => {
      framed = await c.framedReport();
      plain = await c.plainReport();
      return framed.converged && (promise !== 'converges' || plain.converged);
    }, 'the consumers to converge', 60_000, 500).catch(() => undefined);
    const clean = (report: ConvergenceReport) => summarize({ ...report, missing: [], extra: [], stale: [], regressions: [] });
    expect(summarize(framed!), 'framed consumer').to.equal(clean(framed!));
    if (promise === 'converges') {
      expect(summarize(plain!), 'plain consumer').to.equal(clean(plain!));
      return;
    }
    expect(plain!.missing, 'plain consumer: missing').to.deep.equal([]);
    expect(plain!.stale, 'plain consumer: stale').to.deep.equal([]);
    if (promise === 'nothing current missing') return;
    expect(plain!.regressions, 'plain consumer: regressions').to.deep.equal([]);
    const ghosts = plain!.extra.map((line) => /\/(\S+) \(/.exec(line)?.[1] ?? line);
    for (const ghost of ghosts) expect(promise.heldWhenStopped.has(ghost), `ghost ${ghost} was held when publishing stopped`).to.equal(true);
    expect(ghosts, 'the plain consumer keeps what was deleted while nothing was published').to.include.members([...promise.deletedMeanwhile]);
  }

  /** The names of this case's ConfigMaps now. */
  const names = async (prefix: string) => new Set((await cluster.listAll(collectionOf(prefix))).map((o) => o.metadata.name as string));
  /** The names the plain consumer holds once what was published reached it. */
  const held = async (c: Case) => {
    await sleep(300);
    return new Set([...c.plain.view.values()].map((object) => object.metadata.name));
  };
  /** Deletes DELETED_WHILE_DOWN of the case's ConfigMaps that the consumers hold; returns their names. */
  const deleteSome = async (prefix: string, heldNames: ReadonlySet<string>) => {
    const doomed = [...await names(prefix)].filter((name) => heldNames.has(name));
    const chosen = doomed.slice(0, DELETED_WHILE_DOWN);
    await Promise.all(chosen.map((name) => cluster.request(`${collectionOf(prefix)}/${name}`, { method: 'DELETE' })));
    return chosen;
  };
  const promiseAfterOutage = (broker: Broker, heldWhenStopped: ReadonlySet<string>, deletedMeanwhile: readonly string[]): PlainPromise =>
    broker === 'core' ? { heldWhenStopped, deletedMeanwhile } : 'converges';
  const tag = (broker: Broker) => broker.replace('+', '-');
  const summary = (announced: Record<string, any>) => JSON.stringify({ mode: announced.mode, unchanged: announced.unchanged, changed: announced.changed, added: announced.added, gone: announced.gone, count: announced.count, ms: announced.ms });

  for (const broker of BROKERS) {
    it(`SIGKILL during churn, deletions while down, restart: both consumers converge (${broker})`, async () => {
      const prefix = `kill-${tag(broker)}`;
      const c = await setUp(broker, prefix);
      try {
        const first = c.start();
        await first.waitForLog(/state announced/);
        let churn = c.churn();
        await sleep(2000);
        await first.kill();
        const heldAtKill = await held(c);
        await sleep(700);
        await churn.stop();
        const doomed = await deleteSome(prefix, heldAtKill);
        churn = c.churn();
        await sleep(1000);
        const second = c.start();
        const announced = await second.waitForLog(/state announced/);
        await sleep(1500);
        await churn.stop();
        await expectConverged(c, promiseAfterOutage(broker, heldAtKill, doomed));
        expect(announced.mode).to.equal(broker === 'core' ? 'frame' : 'ledger');
        if (broker !== 'core') {
          expect(announced.gone, 'a DELETED for each object deleted while down').to.be.at.least(doomed.length);
          // No full resend: the seeded objects nobody touched went out again for nobody.
          expect(announced.unchanged, 'unchanged objects not resent').to.be.at.least(SEEDED - DELETED_WHILE_DOWN - 10);
        }
        console.log(`      (restart: ${summary(announced)})`);
      } finally {
        await c.dispose();
      }
    });

    it(`leader killed during churn, deletions before the standby takes over: both consumers converge (${broker})`, async () => {
      const prefix = `lead-${tag(broker)}`;
      const c = await setUp(broker, prefix);
      try {
        const a = c.start('replica-a');
        await a.waitForLog(/state announced/);
        const b = c.start('replica-b');
        await b.waitForLog(/standing by/);
        const churn = c.churn();
        await sleep(2000);
        await a.kill();
        const killedAt = Date.now();
        const heldAtKill = await held(c);
        const doomed = await deleteSome(prefix, heldAtKill);
        await b.waitForLog(/became the leader/, 30_000);
        const takeoverSeconds = (Date.now() - killedAt) / 1000;
        const announced = await b.waitForLog(/state announced/);
        await sleep(1500);
        await churn.stop();
        await expectConverged(c, promiseAfterOutage(broker, heldAtKill, doomed));
        expect(announced.reason).to.equal('leader');
        // The standby counts the lease from when it last saw it renewed: within a lease duration
        // and two retry periods, with slack for a loaded 2-core machine.
        expect(takeoverSeconds).to.be.below(LEASE.leaseDurationSeconds + 2 * LEASE.retryPeriodSeconds + 3);
        const announcedSeconds = (Number(announced.time) - killedAt) / 1000;
        console.log(`      (leader killed: the standby led after ${takeoverSeconds.toFixed(1)} s (a ${LEASE.leaseDurationSeconds} s lease), had announced the state after ${announcedSeconds.toFixed(1)} s; ${summary(announced)})`);
      } finally {
        await c.dispose();
      }
    });

    it(`SIGTERM with the broker down, deletions, broker and meshsync back: both consumers converge (${broker})`, async () => {
      const prefix = `term-${tag(broker)}`;
      const c = await setUp(broker, prefix);
      try {
        const first = c.start();
        await first.waitForLog(/state announced/);
        let churn = c.churn();
        await sleep(1500);
        await c.nats.stop();
        const heldWhenDown = await held(c);
        await sleep(700);
        const stoppingAt = Date.now();
        const code = await first.stop();
        const stopSeconds = (Date.now() - stoppingAt) / 1000;
        await churn.stop();
        const doomed = await deleteSome(prefix, heldWhenDown);
        churn = c.churn();
        await c.nats.restart();
        const second = c.start();
        const announced = await second.waitForLog(/state announced/);
        await sleep(1500);
        await churn.stop();
        await expectConverged(c, promiseAfterOutage(broker, heldWhenDown, doomed));
        if (broker !== 'core') {
          // What the stop could not deliver was not lost: the ledger's diff sent it, and no more.
          expect(announced.gone).to.be.at.least(doomed.length);
          expect(announced.unchanged, 'unchanged objects not resent').to.be.at.least(SEEDED - DELETED_WHILE_DOWN - 10);
        }
        console.log(`      (stop with the broker down: exit ${code} after ${stopSeconds.toFixed(1)} s; restart: ${summary(announced)})`);
      } finally {
        await c.dispose();
      }
    });

    it(`broker restarted during churn: both consumers converge (${broker})`, async () => {
      const prefix = `nats-${tag(broker)}`;
      const c = await setUp(broker, prefix);
      try {
        const first = c.start();
        await first.waitForLog(/state announced/);
        const churn = c.churn();
        await sleep(1500);
        await c.nats.restart();
        await sleep(2000);
        await churn.stop();
        // Core NATS drops what is published while a subscriber is away (here: reconnecting), so
        // only a consumer that reads a stream (JetStream publishing) or applies framing is promised.
        await expectConverged(c, broker === 'jetstream' ? 'converges' : 'nothing current missing');
        expect(first.logs().some((line) => line.msg === 'resync published' && line.reason === 'reconnect'), 'a resync after the reconnect').to.equal(true);
      } finally {
        await c.dispose();
      }
    });
  }
});
