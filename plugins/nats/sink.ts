/**
 * The NATS sink: publishes each batch and accepts it only once the server confirmed it (a flush
 * round trip on core NATS, an acknowledgement per message on JetStream); republishes the whole
 * state, framed, after a reconnect; answers resync / snapshot / meta requests.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { errors as natsErrors, nanos, nuid, RequestError, type Msg, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import {
  DiscardPolicy, JetStreamApiCodes, JetStreamApiError, jetstream, jetstreamManager, RetentionPolicy, StorageType, type JetStreamClient,
} from '@nats-io/jetstream';
import {
  holdBytes, isKeptBySource, jsonOf, MeshSyncError, objectKey, parseJsonBytes, PipelineEvent, redactUrlCredentials, resourceId, type Batch, type Core, type EventType, type HeldBytes, type KubeObject, type Logger, type ResourceRef, type SnapshotItem, type SyncEvent,
} from '../../core/index.ts';
import { BrokerConnection, jitter } from './connection.ts';
import { encodeEvent, FORMAT_VERSION, HEADER, markerHeaders, messageId, metadataOnly, stripObject, type Truncation } from './encode.ts';
import { natsMetrics, type NatsMetrics } from './metrics.ts';
import { PLUGIN_NAME, resolveServers, type NatsOptions } from './options.ts';
import { compileSubject, markerSubject, renderSubject, streamSubjects } from './subject.ts';

/** One message ready to go: JetStream mode also needs its id. A class: see `PipelineEvent` (core/event.ts). */
class Outgoing {
  constructor(readonly subject: string, readonly payload: string | Uint8Array, readonly headers: MsgHdrs | undefined, readonly msgId: string) {}
}

/** An object's JSON as this sink confirmed it, kept to republish it in a resync. */
class ConfirmedBytes {
  constructor(readonly resource: ResourceRef, readonly json: HeldBytes) {}
}

/** The confirmed-state entry of an object its source keeps (see `markKeptBySource`): the type it was confirmed as. */
type KeptBySource = 'ADDED' | 'MODIFIED';

export type ControlCommand = 'resync' | 'snapshot' | 'meta';
const COMMANDS: readonly ControlCommand[] = ['resync', 'snapshot', 'meta'];

/** Room for the snapshot chunk envelope around the objects. */
const CHUNK_ENVELOPE_BYTES = 512;
/** Objects whose truncation was logged; cleared when full so it never grows without bound. */
const TRUNCATION_LOG_LIMIT = 10_000;

export class NatsSink {
  private brokerConnection: BrokerConnection;
  private started = false;
  private readonly metrics: NatsMetrics;
  private readonly lock = new Mutex();
  private subjectOf: (event: SyncEvent) => string = () => '';
  private readonly subscribed = new WeakSet<NatsConnection>();
  private js: { nc: NatsConnection; client: JetStreamClient; streamChecked: boolean } | undefined;
  private pendingResync: string | undefined;
  private resyncRunning = false;
  private stopped = false;
  private clusterKnown = false;
  private readonly truncationLogged = new Set<string>();
  /**
   * Every object a consumer that missed nothing holds, by key: the type it was confirmed as when
   * its source keeps it and gives its current state in the snapshot (a resync reads it there, and
   * the filters see that type again), otherwise the JSON bytes confirmed last (a transform's copy,
   * a source without a store).
   */
  private readonly published = new Map<string, ConfirmedBytes | KeptBySource>();

  constructor(private readonly core: Core, private readonly options: NatsOptions, private readonly logger: Logger) {
    this.brokerConnection = this.connect(resolveServers(options));
    this.metrics = natsMetrics(core.metrics, () => this.connection.connected);
  }

  get connection(): BrokerConnection {
    return this.brokerConnection;
  }

  async start(): Promise<void> {
    this.started = true;
    await this.connection.start();
  }

  /**
   * Live settings name a broker (the MeshSync custom resource). BROKER_URL wins, as everywhere;
   * before start the sink simply connects there, after start it would need a restart.
   */
  useBroker(url: string): void {
    if (process.env.BROKER_URL?.trim()) return;
    const servers = [url];
    if (this.connection.describeServers() === servers.map(redactUrlCredentials).join(',')) return;
    if (this.started) {
      this.logger.warn({ broker: redactUrlCredentials(url) }, 'the broker changed; restart meshsync to publish there (the connection in use is kept)');
      return;
    }
    this.brokerConnection = this.connect(servers);
  }

