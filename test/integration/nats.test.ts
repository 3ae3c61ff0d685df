import { expect } from 'chai';
import { Writable } from 'node:stream';
import { connect, type Msg, type NatsConnection } from '@nats-io/transport-node';
import { createTestCore, DEPLOYMENT, makeObject, POD, type TestCore } from '../../core/testing/index.ts';
import { createLogger } from '../../core/log.ts';
import type { ResourceRef } from '../../core/types.ts';
import nats, { type NatsOptionsInput } from '../../plugins/nats/index.ts';
import { ReferenceConsumer, wireKey } from '../../plugins/nats/consumer.ts';
import { startNatsServer, type NatsServerHandle } from '../support/nats-server.ts';

const INGRESS: ResourceRef = Object.freeze({ group: 'networking.k8s.io', version: 'v1', resource: 'ingresses', kind: 'Ingress', namespaced: true });
const NODE: ResourceRef = Object.freeze({ group: '', version: 'v1', resource: 'nodes', kind: 'Node', namespaced: false });

/** A subscriber with the real client that records every message. */
async function subscriber(url: string, subject: string, options: Parameters<typeof connect>[0] = {}) {
  const nc = await connect({ servers: url, ...options });
  const messages: Msg[] = [];
  const waiters = new Set<() => void>();
  nc.subscribe(subject, {
    callback: (_, msg) => {
      messages.push(msg);
      for (const check of [...waiters]) check();
    },
  });
  await nc.flush();
  return {
    nc,
    messages,
    json: () => messages.map((m) => m.json<Record<string, any>>()),
    waitFor(predicate: (messages: Msg[]) => boolean, timeoutMs = 5000): Promise<void> {
      if (predicate(messages)) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`timed out with ${messages.length} messages`));
        }, timeoutMs);
        const check = () => {
          if (!predicate(messages)) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve();
        };
        waiters.add(check);
      });
    },
    close: () => nc.close(),
  };
}

function natsCore(options: NatsOptionsInput, extra: Parameters<typeof createTestCore>[0] = {}): TestCore {
  return createTestCore({ plugins: [nats({ reconnectInitialMs: 20, reconnectMaxMs: 200, ...options })], ...extra });
}

function memoryLog() {
  const lines: string[] = [];
  const destination = new Writable({ write(chunk, _, done) { lines.push(String(chunk)); done(); } });
  return { logger: createLogger({ level: 'debug', destination, pretty: false }), lines };
}

describe('nats sink (real nats-server)', function () {
  this.timeout(20_000);
  let server: NatsServerHandle;
  const cleanups: (() => Promise<unknown>)[] = [];

  beforeEach(async () => {
    server = await startNatsServer();
  });
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
    await server.dispose();
  });

  it('publishes MeshSync payloads and Meshsync-* headers to meshery.meshsync.request', async () => {
    const sub = await subscriber(server.url, 'meshery.meshsync.request');
    cleanups.push(sub.close);
    const t = natsCore({ url: server.url });
    cleanups.push(t.stop);
    await t.start();
    const pod = makeObject(POD, 'web-1', { namespace: 'shop' }, { spec: { nodeName: 'n1' } });
    t.source.emit('ADDED', POD, pod);
    t.source.emit('DELETED', DEPLOYMENT, makeObject(DEPLOYMENT, 'api'));
    await t.drain();
    await sub.waitFor((m) => m.length === 2);
    expect(sub.messages[0].string()).to.equal(`{"object":${JSON.stringify(pod)},"type":"ADDED","cluster_id":"test-cluster"}`);
    const headers = sub.messages[0].headers!;
    expect(headers.get('Meshsync-Type')).to.equal('ADDED');
    expect(headers.get('Meshsync-Resource')).to.equal('pods.v1.');
    expect(headers.get('Meshsync-Cluster')).to.equal('test-cluster');
    expect(headers.get('Meshsync-Format-Version')).to.equal('1');
    expect(sub.messages[1].json<any>().type).to.equal('DELETED');
    expect(sub.messages[1].headers!.get('Meshsync-Resource')).to.equal('deployments.v1.apps');
    expect(t.core.readiness().broker).to.equal(true);
    const metrics = await t.core.metrics.getSingleMetricAsString('meshsync_events_published_total');
    expect(metrics).to.match(/meshsync_events_published_total\{type="ADDED"\} 1/);
    expect(metrics).to.match(/meshsync_events_published_total\{type="DELETED"\} 1/);
  });

  it('renders subject templates with one token per value (dots in groups become _)', async () => {
    const sub = await subscriber(server.url, 'ms.>');
    cleanups.push(sub.close);
    const t = natsCore({ url: server.url, subject: 'ms.{cluster}.{group}.{version}.{resource}.{kind}.{namespace}.{type}' }, { clusterId: 'eu.west 1' });
    cleanups.push(t.stop);
    await t.start();
    t.source.emit('ADDED', INGRESS, makeObject(INGRESS, 'shop', { namespace: 'web' }));
    t.source.emit('MODIFIED', NODE, makeObject(NODE, 'n1'));
    t.source.emit('ADDED', POD, makeObject(POD, 'p', { namespace: 'kube-system' }));
    await t.drain();
    await sub.waitFor((m) => m.length === 3);
    expect(sub.messages.map((m) => m.subject)).to.have.members([
      'ms.eu_west_1.networking_k8s_io.v1.ingresses.Ingress.web.ADDED',
      'ms.eu_west_1.core.v1.nodes.Node._.MODIFIED',
      'ms.eu_west_1.core.v1.pods.Pod.kube-system.ADDED',
    ]);
  });

  it('holds events while the broker is down at start and delivers them once it is up', async () => {
    await server.stop();
    const t = natsCore({ url: server.url });
    cleanups.push(t.stop);
    await t.start();
    expect(t.core.readiness().broker).to.equal(false);
    for (let i = 0; i < 20; i++) t.source.emit('ADDED', POD, makeObject(POD, `p${i}`));
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(t.core.counters.sinks['meshsync:nats'].failedAttempts).to.be.greaterThan(0);
    await server.restart();
    const sub = await subscriber(server.url, 'meshery.meshsync.request');
    cleanups.push(sub.close);
    // The subscriber may come up after the first delivery: the consumer asks for the state then.
    await t.drain();
    expect(t.core.counters.sinks['meshsync:nats'].delivered).to.equal(20, 'the server confirmed every held event');
    await sub.nc.request('meshery.meshsync.control', 'resync', { timeout: 5000 });
    await sub.waitFor((m) => m.filter((x) => x.json<any>().resync_id !== undefined && x.json<any>().object).length === 20);
    expect(t.core.readiness().broker).to.equal(true);
  });
});
