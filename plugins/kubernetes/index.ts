/**
 * meshsync:kubernetes, the source: discovers what the API server serves, runs one reflector per
 * selected resource (per namespace when namespaces are included) and emits every change.
 */
import { setMaxListeners } from 'node:events';
import { Counter, Gauge, type Registry } from 'prom-client';
import { z } from 'zod';
import { DEFAULT_RESOURCES } from './defaults.ts';
import {
  definePlugin, MeshSyncError, resourceId, resourceIdProblem, withoutJsonExcerpt, type Core, type KubeObject, type ResourceRef, type SnapshotItem, type SourceProgress, type SourceContext,
} from '../../core/index.ts';
import {
  Backoff, KubeClient, KubeRequestError, loadKubeConfig, Reflector, sleep, StringPool, type ReflectorScope, type ReflectorTiming,
  KUBE_LIMITS,
} from '../../kubernetes/index.ts';
import { discover, rediscoverGroup, resolveResources, type Catalog, type ServedResource } from './discovery.ts';

export { discover, resolveResources, closeMatches } from './discovery.ts';

const CRD_RESOURCE_ID = 'customresourcedefinitions.v1.apiextensions.k8s.io';
/** 429s in a row logged at info; from the next one on they are reported (warn). */
const THROTTLED_RETRIES_BEFORE_WARNING = 3;
/** Looks at a new CRD's group until discovery serves it: backing off 0.25 s to 4 s, about a minute in all. */
const CRD_DISCOVERY_ATTEMPTS = 16;

/** A resource id or pattern, checked as the watch-list checks ids (a `*` part matches anything). */
const resourcePattern = z.string().superRefine((id, ctx) => {
  const problem = resourceIdProblem(id, true);
  if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
});

const resourceEntry = z.union([
  resourcePattern.describe('A resource id `<plural>.<version>.<group>` (core group: trailing dot, `pods.v1.`); `*` matches any part (`*.v1.apps`, `*.*.example.com`; a `*` version means the preferred one).'),
  z.object({
    id: resourcePattern.describe('The resource id or pattern, as above.'),
    labelSelector: z.string().optional().describe('Label selector for this resource, combined (AND) with the global one.'),
    fieldSelector: z.string().optional().describe('Field selector for this resource, combined (AND) with the global one.'),
    metadataOnly: z.boolean().optional().describe('Keep and emit metadata only (PartialObjectMetadata): a fraction of the memory for large resources.'),
  }).strict(),
], { error: (issue) => (typeof issue.input === 'string' || (typeof issue.input === 'object' && issue.input !== null) ? undefined : 'expected a resource id (a string) or { id, labelSelector?, fieldSelector?, metadataOnly? }') });

