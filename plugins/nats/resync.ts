/**
 * Resyncs: the whole confirmed state republished between RESYNC_BEGIN and RESYNC_END markers, so
 * consumers can drop what they hold and the frame did not mention (after a reconnect, for a new
 * leader, on request). One runs at a time, retried until it went through. In Meshery mode there
 * are no markers: every object goes out as ADDED, then a DELETED for each object gone since the
 * last announce.
 */
import { nuid } from '@nats-io/transport-node';
import { objectKey, PipelineEvent, type Core, type Logger, type SyncEvent } from '../../core/index.ts';
import { jitter, type BrokerConnection } from './connection.ts';
import type { Delivery } from './delivery.ts';
import { encodeEvent, messageId } from './encode.ts';
import type { NatsMetrics } from './metrics.ts';
import { encodeMesheryEvent } from './meshery/wire.ts';
import type { NatsOptions, Protocol } from './options.ts';
import { errorMessage, maxPayloadOf, Outgoing } from './outgoing.ts';

export class Resyncs {
  private pending: string | undefined;
  private running = false;
  private stopped = false;

  constructor(
    private readonly core: Core,
    private readonly options: NatsOptions,
    private readonly protocol: Protocol,
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
  async run(reason: string): Promise<{ resyncId: string; count: number }> {
    await this.delivery.whenTermClosed();
    return this.delivery.lock.run(() => this.publishFrame(reason).catch((error: unknown) => {
      // What a frame that failed sent guards nothing: its objects may never have arrived.
      this.delivery.resyncDone(0);
      throw error;
    }));
  }

  private async publishFrame(reason: string): Promise<{ resyncId: string; count: number }> {
    const nc = this.connection().require();
    const maxPayload = maxPayloadOf(nc);
    const clusterId = this.core.clusterId;
    const resyncId = nuid.next();
    const observedAt = Date.now();
    // Meshery Server knows no frame markers (one would decode as an empty resource).
    const framed = this.protocol === 'meshsync';
    const begin = JSON.stringify({ type: 'RESYNC_BEGIN', resync_id: resyncId, cluster_id: clusterId });
    if (framed) await this.delivery.send(nc, [this.delivery.marker('RESYNC_BEGIN', begin, resyncId)]);
    let count = 0;
    let truncated = 0;
    let outgoing: Outgoing[] = [];
    const add = async (event: SyncEvent) => {
      const message = this.delivery.encodeOrSkip(event, () => (framed ? encodeEvent(event, { withHeaders: this.options.headers, maxPayload, resyncId }) : encodeMesheryEvent(event, { maxPayload })));
      if (message === undefined) return;
      if (message.truncation !== 'none') {
        truncated++;
        this.delivery.noteTruncation(event, message.truncation, maxPayload);
        if (message.truncation === 'dropped') return;
      }
      outgoing.push(new Outgoing(this.delivery.subjectOf(event), message.payload, message.headers, messageId(event, resyncId)));
      if (event.type !== 'DELETED') this.delivery.noteResent(objectKey(event), event.object.metadata.resourceVersion);
      if (outgoing.length < this.options.resyncChunkSize) return;
      await this.delivery.send(nc, outgoing);
      count += outgoing.length;
      outgoing = [];
    };
    const mentioned = new Set<string>();
    for await (const [, event] of this.delivery.confirmedState(this.core, observedAt, mentioned)) await add(event);
    // Meshery mode has no frame to tell consumers what to drop: each object gone since the last
    // announce (deleted, filtered out now, of a resource no longer watched) gets a DELETED.
    if (!framed) for (const gone of this.delivery.announced?.goneFrom(mentioned) ?? []) await add(new PipelineEvent('DELETED', gone.resource, gone.object, clusterId, observedAt));
    await this.delivery.send(nc, outgoing);
    count += outgoing.length;
    const end = JSON.stringify({ type: 'RESYNC_END', resync_id: resyncId, count, cluster_id: clusterId });
    if (framed) await this.delivery.send(nc, [this.delivery.marker('RESYNC_END', end, resyncId)]);
    // Consumers dropped what the frame left out (deleted since, filtered out now, or of a
    // resource no longer watched): so does this view.
    for (const [key, entry] of this.delivery.published) if (typeof entry === 'string' && !mentioned.has(key)) this.delivery.published.delete(key);
    this.delivery.announced?.announcedExactly(mentioned);
    // The lane's events older than what the frame sent (a batch taken before it) must not follow it.
    this.delivery.resyncDone(Math.max(0, ...this.core.state.lanes().map((lane) => lane.pending + lane.inFlight)));
    this.metrics.resyncs.inc({ reason });
    if (truncated > 0) this.metrics.truncated.inc(truncated);
    this.logger.info({ resyncId, count, reason }, 'resync published');
    return { resyncId, count };
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
}
