/**
 * Changes to one collection of ConfigMaps at a steady pace, as a busy cluster makes them: creates,
 * updates and deletes, through one of the cluster's API servers. Failed writes (a server down
 * for a fault test) are counted and the churn goes on.
 */
import type { KubeCluster } from './kube-cluster.ts';
import { sleep } from './wait.ts';

export interface Churn {
  /** Ends the churn once the write in flight is done; resolves with what it did. */
  stop(): Promise<{ writes: number; failed: number }>;
}

export function startChurn(cluster: KubeCluster, collection: string, options: { server?: string; intervalMs?: number; prefix?: string } = {}): Churn {
  const { server, intervalMs = 20, prefix = 'churn' } = options;
  const names: string[] = [];
  let stopped = false;
  let writes = 0;
  let failed = 0;
  let serial = 0;
  const step = async () => {
    const roll = Math.random();
    if (names.length < 20 || roll < 0.4) {
      const name = `${prefix}-${serial++}`;
      const r = await cluster.request(collection, { server, method: 'POST', body: { metadata: { name }, data: { n: '0' } } });
      if (r.status === 201) names.push(name);
      return r.status === 201;
    }
    const index = Math.floor(Math.random() * names.length);
    if (roll < 0.8) {
      const r = await cluster.request(`${collection}/${names[index]}`, { server, method: 'PATCH', contentType: 'application/merge-patch+json', body: { data: { n: String(writes) } } });
      return r.status === 200;
    }
    const [name] = names.splice(index, 1);
    const r = await cluster.request(`${collection}/${name}`, { server, method: 'DELETE' });
    return r.status === 200;
  };
  const running = (async () => {
    while (!stopped) {
      const ok = await step().catch(() => false);
      writes++;
      if (!ok) failed++;
      await sleep(intervalMs);
    }
  })();
  return {
    async stop() {
      stopped = true;
      await running;
      return { writes, failed };
    },
  };
}
