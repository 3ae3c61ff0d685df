import { Registry } from 'prom-client';
import { AsyncSeriesHook, AsyncSeriesWaterfallHook, SyncBailHook, SyncHook, SyncWaterfallHook } from 'tapable';
import { asError, MeshSyncError, pluginError } from './errors.ts';
import { redactSecretsInText } from './secrets.ts';
import { PipelineEvent } from './event.ts';
import { Lane, type LaneOptions } from './lane/lane.ts';
import { Pipeline } from './pipeline.ts';
import { attributed, attributedTap, callTap, distinctNames, sendTo, type TapInfo } from './taps.ts';
import { resourceId } from './resource.ts';
import { silentLogger, type Logger } from './log.ts';
import { CORE_DEFAULTS, STOP_MARGIN_MS, type PipelineOptions } from './settings.ts';
import type {
  Batch, BatchReport, Core, CoreCounters, CoreHooks, CoreState, EventType, Plugin, ResourceRef, SinkContext, SnapshotItem,
  SourceContext, SourceProgress, StopReport, SyncEvent, SyncProgress, ErrorReport, LiveSettings,
} from './types.ts';

export interface CoreOptions extends Partial<PipelineOptions> {
  readonly plugins: readonly Plugin[];
  readonly clusterId?: string;
  readonly logger?: Logger;
  /** See stopTimeoutMsSchema (core/settings.ts). */
  readonly stopTimeoutMs?: number;
}

/** Per-tap hooks (their taps are tagged where the core calls them) and per-event hooks (tagged on failure only, see findFailingTap). */
const UNWRAPPED_HOOKS = ['source', 'stop', 'sink', 'filter', 'transform'] as const;
/** Start-up hooks: what a tap throws names it, unless it is a MeshSyncError that already says what failed. */
const START_UP_HOOKS = ['start', 'clusterId'] as const;

/** The engine: hooks, the per-event pipeline, one lane per sink, lifecycle. */
export class MeshSyncCore implements Core {
  readonly hooks: CoreHooks;
  readonly logger: Logger;
  readonly state: CoreState;
  readonly metrics = new Registry();
  clusterId: string;
  readonly counters: CoreCounters = { received: 0, filtered: 0, dropped: { invalid: 0, 'plugin-error': 0 }, sinks: {} };

  private readonly options: Required<Omit<CoreOptions, 'plugins' | 'clusterId' | 'logger'>>;
  private readonly plugins: readonly Plugin[];
  private lanes: Lane[] = [];
  private readonly pipeline: Pipeline;
  private readonly snapshotReaders: { source: string; read: () => Iterable<SnapshotItem> | AsyncIterable<SnapshotItem>; counts?: () => Record<string, number> }[] = [];
  private readonly unreadableReaders: (() => Record<string, string>)[] = [];
  private readonly progressReaders = new Map<string, () => SourceProgress>();
  private phase: SyncProgress['phase'] = 'created';
  private readonly readinessChecks = new Map<string, () => boolean>();
  private readonly statusReaders = new Map<string, () => Record<string, unknown>>();
  private readonly deliveryHolds = new Set<string>();
  private readonly abort = new AbortController();
  /** Sinks are stopped later than sources: only once the lanes drained (or the deadline passed). */
  private readonly sinkAbort = new AbortController();
  private unsynced = new Set<string>();
  private started = false;
  private ready = false;
  private stopping: Promise<StopReport> | null = null;
  private readonly readyReached = deferred();
  private sourceRuns: Promise<unknown>[] = [];
  private catchUpWaiters: (() => void)[] = [];
  /** What taps, by name, declared they read whole (readsWholeObjects). */
  private readonly wholeObjectReaders = new Map<string, ((resource: ResourceRef) => boolean)[]>();
  private stateResident = false;

