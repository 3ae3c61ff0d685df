/**
 * The public contract of meshsync: the event, the plugin, the hooks and the contexts a plugin is
 * handed. Everything a plugin author needs is declared here and nowhere else.
 */
import type { AsyncSeriesHook, AsyncSeriesWaterfallHook, SyncBailHook, SyncHook, SyncWaterfallHook } from 'tapable';
import type { Registry } from 'prom-client';
import type { Logger } from './log.ts';

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';
export const EVENT_TYPES: readonly EventType[] = Object.freeze(['ADDED', 'MODIFIED', 'DELETED']);

/** A resource type, as discovery describes it. `resource` is the plural (`pods`). */
export interface ResourceRef {
  readonly group: string; // '' for the core group
  readonly version: string;
  readonly resource: string;
  readonly kind: string;
  readonly namespaced: boolean;
}

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  managedFields?: unknown[];
  [field: string]: unknown;
}

/** A Kubernetes object as the API server sends it. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  [field: string]: unknown;
}

/** One change of one object. Events are immutable once emitted: transforms copy, never mutate. */
export interface SyncEvent {
  readonly type: EventType;
  readonly resource: ResourceRef;
  readonly object: KubeObject;
  readonly clusterId: string;
  /** When the watch delivered it (ms since the epoch), for latency figures. */
  readonly observedAt: number;
}

export type Batch = readonly SyncEvent[];

/** What a source hands to the core when asked for its current state. */
export interface SnapshotItem {
  readonly resource: ResourceRef;
  readonly object: KubeObject;
}

/** The context each source tap receives: its own, named after the tap. */
export interface SourceContext {
  readonly name: string;
  readonly clusterId: string;
  readonly logger: Logger;
  /** Aborted when the core stops: watchers end, the tap's promise may then resolve. */
  readonly signal: AbortSignal;
  /** Hands one change to the pipeline. Synchronous; never throws for a bad event (it is counted). */
  emit(type: EventType, resource: ResourceRef, object: KubeObject, observedAt?: number): void;
  /** Called once the initial list of every watched resource is done. */
  synced(): void;
  /**
   * Registers how to read this source's current state (for resyncs and `meshsync snapshot`), from
   * what it holds or anew (an async iterable: the kubernetes source lists afresh where it keeps
   * only fingerprints), and its object count per resource id (required for an async reader).
   */
  provideSnapshot(read: () => Iterable<SnapshotItem> | AsyncIterable<SnapshotItem>, counts?: () => Record<string, number>): void;
  /** Registers how to tell the resources this source cannot read right now (a 403), each with why; the status reports show them. */
  provideUnreadable(read: () => Record<string, string>): void;
  /** Registers how to read where this source's initial sync is (for a progress display and `snapshot --timeout`'s error). */
  provideProgress(read: () => SourceProgress): void;
  /** The resource ids (`<resource>.<version>.<group>`) to watch, narrowed by the selectResources hook. */
  selectResources(candidates: readonly string[]): string[];
  /** Reports a problem that does not stop the source (a failed watch, a forbidden resource). */
  reportError(error: unknown, detail?: Record<string, unknown>): void;
  /**
   * Resolves once a sink can take more: at once, unless every open sink lane holds more than
   * `pipeline.sourcePauseAbove` events. A source that reads in pages (a LIST) awaits it between
   * pages, one that reads a stream stops reading meanwhile, so a large initial sync or a burst
   * waits for the sinks instead of piling up in memory.
   */
  sinksCaughtUp(): Promise<void>;
  /** Whether `sinksCaughtUp()` would wait: a source reading a stream stops reading while this is true. */
  sinksBehind(): boolean;
  /**
   * Whether a filter, transform or sink tap reads this resource's objects whole (see
   * `Core.readsWholeObjects`). When none does, a source may emit objects with only apiVersion,
   * kind and metadata parsed and their whole JSON remembered as bytes (`ObjectView`), which is
   * what the sinks publish.
   */
  readsWholeObjects(resource: ResourceRef): boolean;
  /**
   * Whether a caller declared it reads the sources' state once synced (`Core.keepStateResident`):
   * a source that would list afresh for each snapshot keeps its objects instead, so the state is
   * read once, not twice.
   */
  keepsStateResident(): boolean;
}

/** One resource's initial list: objects listed so far, and whether the list is complete. */
export interface ResourceProgress {
  readonly id: string;
  readonly objects: number;
  readonly listed: boolean;
}

/** Where a source's initial sync is. */
export interface SourceProgress {
  /** What it waits for before it can list (`discovery`), in words; absent while it lists. */
  readonly waitingFor?: string;
  readonly resources: readonly ResourceProgress[];
}

