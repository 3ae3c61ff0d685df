import { resourceId } from './resource.ts';
import type { EventType, KubeObject, ResourceRef, SyncEvent } from './types.ts';

/**
 * An event as the core makes it. A class, not an object literal, and so is every other record
 * made per event that holds an object, text or payload (the NATS sink's messages):
 * V8 learns per literal site whether its objects live long, and during an initial sync (events
 * queued behind a busy sink) it decides to allocate that site's objects in the old generation from
 * then on. An old-generation record keeps what it holds alive through every scavenge, and major
 * GCs follow (bench/README.md, "Why per-event records are classes"). Objects made by `new` carry
 * no such allocation-site feedback.
 */
export class PipelineEvent implements SyncEvent {
  constructor(
    readonly type: EventType,
    readonly resource: ResourceRef,
    readonly object: KubeObject,
    readonly clusterId: string,
    readonly observedAt: number,
  ) {}
}

/**
 * Identity of the object an event is about: coalescing merges events with the same key. The uid
 * is unique in a cluster and already a string, so keying on it allocates nothing on the hot path.
 */
export function objectKey(event: Pick<SyncEvent, 'resource' | 'object'>): string {
  const meta = event.object.metadata;
  return meta.uid ?? `${event.resource.group}/${event.resource.resource}/${meta.namespace ?? ''}/${meta.name}`;
}

/** One event as a JSON line (without the newline), as the stdout and file sinks write it: `{"type","resource","cluster_id","object"}`. */
export function eventLine(event: SyncEvent): string {
  return JSON.stringify({ type: event.type, resource: resourceId(event.resource), cluster_id: event.clusterId, object: event.object });
}