export const kubernetesOptions = z.object({
  kubeconfig: z.string().optional().describe('Path of a kubeconfig file. Default: KUBECONFIG, then ~/.kube/config, then the in-cluster service account.'),
  context: z.string().optional().describe('The kubeconfig context to use. Default: the current context.'),
  resources: z.array(resourceEntry).default([...DEFAULT_RESOURCES]).describe('The resources to watch, resolved through discovery; the watch-list plugin may narrow them.'),
  namespaces: z.object({
    include: z.array(z.string()).default([]).describe('Watch only these namespaces (one watch per namespace and resource). Empty: all.'),
    exclude: z.array(z.string()).default([]).describe('Never list these namespaces (a field selector sent to the API server).'),
  }).strict().default({ include: [], exclude: [] }).describe('Namespaces to watch; cluster-scoped resources are not narrowed, except `namespaces` itself.'),
  labelSelector: z.string().optional().describe('Label selector applied at the API server to every resource.'),
  fieldSelector: z.string().optional().describe('Field selector applied at the API server to every resource.'),
  metadataOnly: z.boolean().default(false).describe('Default of the per-resource metadataOnly.'),
  resident: z.enum(['fingerprints', 'objects']).default('fingerprints').describe('What is kept per watched object: its fingerprints (uid and resourceVersion, ~100 bytes; a resync or snapshot lists the resource afresh, and a DELETED found by a relist carries the identity only) or the object (its JSON bytes, ~3.5 KB for a pod, or the parsed metadata with metadataOnly; snapshots read it from memory, and a relist\'s DELETED carries the last state) `meshsync snapshot` keeps objects whatever this says: it reads the state once synced.'),
  pageSize: z.number().int().positive().default(500).describe('Items per LIST page; each page is emitted as it arrives.'),
  streamingList: z.enum(['auto', 'off']).default('auto').describe('auto: list through a watch with sendInitialEvents (streaming list, the WatchList feature) where the server serves it, in pages where it refuses; off: always in pages.'),
  minWatchTimeoutSeconds: z.number().int().positive().default(300).describe('Each watch lasts a random time between this and twice this, then is resumed.'),
  watchSilenceTimeoutMs: z.number().int().nonnegative().default(0).describe('A watch silent this long (no event, no bookmark) is restarted. 0: the watch timeout plus 30 s.'),
  watchHoldMaxMs: z.number().int().nonnegative().default(5000).describe('Longest a watch stops reading while every sink is behind (pipeline.sourcePauseAbove); then it reads on, the queues coalescing, until they catch up. 0: never held.'),
  backoffInitialMs: z.number().int().positive().default(800).describe('First retry delay after a failure (doubles, with jitter).'),
  backoffMaxMs: z.number().int().positive().default(30_000).describe('Longest retry delay; retries never stop.'),
  watchCustomResourceDefinitions: z.boolean().default(true).describe('Watch CRDs so resources installed or removed at runtime start or stop being watched.'),
  progressIntervalMs: z.number().int().positive().default(5000).describe('How often the initial sync logs its progress.'),
  limits: z.object({
    maxLineBytes: z.number().int().positive().default(KUBE_LIMITS.maxLineBytes).describe('Largest watch event (one object) read; a larger one is skipped, counted and reported, never buffered whole.'),
    maxBodyBytes: z.number().int().positive().default(KUBE_LIMITS.maxBodyBytes).describe('Largest response body (a list page, discovery); a larger one fails the request, which is retried.'),
    maxErrorBodyBytes: z.number().int().positive().default(KUBE_LIMITS.maxErrorBodyBytes).describe('Text kept of an error answer; the rest is read and dropped.'),
    maxListItems: z.number().int().positive().default(KUBE_LIMITS.maxListItems).describe('Most items in one list page (a server may ignore `limit`); more fails the request, which is retried.'),
  }).strict().prefault({}).describe('Caps on what the API server may send, so nothing is buffered without bound.'),
}).strict();

export type KubernetesOptions = z.output<typeof kubernetesOptions>;
type ResourceOptions = { labelSelector?: string; fieldSelector?: string; metadataOnly?: boolean };

interface Metrics {
  watchRestarts: Counter<'resource'>;
  relists: Counter<'resource'>;
  watchErrors: Counter<'resource' | 'reason'>;
  malformed: Counter<'resource'>;
  initialSync: Gauge;
  watched: Gauge<'resource'>;
  /** Object counts per resource id of every running source on this registry, read at scrape time. */
  counters: Set<() => Record<string, number>>;
}

const countProviders = new WeakMap<Registry, Set<() => Record<string, number>>>();

/** A resource being watched: its reflectors (one, or one per included namespace). */
interface Watched {
  readonly id: string;
  readonly ref: ResourceRef;
  readonly reflectors: Reflector[];
}

const and = (...selectors: (string | undefined)[]) => selectors.filter((s) => s && s.length > 0).join(',') || undefined;