/** Where start-up and the initial sync are, for every source (CoreState.progress). */
export interface SyncProgress {
  /** `start`: start taps run; `cluster id`: the clusterId hook runs; `sync`: sources list; `synced`: every source has. */
  readonly phase: 'created' | 'start' | 'cluster id' | 'sync' | 'synced';
  /** What is still awaited, in words: `the cluster id`, `meshsync:kubernetes: discovery`, `pods.v1.`. */
  readonly waitingFor: readonly string[];
  readonly resources: readonly ResourceProgress[];
  /** Objects listed so far, over all resources. */
  readonly objects: number;
}

/** The context each sink tap receives alongside its batches. */
export interface SinkContext {
  readonly name: string;
  readonly clusterId: string;
  readonly logger: Logger;
  /** Aborted on stop once the lanes drained (or the stop deadline passed), not before: in-flight writes may finish. */
  readonly signal: AbortSignal;
  /**
   * The current state of every source, filtered and transformed like live events, read lazily:
   * each object is read from its source as an iteration reaches it (so not one point in time; each
   * object is consistent in itself). The filters see type ADDED, or what `typeOf` says per object;
   * an object it gives `undefined` for is skipped without running the pipeline.
   */
  snapshot(typeOf?: (item: SnapshotItem) => EventType | undefined): AsyncIterable<SyncEvent>;
}

export interface ErrorReport {
  readonly plugin: string;
  readonly hook: string;
  readonly error: Error;
  /** Set when the error concerned one event, which was dropped. */
  readonly event?: SyncEvent;
}

/** Counts the core keeps per batch (not per event); the metrics plugin reads them. */
export interface BatchReport {
  readonly sink: string;
  readonly events: Batch;
  readonly attempt: number;
  readonly ok: boolean;
  readonly error?: Error;
}

/**
 * A hook the core calls tap by tap itself, never through `call` or `promise`: each tap gets
 * something of its own (a source its context, a sink its lane), or the taps run in an order no
 * tapable hook has (stop: in reverse). Tapped like any async tapable hook: `tap`, `tapAsync`,
 * `tapPromise`, with `stage` and `before`.
 */
export type PerTapHook<T extends unknown[]> = Pick<AsyncSeriesHook<T>, 'tap' | 'tapAsync' | 'tapPromise' | 'taps' | 'name'>;

export interface CoreHooks {
  /** Once at start, after `clusterId`: each source tap gets its own SourceContext and starts watching; all run at once. Resolve when started. */
  readonly source: PerTapHook<[SourceContext]>;
  /** Once per source at start: receives candidate resource ids, returns those to watch (waterfall). */
  readonly selectResources: SyncWaterfallHook<[string[]]>;
  /** Per event, synchronous: a tap returns `false` to drop the event, `undefined` to pass it on (bail). */
  readonly filter: SyncBailHook<[SyncEvent], false | undefined | void>;
  /** Per event, synchronous: a tap returns the event to pass on, a copy when it changes anything (waterfall). */
  readonly transform: SyncWaterfallHook<[SyncEvent]>;
  /** Per batch, async: each sink tap gets its own lane (queue, batches, retry) and its own SinkContext; resolve once the batch is durably accepted. */
  readonly sink: PerTapHook<[Batch, SinkContext]>;
  /** Once, before sources start, in series: open connections, servers. A throw stops start-up, naming the plugin. */
  readonly start: AsyncSeriesHook<[]>;
  /** Once, after `start`: receives the configured cluster id ('' if none) and returns the one to use (waterfall; the kubernetes source fills in the kube-system namespace's uid). */
  readonly clusterId: AsyncSeriesWaterfallHook<[string]>;
  /** Once, when every source has synced its initial list. */
  readonly ready: SyncHook<[]>;
  /** Once, on stop, after sinks drained: close what start opened. Taps run one by one in reverse order of registration; one that throws is reported and the others still run. */
  readonly stop: PerTapHook<[]>;
  /** Whenever a plugin fails: an event dropped, a sink batch failed (it will be retried), a source error. */
  readonly error: SyncHook<[ErrorReport]>;
  /** After each sink batch attempt, for counters. */
  readonly batch: SyncHook<[BatchReport]>;
  /** When consumers should be brought back in step (an operator's request): sinks that can republish the current state do so. */
  readonly resync: SyncHook<[string]>;
  /** When delivery becomes held (true: this replica turned standby) or released (false: it leads now, and a sink may announce its state), not on every hold call: e.g. leave a queue group a standby must not answer for. */
  readonly deliveryHeld: SyncHook<[boolean]>;
  /** When live settings change (the MeshSync custom resource was edited): taps validate and apply what concerns them; a throw rejects the whole change. */
  readonly reconfigure: SyncHook<[LiveSettings]>;
  /** After a reconfigure was applied: sources ask selectResources again and start or stop watchers. */
  readonly selectionChanged: SyncHook<[]>;
}

