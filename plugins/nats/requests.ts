/**
 * Requests on the request subject (`resync`, `snapshot`, `meta`; PROTOCOL.md): only the replica
 * that delivers answers, and a request may name the cluster it is for.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nuid, type Msg, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import { jsonOf, resourceId, type Core, type Logger } from '../../core/index.ts';
import type { BrokerConnection } from './connection.ts';
import { FORMAT_VERSION, markerHeaders, metadataOnly, stripObject } from './encode.ts';
import type { NatsMetrics } from './metrics.ts';
import type { NatsOptions } from './options.ts';
import { errorMessage, maxPayloadOf, withTimeout } from './outgoing.ts';
import { renderSubject } from './subject.ts';

export type ControlCommand = 'resync' | 'snapshot' | 'meta';
const COMMANDS: readonly ControlCommand[] = ['resync', 'snapshot', 'meta'];

/** Room for the snapshot chunk envelope around the objects. */
const CHUNK_ENVELOPE_BYTES = 512;

export class Requests {
  private readonly subscribed = new WeakSet<NatsConnection>();

  constructor(
    private readonly core: Core,
    private readonly options: NatsOptions,
    private readonly connection: () => BrokerConnection,
    /** Runs a resync now (the `resync` command): resolves with its id and count. */
    private readonly resync: (reason: string) => Promise<{ resyncId: string; count: number }>,
    private readonly metrics: NatsMetrics,
    private readonly logger: Logger,
  ) {}

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
      this.logger.warn({ command, err: this.connection().scrub(errorMessage(error)) }, 'request failed');
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