  constructor(options: CoreOptions) {
    this.logger = options.logger ?? silentLogger();
    this.clusterId = options.clusterId ?? '';
    this.plugins = options.plugins;
    this.options = {
      batchSize: options.batchSize ?? CORE_DEFAULTS.batchSize,
      batchMaxWaitMs: options.batchMaxWaitMs ?? CORE_DEFAULTS.batchMaxWaitMs,
      retryInitialMs: options.retryInitialMs ?? CORE_DEFAULTS.retryInitialMs,
      retryMaxMs: options.retryMaxMs ?? CORE_DEFAULTS.retryMaxMs,
      highWaterMark: options.highWaterMark ?? CORE_DEFAULTS.highWaterMark,
      sourcePauseAbove: options.sourcePauseAbove ?? CORE_DEFAULTS.sourcePauseAbove,
      stopTimeoutMs: options.stopTimeoutMs ?? CORE_DEFAULTS.stopTimeoutMs,
    };
    this.hooks = Object.freeze({
      source: new AsyncSeriesHook<[SourceContext]>(['context']),
      selectResources: new SyncWaterfallHook<[string[]]>(['resourceIds']),
      filter: new SyncBailHook<[SyncEvent], false | undefined | void>(['event']),
      transform: new SyncWaterfallHook<[SyncEvent]>(['event']),
      sink: new AsyncSeriesHook<[Batch, SinkContext]>(['batch', 'context']),
      start: new AsyncSeriesHook<[]>([]),
      clusterId: new AsyncSeriesWaterfallHook<[string]>(['clusterId']),
      ready: new SyncHook<[]>([]),
      stop: new AsyncSeriesHook<[]>([]),
      error: new SyncHook<[ErrorReport]>(['report']),
      batch: new SyncHook<[BatchReport]>(['report']),
      resync: new SyncHook<[string]>(['reason']),
      deliveryHeld: new SyncHook<[boolean]>(['held']),
      reconfigure: new SyncHook<[LiveSettings]>(['settings']),
      selectionChanged: new SyncHook<[]>([]),
    });
    this.pipeline = new Pipeline(this.hooks, this.counters, (report) => this.reportError(report), this.logger, () => this.clusterId);
    this.tagErrorsWithPluginNames();
    this.state = this.createState();
    const names = new Set<string>();
    for (const plugin of this.plugins) {
      if (names.has(plugin.name)) this.logger.warn({ plugin: plugin.name }, 'plugin listed twice; both instances run');
      names.add(plugin.name);
      try {
        plugin.apply(this);
      } catch (error) {
        throw pluginError(plugin.name, 'apply', error);
      }
    }
  }

