/**
 * One real control plane for the whole cluster suite (mocha global fixtures): started before the
 * first test, stopped after the last. Tests import `cluster` and keep to their own namespaces.
 */
import { KubeCluster } from '../support/kube-cluster.ts';

// mocha loads this file for --require apart from the tests' imports of it (two module
// instances), so the running cluster is kept on the global object, which both see.
const slot = globalThis as { meshsyncTestCluster?: KubeCluster };

/** The running cluster (methods bound to it). */
export const cluster: KubeCluster = new Proxy({} as KubeCluster, {
  get(_, property) {
    const running = slot.meshsyncTestCluster;
    if (!running) throw new Error('the cluster suite runs with --require test/cluster/setup.ts, which starts the control plane');
    const value = Reflect.get(running, property, running);
    return typeof value === 'function' ? value.bind(running) : value;
  },
});

export async function mochaGlobalSetup(): Promise<void> {
  const started = Date.now();
  slot.meshsyncTestCluster = await KubeCluster.start();
  const { version, server } = slot.meshsyncTestCluster;
  console.log(`  real control plane ${version} at ${server}, started in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

export async function mochaGlobalTeardown(): Promise<void> {
  await slot.meshsyncTestCluster?.stop();
}
