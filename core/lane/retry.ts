/**
 * The retry stage of a lane: a batch is offered to its sink until accepted, with jittered
 * exponential backoff; a batch in flight is retried as it was (a sink that delivered part of it
 * sees the same events again, never a subset).
 */
import type { Batch } from '../types.ts';

export interface RetryOptions {
  readonly retryInitialMs: number;
  readonly retryMaxMs: number;
}

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
  ) {}

  /** Offers a batch until it is accepted, with backoff; false when `goOn` turned false meanwhile (the lane closed or was held). */
  async deliver(batch: Batch, goOn: () => boolean): Promise<boolean> {
    let delay = this.options.retryInitialMs;
    // A gate closed meanwhile (this replica became a standby) stops the retries: the batch
    // waits, to be retried as it was once the gate opens again.
    for (let attempt = 1; goOn(); attempt++) {
      let failure: Error | undefined;
      try {
        await this.send(batch);
      } catch (error) {
        failure = error instanceof Error ? error : new Error(String(error));
      }
      this.attempted(batch, attempt, failure);
      if (failure === undefined) {
        this.retryRequested = false;
        return true;
      }
      const woken = await this.backoff(Math.min(delay * (0.5 + Math.random()), this.options.retryMaxMs));
      delay = woken ? this.options.retryInitialMs : Math.min(delay * 2, this.options.retryMaxMs);
    }
    return false;
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
