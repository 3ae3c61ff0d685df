/**
 * Requests on the request subject (`resync`, `snapshot`, `meta`; PROTOCOL.md): only the replica
 * that delivers answers, and a request may name the cluster it is for. Anyone who may publish on
 * the subject may ask, so what a request costs is bounded: an allow-list of commands, a rate
 * limit, one resync and one snapshot build at a time (later requests share the next one), and a
 * cap on a snapshot's size.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nuid, type Msg, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import { jsonOf, resourceId, type Core, type Logger, type SyncEvent } from '../../core/index.ts';
import type { BrokerConnection } from './connection.ts';
import { FORMAT_VERSION, markerHeaders, metadataOnly, stripObject } from './encode.ts';
import type { NatsMetrics } from './metrics.ts';
import type { NatsOptions } from './options.ts';
import { errorMessage, maxPayloadOf, Mutex, withTimeout } from './outgoing.ts';
import { renderSubject } from './subject.ts';

export type ControlCommand = 'resync' | 'snapshot' | 'meta';
const COMMANDS: readonly ControlCommand[] = ['resync', 'snapshot', 'meta'];

/** Room for the snapshot chunk envelope around the objects. */
const CHUNK_ENVELOPE_BYTES = 512;
/** A request is a command word or a small JSON object: anything larger is not read. */
const MAX_REQUEST_BYTES = 4096;

/**
 * At most one task running and one waiting to run after it; callers arriving while one waits share
 * it. Anyone on the broker may ask: N requests cost at most two runs, never N queued copies.
 */
export class Coalesced<T> {
  private running: Promise<void> | undefined;
  private waiting: Promise<T> | undefined;

  /** A run that starts after this call (or the one waiting, shared: `joined`). */
  run(task: () => Promise<T>): { result: Promise<T>; joined: boolean } {
    if (this.waiting !== undefined) return { result: this.waiting, joined: true };
    if (this.running === undefined) return { result: this.start(task), joined: false };
    const waiting = this.running.then(() => {
      this.waiting = undefined;
      return this.start(task);
    });
    this.waiting = waiting;
    return { result: waiting, joined: false };
  }

  private start(task: () => Promise<T>): Promise<T> {
    const result = task();
    const running: Promise<void> = result.then(() => undefined, () => undefined).then(() => {
      if (this.running === running) this.running = undefined;
    });
    this.running = running;
    return result;
  }
}

/** Requests a minute, with bursts up to as many. */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(private readonly perMinute: number, private readonly now: () => number = Date.now) {
    this.tokens = perMinute;
    this.last = now();
  }

  take(): boolean {
    const now = this.now();
    this.tokens = Math.min(this.perMinute, this.tokens + ((now - this.last) * this.perMinute) / 60_000);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens--;
    return true;
  }
}

/** A snapshot larger than snapshotMaxBytes: refused rather than held in memory. */
class SnapshotTooLarge extends Error {}

export class Requests {
  private readonly subscribed = new WeakSet<NatsConnection>();
  private readonly resyncs = new Coalesced<{ resyncId: string; count: number }>();
  private readonly snapshots = new Coalesced<string[]>();
  /** Snapshot replies go out one at a time, each flushed, so the client buffers one reply at most. */
  private readonly replies = new Mutex();
  private readonly bucket: TokenBucket;
  private limitLogged = false;

  constructor(
    private readonly core: Core,
    private readonly options: NatsOptions,
    private readonly connection: () => BrokerConnection,
    /** Runs a resync now (the `resync` command): resolves with its id and count. */
    private readonly resync: (reason: string) => Promise<{ resyncId: string; count: number }>,
    private readonly metrics: NatsMetrics,
    private readonly logger: Logger,
  ) {
    this.bucket = new TokenBucket(options.requestRatePerMinute);
  }

