/**
 * The reference consumer of the wire format (PROTOCOL.md): builds the live view of each cluster
 * from events, and uses resync frames to drop objects whose DELETED it missed. Pure (no NATS):
 * feed it message payloads in the order they arrived.
 */
import type { KubeObject } from '../core/index.ts';

export interface WireEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: KubeObject;
  cluster_id: string;
  resync_id?: string;
  truncated?: boolean;
}

export interface WireMarker {
  type: 'RESYNC_BEGIN' | 'RESYNC_END';
  resync_id: string;
  cluster_id: string;
  count?: number;
}

/** Identity of an object in a consumer's view: its uid, or kind + namespace + name without one. */
export function wireKey(object: KubeObject): string {
  const meta = object.metadata;
  return meta.uid ?? `${object.apiVersion}/${object.kind}/${meta.namespace ?? ''}/${meta.name}`;
}

export class ReferenceConsumer {
  /** cluster id -> object key -> latest object. */
  readonly clusters = new Map<string, Map<string, KubeObject>>();
  /** Resyncs whose end marker reported more objects than arrived (messages lost: ask for another resync). */
  incompleteResyncs = 0;
  private readonly open = new Map<string, { cluster: string; seen: Set<string> }>();

  /** Applies one message payload (a JSON string or bytes). */
  apply(payload: string | Uint8Array): void {
    const message = JSON.parse(typeof payload === 'string' ? payload : new TextDecoder().decode(payload)) as WireEvent | WireMarker;
    switch (message.type) {
      case 'RESYNC_BEGIN':
        this.open.set(message.resync_id, { cluster: message.cluster_id, seen: new Set() });
        return;
      case 'RESYNC_END':
        return this.endResync(message);
      default:
        return this.applyEvent(message);
    }
  }

  view(clusterId: string): Map<string, KubeObject> {
    let view = this.clusters.get(clusterId);
    if (!view) this.clusters.set(clusterId, (view = new Map()));
    return view;
  }

  private applyEvent(event: WireEvent): void {
    const view = this.view(event.cluster_id);
    const key = wireKey(event.object);
    if (event.type === 'DELETED') view.delete(key);
    else view.set(key, event.object);
    if (event.resync_id !== undefined) this.open.get(event.resync_id)?.seen.add(key);
  }

  private endResync(marker: WireMarker): void {
    const frame = this.open.get(marker.resync_id);
    this.open.delete(marker.resync_id);
    // Without the begin marker, or with objects missing, the frame proves nothing: keep the view.
    if (!frame || frame.seen.size !== marker.count) {
      this.incompleteResyncs++;
      return;
    }
    const view = this.view(marker.cluster_id);
    for (const key of [...view.keys()]) if (!frame.seen.has(key)) view.delete(key);
  }
}