/** The reflector scopes for one resource, given the namespace choice and the selectors. */
export function scopesFor(resource: ResourceRef, options: Pick<KubernetesOptions, 'namespaces' | 'labelSelector' | 'fieldSelector' | 'metadataOnly'>, own: ResourceOptions = {}): ReflectorScope[] {
  const labelSelector = and(options.labelSelector, own.labelSelector);
  const fieldSelector = and(options.fieldSelector, own.fieldSelector);
  const metadataOnly = own.metadataOnly ?? options.metadataOnly;
  const { exclude } = options.namespaces;
  const include = options.namespaces.include.filter((ns) => !exclude.includes(ns));
  const isNamespaceResource = resource.group === '' && resource.resource === 'namespaces';
  if (include.length > 0 && (resource.namespaced || isNamespaceResource)) {
    return include.map((ns) => resource.namespaced
      ? { namespace: ns, labelSelector, fieldSelector, metadataOnly }
      : { labelSelector, fieldSelector: and(fieldSelector, `metadata.name=${ns}`), metadataOnly });
  }
  if (exclude.length > 0 && (resource.namespaced || isNamespaceResource)) {
    const field = resource.namespaced ? 'metadata.namespace' : 'metadata.name';
    return [{ labelSelector, fieldSelector: and(fieldSelector, ...exclude.map((ns) => `${field}!=${ns}`)), metadataOnly }];
  }
  return [{ labelSelector, fieldSelector, metadataOnly }];
}

/** The message of a 403: which RBAC rule is missing. */
export function forbiddenMessage(resource: ResourceRef, namespace: string | undefined, serverMessage: string): string {
  const where = namespace ? ` in namespace ${namespace}` : '';
  return `forbidden to list/watch ${resourceId(resource)}${where}: RBAC needs verbs list and watch on resource "${resource.resource}" in API group "${resource.group}"`
    + `${resource.group === '' ? ' (the core group)' : ''}; the server said: ${serverMessage}`;
}

function registerMetrics(registry: Registry): Metrics {
  const reuse = <T>(name: string, make: () => T): T => (registry.getSingleMetric(name) as T | undefined) ?? make();
  const registers = [registry];
  const counters = countProviders.get(registry) ?? new Set<() => Record<string, number>>();
  countProviders.set(registry, counters);
  return {
    counters,
    watchRestarts: reuse('meshsync_watch_restarts_total', () => new Counter({ name: 'meshsync_watch_restarts_total', help: 'Watches ended and resumed from the last resourceVersion.', labelNames: ['resource'], registers })),
    relists: reuse('meshsync_relists_total', () => new Counter({ name: 'meshsync_relists_total', help: 'Relists after 410 Gone (resourceVersion too old).', labelNames: ['resource'], registers })),
    watchErrors: reuse('meshsync_watch_errors_total', () => new Counter({ name: 'meshsync_watch_errors_total', help: 'Failed list or watch requests, by reason.', labelNames: ['resource', 'reason'], registers })),
    malformed: reuse('meshsync_malformed_lines_total', () => new Counter({ name: 'meshsync_malformed_lines_total', help: 'Watch lines or list items that were not valid objects; skipped.', labelNames: ['resource'], registers })),
    initialSync: reuse('meshsync_initial_sync_seconds', () => new Gauge({ name: 'meshsync_initial_sync_seconds', help: 'Time from start until every resource had listed.', registers })),
    watched: reuse('meshsync_watched_resources_total', () => new Gauge({
      name: 'meshsync_watched_resources_total', help: 'Objects held per watched resource.', labelNames: ['resource'], registers,
      // Read the store sizes at scrape time, so events cost nothing here.
      collect(this: Gauge<'resource'>) {
        this.reset();
        for (const count of counters) for (const [resource, n] of Object.entries(count())) this.inc({ resource }, n);
      },
    })),
  };
}

