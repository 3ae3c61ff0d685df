import { PipelineEvent } from '../event.ts';
import { rereadableOf, type Rereadable } from '../serialized.ts';
import type { Batch, KubeObject, ResourceRef, SyncEvent } from '../types.ts';

/**
 * Identity of the object an event is about: coalescing merges events with the same key. The uid
 * is unique in a cluster and already a string, so keying on it allocates nothing on the hot path.
 */
export function objectKey(event: Pick<SyncEvent, 'resource' | 'object'>): string {
  const meta = event.object.metadata;
  return meta.uid ?? `${event.resource.group}/${event.resource.resource}/${meta.namespace ?? ''}/${meta.name}`;
}

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

export interface LaneOptions {
  readonly batchSize: number;
  /**
   * How long a partial batch waits for more events. 0: delivered as soon as the sink is free, so
   * batches form only while a delivery is in flight (low latency when quiet, large batches under load).
   */
  readonly batchMaxWaitMs: number;
  readonly retryInitialMs: number;
  readonly retryMaxMs: number;
  /** Pending count above which a warning is logged (once per crossing); nothing is dropped. */
  readonly highWaterMark: number;
}

export interface LaneCallbacks {
  deliver(batch: Batch): Promise<void>;
  /**
   * An event the lane held by reference (see `Lane.push`), made whole again just before its
   * delivery: the object's latest state read from the source's record and run through the
   * pipeline; `undefined` drops it (filtered now, or the record holds another object by now).
   */
  reread(event: SyncEvent, held: SourceRecord): SyncEvent | undefined;
  attempted(batch: Batch, attempt: number, error?: Error): void;
  /** A batch was accepted: the lane holds fewer events. */
  delivered(): void;
  highWater(pending: number): void;
}

/**
 * Backlog from which a lane holds the events of objects their source can read again by
 * reference (see `Lane.push`): some tens of MB of parsed pods.
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
 * One sink's queue: coalescing by object, batching by size and time, and retrying a failed batch
 * with jittered backoff until it is accepted. A batch in flight is retried as it was (so a sink
 * that delivered part of it sees the same events again, never a subset); what arrives meanwhile
 * waits, coalesced, behind it. Memory is bounded by the number of objects, not by time; and while
 * the lane is held or far behind, by about 200 bytes per object its source keeps, not the object.
 */
export class Lane {
  private pending = new Map<string, SyncEvent>();
  private oldestAt = 0;
  /** Events taken from `pending` in one go (cheaper than deleting entries one by one), delivered in batches. */
  private taken: SyncEvent[] = [];
  private takenOffset = 0;
  private running = false;
  /** A batch not accepted yet, kept as it was made (events held by reference read once). */
  private unaccepted: { batch: SyncEvent[]; end: number } | null = null;
  private timer: NodeJS.Timeout | null = null;
  private idleWaiters: (() => void)[] = [];
  private deleteSeq = 0;
  /** Set when an event is held by reference; cleared once the lane is empty (then batches are plain slices). */
  private holdsReferences = false;
  private aboveHighWater = false;
  /** Ends the backoff before a retry early (see retryNow). */
  private wakeRetry: (() => void) | null = null;
  /** retryNow came while an attempt was in flight: the backoff after it, if it fails, is skipped. */
  private retryRequested = false;
  private closed = false;
  private open = true;

  constructor(readonly sink: string, private readonly options: LaneOptions, private readonly callbacks: LaneCallbacks) {}

