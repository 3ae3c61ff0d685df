/**
 * meshsync:leader-election — several replicas, one publisher. Replicas campaign for a Lease; a
 * standby keeps watching (its caches stay warm) but holds delivery, so only the leader publishes.
 * A new leader releases its hold and asks the sinks for a resync, so nothing is missed in the handover.
 */
import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { Gauge } from 'prom-client';
import { z } from 'zod';
import { definePlugin, type Core } from '../../core/index.ts';
import { KubeClient, loadKubeConfig } from '../../kubernetes/index.ts';
import { LeaderElector } from './elector.ts';

export const PLUGIN_NAME = 'meshsync:leader-election';
const SERVICE_ACCOUNT_NAMESPACE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

export const leaderElectionOptions = z.object({
  leaseName: z.string().min(1).default('meshsync-leader').describe('Name of the coordination.k8s.io/v1 Lease the replicas compete for.'),
  namespace: z.string().min(1).optional().describe('Namespace of the Lease. Default: POD_NAMESPACE, then the service account\'s namespace, then `default`.'),
  identity: z.string().min(1).optional().describe('This replica\'s name in the Lease. Default: `<hostname>_<pid>` (the pod name in a cluster).'),
  leaseDurationSeconds: z.number().positive().default(15).describe('How long a lease that stopped being renewed blocks the standbys.'),
  renewDeadlineSeconds: z.number().positive().default(10).describe('How long the leader keeps trying to renew before it stands down; below leaseDurationSeconds.'),
  retryPeriodSeconds: z.number().positive().default(2).describe('How often the leader renews and the standbys try to acquire.'),
  resyncWaitSeconds: z.number().nonnegative().default(5).describe('A new leader first delivers what its lanes held, waiting up to this long, then asks the sinks for a resync.'),
  kubeconfig: z.string().optional().describe('Path of a kubeconfig file. Default: as the kubernetes plugin (KUBECONFIG, ~/.kube/config, in-cluster).'),
  context: z.string().optional().describe('The kubeconfig context to use. Default: the current context.'),
}).strict().refine((o) => o.renewDeadlineSeconds < o.leaseDurationSeconds, {
  message: 'renewDeadlineSeconds must be less than leaseDurationSeconds (a leader must stand down before its lease can be taken)',
  path: ['renewDeadlineSeconds'],
}).refine((o) => o.retryPeriodSeconds < o.renewDeadlineSeconds, {
  message: 'retryPeriodSeconds must be less than renewDeadlineSeconds',
  path: ['retryPeriodSeconds'],
});

export type LeaderElectionOptions = z.input<typeof leaderElectionOptions>;

/** The namespace the Lease lives in when none is configured. */
export function defaultLeaseNamespace(env: NodeJS.ProcessEnv = process.env): string {
  if (env.POD_NAMESPACE?.trim()) return env.POD_NAMESPACE.trim();
  if (existsSync(SERVICE_ACCOUNT_NAMESPACE)) return readFileSync(SERVICE_ACCOUNT_NAMESPACE, 'utf8').trim();
  return 'default';
}

/** Resolves once no lane holds or delivers anything, or after `maxMs`. */
async function lanesIdle(core: Core, maxMs: number, signal: AbortSignal): Promise<void> {
  const deadline = Date.now() + maxMs;
  while (Date.now() < deadline && !signal.aborted) {
    if (core.state.lanes().every((lane) => lane.pending === 0 && lane.inFlight === 0)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export const leaderElection = definePlugin({
  name: PLUGIN_NAME,
  description: 'Runs several replicas with one publisher: a Kubernetes Lease elects the leader; standbys keep their caches warm and hold delivery.',
  options: leaderElectionOptions,
  setup: (options) => (core) => {
    const logger = core.logger.child({ plugin: PLUGIN_NAME });
    let elector: LeaderElector | undefined;
    let client: KubeClient | undefined;
    let term = new AbortController();
    const gauge = new Gauge({ name: 'meshsync_leader', help: '1 while this replica is the leader (publishes), 0 while it stands by.', registers: [core.metrics] });
    gauge.set(0);
    // Until this replica holds the lease, nothing leaves: the lanes are created held.
    core.holdDelivery(PLUGIN_NAME, true);

    core.hooks.start.tapPromise(PLUGIN_NAME, async () => {
      client = new KubeClient(loadKubeConfig(options));
      elector = new LeaderElector(client, {
        leaseName: options.leaseName,
        namespace: options.namespace ?? defaultLeaseNamespace(),
        identity: options.identity ?? `${hostname()}_${process.pid}`,
        leaseDurationMs: options.leaseDurationSeconds * 1000,
        renewDeadlineMs: options.renewDeadlineSeconds * 1000,
        retryPeriodMs: options.retryPeriodSeconds * 1000,
      }, {
        started: () => {
          gauge.set(1);
          term = new AbortController();
          const signal = term.signal;
          core.holdDelivery(PLUGIN_NAME, false);
          // The held lanes carry every change since this replica started, but not the DELETEs of
          // objects the old leader published and this replica never saw; the resync frame lets
          // consumers drop those. Delivering the held events first keeps the frame complete.
          void lanesIdle(core, options.resyncWaitSeconds * 1000, signal).then(() => {
            if (!signal.aborted) core.requestResync('leader-elected');
          });
        },
        stopped: () => {
          gauge.set(0);
          term.abort();
          core.holdDelivery(PLUGIN_NAME, true);
        },
      }, logger);
      elector.start();
    });

    core.hooks.stop.tapPromise(PLUGIN_NAME, async () => {
      term.abort();
      await elector?.stop();
      client?.close();
    });
  },
});

export default leaderElection;
export { LeaderElector, microTime } from './elector.ts';
