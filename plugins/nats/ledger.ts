/**
 * The durable ledger: what consumers were told, per object (its identity, resourceVersion and a
 * hash of the bytes published, never the object), in a JetStream key-value bucket per cluster. A
 * restarted instance, or a new leader, diffs the cluster against it and publishes only what
 * changed: DELETED for objects gone, MODIFIED for changed ones, nothing for the rest. So a
 * consumer that knows no resync framing (Meshery, the seed's) converges across restarts.
 *
 * The bucket is a plain KV bucket (stream `KV_<bucket>`, one value per key, `nats kv` reads it),
 * written with core NATS publishes on the event connection: it needs JetStream on the server, not
 * JetStream publishing. A ledger write never holds up delivery; one lost costs a resend at the next
 * start, never a ghost, because an ADDED is preceded by an entry with no version (see `intent`).
 */
import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { DeliverPolicy, DiscardPolicy, jetstream, JetStreamApiCodes, JetStreamApiError, jetstreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { contentHash, objectKey, parseResourceId, resourceId, type KubeObject, type Logger, type ResourceRef, type SyncEvent } from '../../core/index.ts';
import type { NatsOptions } from './options.ts';
import { errorMessage, withTimeout } from './outgoing.ts';

/** One object as consumers were told of it. `rv` and `hash` are empty while its ADDED is unconfirmed. */
export interface LedgerEntry {
  /** Resource id (`configmaps.v1.`). */
  readonly r: string;
  readonly a: string | undefined;
  readonly k: string | undefined;
  readonly ns: string | undefined;
  readonly n: string;
  readonly uid: string | undefined;
  readonly rv: string;
  readonly h: string;
}

/** Why the ledger is or is not in use, as the log and /status say it. */
export type LedgerState = 'off' | 'unknown' | 'available' | 'unavailable';

const KV_OPERATION = 'KV-Operation';
/** A KV key: tokens of `-/_=` and word characters, joined by single dots. */
const KV_KEY = /^[-/=\w]+(\.[-/=\w]+)*$/;
const LOAD_TIMEOUT_MS = 60_000;

/** A message for the bucket: a value (a put) or a delete marker. */
export class LedgerWrite {
  constructor(readonly subject: string, readonly payload: string, readonly deleted: boolean) {}
}

export class Ledger {
  state: LedgerState;
  /** Why it is unavailable (the broker's answer), for the log and /status. */
  reason = '';
  private checkedOn: NatsConnection | undefined;
  private bucketName = '';

  constructor(private readonly settings: NatsOptions['ledger'], private readonly logger: Logger) {
    this.state = settings.enabled ? 'unknown' : 'off';
  }

  get available(): boolean {
    return this.state === 'available';
  }

  get bucket(): string {
    return this.bucketName;
  }

  /** The cluster id is final: the bucket's name follows from it. */
  clusterResolved(clusterId: string): void {
    this.bucketName = bucketName(this.settings.bucket, clusterId);
  }

  /**
   * Finds (or creates) the bucket on this connection's server. Without JetStream there, or without
   * the permission, the ledger is unavailable and says so once; a broker that cannot answer now
   * (an error while connecting) throws, so the caller tries again.
   */
  async open(nc: NatsConnection): Promise<boolean> {
    if (this.state === 'off') return false;
    if (this.checkedOn === nc) return this.available;
    const before = this.state;
    try {
      const jsm = await jetstreamManager(nc, { timeout: 5000 });
      try {
        await jsm.streams.info(this.stream);
      } catch (error) {
        if (!(error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound)) throw error;
        // A KV bucket as the NATS clients make it, with only what nats-server 2.9 knows.
        await jsm.streams.add({
          name: this.stream,
          subjects: [`$KV.${this.bucketName}.>`],
          retention: RetentionPolicy.Limits,
          max_msgs_per_subject: 1,
          discard: DiscardPolicy.New,
          allow_rollup_hdrs: true,
          deny_delete: true,
          allow_direct: true,
          storage: this.settings.storage === 'memory' ? StorageType.Memory : StorageType.File,
          num_replicas: this.settings.replicas,
        });
        this.logger.info({ bucket: this.bucketName }, 'ledger bucket created');
      }
      this.state = 'available';
      this.reason = '';
    } catch (error) {
      this.state = 'unavailable';
      this.reason = errorMessage(error);
    }
    this.checkedOn = nc;
    if (this.state !== before) {
      if (this.available) this.logger.info({ bucket: this.bucketName }, 'ledger in use: consumers that know no resync framing converge across restarts and failovers');
      else this.logger.warn({ bucket: this.bucketName, reason: this.reason }, 'no ledger (the broker has no JetStream, or this account may not use it): only consumers that apply resync framing converge across restarts and failovers');
    }
    return this.available;
  }

  /** Every entry, by object key (as `objectKey` makes it). */
  async load(nc: NatsConnection): Promise<Map<string, LedgerEntry>> {
    const entries = new Map<string, LedgerEntry>();
    const jsm = await jetstreamManager(nc, { timeout: 5000 });
    const info = await jsm.streams.info(this.stream);
    if (info.state.messages === 0) return entries;
    const consumer = await jetstream(nc).consumers.get(this.stream, { filter_subjects: `$KV.${this.bucketName}.>`, deliver_policy: DeliverPolicy.LastPerSubject });
    const messages = await consumer.consume();
    const read = (async () => {
      for await (const message of messages) {
        if (!message.headers?.get(KV_OPERATION)) {
          const entry = JSON.parse(message.string()) as LedgerEntry;
          entries.set(entryKey(entry), entry);
        }
        if (message.info.pending === 0) break;
      }
    })();
    try {
      await withTimeout(read, LOAD_TIMEOUT_MS, 'reading the ledger took too long');
    } finally {
      await messages.close().catch(() => undefined);
    }
    return entries;
  }

  /**
   * Written before a batch: an entry with no version for each ADDED, so a consumer may hold an
   * object the ledger knows of, never one it does not (a crash after the publish, before the
   * entry, would otherwise leave a ghost when the object is deleted while meshsync is down).
   */
  intent(event: SyncEvent): LedgerWrite {
    return this.put(event, '', '');
  }

  /** Written once the broker confirmed `event`, published with the bytes hashed in `hash`. */
  confirmed(event: SyncEvent, hash: string): LedgerWrite {
    if (event.type === 'DELETED') return this.delete(objectKey(event));
    return this.put(event, event.object.metadata.resourceVersion ?? '', hash);
  }

  delete(key: string): LedgerWrite {
    return new LedgerWrite(this.subjectOf(key), '', true);
  }

  /** Publishes the writes on the event connection (core NATS, in order behind what went before). */
  publish(nc: NatsConnection, writes: readonly LedgerWrite[]): void {
    for (const write of writes) {
      if (write.deleted) nc.publish(write.subject, '', { headers: deleteHeaders() });
      else nc.publish(write.subject, write.payload);
    }
  }

  private put(event: SyncEvent, rv: string, hash: string): LedgerWrite {
    const meta = event.object.metadata;
    const entry: LedgerEntry = { r: resourceId(event.resource), a: event.object.apiVersion, k: event.object.kind, ns: meta.namespace, n: meta.name, uid: meta.uid, rv, h: hash };
    return new LedgerWrite(this.subjectOf(objectKey(event)), JSON.stringify(entry), false);
  }

  private subjectOf(key: string): string {
    return `$KV.${this.bucketName}.${KV_KEY.test(key) ? key : `h.${contentHash(key)}`}`;
  }

  private get stream(): string {
    return `KV_${this.bucketName}`;
  }
}

let deleteMarker: ReturnType<typeof natsHeaders> | undefined;
function deleteHeaders() {
  if (deleteMarker === undefined) {
    deleteMarker = natsHeaders();
    deleteMarker.set(KV_OPERATION, 'DEL');
  }
  return deleteMarker;
}

/** The object key an entry stands for (as `objectKey` makes it). */
export function entryKey(entry: LedgerEntry): string {
  return entry.uid ?? objectKey({ resource: resourceOf(entry), object: identityOf(entry) });
}

/** The resource an entry's object belongs to. */
export function resourceOf(entry: LedgerEntry): ResourceRef {
  const id = parseResourceId(entry.r) ?? { resource: entry.r, version: '', group: '' };
  return { ...id, kind: entry.k ?? '', namespaced: entry.ns !== undefined };
}

/** Enough of an object for a consumer to key a DELETED: kind, apiVersion, namespace, name, uid, resourceVersion. */
export function identityOf(entry: LedgerEntry): KubeObject {
  const metadata: KubeObject['metadata'] = { name: entry.n };
  if (entry.ns !== undefined) metadata.namespace = entry.ns;
  if (entry.uid !== undefined) metadata.uid = entry.uid;
  if (entry.rv !== '') metadata.resourceVersion = entry.rv;
  return { apiVersion: entry.a, kind: entry.k, metadata } as KubeObject;
}

/** `{cluster}` in the template replaced by the cluster id, in the characters a bucket name may hold (then made unique with a hash). */
export function bucketName(template: string, clusterId: string): string {
  const safe = clusterId.replace(/[^A-Za-z0-9_-]/g, '_');
  const cluster = safe === clusterId ? safe : `${safe}-${contentHash(clusterId).slice(0, 8)}`;
  return template.replaceAll('{cluster}', cluster || '_');
}

/**
 * The hash of an object's published bytes, the same whether it was read from a list or a watch:
 * the API server writes `"kind"` and `"apiVersion"` first in a watch event, while a list item
 * gets them appended (kubernetes/reflector.ts), so both are left out of what is hashed.
 */
export function publishedHash(objectBytes: Uint8Array): string {
  return contentHash(withoutTypeMeta(objectBytes));
}

const HEAD = /^\{"kind":"[^"\\]*","apiVersion":"[^"\\]*",/;
const TAIL = /,"kind":"[^"\\]*","apiVersion":"[^"\\]*"\}$/;
const EDGE = 200;

function withoutTypeMeta(bytes: Uint8Array): Uint8Array {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const head = HEAD.exec(buffer.toString('latin1', 0, Math.min(EDGE, buffer.length)));
  if (head) return Buffer.concat([Buffer.from('{'), buffer.subarray(head[0].length)]);
  const start = Math.max(0, buffer.length - EDGE);
  const tail = TAIL.exec(buffer.toString('latin1', start));
  if (tail) return Buffer.concat([buffer.subarray(0, start + tail.index), Buffer.from('}')]);
  return bytes;
}
