/**
 * The queue stage of a lane: events coalesced by object (the latest state wins, a DELETED is never
 * dropped), taken out in batches; while the lane is held or far behind, an object its source keeps
 * is held as the source's record of it, ~200 bytes instead of the parsed object.
 */
import { objectKey, PipelineEvent } from '../event.ts';
import { rereadableOf, type Rereadable } from '../serialized.ts';
import type { KubeObject, ResourceRef, SyncEvent } from '../types.ts';

/**
 * Merges a newer event for an object into the one still pending for it.
 * Returns the event to keep, `null` when the pair cancels out (created and deleted before anyone
 * saw it), or `'both'` when the older one must still be delivered first (a delete followed by a
 * re-creation under the same key: a DELETED is never dropped).
 */
export function coalesce(pending: SyncEvent, next: SyncEvent): SyncEvent | null | 'both' {
  if (next.type === 'DELETED') return pending.type === 'ADDED' ? null : next;
  if (pending.type === 'DELETED') return 'both';
  if (pending.type === 'ADDED' && next.type !== 'ADDED') return new PipelineEvent('ADDED', next.resource, next.object, next.clusterId, next.observedAt);
  return next;
}

/**
 * Backlog from which a lane holds the events of objects their source can read again by
 * reference (see `CoalescingQueue.push`): some tens of MB of parsed pods.
 */
export const HOLD_BY_REFERENCE_ABOVE = 5_000;

/**
 * The source's record of an emitted object, with what the source said of it before any transform:
 * its resource and uid (a record since rewritten for another object of the same name is not it).
 */
export interface SourceRecord {
  readonly record: Rereadable;
  readonly resource: ResourceRef;
  readonly uid: string | undefined;
}

/** In place of an event's object while a lane holds it by reference. */
class HeldObject implements SourceRecord {
  constructor(readonly record: Rereadable, readonly resource: ResourceRef, readonly uid: string | undefined) {}
}

/**
 * An event held by reference, made whole again just before its delivery: the object's latest
 * state read from the source's record and run through the pipeline; `undefined` drops it
 * (filtered now, or the record holds another object by now).
 */
export type Reread = (event: SyncEvent, held: SourceRecord) => SyncEvent | undefined;

export class CoalescingQueue {
  private pending = new Map<string, SyncEvent>();
  private oldestAt = 0;
  /** Events taken from `pending` in one go (cheaper than deleting entries one by one), delivered in batches. */
  private taken: SyncEvent[] = [];
  private takenOffset = 0;
  private deleteSeq = 0;
  /** Set when an event is held by reference; cleared once the queue is empty (then batches are plain slices). */
  private holdsReferences = false;
  private aboveHighWater = false;

  constructor(
    /** Pending count above which `highWater` is called (once per crossing); nothing is dropped. */
    private readonly highWaterMark: number,
    private readonly highWater: (pending: number) => void,
    private readonly reread: Reread,
  ) {}

  /**
   * Queues an event. `emitted`: the event as its source emitted it, before the transforms. With
   * `byReference` (the lane is held, or far behind), and when the source keeps a record of the
   * object (see `markKeptBySource`), the queue keeps that record instead of the object and reads
   * the object's latest state from it when the event is taken; coalescing already made "the latest
   * state" what it delivers. A DELETED is always kept whole: its object is no longer in the source's keeping.
   */
  push(event: SyncEvent, emitted: SyncEvent, byReference: boolean): void {
    const key = objectKey(event);
    if (byReference && event.type !== 'DELETED') {
      const record = rereadableOf(emitted.object);
      if (record !== undefined) {
        const held = new HeldObject(record, emitted.resource, emitted.object.metadata.uid) as unknown as KubeObject;
        this.holdsReferences = true;
        event = new PipelineEvent(event.type, event.resource, held, event.clusterId, event.observedAt);
      }
    }
    const previous = this.pending.get(key);
    if (previous === undefined) {
      if (this.pending.size === 0) this.oldestAt = event.observedAt;
      this.pending.set(key, event);
    } else {
      const merged = coalesce(previous, event);
      if (merged === null) this.pending.delete(key);
      else if (merged === 'both') {
        this.pending.delete(key);
        this.pending.set(`${key}\0deleted${this.deleteSeq++}`, previous);
        this.pending.set(key, event);
      } else this.pending.set(key, merged);
    }
    if (this.pending.size > this.highWaterMark !== this.aboveHighWater) {
      this.aboveHighWater = !this.aboveHighWater;
      if (this.aboveHighWater) this.highWater(this.pending.size);
    }
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  get inFlightCount(): number {
    return this.taken.length - this.takenOffset;
  }

  /** Events held: pending and taken for delivery. */
  get backlog(): number {
    return this.pending.size + this.inFlightCount;
  }

  oldestAgeMs(now = Date.now()): number {
    if (this.takenOffset < this.taken.length) return now - this.taken[this.takenOffset].observedAt;
    return this.pending.size > 0 ? now - this.oldestAt : 0;
  }

  /**
   * The next batch of at most `size` events, those held by reference read again, and where it ends
   * (for `accept`); undefined when nothing waits.
   */
  take(size: number): { batch: SyncEvent[]; end: number } | undefined {
    if (this.takenOffset >= this.taken.length) {
      if (this.pending.size === 0) return undefined;
      this.taken = Array.from(this.pending.values());
      this.takenOffset = 0;
      this.pending = new Map();
    }
    const end = Math.min(this.takenOffset + size, this.taken.length);
    return { batch: this.wholeEvents(end), end };
  }

  /** True when events wait behind the taken batch ending at `end`. */
  canWiden(end: number): boolean {
    return end < this.taken.length || this.pending.size > 0;
  }

  /**
   * Moves what is pending behind the taken events, so the next take holds the failing batch and
   * the events after it. Pending events stay behind taken ones of the same object, in order.
   */
  widen(): void {
    if (this.pending.size === 0) return;
    for (const event of this.pending.values()) this.taken.push(event);
    this.pending = new Map();
  }

  /** The batch ending at `end` was accepted. True when every taken event is delivered (the next take starts afresh). */
  accept(end: number): boolean {
    this.takenOffset = end;
    if (this.takenOffset < this.taken.length) return false;
    this.taken = [];
    this.takenOffset = 0;
    if (this.pending.size === 0) this.holdsReferences = false;
    return true;
  }

  /** The taken events up to `end`, those held by reference read again. */
  private wholeEvents(end: number): SyncEvent[] {
    if (!this.holdsReferences) return this.taken.slice(this.takenOffset, end);
    const batch: SyncEvent[] = [];
    for (let i = this.takenOffset; i < end; i++) {
      const event = this.taken[i];
      const held = event.object as unknown;
      if (!(held instanceof HeldObject)) {
        batch.push(event);
        continue;
      }
      const whole = this.reread(event, held);
      if (whole !== undefined) batch.push(whole);
    }
    return batch;
  }
}
