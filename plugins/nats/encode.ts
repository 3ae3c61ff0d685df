/**
 * The wire format: payload and headers of each message. Every object is serialised once, or not at
 * all when its source already did; its bytes are framed as they are (nothing is re-encoded), and
 * only one too large for the server is serialised again, stripped.
 */
import { headers as natsHeaders, type MsgHdrs, type MsgHdrsImpl } from '@nats-io/transport-node';
import { jsonBytesOf, resourceId, wholeObject, type EventType, type KubeObject, type ObjectMeta, type ResourceRef, type SyncEvent } from '../../core/index.ts';

/** Bumped when the payload or headers change incompatibly; sent in Meshsync-Format-Version. */
export const FORMAT_VERSION = 1;

export const HEADER = {
  type: 'Meshsync-Type',
  resource: 'Meshsync-Resource',
  cluster: 'Meshsync-Cluster',
  formatVersion: 'Meshsync-Format-Version',
  truncated: 'Meshsync-Truncated',
  resyncId: 'Meshsync-Resync-Id',
} as const;

export const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

export type Truncation = 'none' | 'stripped' | 'metadata-only' | 'dropped';

/** A class, not a literal: see `PipelineEvent` (core/event.ts). */
export class EncodedMessage {
  constructor(
    readonly payload: string | Uint8Array,
    readonly headers: MsgHdrs | undefined,
    /** What had to be cut to fit max_payload. */
    readonly truncation: Truncation,
    /** The whole object's JSON, as framed when it fits (the sink keeps it as what it confirmed). */
    readonly objectBytes: Uint8Array,
  ) {}
}

export interface EncodeOptions {
  readonly withHeaders: boolean;
  /** The server's max_payload (payload + headers). */
  readonly maxPayload: number;
  readonly resyncId?: string;
  /**
   * The headers may be shared with other messages of the same type, resource and cluster: true
   * for a core NATS publish, which only reads them (a JetStream publish adds Nats-Msg-Id to the
   * headers it is given).
   */
  readonly sharedHeaders?: boolean;
}

/** Room kept for the headers when the exact size is not computed (they are well under 1 KiB). */
const HEADER_ALLOWANCE = 1024;

/**
 * `{"object":{...},"type":"ADDED","cluster_id":"..."}` (MeshSync's order), plus `"resync_id"` in a
 * resync and `"truncated":true` when the object had to be cut down.
 */
export function encodeEvent(event: SyncEvent, options: EncodeOptions): EncodedMessage {
  const tail = payloadTail(event, options.resyncId);
  const shared = options.sharedHeaders === true && options.resyncId === undefined;
  let headers = options.withHeaders ? (shared ? sharedEventHeaders(event) : eventHeaders(event, options.resyncId)) : undefined;
  const objectBytes = jsonBytesOf(event.object);
  const full = frameObjectBytes(objectBytes, `${tail}}`);
  if (fits(full, headers, options.maxPayload)) return new EncodedMessage(full, headers, 'none', objectBytes);

  const truncatedTail = `${tail},"truncated":true`;
  if (headers !== undefined) {
    headers = eventHeaders(event, options.resyncId);
    headers.set(HEADER.truncated, 'true');
  }
  const stripped = `{"object":${JSON.stringify(stripObject(event.object))}${truncatedTail}}`;
  if (fits(stripped, headers, options.maxPayload)) return new EncodedMessage(stripped, headers, 'stripped', objectBytes);
  const metaOnly = `{"object":${JSON.stringify(metadataOnly(event.object))}${truncatedTail}}`;
  if (fits(metaOnly, headers, options.maxPayload)) return new EncodedMessage(metaOnly, headers, 'metadata-only', objectBytes);
  const identity = `{"object":${JSON.stringify(identityOnly(event.object))}${truncatedTail}}`;
  if (fits(identity, headers, options.maxPayload)) return new EncodedMessage(identity, headers, 'metadata-only', objectBytes);
  return new EncodedMessage('', headers, 'dropped', objectBytes);
}

const OBJECT_HEAD = Buffer.from('{"object":');

/** `{"object":` + the object's JSON bytes + the rest, as bytes: one copy, no re-encoding. */
function frameObjectBytes(object: Uint8Array, rest: string): Uint8Array {
  const restBytes = Buffer.byteLength(rest);
  const out = Buffer.allocUnsafe(OBJECT_HEAD.length + object.length + restBytes);
  OBJECT_HEAD.copy(out, 0);
  out.set(object, OBJECT_HEAD.length);
  out.write(rest, OBJECT_HEAD.length + object.length, 'utf8');
  return out;
}