  /**
   * Queues an event. `emitted`: the event as its source emitted it, before the transforms. While
   * the gate is closed (a standby) or the backlog is above HOLD_BY_REFERENCE_ABOVE (a sink down),
   * and the source keeps a record of the object (see `markKeptBySource`), the lane keeps that
   * record instead of the object and reads the object's latest state from it just before
   * delivery; coalescing already made "the latest state" what it delivers. A DELETED is always
   * kept whole: its object is no longer in the source's keeping.
   */
  push(event: SyncEvent, emitted: SyncEvent = event): void {
    const key = objectKey(event);
    if (event.type !== 'DELETED' && (!this.open || this.backlog >= HOLD_BY_REFERENCE_ABOVE)) {
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
    if (this.pending.size > this.options.highWaterMark !== this.aboveHighWater) {
      this.aboveHighWater = !this.aboveHighWater;
      if (this.aboveHighWater) this.callbacks.highWater(this.pending.size);
    }
    this.schedule();
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

  get isOpen(): boolean {
    return this.open && !this.closed;
  }

  oldestAgeMs(now = Date.now()): number {
    if (this.takenOffset < this.taken.length) return now - this.taken[this.takenOffset].observedAt;
    return this.pending.size > 0 ? now - this.oldestAt : 0;
  }

  /** Resolves once nothing is pending or in flight; delivers what is pending without waiting for the timer. */
  idle(): Promise<void> {
    if (this.isIdle() || this.closed) return Promise.resolve();
    const settled = new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    this.startRun();
    return settled;
  }

  /** A closed gate holds delivery (events keep coalescing); opening it delivers what waits. */
  setOpen(open: boolean): void {
    if (this.open === open) return;
    this.open = open;
    if (open) this.schedule();
  }

  /**
   * A failed batch is retried now, and its backoff starts over: the sink can take it again (a
   * broker reconnected) or time is short (a stop is draining).
   */
  retryNow(): void {
    if (this.wakeRetry) this.wakeRetry();
    else this.retryRequested = true;
  }

  /** Stops retrying; used when the stop deadline has passed. Returns how many events were left undelivered. */
  close(): number {
    this.closed = true;
    this.wakeRetry?.();
    this.clearTimer();
    const left = this.backlog;
    this.settle();
    return left;
  }

  private isIdle(): boolean {
    return this.backlog === 0;
  }

  private clearTimer(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(): void {
    if (this.running || this.closed || !this.open) return;
    if (this.pending.size >= this.options.batchSize || this.inFlightCount > 0 || this.options.batchMaxWaitMs === 0) this.startRun();
    else if (this.timer === null && this.pending.size > 0) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.startRun();
      }, this.options.batchMaxWaitMs);
    }
  }

  private startRun(): void {
    if (this.running || this.closed || !this.open) return;
    this.clearTimer();
    this.running = true;
    // setImmediate lets the sources' synchronous emits of this tick join the batch.
    setImmediate(() => void this.run());
  }

  private async run(): Promise<void> {
    while (!this.closed && this.open) {
      if (this.takenOffset >= this.taken.length) {
        if (this.pending.size === 0) break;
        this.taken = Array.from(this.pending.values());
        this.takenOffset = 0;
        this.pending = new Map();
      }
      const end = this.unaccepted?.end ?? Math.min(this.takenOffset + this.options.batchSize, this.taken.length);
      const batch = this.unaccepted?.batch ?? this.wholeEvents(end);
      this.unaccepted = null;
      if (batch.length > 0 && !(await this.deliver(batch))) {
        this.unaccepted = { batch, end };
        break;
      }
      this.takenOffset = end;
      this.callbacks.delivered();
      if (this.takenOffset >= this.taken.length) {
        this.taken = [];
        this.takenOffset = 0;
        if (this.pending.size === 0) this.holdsReferences = false;
        // A partial batch waits for the timer (when there is one), unless somebody waits for the lane to drain.
        if (this.pending.size < this.options.batchSize && this.idleWaiters.length === 0 && this.options.batchMaxWaitMs > 0) break;
      }
    }
    this.running = false;
    if (this.backlog > 0) this.schedule();
    this.settle();
  }

  /** Offers a batch until it is accepted, with backoff; false when the lane closed or was held meanwhile. */
  private async deliver(batch: Batch): Promise<boolean> {
    let delay = this.options.retryInitialMs;
    // A gate closed meanwhile (this replica became a standby) stops the retries: the batch
    // waits, to be retried as it was once the gate opens again.
    for (let attempt = 1; !this.closed && this.open; attempt++) {
      let failure: Error | undefined;
      try {
        await this.callbacks.deliver(batch);
      } catch (error) {
        failure = error instanceof Error ? error : new Error(String(error));
      }
      this.callbacks.attempted(batch, attempt, failure);
      if (failure === undefined) {
        this.retryRequested = false;
        return true;
      }
      const woken = await this.backoff(Math.min(delay * (0.5 + Math.random()), this.options.retryMaxMs));
      delay = woken ? this.options.retryInitialMs : Math.min(delay * 2, this.options.retryMaxMs);
    }
    return false;
  }

  /** Waits `ms` before a retry; true when retryNow (or close) ended the wait early. */
  private backoff(ms: number): Promise<boolean> {
    if (this.retryRequested) {
      this.retryRequested = false;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wakeRetry = null;
        resolve(false);
      }, ms);
      this.wakeRetry = () => {
        clearTimeout(timer);
        this.wakeRetry = null;
        resolve(true);
      };
    });
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
      const whole = this.callbacks.reread(event, held);
      if (whole !== undefined) batch.push(whole);
    }
    return batch;
  }

  private settle(): void {
    if (!this.isIdle() && !this.closed) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
