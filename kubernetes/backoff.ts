/**
 * Retrying as client-go does: exponential backoff with jitter, never sooner than a server asks, and
 * a sleep that ends early when the work is aborted.
 */

/** Exponential backoff with jitter: initial, doubling, capped; `reset` after a success. */
export class Backoff {
  private attempt = 0;
  constructor(private readonly initialMs: number, private readonly maxMs: number, private readonly random: () => number = Math.random) {}

  /**
   * The next delay: base * 2^attempt capped at max, then jittered into [0.5, 1.5) of it (never
   * above max); never below `serverAskedMs` (a Retry-After), jittered up to a fifth above it so
   * the clients a server throttled together do not come back together, all capped at max.
   */
  next(serverAskedMs = 0): number {
    const base = Math.min(this.maxMs, this.initialMs * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    const backoff = Math.min(this.maxMs, Math.round(base * (0.5 + this.random())));
    if (serverAskedMs <= backoff) return backoff;
    return Math.min(this.maxMs, Math.round(serverAskedMs * (1 + 0.2 * this.random())));
  }

  reset(): void {
    this.attempt = 0;
  }

  /** Delays handed out since the last reset: the failures in a row. */
  get failures(): number {
    return this.attempt;
  }
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