  private connect(servers: string[]): BrokerConnection {
    return new BrokerConnection(this.options, servers, this.logger, {
      connected: (nc, reconnect) => this.onConnected(nc, reconnect),
    });
  }

  /** The cluster id is final (the clusterId hook ran after start): subjects can be rendered. */
  clusterResolved(clusterId: string): void {
    this.subjectOf = compileSubject(this.options.subject, clusterId);
    this.clusterKnown = true;
    const nc = this.connection.current;
    if (nc) this.subscribeRequests(nc);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.connection.stop();
  }

  /** The sink tap: resolves once the broker confirmed every event of the batch. */
  deliver(batch: Batch): Promise<void> {
    return this.lock.run(async () => {
      const nc = this.connection.require();
      const maxPayload = maxPayloadOf(nc);
      const outgoing: Outgoing[] = [];
      const published = { ADDED: 0, MODIFIED: 0, DELETED: 0 } satisfies Record<EventType, number>;
      let truncated = 0;
      // Each object's JSON as encoded, kept once confirmed: serialised once per event, not again here.
      const objectBytes: Uint8Array[] = new Array(batch.length);
      for (let i = 0; i < batch.length; i++) {
        const event = batch[i];
        const message = encodeEvent(event, { withHeaders: this.options.headers, maxPayload, sharedHeaders: !this.options.jetstream });
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
      // Counted once confirmed, per batch.
      for (const type of ['ADDED', 'MODIFIED', 'DELETED'] as const) if (published[type] > 0) this.metrics.published.inc({ type }, published[type]);
      if (truncated > 0) this.metrics.truncated.inc(truncated);
    });
  }

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
  resync(reason: string): Promise<{ resyncId: string; count: number }> {
    return this.lock.run(async () => {
      const nc = this.connection.require();
      const maxPayload = maxPayloadOf(nc);
      const clusterId = this.core.clusterId;
      const resyncId = nuid.next();
      const observedAt = Date.now();
      const begin = JSON.stringify({ type: 'RESYNC_BEGIN', resync_id: resyncId, cluster_id: clusterId });
      await this.send(nc, [this.marker('RESYNC_BEGIN', begin, resyncId)]);
      let count = 0;
      let truncated = 0;
      let outgoing: Outgoing[] = [];
      const add = async (event: SyncEvent) => {
        const message = encodeEvent(event, { withHeaders: this.options.headers, maxPayload, resyncId });
        if (message.truncation !== 'none') {
          truncated++;
          this.noteTruncation(event, message.truncation, maxPayload);
          if (message.truncation === 'dropped') return;
        }
        outgoing.push(new Outgoing(this.subjectOf(event), message.payload, message.headers, messageId(event, resyncId)));
        if (outgoing.length < this.options.resyncChunkSize) return;
        await this.send(nc, outgoing);
        count += outgoing.length;
        outgoing = [];
      };
      // Read lazily, a chunk at a time: parsing every object up front would hold the whole state
      // in the heap. The filters see each object as the type it was confirmed as, so one they
      // let through then (a watch-list allowing only MODIFIED) is not left out now.
      const keptAs = (item: SnapshotItem) => {
        const entry = this.published.get(objectKey(item));
        return typeof entry === 'string' ? entry : undefined;
      };
      const mentioned = new Set<string>();
      for (const event of this.core.snapshot(keptAs)) {
        const key = objectKey(event);
        if (mentioned.has(key)) continue;
        mentioned.add(key);
        await add(new PipelineEvent('ADDED', event.resource, event.object, clusterId, observedAt));
      }
      for (const confirmed of this.published.values()) {
        if (typeof confirmed !== 'string') await add(new PipelineEvent('ADDED', confirmed.resource, parseJsonBytes<KubeObject>(confirmed.json), clusterId, observedAt));
      }
      await this.send(nc, outgoing);
      count += outgoing.length;
      const end = JSON.stringify({ type: 'RESYNC_END', resync_id: resyncId, count, cluster_id: clusterId });
      await this.send(nc, [this.marker('RESYNC_END', end, resyncId)]);
      // Consumers dropped what the frame left out (deleted since, filtered out now, or of a
      // resource no longer watched): so does this view.
      for (const [key, entry] of this.published) if (typeof entry === 'string' && !mentioned.has(key)) this.published.delete(key);
      this.metrics.resyncs.inc({ reason });
      if (truncated > 0) this.metrics.truncated.inc(truncated);
      this.logger.info({ resyncId, count, reason }, 'resync published');
      return { resyncId, count };
    });
  }

  /** Asks for a resync; one runs at a time, retried until it went through. */
  requestResync(reason: string): void {
    // A standby has published nothing: its (empty) frame would make consumers drop the cluster.
    if (this.core.state.deliveryHeld) {
      this.logger.debug({ reason }, 'resync skipped: delivery is held (standby)');
      return;
    }
    this.pendingResync = reason;
    if (!this.resyncRunning) void this.runResyncs();
  }

  private async runResyncs(): Promise<void> {
    this.resyncRunning = true;
    let delay = this.options.reconnectInitialMs;
    try {
      while (this.pendingResync !== undefined && !this.stopped) {
        const reason = this.pendingResync;
        this.pendingResync = undefined;
        await this.connection.whenConnected();
        if (this.stopped) break;
        // Asked while leading, run after becoming a standby: the new leader resyncs instead.
        if (this.core.state.deliveryHeld) continue;
        try {
          await this.resync(reason);
          delay = this.options.reconnectInitialMs;
        } catch (error) {
          this.logger.warn({ err: this.connection.scrub(errorMessage(error)), reason }, 'resync failed; retrying');
          this.pendingResync ??= reason;
          await new Promise((resolve) => setTimeout(resolve, jitter(delay)));
          delay = Math.min(delay * 2, this.options.reconnectMaxMs);
        }
      }
    } finally {
      this.resyncRunning = false;
    }
  }

  private onConnected(nc: NatsConnection, reconnect: boolean): void {
    // A batch that failed while the broker was away is sent now, not when its backoff ends.
    this.core.retryDelivery(PLUGIN_NAME);
    if (this.clusterKnown) this.subscribeRequests(nc);
    if (reconnect && this.options.resyncOnReconnect) this.requestResync('reconnect');
  }

  private subscribeRequests(nc: NatsConnection): void {
    if (this.options.requestSubject === '' || this.subscribed.has(nc)) return;
    this.subscribed.add(nc);
    const subject = renderSubject(this.options.requestSubject, { cluster: this.core.clusterId });
    // The client subscribes again by itself after a reconnect of the same connection.
    nc.subscribe(subject, { callback: (error, msg) => (error ? undefined : void this.handleRequest(nc, msg)) });
  }

  /** Publishes and waits for the server's confirmation; throws (the whole set is retried) when it did not come. */
  private async send(nc: NatsConnection, outgoing: readonly Outgoing[]): Promise<void> {
    if (this.options.jetstream) return this.sendJetStream(nc, outgoing);
    try {
      for (const message of outgoing) nc.publish(message.subject, message.payload, message.headers ? { headers: message.headers } : undefined);
      // The PONG to this PING proves the server read everything published before it on this
      // connection; if the connection dropped meanwhile the client rejects it (it discards its buffer).
      await withTimeout(nc.flush(), this.options.flushTimeoutMs, 'the NATS server did not confirm the batch in time');
    } catch (error) {
      throw this.brokerError('publishing to NATS failed; the batch is retried', error);
    }
  }

  private async sendJetStream(nc: NatsConnection, outgoing: readonly Outgoing[]): Promise<void> {
    const js = await this.jetStreamFor(nc);
    const { ackTimeoutMs, retries } = this.options.jetstream!;
    const publishOne = async (message: Outgoing) => {
      for (let attempt = 0; ; attempt++) {
        try {
          // Same id on every attempt: the stream drops what it already stored.
          return await js.publish(message.subject, message.payload, { msgID: message.msgId, headers: message.headers, timeout: ackTimeoutMs });
        } catch (error) {
          const retriable = error instanceof natsErrors.TimeoutError || (error instanceof RequestError && error.isNoResponders());
          if (!retriable || attempt >= retries || !this.connection.connected) throw error;
        }
      }
    };
    try {
      await Promise.all(outgoing.map(publishOne));
    } catch (error) {
      throw this.brokerError('publishing to JetStream failed; the batch is retried (ids make it idempotent)', error);
    }
  }

  private async jetStreamFor(nc: NatsConnection): Promise<JetStreamClient> {
    const settings = this.options.jetstream!;
    if (this.js?.nc !== nc) this.js = { nc, client: jetstream(nc, { timeout: settings.ackTimeoutMs }), streamChecked: false };
    if (!this.js.streamChecked) {
      if (settings.create) await this.ensureStream(nc);
      this.js.streamChecked = true;
    }
    return this.js.client;
  }

  /** Creates the stream with bounded limits unless it exists (an existing one is never changed). */
  private async ensureStream(nc: NatsConnection): Promise<void> {
    const settings = this.options.jetstream!;
    const jsm = await jetstreamManager(nc);
    try {
      await jsm.streams.info(settings.stream);
      return;
    } catch (error) {
      if (!(error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound)) throw error;
    }
    const subjects = settings.subjects ?? [...new Set([...streamSubjects(this.options.subject)])];
    // Only settings nats-server 2.9 knows.
    await jsm.streams.add({
      name: settings.stream,
      subjects,
      retention: RetentionPolicy.Limits,
      storage: settings.storage === 'memory' ? StorageType.Memory : StorageType.File,
      discard: DiscardPolicy.Old,
      max_age: nanos(settings.maxAge),
      max_bytes: settings.maxBytes,
      duplicate_window: nanos(Math.min(settings.duplicateWindow, settings.maxAge)),
      num_replicas: settings.replicas,
    });
    this.logger.info({ stream: settings.stream, subjects }, 'JetStream stream created');
  }

  private marker(type: 'RESYNC_BEGIN' | 'RESYNC_END', payload: string, resyncId: string): Outgoing {
    const headers = this.options.headers ? markerHeaders(type, this.core.clusterId, resyncId) : undefined;
    return new Outgoing(markerSubject(this.options.subject, this.core.clusterId, type), payload, headers, `${type}:${resyncId}`);
  }

  /** Answers one request on the request subject. Never throws: a failure becomes an error reply. */
  async handleRequest(nc: NatsConnection, msg: Msg): Promise<void> {
    // Every replica subscribes; only the one delivering (the leader) answers.
    if (this.core.state.deliveryHeld) return;
    let request: { command?: unknown; cluster_id?: unknown };
    const text = msg.string().trim();
    try {
      request = text.startsWith('{') ? JSON.parse(text) as typeof request : { command: text };
    } catch {
      this.reply(nc, msg, { error: 'the request body is neither JSON nor a command word', commands: COMMANDS });
      return;
    }
    // Many clusters may share one request subject: a request may name the one it is for.
    if (typeof request.cluster_id === 'string' && request.cluster_id !== this.core.clusterId) return;
    const command = String(request.command ?? '').toLowerCase() as ControlCommand;
    try {
      switch (command) {
        case 'resync': {
          const { resyncId, count } = await this.resync('request');
          this.reply(nc, msg, { ok: true, resync_id: resyncId, count, cluster_id: this.core.clusterId });
          break;
        }
        case 'snapshot':
          await this.replySnapshot(nc, msg);
          break;
        case 'meta':
          this.reply(nc, msg, this.meta());
          break;
        default:
          this.reply(nc, msg, { error: `unknown command ${JSON.stringify(command)}`, commands: COMMANDS });
      }
    } catch (error) {
      this.logger.warn({ command, err: this.connection.scrub(errorMessage(error)) }, 'request failed');
      this.reply(nc, msg, { error: this.connection.scrub(errorMessage(error)), command });
    }
  }

  meta(): Record<string, unknown> {
    const counts = this.core.state.resourceCounts();
    return {
      version: packageVersion(),
      format_version: FORMAT_VERSION,
      cluster_id: this.core.clusterId,
      subject: this.options.subject,
      jetstream: this.options.jetstream?.stream ?? null,
      ready: this.core.state.ready,
      resources: Object.keys(counts).sort(),
      counts,
    };
  }

  /**
   * Replies with the state in chunks under max_payload, in order:
   * `{"snapshot_id","cluster_id","chunk":1..n,"of":n,"objects":[{"resource","object"}]}`,
   * then an empty message (the sentinel `requestMany` waits for).
   */
  private async replySnapshot(nc: NatsConnection, msg: Msg): Promise<void> {
    if (!msg.reply) return;
    const maxPayload = maxPayloadOf(nc);
    const budget = maxPayload - CHUNK_ENVELOPE_BYTES - Buffer.byteLength(this.core.clusterId);
    const chunks: string[][] = [[]];
    let size = 0;
    let truncated = 0;
    for (const event of this.core.snapshot()) {
      let item = `{"resource":${JSON.stringify(resourceId(event.resource))},"object":${jsonOf(event.object)}}`;
      if (Buffer.byteLength(item) > budget) {
        truncated++;
        item = `{"resource":${JSON.stringify(resourceId(event.resource))},"truncated":true,"object":${JSON.stringify(stripObject(event.object))}}`;
        if (Buffer.byteLength(item) > budget) item = `{"resource":${JSON.stringify(resourceId(event.resource))},"truncated":true,"object":${JSON.stringify(metadataOnly(event.object))}}`;
        if (Buffer.byteLength(item) > budget) continue;
      }
      const itemSize = Buffer.byteLength(item) + 1;
      if (size + itemSize > budget && chunks[chunks.length - 1].length > 0) {
        chunks.push([]);
        size = 0;
      }
      chunks[chunks.length - 1].push(item);
      size += itemSize;
    }
    const snapshotId = nuid.next();
    const head = `{"snapshot_id":"${snapshotId}","cluster_id":${JSON.stringify(this.core.clusterId)}`;
    chunks.forEach((items, index) => {
      nc.publish(msg.reply!, `${head},"chunk":${index + 1},"of":${chunks.length},"objects":[${items.join(',')}]}`, { headers: this.replyHeaders() });
    });
    nc.publish(msg.reply, '', { headers: this.replyHeaders() });
    if (truncated > 0) this.metrics.truncated.inc(truncated);
    await withTimeout(nc.flush(), this.options.flushTimeoutMs, 'the NATS server did not confirm the snapshot in time');
  }

  private reply(nc: NatsConnection, msg: Msg, body: unknown): void {
    if (!msg.reply) return;
    nc.publish(msg.reply, JSON.stringify(body), { headers: this.replyHeaders() });
  }

  private replyHeaders(): MsgHdrs {
    return markerHeaders('REPLY', this.core.clusterId);
  }

  private noteTruncation(event: SyncEvent, truncation: Truncation, maxPayload: number): void {
    const meta = event.object.metadata;
    const key = meta.uid ?? `${resourceId(event.resource)}/${meta.namespace ?? ''}/${meta.name}`;
    if (this.truncationLogged.has(key)) return;
    if (this.truncationLogged.size >= TRUNCATION_LOG_LIMIT) this.truncationLogged.clear();
    this.truncationLogged.add(key);
    const detail = { resource: resourceId(event.resource), namespace: meta.namespace, name: meta.name, uid: meta.uid, maxPayload, truncation, code: 'MESHSYNC_MESSAGE_TOO_LARGE' };
    if (truncation === 'dropped') this.logger.error(detail, 'object too large for the broker even as metadata; skipped');
    else this.logger.warn(detail, truncation === 'stripped' ? 'object too large for the broker; sent without managedFields and last-applied-configuration' : 'object too large for the broker; sent as metadata only, marked truncated');
  }

  private brokerError(message: string, cause: unknown): MeshSyncError {
    if (cause instanceof MeshSyncError) return cause;
    return new MeshSyncError('MESHSYNC_BROKER_UNREACHABLE', `${message}: ${this.connection.scrub(errorMessage(cause))}`);
  }
}

/** Serialises the lane's batches and resyncs, so a resync frame is never interleaved. */
class Mutex {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

function maxPayloadOf(nc: NatsConnection): number {
  return nc.info?.max_payload ?? 1024 * 1024;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${message} (${ms} ms)`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

let cachedVersion: string | undefined;

/** meshsync's version, from the package.json above this file (source or built). */
export function packageVersion(): string {
  if (cachedVersion !== undefined) return cachedVersion;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++, dir = dirname(dir)) {
    const file = join(dir, 'package.json');
    if (!existsSync(file)) continue;
    try {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'meshsync' && pkg.version) return (cachedVersion = pkg.version);
    } catch {
      // not ours; keep looking
    }
  }
  return (cachedVersion = 'unknown');
}

export { HEADER };
