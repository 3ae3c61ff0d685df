import {
  definePlugin, markKeptBySource, objectKey, type EventType, type KubeObject, type Rereadable, type ResourceRef, type SourceContext, type SyncEvent,
} from '../core/index.ts';
import { z } from 'zod';

/** Handle of an in-memory source: inject events as a Kubernetes watch would. */
export interface MemorySourceHandle {
  /** Emits one change and keeps the source's state (for snapshots) in step. */
  emit(type: EventType, resource: ResourceRef, object: KubeObject): void;
  /** Marks the initial list as done (the core then fires `ready`). */
  synced(): void;
  /** The current state, as a snapshot would read it. */
  readonly objects: ReadonlyMap<string, { resource: ResourceRef; object: KubeObject }>;
  /** What a paged source awaits between pages (SourceContext.sinksCaughtUp). */
  sinksCaughtUp(): Promise<void>;
  /** What a streaming source checks before reading on (SourceContext.sinksBehind). */
  sinksBehind(): boolean;
  /** With `rereadable`: how many times a lane read an object again from the source's records. */
  readonly rereads: number;
}

/**
 * A source plugin fed by hand; `handle` is usable once the core has started. `rereadable`: it keeps
 * a record per namespace/name that can be read again, as the kubernetes source's store does, so
 * lanes that hold events for long keep records instead of objects (see `markKeptBySource`).
 */
export function memorySource(name = 'test:memory-source', options: { syncedAtStart?: boolean; rereadable?: boolean } = {}) {
  const objects = new Map<string, { resource: ResourceRef; object: KubeObject }>();
  const records = new Map<string, Rereadable & { object: KubeObject }>();
  let context: SourceContext | undefined;
  let rereads = 0;
  /** The record of this namespace/name, rewritten with the latest object (a store's entry). */
  const recordOf = (resource: ResourceRef, object: KubeObject): Rereadable => {
    const path = `${resource.group}/${resource.resource}/${object.metadata.namespace ?? ''}/${object.metadata.name}`;
    let record = records.get(path);
    if (record === undefined) {
      record = {
        object,
        parse() {
          rereads++;
          return structuredClone(this.object);
        },
      };
      records.set(path, record);
    }
    record.object = object;
    return record;
  };
  const handle: MemorySourceHandle = {
    objects,
    get rereads() {
      return rereads;
    },
    emit(type, resource, object) {
      if (!context) throw new Error(`${name}: emit() before the core started`);
      const key = objectKey({ resource, object });
      if (type === 'DELETED') objects.delete(key);
      else {
        objects.set(key, { resource, object });
        markKeptBySource(object, options.rereadable ? recordOf(resource, object) : undefined);
      }
      context.emit(type, resource, object);
    },
    synced() {
      if (!context) throw new Error(`${name}: synced() before the core started`);
      context.synced();
    },
    sinksCaughtUp() {
      if (!context) throw new Error(`${name}: sinksCaughtUp() before the core started`);
      return context.sinksCaughtUp();
    },
    sinksBehind() {
      if (!context) throw new Error(`${name}: sinksBehind() before the core started`);
      return context.sinksBehind();
    },
  };
  const plugin = definePlugin({
    name,
    description: 'An in-memory source for tests.',
    options: z.object({}),
    setup: () => (core) => {
      core.hooks.source.tap(name, (ctx) => {
        context = ctx;
        ctx.provideSnapshot(() => objects.values());
        if (options.syncedAtStart !== false) ctx.synced();
      });
    },
  })();
  return { plugin, handle };
}

/** Handle of an in-memory sink: read what came out, make it fail or slow. */
export interface MemorySinkHandle {
  /** Every event accepted, in order of acceptance. */
  readonly events: SyncEvent[];
  /** Every batch accepted. */
  readonly batches: SyncEvent[][];
  /** Attempts rejected while `failing` was set. */
  rejected: number;
  /** While true, every batch is rejected (the core retries it). */
  failing: boolean;
  /** Delay before a batch is accepted. */
  delayMs: number;
  /** Resolves once `count` events were accepted in all, or `predicate` holds; rejects after `timeoutMs`. */
  waitFor(countOrPredicate: number | ((events: SyncEvent[]) => boolean), timeoutMs?: number): Promise<SyncEvent[]>;
  /** The state a consumer would build from the events: object key -> latest object. */
  view(): Map<string, KubeObject>;
  clear(): void;
}

/** `wholeObjects: false`: it declares that it reads metadata only, so sources may emit views; by default it reads objects whole (tests read their fields). */
export function memorySink(name = 'test:memory-sink', options: { wholeObjects?: boolean } = {}) {
  const waiters = new Set<() => void>();
  const handle: MemorySinkHandle = {
    events: [],
    batches: [],
    rejected: 0,
    failing: false,
    delayMs: 0,
    waitFor(countOrPredicate, timeoutMs = 5000) {
      const done = typeof countOrPredicate === 'number'
        ? (events: SyncEvent[]) => events.length >= countOrPredicate
        : countOrPredicate;
      if (done(handle.events)) return Promise.resolve(handle.events);
      return new Promise((resolve, reject) => {
        const check = () => {
          if (!done(handle.events)) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(handle.events);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`${name}: timed out after ${timeoutMs} ms with ${handle.events.length} events`));
        }, timeoutMs);
        waiters.add(check);
      });
    },
    view() {
      const view = new Map<string, KubeObject>();
      for (const event of handle.events) {
        const key = objectKey(event);
        if (event.type === 'DELETED') view.delete(key);
        else view.set(key, event.object);
      }
      return view;
    },
    clear() {
      handle.events.length = 0;
      handle.batches.length = 0;
    },
  };
  const plugin = definePlugin({
    name,
    description: 'An in-memory sink for tests.',
    options: z.object({}),
    setup: () => (core) => {
      if (options.wholeObjects === false) core.readsWholeObjects(name, () => false);
      core.hooks.sink.tapPromise(name, async (batch) => {
        if (handle.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, handle.delayMs));
        if (handle.failing) {
          handle.rejected++;
          throw new Error(`${name} is failing on purpose`);
        }
        handle.batches.push([...batch]);
        for (const event of batch) handle.events.push(event);
        for (const check of [...waiters]) check();
      });
    },
  })();
  return { plugin, handle };
}