  /** Starts plugins and sources. Resolves once every source has started (not synced: see `ready`). */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.forbidLateTaps();
    this.phase = 'start';
    await this.hooks.start.promise();
    this.phase = 'cluster id';
    this.clusterId = await this.hooks.clusterId.promise(this.clusterId);
    if (!this.ready) this.phase = 'sync';
    const sinks = this.hooks.sink.taps as TapInfo[];
    const sinkNames = distinctNames(sinks);
    this.lanes = sinks.map((tap, i) => this.createLane(tap, sinkNames[i]));
    this.pipeline.lanes = this.lanes;
    const sources = this.hooks.source.taps as TapInfo[];
    const sourceNames = distinctNames(sources);
    this.unsynced = new Set(sourceNames);
    if (sources.length === 0) this.markReady();
    this.sourceRuns = sources.map((tap, i) => callTap(tap, [this.createSourceContext(sourceNames[i])]).catch((error) => {
      throw pluginError(tap.name, 'source', error);
    }));
    await Promise.all(this.sourceRuns);
  }

  /** Resolves when every source has listed its initial state. */
  readsWholeObjects(tapName: string, which: (resource: ResourceRef) => boolean): void {
    if (this.started) throw new MeshSyncError('MESHSYNC_PLUGIN_FAILED', 'readsWholeObjects is declared during setup, before start: sources choose what they parse when they start');
    const declared = this.wholeObjectReaders.get(tapName) ?? [];
    this.wholeObjectReaders.set(tapName, [...declared, which]);
  }

  keepStateResident(): void {
    if (this.started) throw new MeshSyncError('MESHSYNC_PLUGIN_FAILED', 'keepStateResident is declared before start: sources choose what they keep when they start');
    this.stateResident = true;
  }

  /** Whether any filter, transform or sink tap reads the resource's objects whole: one that declared nothing does. */
  private readWhole(resource: ResourceRef): boolean {
    for (const hook of [this.hooks.filter, this.hooks.transform, this.hooks.sink]) {
      for (const tap of hook.taps as TapInfo[]) {
        const declared = this.wholeObjectReaders.get(tap.name);
        if (declared === undefined || declared.some((which) => which(resource))) return true;
      }
    }
    return false;
  }

  whenReady(): Promise<void> {
    return this.readyReached.promise;
  }

  /**
   * Stops sources, drains every sink lane until stopTimeoutMs, then runs stop taps in reverse order
   * until stopTimeoutMs + STOP_MARGIN_MS: the whole stop never takes longer. Resolves with what was
   * left undelivered (also counted, per sink, in `counters.sinks[sink].undeliveredAtStop`).
   */
  stop(): Promise<StopReport> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  /** Waits until every lane has delivered what it holds (for tests and snapshots). */
  async drain(): Promise<void> {
    await Promise.all(this.lanes.map((lane) => lane.idle()));
  }

  snapshot(typeOf?: (item: SnapshotItem) => EventType | undefined): AsyncIterable<SyncEvent> {
    return { [Symbol.asyncIterator]: () => this.readSnapshot(typeOf) };
  }

  private async *readSnapshot(typeOf?: (item: SnapshotItem) => EventType | undefined): AsyncGenerator<SyncEvent> {
    const observedAt = Date.now();
    for (const reader of this.snapshotReaders) {
      for await (const item of reader.read()) {
        const type = typeOf === undefined ? 'ADDED' : typeOf(item);
        if (type === undefined) continue;
        const event = this.pipeline.run(new PipelineEvent(type, item.resource, item.object, this.clusterId, observedAt), reader.source);
        if (event !== undefined) yield event;
      }
    }
  }

  holdDelivery(holder: string, held: boolean): void {
    const wasOpen = this.deliveryHolds.size === 0;
    if (held) this.deliveryHolds.add(holder);
    else this.deliveryHolds.delete(holder);
    const open = this.deliveryHolds.size === 0;
    for (const lane of this.lanes) lane.setOpen(open);
    this.releaseSources();
    if (open !== wasOpen) this.hooks.deliveryHeld.call(!open);
  }

  /**
   * True while every open lane holds more than `sourcePauseAbove` events. One slow or failing sink
   * never pauses the sources while another can take more (it coalesces instead), and a held lane
   * (a standby replica) pauses nothing.
   */
  private sinksBehind(): boolean {
    if (this.abort.signal.aborted) return false;
    let open = 0;
    for (const lane of this.lanes) {
      if (!lane.isOpen) continue;
      if (lane.backlog <= this.options.sourcePauseAbove) return false;
      open++;
    }
    return open > 0;
  }

  private sinksCaughtUp(): Promise<void> {
    if (!this.sinksBehind()) return Promise.resolve();
    return new Promise((resolve) => this.catchUpWaiters.push(resolve));
  }

  private releaseSources(): void {
    if (this.catchUpWaiters.length === 0 || this.sinksBehind()) return;
    const waiters = this.catchUpWaiters;
    this.catchUpWaiters = [];
    for (const resolve of waiters) resolve();
  }

  requestResync(reason: string): void {
    this.logger.info({ reason }, 'resync requested');
    this.hooks.resync.call(reason);
  }

  reconfigure(settings: LiveSettings): void {
    this.hooks.reconfigure.call(settings);
    this.hooks.selectionChanged.call();
  }

  addReadinessCheck(name: string, check: () => boolean): void {
    this.readinessChecks.set(name, check);
  }

  addStatus(name: string, read: () => Record<string, unknown>): void {
    this.statusReaders.set(name, read);
  }

  /** Every readiness check by name, plus `synced` for the sources' initial lists. */
  readiness(): Record<string, boolean> {
    const checks: Record<string, boolean> = { synced: this.ready };
    for (const [name, check] of this.readinessChecks) checks[name] = safeCheck(check);
    return checks;
  }

  private progress(): SyncProgress {
    const waitingFor: string[] = [];
    const resources: SyncProgress['resources'][number][] = [];
    if (this.phase === 'start') waitingFor.push('plugins to start');
    if (this.phase === 'cluster id') waitingFor.push('the cluster id');
    if (this.phase === 'sync') {
      for (const name of this.unsynced) {
        const read = this.progressReaders.get(name);
        const progress = read === undefined ? undefined : safeRead(read);
        if (progress === undefined) waitingFor.push(name);
        else if (progress.waitingFor !== undefined) waitingFor.push(`${name}: ${progress.waitingFor}`);
        for (const resource of progress?.resources ?? []) if (!resource.listed) waitingFor.push(resource.id);
      }
    }
    for (const read of this.progressReaders.values()) resources.push(...(safeRead(read)?.resources ?? []));
    return { phase: this.phase, waitingFor, resources, objects: resources.reduce((sum, resource) => sum + resource.objects, 0) };
  }

  private reportError(report: ErrorReport): void {
    try {
      this.hooks.error.call(report);
    } catch (error) {
      this.logger.error({ err: asError(error) }, 'an error tap threw');
    }
    this.logger.warn({ plugin: report.plugin, hook: report.hook, err: report.error }, redactSecretsInText(report.error.message));
  }

  private createSourceContext(name: string): SourceContext {
    let synced = false;
    return {
      name,
      clusterId: this.clusterId,
      logger: this.logger.child({ plugin: name }),
      signal: this.abort.signal,
      emit: (type, resource, object, observedAt) => this.pipeline.emit(name, type, resource, object, observedAt ?? Date.now()),
      synced: () => {
        if (synced) return;
        synced = true;
        this.unsynced.delete(name);
        if (this.unsynced.size === 0) this.markReady();
      },
      provideSnapshot: (read, counts) => this.snapshotReaders.push({ source: name, read, counts }),
      provideUnreadable: (read) => this.unreadableReaders.push(read),
      provideProgress: (read) => this.progressReaders.set(name, read),
      selectResources: (candidates) => this.hooks.selectResources.call([...candidates]),
      reportError: (error, detail) => this.reportError({ plugin: name, hook: 'source', error: asError(error), ...detail }),
      sinksCaughtUp: () => this.sinksCaughtUp(),
      sinksBehind: () => this.sinksBehind(),
      readsWholeObjects: (resource) => this.readWhole(resource),
      keepsStateResident: () => this.stateResident,
    };
  }

  private createLane(tap: TapInfo, name: string): Lane {
    const counters = (this.counters.sinks[name] = { delivered: 0, failedAttempts: 0, deadLettered: 0, undeliveredAtStop: 0 });
    const context: SinkContext = {
      name,
      clusterId: this.clusterId,
      logger: this.logger.child({ plugin: name }),
      signal: this.sinkAbort.signal,
      snapshot: (typeOf) => this.snapshot(typeOf),
    };
    const options: LaneOptions = this.options;
    const lane = new Lane(name, options, {
      send: sendTo(tap, context),
      reread: this.pipeline.rereadFor(name),
      attempted: (batch, attempt, error) => {
        if (error === undefined) counters.delivered += batch.length;
        else {
          counters.failedAttempts++;
          this.reportError({ plugin: name, hook: 'sink', error: attributed(name, 'sink', error) });
        }
        try {
          this.hooks.batch.call({ sink: name, events: batch, attempt, ok: error === undefined, error });
        } catch (tapError) {
          // A counter must never stall or crash delivery.
          this.logger.error({ err: asError(tapError) }, 'a batch tap threw');
        }
      },
      deadLettered: (event, error) => {
        counters.deadLettered++;
        const meta = event.object.metadata;
        const key = `${resourceId(event.resource)} ${meta.namespace ? `${meta.namespace}/` : ''}${meta.name}${meta.uid ? ` (uid ${meta.uid})` : ''}`;
        this.reportError({
          plugin: name,
          hook: 'sink',
          event,
          error: new MeshSyncError('MESHSYNC_EVENT_UNDELIVERABLE', `${name} never accepted the ${event.type} of ${key} while it accepted other events; skipped (dead-lettered): ${error.message}`, { cause: error }),
        });
      },
      delivered: () => this.releaseSources(),
      highWater: (pending) => this.logger.warn({ sink: name, pending }, 'sink is behind: events are held (coalesced per object) until it accepts them'),
    });
    lane.setOpen(this.deliveryHolds.size === 0);
    return lane;
  }

  private markReady(): void {
    if (this.ready) return;
    this.ready = true;
    this.phase = 'synced';
    this.logger.info('initial sync complete');
    this.hooks.ready.call();
    this.readyReached.resolve();
  }

  retryDelivery(sink: string): void {
    for (const lane of this.lanes) if (lane.sink === sink || lane.sink.startsWith(`${sink}#`)) lane.retryNow();
  }

  private async doStop(): Promise<StopReport> {
    const drainBy = Date.now() + this.options.stopTimeoutMs;
    const stopBy = drainBy + STOP_MARGIN_MS;
    // A replica whose delivery is held (a standby) has nothing to drain: the leader delivers.
    const held = this.deliveryHolds.size > 0;
    this.abort.abort();
    this.releaseSources();
    await settledBy(Promise.allSettled(this.sourceRuns), drainBy);
    // The deadline is short next to a backoff (up to retryMaxMs): a failed batch is retried now.
    for (const lane of this.lanes) lane.retryNow();
    if (!held) await settledBy(this.drain(), drainBy);
    const undelivered: Record<string, number> = {};
    let undeliveredTotal = 0;
    for (const lane of this.lanes) {
      const left = lane.close();
      if (held || left === 0) continue;
      undelivered[lane.sink] = left;
      undeliveredTotal += left;
      this.counters.sinks[lane.sink].undeliveredAtStop += left;
      this.logger.error({ sink: lane.sink, events: left, code: 'MESHSYNC_STOP_TIMEOUT' }, `stop deadline passed; ${left} events not delivered to this sink`);
    }
    this.sinkAbort.abort();
    let stoppingTap: string | undefined;
    const stopTaps = (async () => {
      for (const tap of [...(this.hooks.stop.taps as TapInfo[])].reverse()) {
        stoppingTap = tap.name;
        try {
          await callTap(tap, []);
        } catch (error) {
          this.reportError({ plugin: tap.name, hook: 'stop', error: pluginError(tap.name, 'stop', error) });
        }
      }
      stoppingTap = undefined;
    })();
    if (!(await settledBy(stopTaps, stopBy))) {
      this.logger.warn({ plugin: stoppingTap, code: 'MESHSYNC_STOP_TIMEOUT' }, `stop deadline passed while ${stoppingTap} was stopping; not waited for (nor the stop taps after it)`);
    }
    return { undelivered, undeliveredTotal };
  }

  /** Every tap's function is wrapped once, at tap time, so what it throws names its plugin and hook. */
  private tagErrorsWithPluginNames(): void {
    for (const hookName of START_UP_HOOKS) {
      this.hooks[hookName].intercept({ register: (tap: TapInfo) => ({ ...tap, fn: attributedTap(tap, hookName) }) } as never);
    }
    for (const [hookName, hook] of Object.entries(this.hooks)) {
      if ((UNWRAPPED_HOOKS as readonly string[]).includes(hookName) || (START_UP_HOOKS as readonly string[]).includes(hookName)) continue;
      (hook as SyncHook<unknown[]>).intercept({
        register: (tap: TapInfo) => {
          const fn = tap.fn;
          if (tap.type !== 'sync') return tap;
          tap.fn = (...args: unknown[]) => {
            try {
              return fn(...args);
            } catch (error) {
              throw pluginError(tap.name, hookName, error);
            }
          };
          return tap;
        },
      } as never);
    }
  }

  private forbidLateTaps(): void {
    for (const [hookName, hook] of Object.entries(this.hooks)) {
      for (const method of ['tap', 'tapAsync', 'tapPromise'] as const) {
        if (typeof (hook as any)[method] !== 'function') continue;
        (hook as any)[method] = () => {
          throw new MeshSyncError('MESHSYNC_LATE_TAP', `hook ${hookName} was tapped after start; tap every hook inside apply(core)`);
        };
      }
    }
  }

  private createState(): CoreState {
    const core = this;
    return {
      get started() {
        return core.started;
      },
      get ready() {
        return core.ready;
      },
      get deliveryHeld() {
        return core.deliveryHolds.size > 0;
      },
      lanes: () => this.lanes.map((lane) => ({ sink: lane.sink, pending: lane.pendingCount, oldestAgeMs: lane.oldestAgeMs(), inFlight: lane.inFlightCount })),
      progress: () => this.progress(),
      resourceCounts: () => {
        const counts: Record<string, number> = {};
        for (const reader of this.snapshotReaders) {
          const items = reader.counts === undefined ? reader.read() : undefined;
          if (reader.counts) Object.assign(counts, reader.counts());
          // A source that reads its state anew (a fresh list) gives its counts; one that holds it may count it here.
          else if (items !== undefined && Symbol.iterator in items) {
            for (const item of items) {
              const id = resourceId(item.resource);
              counts[id] = (counts[id] ?? 0) + 1;
            }
          }
        }
        return counts;
      },
      unreadableResources: () => Object.assign({}, ...this.unreadableReaders.map((read) => read())),
      statuses: () => {
        const statuses: Record<string, Record<string, unknown>> = {};
        for (const [name, read] of this.statusReaders) {
          try {
            statuses[name] = read();
          } catch (error) {
            statuses[name] = { error: asError(error).message };
          }
        }
        return statuses;
      },
    };
  }
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((done) => (resolve = done));
  return { promise, resolve };
}

/** Waits for `work` until the time `deadline` (ms since the epoch): true when it settled by then. */
async function settledBy(work: Promise<unknown>, deadline: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => (timer = setTimeout(resolve, Math.max(0, deadline - Date.now()), false)));
  try {
    return await Promise.race([work.then(() => true, () => true), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** A progress reader's answer; a reader that throws must not break a display or an error message. */
function safeRead(read: () => SourceProgress): SourceProgress | undefined {
  try {
    return read();
  } catch {
    return undefined;
  }
}

function safeCheck(check: () => boolean): boolean {
  try {
    return check();
  } catch {
    return false;
  }
}

/** Builds a core from plugins; nothing runs until start(). */
export function createCore(options: CoreOptions): MeshSyncCore {
  return new MeshSyncCore(options);
}