/** One running source: discovery, reflectors, the CRD watch. */
class KubernetesSource {
  private readonly watched = new Map<string, Watched>();
  private catalog: Catalog = new Map();
  private crdWatch?: Reflector;
  private readonly startedAt = Date.now();
  private initialTotal = 0;
  private initialDone = 0;
  private syncedReported = false;
  private discovered = false;
  private discoveryFailure?: string;
  private readonly listed = new Set<string>();
  private rediscovering = new Map<string, Promise<void>>();
  private progressTimer?: NodeJS.Timeout;
  private readonly timing: ReflectorTiming;
  private readonly resourceOptions = new Map<string, ResourceOptions>();
  private ids: string[] = [];
  private streamingRefusalLogged = false;
  private readonly strings = new StringPool();
  /** Resources (per namespace when watched per namespace) that answered 403, with why; gone once a list succeeds. */
  private readonly unreadable = new Map<string, string>();
  /** Follows ctx.signal; one listener per reflector, so no listener limit. */
  private readonly signal: AbortSignal;

  constructor(
    private readonly client: KubeClient,
    private readonly options: KubernetesOptions,
    private readonly ctx: SourceContext,
    private readonly metrics: Metrics,
  ) {
    const abort = new AbortController();
    setMaxListeners(0, abort.signal);
    if (ctx.signal.aborted) abort.abort();
    else ctx.signal.addEventListener('abort', () => abort.abort(), { once: true });
    this.signal = abort.signal;
    this.timing = {
      pageSize: options.pageSize,
      minWatchTimeoutSeconds: options.minWatchTimeoutSeconds,
      watchSilenceTimeoutMs: options.watchSilenceTimeoutMs,
      watchHoldMaxMs: options.watchHoldMaxMs,
      backoffInitialMs: options.backoffInitialMs,
      backoffMaxMs: options.backoffMaxMs,
      streamingList: options.streamingList === 'auto',
    };
  }

  /** Resolves the resource ids, discovers, and starts every reflector; retries discovery until it succeeds. */
  async run(): Promise<void> {
    const entries = this.options.resources.map((entry) => (typeof entry === 'string' ? { id: entry } : entry));
    for (const entry of entries) this.resourceOptions.set(entry.id, entry);
    this.ids = this.ctx.selectResources(entries.map((entry) => entry.id));
    this.ctx.provideSnapshot(() => this.read(), () => this.counts());
    this.ctx.provideUnreadable(() => Object.fromEntries(this.unreadable));
    this.ctx.provideProgress(() => this.progress());
    const backoff = new Backoff(this.options.backoffInitialMs, this.options.backoffMaxMs);
    const signal = this.signal;
    while (!signal.aborted) {
      try {
        this.catalog = await discover(this.client, signal);
        this.discovered = true;
        break;
      } catch (error) {
        if (signal.aborted) return;
        this.discoveryFailure = (error as Error)?.message;
        this.ctx.reportError(this.describeFailure(error, 'discovery'));
        await sleep(backoff.next(error instanceof KubeRequestError ? error.retryAfterMs : undefined), signal);
      }
    }
    if (signal.aborted) return;
    const { resources, unknown } = resolveResources(this.catalog, this.ids);
    this.warnUnknown(unknown);
    this.initialTotal = resources.length;
    this.ctx.logger.info({ resources: resources.map((r) => r.id) }, `watching ${resources.length} resources`);
    for (const resource of resources) this.startResource(resource);
    if (this.initialTotal === 0) this.markSynced();
    else this.progressTimer = setInterval(() => this.logProgress(), this.options.progressIntervalMs).unref();
    if (this.options.watchCustomResourceDefinitions && this.catalog.has(CRD_RESOURCE_ID)) this.watchCrds(this.catalog.get(CRD_RESOURCE_ID)!);
  }

  async stop(): Promise<void> {
    clearInterval(this.progressTimer);
    const all = [...this.watched.values()].flatMap((w) => w.reflectors);
    if (this.crdWatch) all.push(this.crdWatch);
    await Promise.all(all.map((r) => r.stop()));
  }

