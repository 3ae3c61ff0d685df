/**
 * Resyncs: the whole confirmed state republished between RESYNC_BEGIN and RESYNC_END markers, so
 * consumers can drop what they hold and the frame did not mention (after a reconnect, for a new
 * leader, on request). One runs at a time, retried until it went through.
 */
import { nuid } from '@nats-io/transport-node';
import { objectKey, parseJsonBytes, PipelineEvent, type Core, type KubeObject, type Logger, type SnapshotItem, type SyncEvent } from '../../core/index.ts';
import { jitter, type BrokerConnection } from './connection.ts';
import type { Delivery } from './delivery.ts';
import { encodeEvent, markerHeaders, messageId } from './encode.ts';
import type { NatsMetrics } from './metrics.ts';
import type { NatsOptions } from './options.ts';
import { errorMessage, maxPayloadOf, Outgoing } from './outgoing.ts';
import { markerSubject } from './subject.ts';

export class Resyncs {
  private pending: string | undefined;
  private running = false;
  private stopped = false;

  constructor(
    private readonly core: Core,
    private readonly options: NatsOptions,
    private readonly delivery: Delivery,
    private readonly connection: () => BrokerConnection,
    private readonly metrics: NatsMetrics,
    private readonly logger: Logger,
  ) {}

  /**
   * Republishes the current state between RESYNC_BEGIN and RESYNC_END markers, holding the lane so
   * no live batch lands inside the frame. A consumer may then drop every object of this cluster
   * the frame did not mention.
   *
   * The frame names only objects this sink confirmed: the lane may still hold an ADDED that a
   * later DELETED cancels out (coalescing), and a consumer that got the ADDED from a resync would
   * never hear of the DELETED. Each is sent as it is now (its source's snapshot, through the
   * filters and transforms) or as it was confirmed; either way the lane's pending events take the
   * consumer the rest of the way. One confirmed and since deleted is left out, and its pending
   * DELETED finds nothing to delete.
   */
  run(reason: string): Promise<{ resyncId: string; count: number }> {
    return this.delivery.lock.run(async () => {
      const nc = this.connection().require();
      const maxPayload = maxPayloadOf(nc);
      const clusterId = this.core.clusterId;
      const resyncId = nuid.next();
      const observedAt = Date.now();
      const begin = JSON.stringify({ type: 'RESYNC_BEGIN', resync_id: resyncId, cluster_id: clusterId });
      await this.delivery.send(nc, [this.marker('RESYNC_BEGIN', begin, resyncId)]);
      let count = 0;
      let truncated = 0;
      let outgoing: Outgoing[] = [];
      const add = async (event: SyncEvent) => {
        const message = this.delivery.encodeOrSkip(event, () => encodeEvent(event, { withHeaders: this.options.headers, maxPayload, resyncId }));
        if (message === undefined) return;
        if (message.truncation !== 'none') {
          truncated++;
          this.delivery.noteTruncation(event, message.truncation, maxPayload);
          if (message.truncation === 'dropped') return;
        }
        outgoing.push(new Outgoing(this.delivery.subjectOf(event), message.payload, message.headers, messageId(event, resyncId)));
        if (outgoing.length < this.options.resyncChunkSize) return;
        await this.delivery.send(nc, outgoing);
        count += outgoing.length;
        outgoing = [];
      };
      // Read lazily, a chunk at a time: parsing every object up front would hold the whole state
      // in the heap. The filters see each object as the type it was confirmed as, so one they
      // let through then (a watch-list allowing only MODIFIED) is not left out now.
      const keptAs = (item: SnapshotItem) => {
        const entry = this.delivery.published.get(objectKey(item));
        return typeof entry === 'string' ? entry : undefined;
      };
      const mentioned = new Set<string>();
      for (const event of this.core.snapshot(keptAs)) {
        const key = objectKey(event);
        if (mentioned.has(key)) continue;
        mentioned.add(key);
        await add(new PipelineEvent('ADDED', event.resource, event.object, clusterId, observedAt));
      }
      for (const confirmed of this.delivery.published.values()) {
        if (typeof confirmed !== 'string') await add(new PipelineEvent('ADDED', confirmed.resource, parseJsonBytes<KubeObject>(confirmed.json), clusterId, observedAt));
      }
      await this.delivery.send(nc, outgoing);
      count += outgoing.length;
      const end = JSON.stringify({ type: 'RESYNC_END', resync_id: resyncId, count, cluster_id: clusterId });
      await this.delivery.send(nc, [this.marker('RESYNC_END', end, resyncId)]);
      // Consumers dropped what the frame left out (deleted since, filtered out now, or of a
      // resource no longer watched): so does this view.
      for (const [key, entry] of this.delivery.published) if (typeof entry === 'string' && !mentioned.has(key)) this.delivery.published.delete(key);
      this.metrics.resyncs.inc({ reason });
      if (truncated > 0) this.metrics.truncated.inc(truncated);
      this.logger.info({ resyncId, count, reason }, 'resync published');
      return { resyncId, count };
    });
  }

  /** Asks for a resync; one runs at a time, retried until it went through. */
  request(reason: string): void {
    // A standby has published nothing: its (empty) frame would make consumers drop the cluster.
    if (this.core.state.deliveryHeld) {
      this.logger.debug({ reason }, 'resync skipped: delivery is held (standby)');
      return;
    }
    this.pending = reason;
    if (!this.running) void this.runPending();
  }

  private async runPending(): Promise<void> {
    this.running = true;
    let delay = this.options.reconnectInitialMs;
    try {
      while (this.pending !== undefined && !this.stopped) {
        const reason = this.pending;
        this.pending = undefined;
        await this.connection().whenConnected();
        if (this.stopped) break;
        // Asked while leading, run after becoming a standby: the new leader resyncs instead.
        if (this.core.state.deliveryHeld) continue;
        try {
          await this.run(reason);
          delay = this.options.reconnectInitialMs;
        } catch (error) {
          this.logger.warn({ err: this.connection().scrub(errorMessage(error)), reason }, 'resync failed; retrying');
          this.pending ??= reason;
          await new Promise((resolve) => setTimeout(resolve, jitter(delay)));
          delay = Math.min(delay * 2, this.options.reconnectMaxMs);
        }
      }
    } finally {
      this.running = false;
    }
  }


  /** No resync starts after this (a pending one is dropped). */
  stop(): void {
    this.stopped = true;
  }

  private marker(type: 'RESYNC_BEGIN' | 'RESYNC_END', payload: string, resyncId: string): Outgoing {
    const headers = this.options.headers ? markerHeaders(type, this.core.clusterId, resyncId) : undefined;
    return new Outgoing(markerSubject(this.options.subject, this.core.clusterId, type), payload, headers, `${type}:${resyncId}`);
  }
}
