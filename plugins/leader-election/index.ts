/**
 * meshsync:leader-election — several replicas, one publisher. Replicas campaign for a Lease; a
 * standby keeps watching (its caches stay warm) but holds delivery, so only the leader publishes.
 * A new leader releases its hold; the sinks then announce the state themselves (the deliveryHeld
 * hook), so consumers learn of what the old leader could not tell them.
 */
import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { Gauge } from 'prom-client';
import { z } from 'zod';
import { definePlugin } from '../../core/index.ts';
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
  resyncWaitSeconds: z.number().nonnegative().optional().describe('Not used any more (accepted so existing configs load): a new leader\'s sinks announce the state themselves when delivery opens.'),
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

export const leaderElection = definePlugin({
  name: PLUGIN_NAME,
  description: 'Runs several replicas with one publisher: a Kubernetes Lease elects the leader; standbys keep their caches warm and hold delivery.',
  options: leaderElectionOptions,
  setup: (options) => (core) => {
    const logger = core.logger.child({ plugin: PLUGIN_NAME });
    if (options.resyncWaitSeconds !== undefined) logger.warn({ resyncWaitSeconds: options.resyncWaitSeconds }, 'resyncWaitSeconds is not used any more (a new leader\'s sinks announce the state when delivery opens): remove it from the config');
    let elector: LeaderElector | undefined;
    let client: KubeClient | undefined;
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
          // The held lanes carry every change since this replica started, but not the DELETEs of
          // objects the old leader published and this replica never saw: the sinks' announcement
          // of the state on the deliveryHeld hook tells consumers of those.
          core.holdDelivery(PLUGIN_NAME, false);
        },
        stopped: () => {
          gauge.set(0);
          core.holdDelivery(PLUGIN_NAME, true);
        },
      }, logger);
      elector.start();
    });

    core.hooks.stop.tapPromise(PLUGIN_NAME, async () => {
      await elector?.stop();
      client?.close();
    });
  },
});

export default leaderElection;
export { LeaderElector, microTime } from './elector.ts';
