/**
 * Delivery: each batch encoded, published and accepted only once the server confirmed it (a flush
 * round trip on core NATS, an acknowledgement per message on JetStream), and the view of what was
 * confirmed that a resync republishes.
 */
import {
  holdBytes, isKeptBySource, objectKey, parseJsonBytes, PipelineEvent, resourceId,
  type Batch, type Core, type EventType, type HeldBytes, type KubeObject, type Logger, type ResourceRef, type SnapshotItem, type SyncEvent,
} from '../../core/index.ts';
import type { NatsConnection } from '@nats-io/transport-node';
import type { BrokerConnection } from './connection.ts';
import { encodeEvent, messageId, type Truncation } from './encode.ts';
import { JetStreamPublisher } from './jetstream.ts';
import type { NatsMetrics } from './metrics.ts';
import { Announced } from './meshery/announced.ts';
import { encodeMesheryEvent } from './meshery/wire.ts';
import type { NatsOptions, Protocol } from './options.ts';
import { brokerError, maxPayloadOf, Mutex, Outgoing, withTimeout } from './outgoing.ts';

/** An object's JSON as this sink confirmed it, kept to republish it in a resync. */
export class ConfirmedBytes {
  constructor(readonly resource: ResourceRef, readonly json: HeldBytes) {}
}

/** The confirmed-state entry of an object its source keeps (see `markKeptBySource`): the type it was confirmed as. */
export type KeptBySource = 'ADDED' | 'MODIFIED';

/** Objects whose truncation was logged; cleared when full so it never grows without bound. */
const TRUNCATION_LOG_LIMIT = 10_000;

export class Delivery {
  /**
   * Every object a consumer that missed nothing holds, by key: the type it was confirmed as when
   * its source keeps it and gives its current state in the snapshot (a resync reads it there, and
   * the filters see that type again), otherwise the JSON bytes confirmed last (a transform's copy,
   * a source without a store).
   */
  readonly published = new Map<string, ConfirmedBytes | KeptBySource>();
  /** Held by a batch or a whole resync frame, so the two never interleave. */
  readonly lock = new Mutex();
  /** The subject of each event; set once the cluster id is final. */
  subjectOf: (event: SyncEvent) => string = () => '';
  /** Meshery mode: what Meshery was told since the last re-announce. */
  readonly announced: Announced | undefined;
  private readonly truncationLogged = new Set<string>();
  private readonly jetstream: JetStreamPublisher | undefined;

  constructor(
    private readonly options: NatsOptions,
    private readonly protocol: Protocol,
    private readonly connection: () => BrokerConnection,
    private readonly metrics: NatsMetrics,
    private readonly logger: Logger,
  ) {
    this.jetstream = options.jetstream === undefined
      ? undefined
      : new JetStreamPublisher(options.jetstream, options.subject, logger, () => connection().connected, (message) => connection().scrub(message));
    this.announced = protocol === 'meshery' ? new Announced() : undefined;
  }

  /** The sink tap: resolves once the broker confirmed every event of the batch. */
  deliver(batch: Batch): Promise<void> {
    return this.lock.run(async () => {
      const nc = this.connection().require();
      const maxPayload = maxPayloadOf(nc);
      const outgoing: Outgoing[] = [];
      const published = { ADDED: 0, MODIFIED: 0, DELETED: 0 } satisfies Record<EventType, number>;
      let truncated = 0;
      // Each object's JSON as encoded, kept once confirmed: serialised once per event, not again here.
      const objectBytes: Uint8Array[] = new Array(batch.length);
      for (let i = 0; i < batch.length; i++) {
        const event = batch[i];
        const message = this.protocol === 'meshery'
          ? encodeMesheryEvent(event, { maxPayload })
          : encodeEvent(event, { withHeaders: this.options.headers, maxPayload, sharedHeaders: !this.options.jetstream });
        objectBytes[i] = message.objectBytes;
        if (message.truncation !== 'none') {
          truncated++;
          this.noteTruncation(event, message.truncation, maxPayload);
          if (message.truncation === 'dropped') continue;
        }
        outgoing.push(new Outgoing(this.subjectOf(event), message.payload, message.headers, messageId(event)));
        published[event.type]++;
      }
      await this.send(nc, outgoing);
      batch.forEach((event, i) => {
        if (event.type === 'DELETED') this.published.delete(objectKey(event));
        else this.published.set(objectKey(event), isKeptBySource(event.object) ? event.type : new ConfirmedBytes(event.resource, holdBytes(objectBytes[i])));
      });
      this.announced?.record(batch);
      // Counted once confirmed, per batch.
      for (const type of ['ADDED', 'MODIFIED', 'DELETED'] as const) if (published[type] > 0) this.metrics.published.inc({ type }, published[type]);
      if (truncated > 0) this.metrics.truncated.inc(truncated);
    });
  }

