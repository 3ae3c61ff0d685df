/**
 * One sink's lane, OpenTelemetry's exporterhelper chain in small: queue (queue.ts: coalescing by
 * object) -> batches (here: by size and time, one in flight) -> retry (retry.ts: backoff until
 * accepted) -> the sink. Memory is bounded by the number of objects, not by time; and while the
 * lane is held or far behind, by about 200 bytes per object its source keeps, not the object.
 * Sinks time their own writes (the NATS flush timeout), so the chain has no timeout stage.
 */
import { CoalescingQueue, HOLD_BY_REFERENCE_ABOVE, type Reread } from './queue.ts';
import { Retry } from './retry.ts';
import type { Batch, SyncEvent } from '../types.ts';

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

/** The stages' ends: where a batch goes, and what the lane reports on the way. */
export interface LaneStages {
  /** The sink: resolves once it accepted the batch. */
  send(batch: Batch): Promise<void>;
  reread: Reread;
  attempted(batch: Batch, attempt: number, error?: Error): void;
  /** An event the sink never takes (see retry.ts), skipped. */
  deadLettered(event: SyncEvent, error: Error): void;
  /** A batch was accepted: the lane holds fewer events. */
  delivered(): void;
  highWater(pending: number): void;
}

export class Lane {
  private readonly queue: CoalescingQueue;
  private readonly retry: Retry;
  private running = false;
  /** A batch not accepted yet, kept as it was made (events held by reference read once). */
  private unaccepted: { batch: SyncEvent[]; end: number } | null = null;
  private timer: NodeJS.Timeout | null = null;
  private idleWaiters: (() => void)[] = [];
  private closed = false;
  private open = true;
  /** How many events the next widened batch takes: doubles while the failing events stay at its front, so it reaches one that proves the sink. */
  private widenTo = 0;

  constructor(readonly sink: string, private readonly options: LaneOptions, private readonly stages: LaneStages) {
    this.queue = new CoalescingQueue(options.highWaterMark, stages.highWater, stages.reread);
    this.retry = new Retry(options, stages.send, stages.attempted, stages.deadLettered);
  }

  /**
   * Queues an event. `emitted`: the event as its source emitted it, before the transforms; while
   * the gate is closed (a standby) or the backlog is above HOLD_BY_REFERENCE_ABOVE (a sink down),
   * the queue may keep its source's record instead of the object (see CoalescingQueue.push).
   */
  push(event: SyncEvent, emitted: SyncEvent = event): void {
    this.queue.push(event, emitted, !this.open || this.backlog >= HOLD_BY_REFERENCE_ABOVE);
    this.schedule();
  }

  get pendingCount(): number {
    return this.queue.pendingCount;
  }

  get inFlightCount(): number {
    return this.queue.inFlightCount;
  }

  /** Events held: pending and taken for delivery. */
  get backlog(): number {
    return this.queue.backlog;
  }

  get isOpen(): boolean {
    return this.open && !this.closed;
  }

  oldestAgeMs(now = Date.now()): number {
    return this.queue.oldestAgeMs(now);
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
    this.retry.retryNow();
  }

  /** Stops retrying; used when the stop deadline has passed. Returns how many events were left undelivered. */
  close(): number {
    this.closed = true;
    this.retry.wake();
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
    if (this.queue.pendingCount >= this.options.batchSize || this.queue.inFlightCount > 0 || this.options.batchMaxWaitMs === 0) this.startRun();
    else if (this.timer === null && this.queue.pendingCount > 0) {
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

  /** Batches: takes one from the queue (or the one not accepted yet), hands it to the retry stage, until the queue is empty. */
  private async run(): Promise<void> {
    const goOn = () => !this.closed && this.open;
    while (goOn()) {
      const next = this.unaccepted ?? this.queue.take(this.options.batchSize);
      if (next === undefined) break;
      this.unaccepted = null;
      const outcome = next.batch.length > 0 ? await this.retry.deliver(next.batch, goOn, () => this.queue.canWiden(next.end)) : 'accepted';
      if (outcome === 'held') {
        this.unaccepted = next;
        break;
      }
      if (outcome === 'alone') {
        // One event fails alone: offered again with the events behind it, which show whether the sink works.
        this.queue.widen();
        this.widenTo = Math.max(2, this.options.batchSize, this.widenTo * 2);
        this.unaccepted = this.queue.take(this.widenTo) ?? null;
        continue;
      }
      this.widenTo = 0;
      const drained = this.queue.accept(next.end);
      this.stages.delivered();
      // A partial batch waits for the timer (when there is one), unless somebody waits for the lane to drain.
      if (drained && this.queue.pendingCount < this.options.batchSize && this.idleWaiters.length === 0 && this.options.batchMaxWaitMs > 0) break;
    }
    this.running = false;
    if (this.backlog > 0) this.schedule();
    this.settle();
  }

  private settle(): void {
    if (!this.isIdle() && !this.closed) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
