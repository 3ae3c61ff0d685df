/**
 * meshsync:meshsync-resource — MeshSync's in-cluster configuration: reads the MeshSync custom
 * resource (`meshsyncs.meshery.io/v1alpha1`), the `meshery-meshsync-config` ConfigMap and the files
 * mounted at /config, applies their watch-list live (core.reconfigure), and reports on the CR's
 * status subresource whether meshsync runs and where it publishes.
 */
import { z } from 'zod';
import { ConfigError, definePlugin, redactUrlCredentials, resourceId, type Core, type KubeObject, type ResourceRef } from '../../core/index.ts';
import { collectionPath, KubeClient, KubeRequestError, loadKubeConfig, Reflector, type ReflectorTiming } from '../../kubernetes/index.ts';
import { brokerSpecOf, resolveBroker, type ResolveContext } from './broker.ts';
import {
  configFilesLayer, configMapLayer, customResourceLayer, environmentLayer, nextCondition, publishingTo, resolve,
  type Condition, type LayerName, type Layers, type LegacyWatchList,
} from './settings.ts';

export const PLUGIN_NAME = 'meshsync:meshsync-resource';

export const MESHSYNC_RESOURCE: ResourceRef = Object.freeze({ group: 'meshery.io', version: 'v1alpha1', resource: 'meshsyncs', kind: 'MeshSync', namespaced: true });
const CONFIGMAP_RESOURCE: ResourceRef = Object.freeze({ group: '', version: 'v1', resource: 'configmaps', kind: 'ConfigMap', namespaced: true });

export const meshsyncResourceOptions = z.object({
  name: z.string().min(1).default('meshery-meshsync').describe('Name of the MeshSync custom resource.'),
  namespace: z.string().min(1).default(() => process.env.POD_NAMESPACE?.trim() || 'meshery')
    .describe('Namespace of the MeshSync custom resource and of the ConfigMap. Default: meshsync\'s own (POD_NAMESPACE, set by `meshsync install`), else `meshery`.'),
  configMap: z.string().min(1).default('meshery-meshsync-config').describe('ConfigMap with `whitelist` / `blacklist` keys (MeshSync\'s legacy JSON strings); used when the CR names no watch-list.'),
  configDir: z.string().min(1).default('/config').describe('Directory of mounted files `whitelist` / `blacklist` (a mounted ConfigMap); used when neither the CR nor the ConfigMap names a watch-list.'),
  watch: z.boolean().default(true).describe('Watch the CR and the ConfigMap and apply edits without a restart.'),
  writeStatus: z.boolean().default(true).describe('Write `status.conditions` (Ready) and `status.publishing-to` on the CR\'s status subresource.'),
  statusIntervalSeconds: z.number().positive().default(10).describe('How often the Ready condition is re-evaluated (it is written only when it changed).'),
  initialReadTimeoutSeconds: z.number().positive().default(10).describe('How long start-up waits for the first read of the CR and the ConfigMap before going on without them (the watch picks them up later).'),
  kubeconfig: z.string().optional().describe('Path of a kubeconfig file. Default: as the kubernetes plugin (KUBECONFIG, ~/.kube/config, in-cluster).'),
  context: z.string().optional().describe('The kubeconfig context to use. Default: the current context.'),
}).strict();

export type MeshsyncResourceOptions = z.input<typeof meshsyncResourceOptions>;

const WATCH_TIMING: ReflectorTiming = { pageSize: 50, minWatchTimeoutSeconds: 300, watchSilenceTimeoutMs: 0, watchHoldMaxMs: 0, backoffInitialMs: 800, backoffMaxMs: 30_000 };

/** Every problem of a rejected reconfigure, one per line part, without the plugin-error prefix. */
export function rejectionMessage(error: unknown): string {
  let cause: unknown = error;
  while (cause instanceof Error && !(cause instanceof ConfigError) && cause.cause !== undefined) cause = cause.cause;
  if (cause instanceof ConfigError) return cause.problems.map((problem) => `${problem.path}: ${problem.message}`).join('; ');
  return error instanceof Error ? error.message : String(error);
}

/** Whether the API server serves meshsyncs.meshery.io (its CRD installed); an answer other than 404 counts as yes (the read then says what is wrong). */
export async function meshSyncCrdServed(client: KubeClient, signal?: AbortSignal): Promise<boolean> {
  try {
    const list = await client.get<{ resources?: { name: string }[] }>(`/apis/${MESHSYNC_RESOURCE.group}/${MESHSYNC_RESOURCE.version}`, { signal });
    return (list.resources ?? []).some((resource) => resource.name === MESHSYNC_RESOURCE.resource);
  } catch (error) {
    return !(error instanceof KubeRequestError && error.reason === 'not-found');
  }
}