  /**
   * The selection changed (a live watch-list edit): select again, start watching what is now
   * wanted, stop what is not. Resources that stay keep their reflectors, so their objects are not emitted again.
   */
  reselect(): void {
    if (this.signal.aborted) return;
    this.ids = this.ctx.selectResources(this.options.resources.map((entry) => (typeof entry === 'string' ? entry : entry.id)));
    if (this.catalog.size === 0) return; // discovery still runs; run() resolves the new ids
    const { resources, unknown } = resolveResources(this.catalog, this.ids);
    this.warnUnknown(unknown);
    const wanted = new Set(resources.map((r) => r.id));
    for (const [id, watched] of this.watched) {
      if (wanted.has(id)) continue;
      this.forget(id);
      this.ctx.logger.info({ resource: id }, 'resource no longer selected; stopped watching it');
      void Promise.all(watched.reflectors.map((r) => r.stop())).then(() => watched.reflectors.forEach((r) => r.store.clear()));
    }
    for (const resource of resources) {
      if (this.watched.has(resource.id)) continue;
      this.ctx.logger.info({ resource: resource.id }, 'resource now selected; watching it');
      this.startResource(resource);
    }
  }

  private warnUnknown(unknown: { id: string; suggestions: string[] }[]): void {
    for (const { id, suggestions } of unknown) {
      const hint = suggestions.length ? `; did you mean ${suggestions.join(', ')}?` : '';
      this.ctx.reportError(new MeshSyncError('MESHSYNC_KUBE_UNKNOWN_RESOURCE',
        `resource ${id} is not served by the API server${hint} (it is picked up if it appears later, e.g. when its CRD is installed)`, { details: { resource: id, suggestions } }));
    }
  }

  private startResource(served: ServedResource): void {
    const ref: ResourceRef = Object.freeze({ group: served.group, version: served.version, resource: served.resource, kind: served.kind, namespaced: served.namespaced });
    const own = this.ownOptions(served.id);
    const watched: Watched = { id: served.id, ref, reflectors: [] };
    let pending = 0;
    // Objects no plugin reads whole are emitted as views (their metadata parsed, the rest as bytes).
    const views = !this.ctx.readsWholeObjects(ref);
    for (const scope of scopesFor(ref, this.options, own)) {
      pending++;
      let counted = false;
      const countOnce = () => {
        if (counted) return;
        counted = true;
        if (--pending === 0) this.resourceListed(watched);
      };
      const unreadableKey = scope.namespace === undefined ? served.id : `${served.id} in namespace ${scope.namespace}`;
      const reflector: Reflector = new Reflector(this.client, ref, { ...scope, views, resident: this.ctx.keepsStateResident() ? 'objects' : this.options.resident }, this.timing, {
        emit: (type, object, observedAt) => this.ctx.emit(type, ref, object, observedAt),
        listed: (initial) => {
          if (this.unreadable.delete(unreadableKey)) this.ctx.logger.info({ resource: served.id, namespace: scope.namespace }, 'readable again: listed');
          if (initial) countOnce();
        },
        failed: (error, retries) => {
          this.metrics.watchErrors.inc({ resource: served.id, reason: error.reason });
          // A 429 is the server pacing us (priority and fairness, or the cache of a resource just
          // created still filling: "storage is (re)initializing"); retried after its Retry-After,
          // it is news only when it persists.
          const paced = error.status === 429 && retries < THROTTLED_RETRIES_BEFORE_WARNING;
          if (error.reason === 'gone' || error.reason === 'stalled' || paced) {
            this.ctx.logger.info({ resource: served.id, namespace: scope.namespace }, error.message);
            return;
          }
          const described = this.describeFailure(error, reflector.describe(), ref, scope.namespace);
          this.ctx.reportError(described);
          // A forbidden resource must not hold readiness hostage; it keeps being retried.
          if (error.reason === 'forbidden') {
            this.unreadable.set(unreadableKey, described.message);
            countOnce();
          }
        },
        watchRestarted: () => this.metrics.watchRestarts.inc({ resource: served.id }),
        relisted: () => this.metrics.relists.inc({ resource: served.id }),
        streamingListRefused: (error) => {
          if (this.streamingRefusalLogged) return;
          this.streamingRefusalLogged = true;
          this.ctx.logger.info({ resource: served.id, status: error.status }, 'the API server does not serve streaming lists (WatchList); listing in pages');
        },
        sinksCaughtUp: () => this.ctx.sinksCaughtUp(),
        sinksBehind: () => this.ctx.sinksBehind(),
        oversizedLine: (bytes) => {
          this.metrics.malformed.inc({ resource: served.id });
          this.ctx.reportError(new MeshSyncError('MESHSYNC_EVENT_INVALID',
            `skipped a watch event of ${bytes} bytes from the watch of ${reflector.describe()}: larger than limits.maxLineBytes (${this.client.limits.maxLineBytes})`, { details: { resource: served.id, bytes } }));
        },
        malformedLine: (line, error) => {
          this.metrics.malformed.inc({ resource: served.id });
          this.ctx.reportError(new MeshSyncError('MESHSYNC_EVENT_INVALID',
            // Never the text, not even the bit V8 quotes in its message: it may be a Secret's.
            `skipped a malformed line from the watch of ${reflector.describe()}: ${withoutJsonExcerpt(String((error as Error)?.message ?? error))}`, { details: { resource: served.id, bytes: line.length } }));
        },
      }, this.strings);
      watched.reflectors.push(reflector);
    }
    this.watched.set(served.id, watched);
    for (const reflector of watched.reflectors) reflector.start(this.signal);
  }