/** Settings that may change while running. */
export interface LiveSettings {
  /** New watch-list rules, in the watch-list plugin's option form (include/exclude or the legacy whitelist/blacklist). */
  readonly watchList?: Readonly<Record<string, unknown>>;
  /** The broker URL named by the MeshSync custom resource; BROKER_URL still wins. Applied at start (a change later needs a restart). */
  readonly broker?: string;
}

/** Read-only view of the running core that plugins may query (metrics, health, requests). */
export interface CoreState {
  readonly started: boolean;
  readonly ready: boolean;
  /** True while delivery is held (a standby replica): sinks must not publish on their own, e.g. resyncs or request replies. */
  readonly deliveryHeld: boolean;
  /** Pending events per sink lane, and the age (ms) of the oldest. */
  lanes(): { sink: string; pending: number; oldestAgeMs: number; inFlight: number }[];
  /** Objects per resource id, from the sources' snapshots. */
  resourceCounts(): Record<string, number>;
  /** Resource ids the sources cannot read right now (forbidden), each with why; empty when all is readable. */
  unreadableResources(): Record<string, string>;
  /** Where start-up and the initial sync are, and what they wait for. */
  progress(): SyncProgress;
  /** What each plugin that added a status tells (`addStatus`), by name. */
  statuses(): Record<string, Record<string, unknown>>;
}

/** Counters the core keeps; plain numbers, so counting costs nothing on the hot path. */
export interface CoreCounters {
  received: number;
  filtered: number;
  /** Events dropped, by reason: `invalid` (malformed object) or `plugin-error` (a filter or transform threw). */
  dropped: { invalid: number; 'plugin-error': number };
  /**
   * Per sink: events accepted, batch attempts that failed, events it never accepted and that were
   * skipped (lane/retry.ts), events still not accepted when the stop deadline passed.
   */
  sinks: Record<string, { delivered: number; failedAttempts: number; deadLettered: number; undeliveredAtStop: number }>;
}

/** What a stop could not do by its deadline: events each sink had not accepted (sinks that drained are absent). */
export interface StopReport {
  readonly undelivered: Readonly<Record<string, number>>;
  /** The sum of `undelivered`. */
  readonly undeliveredTotal: number;
}

export interface Core {
  readonly hooks: CoreHooks;
  readonly counters: CoreCounters;
  /** The cluster id in force (resolved at start through the clusterId hook). */
  readonly clusterId: string;
  /** Where plugins register their prom-client metrics; the metrics plugin serves it. */
  readonly metrics: Registry;
  readonly logger: Logger;
  readonly state: CoreState;
  /** See SinkContext.snapshot. */
  snapshot(typeOf?: (item: SnapshotItem) => EventType | undefined): AsyncIterable<SyncEvent>;
  /**
   * Declares, during setup, the resources whose objects the taps named `tapName` (a plugin's
   * filter, transform or sink taps) read, or copy, beyond apiVersion, kind and metadata:
   * `() => false` for none. A tap on those hooks whose name declared nothing is taken to read every
   * object whole. Where no tap reads a resource's objects whole, a source may hand out views: the
   * metadata parsed, the rest only in the JSON bytes the sinks publish (see `ObjectView`;
   * `wholeObject` parses it, JSON.stringify writes it).
   */
  readsWholeObjects(tapName: string, which: (resource: ResourceRef) => boolean): void;
  /**
   * Declares, before start, that the caller reads a snapshot of the synced state (`meshsync
   * snapshot`): sources keep their objects rather than fingerprints and list again on request.
   */
  keepStateResident(): void;
  /** Registers a readiness check; /readyz asks all of them. The NATS sink registers `broker`. */
  addReadinessCheck(name: string, check: () => boolean): void;
  /**
   * Adds what a plugin tells about itself on /status (`plugins.<name>`): a small JSON object read on
   * each request. Anyone who reaches the port reads it: nothing secret or identifying.
   */
  addStatus(name: string, read: () => Record<string, unknown>): void;
  /** Every readiness check by name, plus `synced` (every source listed its initial state). */
  readiness(): Record<string, boolean>;
  /** Holds (or releases) delivery to every sink under a holder's name; events wait, coalesced, while any hold is set. Used by leader election. */
  holdDelivery(holder: string, held: boolean): void;
  /** Asks every sink that can to republish the current state (the resync hook). */
  requestResync(reason: string): void;
  /** A sink can take batches again (its broker reconnected): the batches it failed are retried now, not at the end of their backoff. */
  retryDelivery(sink: string): void;
  /** Applies live settings: every reconfigure tap, then selectionChanged. Throws (and changes nothing more) when a tap rejects them. */
  reconfigure(settings: LiveSettings): void;
}

export interface Plugin {
  /** `meshsync:<name>` for built-ins, the package name for third parties. */
  readonly name: string;
  /** The validated options, kept for `meshsync print-config`. */
  readonly options?: unknown;
  /** Taps hooks. Does no I/O: that starts in the start/source hooks. */
  apply(core: Core): void;
}