/**
 * The broker URL the MeshSync resource names, read once (for the CLI's defaults: NATS when there is
 * one, else stdout). Undefined, quietly, when there is no cluster to ask, no CRD, no CR, no broker.
 */
export async function readResourceBroker(input: MeshsyncResourceOptions, env: NodeJS.ProcessEnv = process.env, timeoutMs = 5000): Promise<string | undefined> {
  const options = meshsyncResourceOptions.parse(input);
  let client: KubeClient | undefined;
  try {
    const kc = loadKubeConfig(options, env);
    client = new KubeClient(kc);
    const signal = AbortSignal.timeout(timeoutMs);
    if (!(await meshSyncCrdServed(client, signal))) return undefined;
    const cr = await client.get<KubeObject>(`${collectionPath(MESHSYNC_RESOURCE, options.namespace)}/${encodeURIComponent(options.name)}`, { signal });
    const spec = brokerSpecOf(cr);
    return spec === undefined ? undefined : (await resolveBroker(spec, { client, inPod: Boolean(env.KUBERNETES_SERVICE_HOST), apiServer: kc.getCurrentCluster()?.server, signal })).url;
  } catch {
    return undefined; // the plugin reads it again at start, and says what is wrong
  } finally {
    client?.close();
  }
}

class MeshSyncResource {
  private client!: KubeClient;
  private readonly layers: Layers = {};
  private cr: KubeObject | undefined;
  private lastWatchList = 'null';
  private rejected: { from: LayerName; message: string } | undefined;
  private appliedFrom: LayerName | undefined;
  private broker: string | undefined;
  private resolveContext!: ResolveContext;
  /** Counts CR versions seen, so a slow broker resolution never overwrites a newer CR's layer. */
  private crVersion = 0;
  private readonly reflectors: Reflector[] = [];
  private readonly abort = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private writing = false;
  private writeAgain = false;
  private started = false;

  constructor(private readonly core: Core, private readonly options: z.output<typeof meshsyncResourceOptions>, private readonly logger = core.logger.child({ plugin: PLUGIN_NAME })) {}

  private get crPath(): string {
    return `${collectionPath(MESHSYNC_RESOURCE, this.options.namespace)}/${encodeURIComponent(this.options.name)}`;
  }

  private get configMapPath(): string {
    return `${collectionPath(CONFIGMAP_RESOURCE, this.options.namespace)}/${encodeURIComponent(this.options.configMap)}`;
  }