  private ownOptions(id: string): ResourceOptions {
    const exact = this.resourceOptions.get(id);
    if (exact) return exact;
    // A resource matched by a pattern takes that pattern's options.
    for (const [pattern, own] of this.resourceOptions) if (resolveResources(new Map([[id, this.catalog.get(id)!]]), [pattern]).resources.length > 0) return own;
    return {};
  }

  private resourceListed(watched: Watched): void {
    this.listed.add(watched.id);
    if (this.syncedReported) return;
    this.initialDone++;
    this.ctx.logger.debug({ resource: watched.id, synced: this.initialDone, total: this.initialTotal }, 'resource listed');
    if (this.initialDone >= this.initialTotal) this.markSynced();
  }

  private markSynced(): void {
    if (this.syncedReported) return;
    this.syncedReported = true;
    clearInterval(this.progressTimer);
    const seconds = (Date.now() - this.startedAt) / 1000;
    this.metrics.initialSync.set(seconds);
    this.ctx.logger.info({ resources: this.initialTotal, objects: this.objectCount(), seconds }, 'kubernetes initial sync complete');
    this.ctx.synced();
  }

  private logProgress(): void {
    if (this.syncedReported) return;
    this.ctx.logger.info({ synced: this.initialDone, total: this.initialTotal, objects: this.objectCount() }, `initial sync: ${this.initialDone} of ${this.initialTotal} resources listed`);
  }

  private objectCount(): number {
    let n = 0;
    for (const w of this.watched.values()) for (const r of w.reflectors) n += r.store.size;
    return n;
  }

  /** A CRD added, changed or removed: rediscover its group and start or stop watchers to match. */
  private watchCrds(served: ServedResource): void {
    const ref: ResourceRef = { group: served.group, version: served.version, resource: served.resource, kind: served.kind, namespaced: false };
    let listed = false;
    let warned = false;
    this.crdWatch = new Reflector(this.client, ref, { metadataOnly: true }, this.timing, {
      emit: (type, object) => {
        // A CRD is named <plural>.<group>. During the first list, only CRDs that discovery did not
        // see (installed between discovery and this list) need a look.
        const name = object.metadata.name;
        const dot = name.indexOf('.');
        const plural = name.slice(0, dot);
        const group = name.slice(dot + 1);
        if (!listed && this.inCatalog(group, plural)) return;
        this.rediscover(group, type === 'DELETED' ? undefined : plural);
      },
      listed: () => {
        listed = true; // a relist emits what changed in the gap, which triggers the rediscoveries needed
      },
      failed: (error) => {
        if (error.reason === 'gone' || error.reason === 'stalled' || warned) return;
        warned = true;
        this.ctx.logger.warn({ err: error }, 'cannot watch CustomResourceDefinitions; CRDs installed after start are not picked up until this works');
      },
      watchRestarted: () => {},
      relisted: () => {},
      malformedLine: () => {},
    });
    this.crdWatch.start(this.signal);
  }

