/**
 * The retry stage of a lane: a batch is offered to its sink until accepted, with jittered
 * exponential backoff. The events of a batch are read once (those held by reference too) and
 * retried as they were read; a sink that delivered part of a failed attempt sees those events again.
 *
 * A batch that fails is offered in halves, down to single events, so one event the sink can never
 * take (a poison event: an object too deep to serialise, a plugin that throws on it) cannot hold
 * back the others. An event is given up on (dead-lettered: counted, reported once with its key,
 * skipped) only on proof that it is the event and not the sink: it failed alone, twice, while the
 * sink accepted other parts of the same batch after the batch first failed. A sink that is down
 * accepts nothing, so it never condemns an event; nor does an error saying the sink is
 * unavailable. So a lane whose last events are all poison waits (backing off) for an event behind
 * them to prove the sink: having worked a moment ago is no proof (a full disk fails every event).
 */
import { objectKey } from '../event.ts';
import { sinkUnavailable } from '../errors.ts';
import type { Batch, SyncEvent } from '../types.ts';

export interface RetryOptions {
  readonly retryInitialMs: number;
  readonly retryMaxMs: number;
}

/** Failures of an event offered alone before it is given up on (with proof the sink works). */
const POISON_STRIKES = 2;

/**
 * What became of a batch: `accepted` (every event, but those dead-lettered), `held` (the gate
 * closed; retried as it was once it opens), `alone` (one event fails and nothing in the batch can
 * show whether the sink works: offer it again with the events waiting behind it).
 */
export type Outcome = 'accepted' | 'held' | 'alone';

export class Retry {
  /** Ends the backoff before a retry early (see retryNow). */
  private wakeRetry: (() => void) | null = null;
  /** retryNow came while an attempt was in flight: the backoff after it, if it fails, is skipped. */
  private retryRequested = false;

  constructor(
    private readonly options: RetryOptions,
    /** The next stage: the sink's delivery. Resolves once the batch is accepted. */
    private readonly send: (batch: Batch) => Promise<void>,
    /** After each attempt, for counters and error reports. */
    private readonly attempted: (batch: Batch, attempt: number, error?: Error) => void,
    /** An event the sink never takes, given up on. */
    private readonly deadLetter: (event: SyncEvent, error: Error) => void,
  ) {}

  /**
   * Offers a batch until it is accepted, with backoff. `goOn` turning false (the lane closed or was
   * held) ends it as `held`; `canWiden` says whether more events wait behind the batch.
   */
  async deliver(batch: Batch, goOn: () => boolean, canWiden: () => boolean = () => false): Promise<Outcome> {
    let delay = this.options.retryInitialMs;
    // Parts still to deliver, in order; the whole batch until it fails once.
    const parts: SyncEvent[][] = [batch as SyncEvent[]];
    const strikes = new Map<SyncEvent, number>();
    let failed = false;
    /** The sink accepted a part since the batch first failed: it works. */
    let proven = false;
    const isStruckOut = (part: SyncEvent[]) => part.length === 1 && (strikes.get(part[0]) ?? 0) >= POISON_STRIKES;
    // A gate closed meanwhile (this replica became a standby) stops the retries: the batch
    // waits, to be retried as it was once the gate opens again.
    for (let attempt = 1; parts.length > 0; attempt++) {
      if (!goOn()) return 'held';
      const part = parts[0];
      let failure: Error | undefined;
      try {
        await this.send(part);
      } catch (error) {
        failure = error instanceof Error ? error : new Error(String(error));
      }
      this.attempted(part, attempt, failure);
      if (failure === undefined) {
        parts.shift();
        proven ||= failed;
        delay = this.options.retryInitialMs;
        continue;
      }
      failed = true;
      if (part.length > 1) {
        parts.splice(0, 1, part.slice(0, part.length >> 1), part.slice(part.length >> 1));
      } else if (!sinkUnavailable(failure)) {
        const event = part[0];
        const count = (strikes.get(event) ?? 0) + 1;
        strikes.set(event, count);
        if (count >= POISON_STRIKES) {
          if (proven) {
            this.deadLetter(event, failure);
            parts.shift();
            continue;
          }
          // A probe from this batch, else the events behind it (the lane widens the batch).
          if (!(parts.length > 1 && probeWithout(parts, objectKey(event), isStruckOut)) && canWiden()) return 'alone';
        }
      }
      const woken = await this.backoff(Math.min(delay * (0.5 + Math.random()), this.options.retryMaxMs));
      delay = woken ? this.options.retryInitialMs : Math.min(delay * 2, this.options.retryMaxMs);
    }
    this.retryRequested = false;
    return 'accepted';
  }

  /** A failed batch is retried now, and its backoff starts over. */
  retryNow(): void {
    if (this.wakeRetry) this.wakeRetry();
    else this.retryRequested = true;
  }

  /** Ends a backoff in progress (the lane is closing); asks for nothing later. */
  wake(): void {
    this.wakeRetry?.();
  }

  /** Waits `ms` before a retry; true when retryNow (or wake) ended the wait early. */
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
}

/**
 * The first part is one failing event and nothing before it showed the sink works: the next part
 * not yet condemned (another event that struck out proves nothing) goes first, as the probe, less
 * any event of the same object (those stay where they were, in order). Only different objects
 * change places, and their relative order means nothing. False when no part can probe.
 */
function probeWithout(parts: SyncEvent[][], key: string, struckOut: (part: SyncEvent[]) => boolean): boolean {
  const index = parts.findIndex((part, i) => i > 0 && !struckOut(part));
  if (index < 0) return false;
  const next = parts[index];
  const others = next.filter((event) => objectKey(event) !== key);
  const same = next.filter((event) => objectKey(event) === key);
  parts.splice(index, 1, ...(same.length > 0 ? [same] : []));
  if (others.length > 0) parts.unshift(others);
  return true;
}
