import type { Batch, SyncEvent } from './types.ts';

/**
 * Identity of the object an event is about: coalescing merges events with the same key. The uid
 * is unique in a cluster and already a string, so keying on it allocates nothing on the hot path.
 */
export function objectKey(event: SyncEvent): string {
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
  if (pending.type === 'ADDED' && next.type !== 'ADDED') return { ...next, type: 'ADDED' };
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
  attempted(batch: Batch, attempt: number, error?: Error): void;
  highWater(pending: number): void;
}

/**
 * One sink's queue: coalescing by object, batching by size (and optionally time), and retrying a
 * failed batch with jittered backoff until it is accepted. A batch in flight is retried as it was
 * (so a sink that delivered part of it sees the same events again, never a subset); what arrives
 * meanwhile waits, coalesced, behind it. Memory is bounded by the number of objects, not by time.
 *
 * The queue is an array in arrival order plus an index from object key to absolute position. The
 * index outlives deliveries (an entry pointing before the queue's head means "nothing pending"),
 * so the steady state rewrites entries instead of growing and rehashing a fresh map per batch.
 */
export class Lane {
  private readonly index = new Map<string, number>();
  private queue: (SyncEvent | null)[] = [];
  /** Next position of `queue` to deliver; earlier ones were taken. */
  private head = 0;
  /** Absolute position of queue[0]. */
  private base = 0;
  private pending = 0;
  private oldestAt = 0;
  private inFlight: Batch | null = null;
  private running = false;
  private timer: NodeJS.Timeout | null = null;
  private idleWaiters: (() => void)[] = [];
  private aboveHighWater = false;
  private closed = false;
  private open = true;

  constructor(readonly sink: string, private readonly options: LaneOptions, private readonly callbacks: LaneCallbacks) {}

  push(event: SyncEvent): void {
    const key = objectKey(event);
    const at = this.index.get(key);
    if (at !== undefined && at >= this.base + this.head) {
      const slot = at - this.base;
      const merged = coalesce(this.queue[slot]!, event);
      if (merged === null) {
        this.queue[slot] = null;
        this.index.delete(key);
        this.pending--;
      } else if (merged === 'both') this.append(key, event); // the DELETED keeps its place, ahead
      else this.queue[slot] = merged;
    } else this.append(key, event);
    if (this.pending > this.options.highWaterMark !== this.aboveHighWater) {
      this.aboveHighWater = !this.aboveHighWater;
      if (this.aboveHighWater) this.callbacks.highWater(this.pending);
    }
    this.schedule();
  }

  get pendingCount(): number {
    return this.pending;
  }

  get inFlightCount(): number {
    return this.inFlight?.length ?? 0;
  }

  oldestAgeMs(now = Date.now()): number {
    if (this.inFlight !== null && this.inFlight.length > 0) return now - this.inFlight[0].observedAt;
    return this.pending > 0 ? now - this.oldestAt : 0;
  }

  /** Resolves once nothing is pending or in flight; delivers what is pending without waiting for the timer. */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
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

  /** Stops retrying; used when the stop deadline has passed. Returns how many events were left undelivered. */
  close(): number {
    this.closed = true;
    this.clearTimer();
    const left = this.pending + this.inFlightCount;
    this.settle();
    return left;
  }

  private append(key: string, event: SyncEvent): void {
    if (this.pending === 0) this.oldestAt = event.observedAt;
    this.index.set(key, this.base + this.queue.length);
    this.queue.push(event);
    this.pending++;
  }

  private isIdle(): boolean {
    return this.inFlight === null && this.pending === 0;
  }

  private clearTimer(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(): void {
    if (this.running || this.closed || !this.open) return;
    if (this.pending >= this.options.batchSize || this.options.batchMaxWaitMs === 0) this.startRun();
    else if (this.timer === null && this.pending > 0) {
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

  private takeBatch(): SyncEvent[] {
    const batch: SyncEvent[] = [];
    const queue = this.queue;
    while (this.head < queue.length && batch.length < this.options.batchSize) {
      const event = queue[this.head++];
      if (event !== null) batch.push(event);
    }
    this.pending -= batch.length;
    const taken = this.base + this.head;
    // A deleted object's entry would otherwise stay in the index for good.
    for (const event of batch) {
      if (event.type !== 'DELETED') continue;
      const key = objectKey(event);
      const at = this.index.get(key);
      if (at !== undefined && at < taken) this.index.delete(key);
    }
    if (this.head === queue.length) {
      this.base += queue.length;
      this.queue = [];
      this.head = 0;
    } else {
      if (this.head > 1024 && this.head * 2 > queue.length) {
        this.queue = queue.slice(this.head);
        this.base += this.head;
        this.head = 0;
      }
      let next = this.head;
      while (this.queue[next] === null) next++;
      this.oldestAt = this.queue[next]!.observedAt;
    }
    return batch;
  }

  private async run(): Promise<void> {
    while (this.pending > 0 && !this.closed && this.open) {
      const batch = this.takeBatch();
      this.inFlight = batch;
      let delay = this.options.retryInitialMs;
      for (let attempt = 1; !this.closed; attempt++) {
        try {
          await this.callbacks.deliver(batch);
          this.callbacks.attempted(batch, attempt);
          break;
        } catch (error) {
          this.callbacks.attempted(batch, attempt, error instanceof Error ? error : new Error(String(error)));
          await sleep(delay * (0.5 + Math.random()));
          delay = Math.min(delay * 2, this.options.retryMaxMs);
        }
      }
      this.inFlight = null;
      // A partial batch waits for the timer (when there is one), unless somebody waits for the lane to drain.
      if (this.pending < this.options.batchSize && this.idleWaiters.length === 0 && this.options.batchMaxWaitMs > 0) break;
    }
    this.running = false;
    if (this.pending > 0) this.schedule();
    this.settle();
  }

  private settle(): void {
    if (!this.isIdle() && !this.closed) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