  private inCatalog(group: string, plural: string): boolean {
    return [...this.catalog.values()].some((r) => r.group === group && r.resource === plural);
  }

  /**
   * One rediscovery per group at a time; a request while one runs schedules another after it. For
   * a CRD that exists (`plural` given), discovery is asked again, backing off, until it serves the
   * resource: the API server's discovery lists a CRD a moment after the CRD's own events (its
   * Established condition included) are out, and no further event would come to ask again.
   */
  private rediscover(group: string, plural?: string, attempt = 0): void {
    const previous = this.rediscovering.get(group) ?? Promise.resolve();
    const next = previous.then(() => this.rediscoverNow(group)).then(() => {
      if (plural === undefined || this.signal.aborted || this.inCatalog(group, plural) || attempt >= CRD_DISCOVERY_ATTEMPTS) return;
      setTimeout(() => this.rediscover(group, plural, attempt + 1), Math.min(250 * 2 ** attempt, 4000)).unref();
    }).catch((error) => {
      if (!this.signal.aborted) this.ctx.reportError(this.describeFailure(error, `discovery of API group ${group}`));
    });
    this.rediscovering.set(group, next);
  }

  private async rediscoverNow(group: string): Promise<void> {
    if (this.signal.aborted) return;
    await rediscoverGroup(this.client, this.catalog, group, this.signal);
    if (this.signal.aborted) return;
    const { resources } = resolveResources(this.catalog, this.ids);
    const wanted = new Set(resources.map((r) => r.id));
    for (const [id, watched] of this.watched) {
      if (wanted.has(id) || watched.ref.group !== group) continue;
      this.forget(id);
      await this.retire(watched);
    }
    for (const resource of resources) {
      if (this.watched.has(resource.id)) continue;
      this.ctx.logger.info({ resource: resource.id }, 'resource now served; watching it');
      this.startResource(resource);
    }
  }

  /** No longer watched: nor reported unreadable. */
  private forget(id: string): void {
    this.watched.delete(id);
    for (const key of this.unreadable.keys()) if (key === id || key.startsWith(`${id} in namespace `)) this.unreadable.delete(key);
  }

  /** A resource no longer served (its CRD was deleted): stop it and report its objects as deleted. */
  private async retire(watched: Watched): Promise<void> {
    this.ctx.logger.info({ resource: watched.id }, 'resource no longer served; stopped watching it');
    await Promise.all(watched.reflectors.map((r) => r.stop()));
    const observedAt = Date.now();
    for (const reflector of watched.reflectors) {
      for (const object of reflector.store.values()) this.ctx.emit('DELETED', watched.ref, object, observedAt);
      reflector.store.clear();
    }
  }

  private describeFailure(error: unknown, what: string, resource?: ResourceRef, namespace?: string): Error {
    if (!(error instanceof KubeRequestError)) return error as Error;
    const details = { resource: resource ? resourceId(resource) : undefined, namespace, status: error.status, reason: error.reason };
    switch (error.reason) {
      case 'forbidden':
        return new MeshSyncError('MESHSYNC_KUBE_FORBIDDEN', resource ? forbiddenMessage(resource, namespace, error.message) : `${what}: ${error.message}`, { cause: error, details });
      case 'unreachable':
        return new MeshSyncError('MESHSYNC_KUBE_UNREACHABLE', `${what}: ${error.message}; retrying`, { cause: error, details });
      case 'malformed':
        return new MeshSyncError('MESHSYNC_EVENT_INVALID', `${what}: ${error.message}`, { cause: error, details });
      default:
        return new MeshSyncError('MESHSYNC_KUBE_REQUEST_FAILED', `${what}: ${error.message}; retrying`, { cause: error, details });
    }
  }

