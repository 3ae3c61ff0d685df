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
import { encodeEvent, markerHeaders, messageId, type EncodedMessage, type Truncation } from './encode.ts';
import { JetStreamPublisher } from './jetstream.ts';
import { identityOf, Ledger, publishedHash, resourceOf, type LedgerWrite } from './ledger.ts';
import type { NatsMetrics } from './metrics.ts';
import { Announced } from './meshery/announced.ts';
import { encodeMesheryEvent } from './meshery/wire.ts';
import type { NatsOptions, Protocol } from './options.ts';
import { brokerError, maxPayloadOf, Mutex, Outgoing, withTimeout } from './outgoing.ts';
import { markerSubject } from './subject.ts';
import { Term } from './term.ts';

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
  /** What consumers were told, kept in the broker (JetStream KV) when it can. */
  readonly ledger: Ledger;
  /** The term being announced (see term.ts); none once it closed. */
  private term: Term | undefined;
  /**
   * After a resync, the resourceVersion each object went out at (read from its source's store,
   * the newest), until the lane delivered what it held then (`resentAhead` events): one of those
   * (a batch taken before, retried now) may be older, and is not sent after the newer one.
   */
  private resent: Map<string, string> | undefined;
  private resentAhead = 0;
  private termClosedWaiters: (() => void)[] = [];
  private readonly truncationLogged = new Set<string>();
  private readonly jetstream: JetStreamPublisher | undefined;

  constructor(
    private readonly core: Core,
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
    this.ledger = new Ledger(options.ledger, logger);
  }

  /** The sink tap: resolves once the broker confirmed every event of the batch. */
  deliver(batch: Batch): Promise<void> {
    return this.lock.run(async () => {
      const nc = this.connection().require();
      const ledger = (await this.ledger.open(nc)) ? this.ledger : undefined;
      const term = this.term;
      if (term !== undefined && !term.begun) await this.beginTerm(nc, term);
      const maxPayload = maxPayloadOf(nc);
      const outgoing: Outgoing[] = [];
      const intents: LedgerWrite[] = [];
      const confirmed: LedgerWrite[] = [];
      const published = { ADDED: 0, MODIFIED: 0, DELETED: 0 } satisfies Record<EventType, number>;
      let truncated = 0;
      // Each object's JSON as encoded, kept once confirmed: serialised once per event, not again here.
      const objectBytes: Uint8Array[] = new Array(batch.length);
      const superseded = this.resent === undefined ? undefined : new Set<number>();
      for (let i = 0; i < batch.length; i++) {
        let event = batch[i];
        if (superseded !== undefined && this.supersededByResync(event)) {
          superseded.add(i);
          continue;
        }
        let message = this.encode(event, maxPayload, term?.resyncId);
        objectBytes[i] = message.objectBytes;
        const hash = ledger === undefined ? '' : publishedHash(message.objectBytes);
        if (term?.told !== undefined) {
          const key = objectKey(event);
          const told = term.told.get(key);
          term.mentioned.add(key);
          if (event.type === 'ADDED' && told !== undefined) {
            // Consumers hold it already: as it is (nothing to send), or older (a MODIFIED).
            if (told.rv === (event.object.metadata.resourceVersion ?? '') && told.h === hash) {
              term.counts.unchanged++;
              continue;
            }
            term.counts.changed++;
            event = new PipelineEvent('MODIFIED', event.resource, event.object, event.clusterId, event.observedAt);
            message = this.encode(event, maxPayload, undefined);
          } else if (event.type === 'ADDED') term.counts.added++;
        }
        if (message.truncation !== 'none') {
          truncated++;
          this.noteTruncation(event, message.truncation, maxPayload);
          if (message.truncation === 'dropped') continue;
        }
        if (term?.resyncId !== undefined) term.mentioned.add(objectKey(event));
        outgoing.push(new Outgoing(this.subjectOf(event), message.payload, message.headers, messageId(event, term?.resyncId)));
        if (ledger !== undefined) {
          if (event.type === 'ADDED') intents.push(ledger.intent(event));
          confirmed.push(ledger.confirmed(event, hash));
        }
        published[event.type]++;
      }
      await this.send(nc, outgoing, intents, confirmed);
      if (this.resent !== undefined && (this.resentAhead -= batch.length) <= 0) this.resent = undefined;
      batch.forEach((event, i) => {
        if (superseded?.has(i)) return;
        if (event.type === 'DELETED') this.published.delete(objectKey(event));
        else this.published.set(objectKey(event), isKeptBySource(event.object) ? event.type : new ConfirmedBytes(event.resource, holdBytes(objectBytes[i])));
      });
      this.announced?.record(batch);
      // Counted once confirmed, per batch.
      for (const type of ['ADDED', 'MODIFIED', 'DELETED'] as const) if (published[type] > 0) this.metrics.published.inc({ type }, published[type]);
      if (truncated > 0) this.metrics.truncated.inc(truncated);
    });
  }

  /** True when a resync sent this object at a newer resourceVersion than the event's (see `resent`). */
  private supersededByResync(event: SyncEvent): boolean {
    const key = objectKey(event);
    const sent = this.resent!.get(key);
    if (sent === undefined) return false;
    if (event.type !== 'DELETED' && isOlder(event.object.metadata.resourceVersion, sent)) return true;
    this.resent!.delete(key);
    return false;
  }

  /** A resync sent `key` at `resourceVersion`. */
  noteResent(key: string, resourceVersion: string | undefined): void {
    if (resourceVersion !== undefined) (this.resent ??= new Map()).set(key, resourceVersion);
  }

  /** The resync is over: what it sent guards the next `ahead` events the lane delivers (what it held then). */
  resyncDone(ahead: number): void {
    if (ahead > 0 && this.resent !== undefined) this.resentAhead = ahead;
    else this.resent = undefined;
  }

  private encode(event: SyncEvent, maxPayload: number, resyncId: string | undefined): EncodedMessage {
    return this.protocol === 'meshery'
      ? encodeMesheryEvent(event, { maxPayload })
      : encodeEvent(event, { withHeaders: this.options.headers, maxPayload, resyncId, sharedHeaders: !this.options.jetstream });
  }

  /** A new term: this sink may publish again (it started, or this replica became the leader). */
  openTerm(reason: Term['reason']): Term {
    this.term = new Term(reason);
    return this.term;
  }

  /** Delivery is held (a replica stood down): the term is left unclosed, the next leader announces. */
  abandonTerm(): void {
    this.endTerm();
  }

  /**
   * Resolves once no term is open. A resync waits for it: its frame names only what was confirmed,
   * so during a term it would make framed consumers drop objects still in the lane, which a ledger
   * term then does not send (they are unchanged), and the term's announcement is the state anyway.
   */
  whenTermClosed(): Promise<void> {
    if (this.term === undefined) return Promise.resolve();
    return new Promise((resolve) => this.termClosedWaiters.push(resolve));
  }

  private endTerm(): void {
    this.term = undefined;
    const waiters = this.termClosedWaiters;
    this.termClosedWaiters = [];
    for (const resolve of waiters) resolve();
  }

  isCurrent(term: Term): boolean {
    return this.term === term;
  }

  /**
   * Closes the term once its announcement can be complete (the sources listed everything): the
   * frame's RESYNC_END, or a DELETED for each object the ledger holds that is gone now. Once the
   * lanes delivered what the sources listed (`delivered`), an object the term did not mention is
   * gone (deleted, or filtered out now); before, one may still be in a lane, so the sources'
   * snapshot says what exists (a list from the API server where the store keeps fingerprints).
   * Throws when the broker did not confirm (the caller retries).
   */
  closeTerm(term: Term, delivered: boolean): Promise<void> {
    return this.lock.run(async () => {
      if (this.term !== term || term.closed) return;
      const nc = this.connection().require();
      await this.ledger.open(nc);
      if (!term.begun) await this.beginTerm(nc, term);
      if (term.mode === 'frame') {
        const end = JSON.stringify({ type: 'RESYNC_END', resync_id: term.resyncId, count: term.mentioned.size, cluster_id: this.core.clusterId });
        await this.send(nc, [this.marker('RESYNC_END', end, term.resyncId!)]);
      } else if (term.mode === 'ledger') {
        const current = new Set<string>();
        if (!delivered) for await (const event of this.core.snapshot()) current.add(objectKey(event));
        const gone: SyncEvent[] = [];
        for (const [key, entry] of term.told!) {
          if (term.mentioned.has(key) || current.has(key)) continue;
          gone.push(new PipelineEvent('DELETED', resourceOf(entry), identityOf(entry), this.core.clusterId, Date.now()));
        }
        const maxPayload = maxPayloadOf(nc);
        for (let from = 0; from < gone.length; from += this.options.resyncChunkSize) {
          const chunk = gone.slice(from, from + this.options.resyncChunkSize);
          await this.send(nc, chunk.map((event) => {
            const message = this.encode(event, maxPayload, undefined);
            return new Outgoing(this.subjectOf(event), message.payload, message.headers, messageId(event));
          }), [], chunk.map((event) => this.ledger.confirmed(event, '')));
        }
        term.counts.gone = gone.length;
        if (gone.length > 0) this.metrics.published.inc({ type: 'DELETED' }, gone.length);
      }
      term.closed = true;
      this.endTerm();
      this.logger.info({ reason: term.reason, mode: term.mode, ms: Date.now() - term.openedAt, ...(term.mode === 'frame' ? { resyncId: term.resyncId, count: term.mentioned.size } : term.mode === 'ledger' ? term.counts : {}) },
        term.mode === 'ledger' ? 'state announced: the ledger\'s diff published (DELETED for objects gone, MODIFIED for changed ones, nothing for the rest)' : 'state announced');
    });
  }

  private async beginTerm(nc: NatsConnection, term: Term): Promise<void> {
    if (this.ledger.available) term.beginWithLedger(await this.ledger.load(nc));
    else if (this.protocol === 'meshsync') {
      const resyncId = term.beginFramed();
      const begin = JSON.stringify({ type: 'RESYNC_BEGIN', resync_id: resyncId, cluster_id: this.core.clusterId });
      try {
        await this.send(nc, [this.marker('RESYNC_BEGIN', begin, resyncId)]);
      } catch (error) {
        term.mode = undefined;
        throw error;
      }
    } else term.beginUnframed();
  }

  /** A RESYNC_BEGIN or RESYNC_END marker. */
  marker(type: 'RESYNC_BEGIN' | 'RESYNC_END', payload: string, resyncId: string): Outgoing {
    const headers = this.options.headers ? markerHeaders(type, this.core.clusterId, resyncId) : undefined;
    return new Outgoing(markerSubject(this.options.subject, this.core.clusterId, type), payload, headers, `${type}:${resyncId}`);
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

  /**
   * Publishes and waits for the server's confirmation; throws (the whole set is retried) when it
   * did not come. Ledger writes go on the same connection, `before` ahead of the messages and
   * `after` behind them (see Ledger.intent).
   */
  async send(nc: NatsConnection, outgoing: readonly Outgoing[], before: readonly LedgerWrite[] = [], after: readonly LedgerWrite[] = []): Promise<void> {
    if (this.jetstream) {
      this.ledger.publish(nc, before);
      await this.jetstream.publish(nc, outgoing);
      this.ledger.publish(nc, after);
      return;
    }
    try {
      this.ledger.publish(nc, before);
      for (const message of outgoing) nc.publish(message.subject, message.payload, message.headers ? { headers: message.headers } : undefined);
      this.ledger.publish(nc, after);
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

/** True when both are etcd revisions (digits) and `a` is the older; a resourceVersion is opaque otherwise. */
function isOlder(a: string | undefined, b: string): boolean {
  if (a === undefined || !/^\d+$/.test(a) || !/^\d+$/.test(b)) return false;
  return a.length < b.length || (a.length === b.length && a < b);
}
