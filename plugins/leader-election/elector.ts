/**
 * A coordination.k8s.io/v1 Lease lock with client-go's leader-election semantics: acquire when the
 * lease is free or has not changed for its duration (measured on this replica's clock, so clock
 * skew between replicas does not matter), renew every retry period, give up after the renew
 * deadline, optimistic concurrency on resourceVersion, release on a graceful stop.
 */
import { KubeRequestError, sleep, type KubeClient } from '../../kubernetes/index.ts';
import type { Logger } from '../../core/index.ts';

export interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

export interface Lease {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string; [field: string]: unknown };
  spec?: LeaseSpec;
}

export interface ElectorOptions {
  readonly leaseName: string;
  readonly namespace: string;
  readonly identity: string;
  readonly leaseDurationMs: number;
  readonly renewDeadlineMs: number;
  readonly retryPeriodMs: number;
}

export interface ElectorCallbacks {
  /** This replica now holds the lease. */
  started(): void;
  /** This replica lost the lease (renew failed past the deadline, or someone else holds it). */
  stopped(): void;
}

/** Lease times are MicroTime: RFC 3339 with microseconds. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export class LeaderElector {
  private leading = false;
  /** Whether the first 'standing by' was logged. */
  private announced = false;
  private current: Lease | undefined;
  /** The holder and renew time last seen, and when (our clock) they last changed. */
  private observed = { holder: '', renewTime: '', at: 0 };
  private lastRenewAt = 0;
  private readonly abort = new AbortController();
  private running: Promise<void> | undefined;

  constructor(
    private readonly client: KubeClient,
    private readonly options: ElectorOptions,
    private readonly callbacks: ElectorCallbacks,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  get isLeader(): boolean {
    return this.leading;
  }

  private get path(): string {
    return `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(this.options.namespace)}/leases`;
  }

  start(): void {
    this.running ??= this.loop();
  }

  /** Stops campaigning; a leader clears holderIdentity so a standby takes over at once. */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.running;
    if (!this.leading) return;
    this.setLeading(false);
    await this.release();
  }

  private async loop(): Promise<void> {
    const signal = this.abort.signal;
    while (!signal.aborted) {
      const ok = await this.tryAcquireOrRenew();
      if (signal.aborted) return;
      if (ok) {
        this.lastRenewAt = this.now();
        if (!this.leading) this.setLeading(true);
      } else if (!this.leading && !this.announced && this.heldByAnother()) {
        this.announced = true;
        this.logger.info({ lease: this.options.leaseName, identity: this.options.identity, leader: this.observed.holder }, 'standing by');
      } else if (this.leading && this.heldByAnother()) {
        this.logger.warn({ lease: this.options.leaseName, holder: this.observed.holder }, 'another replica holds the lease; no longer the leader');
        this.setLeading(false);
      } else if (this.leading && this.now() - this.lastRenewAt >= this.options.renewDeadlineMs) {
        this.logger.warn({ lease: this.options.leaseName, identity: this.options.identity }, 'could not renew the lease before the renew deadline; no longer the leader');
        this.setLeading(false);
      }
      // A standby retries with jitter (client-go's JitterFactor 1.2) so replicas do not race in step.
      await sleep(this.leading ? this.options.retryPeriodMs : this.options.retryPeriodMs * (1 + Math.random() * 0.2), signal);
    }
  }

  private heldByAnother(): boolean {
    return this.observed.holder !== '' && this.observed.holder !== this.options.identity;
  }

  private setLeading(leading: boolean): void {
    this.leading = leading;
    this.logger.info({ lease: this.options.leaseName, identity: this.options.identity }, leading ? 'became the leader' : 'standing by');
    if (leading) this.callbacks.started();
    else this.callbacks.stopped();
  }

  /** One round: true when this replica holds the lease afterwards. */
  private async tryAcquireOrRenew(): Promise<boolean> {
    const { identity, leaseName } = this.options;
    const now = this.now();
    const spec: LeaseSpec = {
      holderIdentity: identity,
      leaseDurationSeconds: Math.max(1, Math.ceil(this.options.leaseDurationMs / 1000)),
      acquireTime: microTime(now),
      renewTime: microTime(now),
      leaseTransitions: 0,
    };
    try {
      const existing = await this.get();
      if (existing === undefined) {
        this.current = await this.client.send<Lease>('POST', this.path, {
          apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: leaseName, namespace: this.options.namespace }, spec,
        }, { signal: this.abort.signal });
        this.observe(this.current);
        return true;
      }
      this.observe(existing);
      const holder = existing.spec?.holderIdentity ?? '';
      const held = holder !== '' && holder !== identity;
      if (held && this.observed.at + this.options.leaseDurationMs > now) return false;
      if (holder === identity) {
        spec.acquireTime = existing.spec?.acquireTime ?? spec.acquireTime;
        spec.leaseTransitions = existing.spec?.leaseTransitions ?? 0;
      } else {
        spec.leaseTransitions = (existing.spec?.leaseTransitions ?? 0) + 1;
        if (held) this.logger.info({ lease: leaseName, previous: holder }, 'the lease expired; taking it over');
      }
      // The resourceVersion makes this a compare-and-swap: another replica's write in between gives a 409.
      this.current = await this.client.send<Lease>('PUT', `${this.path}/${encodeURIComponent(leaseName)}`,
        { ...existing, spec: { ...existing.spec, ...spec } }, { signal: this.abort.signal });
      this.observe(this.current);
      return true;
    } catch (error) {
      if (this.abort.signal.aborted) return false;
      const conflict = error instanceof KubeRequestError && (error.status === 409 || error.status === 422);
      // 409: another replica wrote first, or it exists now: the next round reads it again.
      if (!conflict) this.logger.warn({ lease: leaseName, err: (error as Error).message }, 'lease request failed; retrying');
      return false;
    }
  }

  private async get(signal: AbortSignal = this.abort.signal): Promise<Lease | undefined> {
    try {
      return await this.client.get<Lease>(`${this.path}/${encodeURIComponent(this.options.leaseName)}`, { signal });
    } catch (error) {
      if (error instanceof KubeRequestError && error.reason === 'not-found') return undefined;
      throw error;
    }
  }

  private observe(lease: Lease): void {
    const holder = lease.spec?.holderIdentity ?? '';
    const renewTime = lease.spec?.renewTime ?? '';
    if (holder !== this.observed.holder || renewTime !== this.observed.renewTime || this.observed.at === 0) {
      this.observed = { holder, renewTime, at: this.now() };
    }
  }

  /** Clears the holder (client-go's ReleaseOnCancel), so a standby need not wait for expiry. */
  private async release(): Promise<void> {
    const lease = this.current;
    if (!lease) return;
    try {
      // The campaign's signal is aborted by now; the release gets its own short deadline.
      const signal = AbortSignal.timeout(this.options.renewDeadlineMs);
      const latest = (await this.get(signal)) ?? lease;
      if (latest.spec?.holderIdentity !== this.options.identity) return;
      await this.client.send('PUT', `${this.path}/${encodeURIComponent(this.options.leaseName)}`, {
        ...latest,
        spec: { ...latest.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: microTime(this.now()) },
      }, { signal });
      this.logger.info({ lease: this.options.leaseName }, 'released the lease');
    } catch (error) {
      this.logger.warn({ lease: this.options.leaseName, err: (error as Error).message }, 'could not release the lease; a standby takes over when it expires');
    }
  }
}