  /** Every watched object as it is now: from the stores where they keep objects, else listed afresh. */
  async *read(): AsyncGenerator<SnapshotItem> {
    for (const watched of [...this.watched.values()]) {
      for (const reflector of watched.reflectors) for await (const object of reflector.current(this.signal)) yield { resource: watched.ref, object };
    }
  }

  progress(): SourceProgress {
    const resources = [...this.watched].map(([id, watched]) => ({ id, objects: watched.reflectors.reduce((n, r) => n + r.store.size, 0), listed: this.listed.has(id) }));
    if (this.discovered) return { resources };
    return { waitingFor: `discovery of the API server's resources${this.discoveryFailure ? ` (last attempt: ${this.discoveryFailure})` : ''}`, resources };
  }

  counts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [id, watched] of this.watched) out[id] = watched.reflectors.reduce((n, r) => n + r.store.size, 0);
    return out;
  }
}

/** Reads the uid of the kube-system namespace, retrying while the server is unreachable. */
async function kubeSystemUid(client: KubeClient, options: KubernetesOptions, core: Core, signal: AbortSignal): Promise<string> {
  const backoff = new Backoff(options.backoffInitialMs, options.backoffMaxMs);
  for (;;) {
    try {
      const ns = await client.get<KubeObject>('/api/v1/namespaces/kube-system', { signal });
      if (typeof ns.metadata?.uid === 'string' && ns.metadata.uid) return ns.metadata.uid;
      throw new MeshSyncError('MESHSYNC_KUBE_CONFIG', 'the kube-system namespace has no uid; set clusterId in the config');
    } catch (error) {
      if (error instanceof KubeRequestError && error.reason === 'forbidden') {
        throw new MeshSyncError('MESHSYNC_KUBE_FORBIDDEN',
          'cannot read the kube-system namespace for the cluster id: RBAC needs verb get on resource "namespaces" in API group "" (the core group); or set clusterId in the config', { cause: error });
      }
      if (!(error instanceof KubeRequestError) || error.reason === 'aborted' || signal.aborted) throw error;
      core.logger.warn({ code: 'MESHSYNC_KUBE_UNREACHABLE', err: error }, `reading the cluster id: ${error.message}; retrying`);
      await sleep(backoff.next(), signal);
    }
  }
}

export const kubernetes = definePlugin({
  name: 'meshsync:kubernetes',
  description: 'Watches a Kubernetes cluster (built-in resources and CRDs, found by discovery) and emits every change, as client-go informers do.',
  options: kubernetesOptions,
  setup: (options) => (core) => {
    const metrics = registerMetrics(core.metrics);
    const stopping = new AbortController();
    let client: KubeClient | undefined;
    let source: KubernetesSource | undefined;
    metrics.counters.add(() => source?.counts() ?? {});
    core.hooks.start.tapPromise('meshsync:kubernetes', async () => {
      client = new KubeClient(loadKubeConfig(options), options.limits);
    });
    core.hooks.clusterId.tapPromise('meshsync:kubernetes', async (clusterId) => {
      if (clusterId !== '' || !client) return clusterId;
      return kubeSystemUid(client, options, core, stopping.signal);
    });
    core.hooks.source.tapPromise('meshsync:kubernetes', async (ctx) => {
      source = new KubernetesSource(client!, options, ctx, metrics);
      const running = source.run();
      running.catch((error) => ctx.reportError(error));
    });
    core.hooks.selectionChanged.tap('meshsync:kubernetes', () => source?.reselect());
    core.hooks.stop.tapPromise('meshsync:kubernetes', async () => {
      stopping.abort();
      await source?.stop();
      client?.close();
    });
  },
});

export default kubernetes;