function payloadTail(event: SyncEvent, resyncId: string | undefined): string {
  const resync = resyncId === undefined ? '' : `,"resync_id":${JSON.stringify(resyncId)}`;
  return `,"type":"${event.type}","cluster_id":${JSON.stringify(event.clusterId)}${resync}`;
}

export function eventHeaders(event: SyncEvent, resyncId?: string): MsgHdrs {
  const h = natsHeaders();
  h.set(HEADER.type, event.type);
  h.set(HEADER.resource, resourceId(event.resource));
  h.set(HEADER.cluster, event.clusterId);
  h.set(HEADER.formatVersion, String(FORMAT_VERSION));
  if (resyncId !== undefined) h.set(HEADER.resyncId, resyncId);
  return h;
}

/**
 * An event's headers made once per resource, cluster and type, for messages that only read them:
 * making and setting them per message costs a measurable share of a burst's CPU.
 */
const sharedHeaders = new WeakMap<ResourceRef, Map<string, Partial<Record<EventType, MsgHdrs>>>>();

function sharedEventHeaders(event: SyncEvent): MsgHdrs {
  let byCluster = sharedHeaders.get(event.resource);
  if (byCluster === undefined) sharedHeaders.set(event.resource, (byCluster = new Map()));
  let byType = byCluster.get(event.clusterId);
  if (byType === undefined) byCluster.set(event.clusterId, (byType = {}));
  return (byType[event.type] ??= eventHeaders(event));
}

/** Headers of a resync marker or a request reply (no resource). */
export function markerHeaders(type: string, clusterId: string, resyncId?: string): MsgHdrs {
  const h = natsHeaders();
  h.set(HEADER.type, type);
  h.set(HEADER.cluster, clusterId);
  h.set(HEADER.formatVersion, String(FORMAT_VERSION));
  if (resyncId !== undefined) h.set(HEADER.resyncId, resyncId);
  return h;
}

/** True when payload + headers fit; the exact byte count is only computed near the limit. */
export function fits(payload: string | Uint8Array, headers: MsgHdrs | undefined, maxPayload: number): boolean {
  // A UTF-16 code unit is at most 3 UTF-8 bytes.
  const atMost = typeof payload === 'string' ? payload.length * 3 : payload.length;
  if (atMost + HEADER_ALLOWANCE <= maxPayload) return true;
  const headerBytes = headers ? (headers as MsgHdrsImpl).encode().length : 0;
  return (typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length) + headerBytes <= maxPayload;
}

/** A copy without managedFields and the last-applied-configuration annotation (often half the size). */
export function stripObject(object: KubeObject): KubeObject {
  return { ...wholeObject(object), metadata: stripMeta(object.metadata) };
}

function stripMeta(meta: ObjectMeta): ObjectMeta {
  const { managedFields: _managedFields, ...rest } = meta;
  if (rest.annotations && LAST_APPLIED in rest.annotations) {
    const { [LAST_APPLIED]: _lastApplied, ...annotations } = rest.annotations;
    rest.annotations = annotations;
  }
  return rest;
}

/** apiVersion, kind and metadata only: enough for a consumer to know the object exists. */
export function metadataOnly(object: KubeObject): KubeObject {
  return { apiVersion: object.apiVersion, kind: object.kind, metadata: stripMeta(object.metadata) };
}

/** The last resort when even the metadata is too large (huge labels or annotations). */
function identityOnly(object: KubeObject): KubeObject {
  const { name, namespace, uid, resourceVersion } = object.metadata;
  return { apiVersion: object.apiVersion, kind: object.kind, metadata: { name, namespace, uid, resourceVersion } };
}

/** `<uid>:<resourceVersion>:<type>`: the same change published twice gets the same id. */
export function messageId(event: SyncEvent, resyncId?: string): string {
  const meta = event.object.metadata;
  const id = `${meta.uid ?? `${meta.namespace ?? ''}/${meta.name}`}:${meta.resourceVersion ?? ''}:${event.type}`;
  // A resync republishes unchanged objects: its own id keeps them from being dropped as duplicates.
  return resyncId === undefined ? id : `${id}:${resyncId}`;
}