  /**
   * What a consumer that missed nothing holds, each object by its key as it is now (type ADDED),
   * read lazily so the whole state is never parsed at once: from its source's snapshot when the
   * source keeps it, else as it was confirmed. Read under `lock`, so no batch changes it meanwhile.
   * `seen` collects the keys yielded (a caller that needs them passes its own set).
   */
  async *confirmedState(core: Pick<Core, 'snapshot' | 'clusterId'>, observedAt: number, seen = new Set<string>()): AsyncGenerator<[string, SyncEvent]> {
    // The filters see each object as the type it was confirmed as, so one they let through then
    // (a watch-list allowing only MODIFIED) is not left out now.
    const keptAs = (item: SnapshotItem) => {
      const entry = this.published.get(objectKey(item));
      return typeof entry === 'string' ? entry : undefined;
    };
    for await (const event of core.snapshot(keptAs)) {
      const key = objectKey(event);
      if (seen.has(key)) continue;
      seen.add(key);
      yield [key, new PipelineEvent('ADDED', event.resource, event.object, core.clusterId, observedAt)];
    }
    for (const [key, confirmed] of this.published) {
      if (typeof confirmed === 'string' || seen.has(key)) continue;
      seen.add(key);
      yield [key, new PipelineEvent('ADDED', confirmed.resource, parseJsonBytes<KubeObject>(confirmed.json), core.clusterId, observedAt)];
    }
  }

  /** Publishes and waits for the server's confirmation; throws (the whole set is retried) when it did not come. */
  async send(nc: NatsConnection, outgoing: readonly Outgoing[]): Promise<void> {
    if (this.jetstream) return this.jetstream.publish(nc, outgoing);
    try {
      for (const message of outgoing) nc.publish(message.subject, message.payload, message.headers ? { headers: message.headers } : undefined);
      // The PONG to this PING proves the server read everything published before it on this
      // connection; if the connection dropped meanwhile the client rejects it (it discards its buffer).
      await withTimeout(nc.flush(), this.options.flushTimeoutMs, 'the NATS server did not confirm the batch in time');
    } catch (error) {
      throw brokerError((text) => this.connection().scrub(text), 'publishing to NATS failed; the batch is retried', error);
    }
  }

  /**
   * Encodes one object for a resync or a snapshot reply, which republish what the lane already
   * took: one that cannot be encoded (too deep to serialise) is logged and left out, so it never
   * fails the whole frame. (The lane isolates such an event itself: see core/lane/retry.ts.)
   */
  encodeOrSkip<T>(event: SyncEvent, encode: () => T): T | undefined {
    try {
      return encode();
    } catch (error) {
      const meta = event.object.metadata;
      this.logger.error({ resource: resourceId(event.resource), namespace: meta.namespace, name: meta.name, uid: meta.uid, err: error instanceof Error ? error.message : String(error), code: 'MESHSYNC_EVENT_UNDELIVERABLE' }, 'object could not be encoded; left out');
      return undefined;
    }
  }

  /** Logs an object cut down (or dropped) to fit max_payload, once per object. */
  noteTruncation(event: SyncEvent, truncation: Truncation, maxPayload: number): void {
    const meta = event.object.metadata;
    const key = meta.uid ?? `${resourceId(event.resource)}/${meta.namespace ?? ''}/${meta.name}`;
    if (this.truncationLogged.has(key)) return;
    if (this.truncationLogged.size >= TRUNCATION_LOG_LIMIT) this.truncationLogged.clear();
    this.truncationLogged.add(key);
    const detail = { resource: resourceId(event.resource), namespace: meta.namespace, name: meta.name, uid: meta.uid, maxPayload, truncation, code: 'MESHSYNC_MESSAGE_TOO_LARGE' };
    if (truncation === 'dropped') this.logger.error(detail, 'object too large for the broker even as metadata; skipped');
    else this.logger.warn(detail, truncation === 'stripped' ? 'object too large for the broker; sent without managedFields and last-applied-configuration' : 'object too large for the broker; sent as metadata only, marked truncated');
  }
}