  /** Answers requests on this connection (once per connection: the client subscribes again by itself after a reconnect). */
  subscribe(nc: NatsConnection): void {
    if (this.options.requestSubject === '' || this.subscribed.has(nc)) return;
    this.subscribed.add(nc);
    const subject = renderSubject(this.options.requestSubject, { cluster: this.core.clusterId });
    // The client subscribes again by itself after a reconnect of the same connection.
    nc.subscribe(subject, { callback: (error, msg) => (error ? undefined : void this.handleRequest(nc, msg)) });
  }

  /** Answers one request on the request subject. Never throws: a failure becomes an error reply. */
  async handleRequest(nc: NatsConnection, msg: Msg): Promise<void> {
    // Every replica subscribes; only the one delivering (the leader) answers.
    if (this.core.state.deliveryHeld) return;
    if (msg.data.length > MAX_REQUEST_BYTES) {
      this.refuse(nc, msg, 'unknown', 'too-large', `a request is at most ${MAX_REQUEST_BYTES} bytes`);
      return;
    }
    let request: { command?: unknown; cluster_id?: unknown };
    const text = msg.string().trim();
    try {
      request = text.startsWith('{') ? JSON.parse(text) as typeof request : { command: text };
    } catch {
      this.reply(nc, msg, { error: 'the request body is neither JSON nor a command word', commands: COMMANDS });
      return;
    }
    if (typeof request !== 'object' || request === null) request = {};
    // Many clusters may share one request subject: a request may name the one it is for.
    if (typeof request.cluster_id === 'string' && request.cluster_id !== this.core.clusterId) return;
    const command = String(request.command ?? '').toLowerCase() as ControlCommand;
    const label = COMMANDS.includes(command) ? command : 'unknown';
    if (COMMANDS.includes(command) && !this.options.requestCommands.includes(command)) {
      this.refuse(nc, msg, label, 'not-allowed', `command ${command} is not allowed here (requestCommands: ${this.options.requestCommands.join(', ') || 'none'})`);
      return;
    }
    if (!this.bucket.take()) {
      if (!this.limitLogged) this.logger.warn({ command, limit: this.options.requestRatePerMinute }, 'requests refused: more than requestRatePerMinute arrive (logged once until one is answered again)');
      this.limitLogged = true;
      this.refuse(nc, msg, label, 'rate-limited', `rate limited: at most ${this.options.requestRatePerMinute} requests a minute`);
      return;
    }
    this.limitLogged = false;
    try {
      switch (command) {
        case 'resync': {
          const { result, joined } = this.resyncs.run(() => this.resync('request'));
          const { resyncId, count } = await result;
          this.metrics.requests.inc({ command, outcome: joined ? 'joined' : 'answered' });
          this.reply(nc, msg, { ok: true, resync_id: resyncId, count, cluster_id: this.core.clusterId });
          break;
        }
        case 'snapshot':
          await this.replySnapshot(nc, msg);
          break;
        case 'meta':
          this.metrics.requests.inc({ command, outcome: 'answered' });
          this.reply(nc, msg, this.meta());
          break;
        default:
          this.metrics.requests.inc({ command: label, outcome: 'failed' });
          this.reply(nc, msg, { error: `unknown command ${JSON.stringify(command)}`, commands: COMMANDS });
      }
    } catch (error) {
      const tooLarge = error instanceof SnapshotTooLarge;
      this.metrics.requests.inc({ command: label, outcome: tooLarge ? 'too-large' : 'failed' });
      if (!tooLarge) this.logger.warn({ command, err: this.connection().scrub(errorMessage(error)) }, 'request failed');
      this.reply(nc, msg, { error: this.connection().scrub(errorMessage(error)), command });
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

  private refuse(nc: NatsConnection, msg: Msg, command: string, outcome: string, error: string): void {
    this.metrics.requests.inc({ command, outcome });
    this.reply(nc, msg, { error });
  }

  /**
   * Replies with the state in chunks under max_payload, in order:
   * `{"snapshot_id","cluster_id","chunk":1..n,"of":n,"objects":[{"resource","object"}]}`,
   * then an empty message (the sentinel `requestMany` waits for). Requests that arrive while one
   * is being built share the next build; the replies go out one after another.
   */
  private async replySnapshot(nc: NatsConnection, msg: Msg): Promise<void> {
    if (!msg.reply) return;
    const { result, joined } = this.snapshots.run(async () => this.buildSnapshot(maxPayloadOf(nc)));
    const messages = await result;
    await this.replies.run(async () => {
      for (const message of messages) nc.publish(msg.reply!, message, { headers: this.replyHeaders() });
      nc.publish(msg.reply!, '', { headers: this.replyHeaders() });
      await withTimeout(nc.flush(), this.options.flushTimeoutMs, 'the NATS server did not confirm the snapshot in time');
    });
    this.metrics.requests.inc({ command: 'snapshot', outcome: joined ? 'joined' : 'answered' });
  }

  /** The snapshot's messages; throws SnapshotTooLarge past snapshotMaxBytes. */
  private async buildSnapshot(maxPayload: number): Promise<string[]> {
    const budget = maxPayload - CHUNK_ENVELOPE_BYTES - Buffer.byteLength(this.core.clusterId);
    const chunks: string[][] = [[]];
    let size = 0;
    let total = 0;
    let truncated = 0;
    for await (const event of this.core.snapshot()) {
      const item = this.snapshotItem(event, budget);
      if (item === undefined) continue;
      if (item.truncated) truncated++;
      const itemSize = Buffer.byteLength(item.text) + 1;
      total += itemSize;
      if (total > this.options.snapshotMaxBytes) {
        throw new SnapshotTooLarge(`the snapshot is larger than snapshotMaxBytes (${this.options.snapshotMaxBytes} bytes); ask for a resync instead`);
      }
      if (size + itemSize > budget && chunks[chunks.length - 1].length > 0) {
        chunks.push([]);
        size = 0;
      }
      chunks[chunks.length - 1].push(item.text);
      size += itemSize;
    }
    if (truncated > 0) this.metrics.truncated.inc(truncated);
    const snapshotId = nuid.next();
    const head = `{"snapshot_id":"${snapshotId}","cluster_id":${JSON.stringify(this.core.clusterId)}`;
    return chunks.map((items, index) => `${head},"chunk":${index + 1},"of":${chunks.length},"objects":[${items.join(',')}]}`);
  }

  /** One object of a snapshot, cut down to fit; undefined when it cannot be sent (too large even as metadata, or not serialisable). */
  private snapshotItem(event: SyncEvent, budget: number): { text: string; truncated: boolean } | undefined {
    const resource = JSON.stringify(resourceId(event.resource));
    try {
      const item = `{"resource":${resource},"object":${jsonOf(event.object)}}`;
      if (Buffer.byteLength(item) <= budget) return { text: item, truncated: false };
      for (const cut of [stripObject, metadataOnly]) {
        const text = `{"resource":${resource},"truncated":true,"object":${JSON.stringify(cut(event.object))}}`;
        if (Buffer.byteLength(text) <= budget) return { text, truncated: true };
      }
      return undefined;
    } catch (error) {
      const meta = event.object.metadata;
      this.logger.error({ resource: resourceId(event.resource), namespace: meta.namespace, name: meta.name, uid: meta.uid, err: errorMessage(error), code: 'MESHSYNC_EVENT_UNDELIVERABLE' }, 'object could not be encoded; left out of the snapshot');
      return undefined;
    }
  }

  private reply(nc: NatsConnection, msg: Msg, body: unknown): void {
    if (!msg.reply) return;
    nc.publish(msg.reply, JSON.stringify(body), { headers: this.replyHeaders() });
  }

  private replyHeaders(): MsgHdrs {
    return markerHeaders('REPLY', this.core.clusterId);
  }
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
