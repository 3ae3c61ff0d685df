import { expect } from 'chai';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCore, type MeshSyncCore } from '../../core/core.ts';
import type { KubeObject } from '../../core/types.ts';
import kubernetes from '../../plugins/kubernetes/index.ts';
import nats from '../../plugins/nats/index.ts';
import { ReferenceConsumer, wireKey } from '../../testing/consumer.ts';
import { startSimulator, type KubeSimulator } from '../../testing/simulator/index.ts';
import { makePod } from '../../testing/simulator/demo.ts';
import { startNatsServer, subscriber, type NatsServerHandle } from '../support/nats-server.ts';

/** Two clusters, two meshsync instances, one NATS: the multi-cluster set-up of the MeshSync docs. */
describe('multi-cluster: two meshsync instances publishing into one nats-server', function () {
  this.timeout(60_000);
  let server: NatsServerHandle;
  let dir: string;
  const simulators: KubeSimulator[] = [];
  const cores: MeshSyncCore[] = [];

  before(async () => {
    server = await startNatsServer();
    dir = await mkdtemp(join(tmpdir(), 'meshsync-multi-'));
  });
  after(async () => {
    for (const core of cores) await core.stop();
    for (const sim of simulators) await sim.close();
    await server?.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  async function cluster(name: string, pods: number) {
    const sim = await startSimulator();
    simulators.push(sim);
    for (let i = 0; i < pods; i++) sim.create('pods.v1.', makePod(i, 'default'));
    const kubeconfig = join(dir, `${name}.kubeconfig`);
    await sim.writeKubeconfig(kubeconfig);
    const core = createCore({
      clusterId: name,
      batchMaxWaitMs: 5,
      plugins: [kubernetes({ kubeconfig, resources: ['pods.v1.'] }), nats({ url: server.url })],
    });
    cores.push(core);
    return { sim, core };
  }

  it('keeps each cluster apart by cluster_id, and each view equals its cluster', async () => {
    const sub = await subscriber(server.url, 'meshery.meshsync.request');
    try {
      const east = await cluster('east', 30);
      const west = await cluster('west', 20);
      await Promise.all([east.core.start(), west.core.start()]);
      await Promise.all([east.core.whenReady(), west.core.whenReady()]);
      east.sim.delete('pods.v1.', 'default', makePod(3).metadata.name);
      west.sim.create('pods.v1.', makePod(100, 'default'));

      const consumer = new ReferenceConsumer();
      let applied = 0;
      const expectedIds = (sim: KubeSimulator) => new Set(sim.list('pods.v1.').map((pod) => wireKey(pod as KubeObject)));
      await sub.waitFor((messages) => {
        for (; applied < messages.length; applied++) consumer.apply(messages[applied].data);
        const same = (a: Set<string>, b: Map<string, unknown>) => a.size === b.size && [...a].every((k) => b.has(k));
        return same(expectedIds(east.sim), consumer.view('east')) && same(expectedIds(west.sim), consumer.view('west'));
      }, 30_000);

      expect(consumer.view('east').size).to.equal(29);
      expect(consumer.view('west').size).to.equal(21);
      expect([...consumer.clusters.keys()].sort()).to.deep.equal(['east', 'west']);
      const headers = new Set(sub.messages.map((m) => m.headers?.get('Meshsync-Cluster')));
      expect([...headers].sort()).to.deep.equal(['east', 'west']);
    } finally {
      await sub.close();
    }
  });
});
