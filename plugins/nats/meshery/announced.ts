/**
 * What Meshery has been told since the last re-announce, so the next one can send DELETED for
 * each object gone meanwhile. Go MeshSync re-lists without that, and rows of objects deleted while
 * Meshery was not listening stay in its database for good.
 */
import { objectKey, type Batch, type ResourceRef, type SyncEvent } from '../../../core/index.ts';
import { identityOf } from './wire.ts';

/** Enough of an object for a DELETED Meshery can key (cluster, kind, apiVersion, namespace, name). */
export class Identity {
  constructor(readonly resource: ResourceRef, readonly object: SyncEvent['object']) {}
}

/**
 * Deleted objects are remembered until the next announce, so a DELETED Meshery missed is sent
 * again then; past this many the oldest are forgotten (their live DELETED was still sent).
 */
const TOMBSTONE_LIMIT = 50_000;

export class Announced {
  private readonly live = new Map<string, Identity>();
  private readonly tombstones = new Map<string, Identity>();

  /** A batch the broker confirmed. */
  record(batch: Batch): void {
    for (const event of batch) {
      const key = objectKey(event);
      const identity = new Identity(event.resource, identityOf(event));
      if (event.type === 'DELETED') {
        this.live.delete(key);
        this.tombstones.delete(key);
        this.tombstones.set(key, identity);
        if (this.tombstones.size > TOMBSTONE_LIMIT) this.tombstones.delete(this.tombstones.keys().next().value!);
      } else {
        this.tombstones.delete(key);
        this.live.set(key, identity);
      }
    }
  }

  /** Everything announced (or deleted) since the last announce that `mentioned` does not hold. */
  *goneFrom(mentioned: ReadonlySet<string>): Iterable<Identity> {
    for (const map of [this.live, this.tombstones]) {
      for (const [key, identity] of map) if (!mentioned.has(key)) yield identity;
    }
  }

  /** A re-announce went through: Meshery now holds exactly `mentioned`. */
  announcedExactly(mentioned: ReadonlySet<string>): void {
    this.tombstones.clear();
    for (const key of this.live.keys()) if (!mentioned.has(key)) this.live.delete(key);
  }

  get size(): number {
    return this.live.size;
  }
}