  /**
   * Reads every layer once and applies them before the sources start (so their first selection is
   * right). In a cluster or through a kubeconfig alike; without the MeshSync CRD, the CR is skipped
   * (one info line), the ConfigMap and /config still apply.
   */
  async start(): Promise<void> {
    const kc = loadKubeConfig(this.options);
    this.client = new KubeClient(kc);
    this.resolveContext = { client: this.client, inPod: Boolean(process.env.KUBERNETES_SERVICE_HOST), apiServer: kc.getCurrentCluster()?.server, signal: this.abort.signal };
    this.layers.environment = environmentLayer(process.env);
    this.layers['config-files'] = configFilesLayer(this.options.configDir);
    const signal = AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.options.initialReadTimeoutSeconds * 1000)]);
    const crdServed = await meshSyncCrdServed(this.client, signal);
    if (!crdServed) this.logger.info({ crd: `${MESHSYNC_RESOURCE.resource}.${MESHSYNC_RESOURCE.group}` }, 'the MeshSync CRD is not installed: no custom resource to read (its ConfigMap and /config still apply; install the CRD and restart to use one)');
    const [cr, cm] = await Promise.all([
      crdServed ? this.read(this.crPath, 'the MeshSync custom resource', signal) : undefined,
      this.read(this.configMapPath, `ConfigMap ${this.options.configMap}`, signal),
    ]);
    this.cr = cr;
    this.layers['custom-resource'] = customResourceLayer(cr, await this.brokerOf(cr, ++this.crVersion));
    this.layers.configmap = configMapLayer(cm);
    if (this.core.hooks.reconfigure.taps.length === 0) {
      this.logger.warn('no plugin applies live settings (add meshsync:watch-list): the watch-list of the MeshSync resource is ignored');
    }
    this.apply();
    this.started = true;
    if (this.options.watch) {
      if (crdServed) {
        this.watch(MESHSYNC_RESOURCE, this.options.name, (type, object) => {
          const sameBroker = JSON.stringify(brokerSpecOf(this.cr)) === JSON.stringify(brokerSpecOf(type === 'DELETED' ? undefined : object));
          this.cr = type === 'DELETED' ? undefined : object;
          const cr = this.cr;
          // The watch-list applies at once; a changed broker once resolved (it is used at start only, a change logs that a restart is needed).
          this.layers['custom-resource'] = customResourceLayer(cr, this.layers['custom-resource']?.broker);
          if (sameBroker && this.layers['custom-resource']?.broker !== undefined) return;
          const version = ++this.crVersion;
          void this.brokerOf(cr, version).then((broker) => {
            if (version !== this.crVersion || this.abort.signal.aborted) return;
            this.layers['custom-resource'] = customResourceLayer(cr, broker);
            this.apply();
          });
        });
      }
      this.watch(CONFIGMAP_RESOURCE, this.options.configMap, (type, object) => {
        this.layers.configmap = configMapLayer(type === 'DELETED' ? undefined : object);
      });
    }
    if (this.options.writeStatus) this.timer = setInterval(() => this.updateStatus(), this.options.statusIntervalSeconds * 1000).unref();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    clearInterval(this.timer);
    await Promise.all(this.reflectors.map((reflector) => reflector.stop()));
    this.client?.close();
  }

  private async read(path: string, what: string, signal: AbortSignal): Promise<KubeObject | undefined> {
    try {
      return await this.client.get<KubeObject>(path, { signal });
    } catch (error) {
      if (error instanceof KubeRequestError && error.reason === 'not-found') return undefined;
      this.logger.warn({ err: (error as Error).message }, `cannot read ${what} at start; going on without it (the watch picks it up later)`);
      return undefined;
    }
  }

  /** The URL the CR's spec.broker resolves to (broker.ts); a native broker that cannot be resolved is logged and left out. */
  private async brokerOf(cr: KubeObject | undefined, version: number): Promise<string | undefined> {
    const spec = brokerSpecOf(cr);
    if (spec === undefined) return undefined;
    const resolution = await resolveBroker(spec, this.resolveContext);
    if (version !== this.crVersion) return resolution.url;
    if (resolution.url === undefined) this.logger.warn({ broker: spec }, `the broker of the MeshSync resource is not used: ${resolution.problem}`);
    else if ('native' in spec) this.logger.info({ broker: redactUrlCredentials(resolution.url), native: spec.native, via: resolution.via }, 'native broker of the MeshSync resource resolved');
    return resolution.url;
  }

  private watch(resource: ResourceRef, name: string, changed: (type: string, object: KubeObject) => void): void {
    let warned = false;
    const reflector = new Reflector(this.client, resource, { namespace: this.options.namespace, fieldSelector: `metadata.name=${name}` }, WATCH_TIMING, {
      emit: (type, object) => {
        changed(type, object);
        this.apply();
      },
      listed: () => {},
      failed: (error) => {
        if (error.reason === 'gone' || error.reason === 'stalled' || warned) return;
        warned = true; // once: a missing CRD or RBAC rule would otherwise log every retry
        this.logger.warn({ resource: resourceId(resource), err: error.message }, `cannot watch ${resource.kind} ${this.options.namespace}/${name}; retrying`);
      },
      watchRestarted: () => {},
      relisted: () => {},
      malformedLine: () => {},
    });
    this.reflectors.push(reflector);
    reflector.start(this.abort.signal);
  }

  /** Applies what the layers resolve to now; a change the watch-list rejects leaves the last good one in force. */
  private apply(): void {
    const resolved = resolve(this.layers);
    const watchList = JSON.stringify(resolved.watchList ?? null);
    if (watchList !== this.lastWatchList) {
      this.lastWatchList = watchList;
      if (resolved.watchList !== undefined) this.reconfigure(resolved.watchList, resolved.watchListFrom!);
      else if (this.appliedFrom !== undefined || this.rejected !== undefined) {
        this.rejected = undefined;
        this.logger.warn({ previous: this.appliedFrom }, 'no longer any watch-list in the MeshSync resource, the ConfigMap or /config: the one last applied stays in force until a restart');
      }
    }
    if (resolved.broker !== this.broker) {
      this.broker = resolved.broker;
      // BROKER_URL is applied by the nats plugin itself; a broker named by the resource is handed
      // over (before the first connect it is used, later the nats plugin says a restart is needed).
      if (resolved.broker !== undefined && resolved.brokerFrom !== 'environment') {
        try {
          this.core.reconfigure({ broker: resolved.broker });
        } catch (error) {
          this.logger.warn({ err: (error as Error).message }, 'the broker of the MeshSync resource was not applied');
        }
      }
    }
    this.updateStatus();
  }

  private reconfigure(watchList: LegacyWatchList, from: LayerName): void {
    try {
      this.core.reconfigure({ watchList: { ...watchList } });
      this.rejected = undefined;
      this.appliedFrom = from;
      this.logger.info({ from, ...watchList }, 'watch-list applied');
    } catch (error) {
      const message = rejectionMessage(error);
      this.rejected = { from, message };
      this.logger.error({ from, problems: message, code: 'MESHSYNC_CONFIG_INVALID' }, `watch-list from the ${from} rejected; the previous one stays in force: ${message}`);
    }
  }

  private condition(): Omit<Condition, 'lastTransitionTime'> {
    const readiness = this.core.readiness();
    const generation = typeof this.cr?.metadata.generation === 'number' ? { observedGeneration: this.cr.metadata.generation } : {};
    const base = { type: 'Ready', ...generation };
    const target = publishingTo(resolve(this.layers));
    if (this.rejected) {
      return { ...base, status: 'False', reason: 'InvalidWatchList', message: `watch-list from the ${this.rejected.from} rejected (the previous one stays in force): ${this.rejected.message}` };
    }
    if (readiness.broker === false) return { ...base, status: 'False', reason: 'BrokerUnreachable', message: `cannot reach the broker${target ? ` at ${target}` : ''}; events are held until it is back` };
    if (!readiness.synced) return { ...base, status: 'False', reason: 'InitialSync', message: 'listing the cluster' };
    return { ...base, status: 'True', reason: 'MeshSyncRunning', message: `meshsync is running${target ? `, publishing to ${target}` : ''}` };
  }

  /** Degraded=True while some resource cannot be read (RBAC 403): the others keep syncing. */
  private degraded(): Omit<Condition, 'lastTransitionTime'> {
    const unreadable = this.core.state.unreadableResources();
    const generation = typeof this.cr?.metadata.generation === 'number' ? { observedGeneration: this.cr.metadata.generation } : {};
    const ids = Object.keys(unreadable).sort();
    if (ids.length === 0) return { type: 'Degraded', status: 'False', reason: 'AllResourcesReadable', message: 'every watched resource is listed and watched', ...generation };
    return { type: 'Degraded', status: 'True', reason: 'Forbidden', message: `cannot read ${ids.length} resource(s), the others keep syncing: ${ids.map((id) => unreadable[id]).join('; ')}`, ...generation };
  }

  /** Writes status.conditions and status.publishing-to when they differ from what the CR shows. */
  updateStatus(): void {
    if (!this.options.writeStatus || !this.started || this.cr === undefined || this.abort.signal.aborted) return;
    if (this.writing) {
      this.writeAgain = true;
      return;
    }
    const current = (this.cr.status ?? {}) as { conditions?: Condition[]; 'publishing-to'?: string };
    const now = new Date();
    const ready = nextCondition(current.conditions, this.condition(), now);
    const degraded = nextCondition(current.conditions, this.degraded(), now);
    const conditions = [ready, degraded, ...(current.conditions ?? []).filter((condition) => condition.type !== 'Ready' && condition.type !== 'Degraded')];
    const status = { ...current, 'publishing-to': publishingTo(resolve(this.layers)), conditions };
    if (JSON.stringify(status) === JSON.stringify(current)) return;
    this.writing = true;
    this.client.send<KubeObject>('PATCH', `${this.crPath}/status`, { status }, { contentType: 'application/merge-patch+json', signal: this.abort.signal })
      .then((updated) => {
        if (this.cr !== undefined) this.cr = updated;
        for (const condition of [ready, degraded]) {
          if (condition.status !== current.conditions?.find((c) => c.type === condition.type)?.status) this.logger.info({ status: condition.status, reason: condition.reason }, `MeshSync status: ${condition.type} condition changed`);
        }
      })
      .catch((error) => {
        if (!this.abort.signal.aborted) this.logger.warn({ err: (error as Error).message }, 'cannot write the MeshSync status (RBAC needs update/patch on meshsyncs/status); retrying later');
      })
      .finally(() => {
        this.writing = false;
        if (this.writeAgain) {
          this.writeAgain = false;
          this.updateStatus();
        }
      });
  }
}

export const meshsyncResource = definePlugin({
  name: PLUGIN_NAME,
  description: 'Reads the MeshSync custom resource, its ConfigMap and /config files; applies watch-list edits live and reports status on the CR.',
  options: meshsyncResourceOptions,
  setup: (options) => (core) => {
    const resource = new MeshSyncResource(core, options);
    // First among the start taps: the resource's broker must be known before a sink connects.
    core.hooks.start.tapPromise({ name: PLUGIN_NAME, stage: -100 }, () => resource.start());
    core.hooks.ready.tap(PLUGIN_NAME, () => resource.updateStatus());
    core.hooks.stop.tapPromise(PLUGIN_NAME, () => resource.stop());
  },
});

export default meshsyncResource;
export * from './settings.ts';
export { brokerSpecOf, NATS_SERVICE, resolveBroker, serviceEndpoints, type BrokerSpec, type Resolution, type ResolveContext } from './broker.ts';
