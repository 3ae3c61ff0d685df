/**
 * Meshery mode on the wire: meshkit's `broker.Message` envelope around MeshSync's
 * `KubernetesResource`, on the subjects Go MeshSync hard-codes (shared/meshery-wire-protocol.md).
 */
import { jsonBytesOf, type SyncEvent } from '../../../core/index.ts';
import { EncodedMessage, metadataOnly, stripObject, type EncodeOptions } from '../encode.ts';
import { goString } from './gojson.ts';
import { kubernetesResource } from './model.ts';

export const MESHERY = {
  /** Resource events; Meshery Server subscribes without a queue group. */
  eventSubject: 'meshery.meshsync.core',
  /** Requests from Meshery Server. */
  requestSubject: 'meshery.meshsync.request',
  /** Go MeshSync's queue group: several MeshSyncs on one broker share the requests. */
  requestQueue: 'meshsync-request-stream',
  /** The version reply (literal, no dots). */
  metaSubject: 'meshsync-meta',
  logSubject: 'meshery.meshsync.logs',
  activeExecSubject: 'active_sessions.exec',
  /** Objects per informer-store reply message, as Go MeshSync batches them. */
  storeBatch: 5,
} as const;

export type ObjectType = '' | 'meshsync-data' | 'error';

/**
 * `{"ObjectType","EventType","Request":null,"Object"}`: meshkit's struct has no JSON tags, so the
 * keys are its field names in its order. `objectJson` is already JSON text. `EventType` is never
 * `ERROR`: Meshery Server type-asserts that Object to a Go error and panics.
 */
export function envelope(objectType: ObjectType, eventType: '' | SyncEvent['type'], objectJson: string): string {
  return `{"ObjectType":"${objectType}","EventType":"${eventType}","Request":null,"Object":${objectJson}}`;
}

/** A text reply (meta, error) in the envelope. */
export function textEnvelope(objectType: ObjectType, text: string): string {
  return envelope(objectType, '', goString(text));
}

/**
 * One resource event. One too large for the server is sent without the last-applied annotation,
 * then as metadata only (no spec, status or data), then as its identity, which is all Meshery
 * needs to key a row; failing that it is dropped (and logged by the caller).
 */
export function encodeMesheryEvent(event: SyncEvent, options: Pick<EncodeOptions, 'maxPayload'>): EncodedMessage {
  const objectBytes = jsonBytesOf(event.object);
  const full = envelope('meshsync-data', event.type, kubernetesResource(event.object, event.type, event.clusterId));
  if (fitsPayload(full, options.maxPayload)) return new EncodedMessage(full, undefined, 'none', objectBytes);
  const stripped = envelope('meshsync-data', event.type, kubernetesResource(stripObject(event.object), event.type, event.clusterId));
  if (fitsPayload(stripped, options.maxPayload)) return new EncodedMessage(stripped, undefined, 'stripped', objectBytes);
  const meta = envelope('meshsync-data', event.type, kubernetesResource(metadataOnly(event.object), event.type, event.clusterId));
  if (fitsPayload(meta, options.maxPayload)) return new EncodedMessage(meta, undefined, 'metadata-only', objectBytes);
  const identity = envelope('meshsync-data', event.type, kubernetesResource(identityOf(event), event.type, event.clusterId));
  if (fitsPayload(identity, options.maxPayload)) return new EncodedMessage(identity, undefined, 'metadata-only', objectBytes);
  return new EncodedMessage('', undefined, 'dropped', objectBytes);
}

/** What Meshery keys a row by (cluster, kind, apiVersion, namespace, name), and the uid. */
export function identityOf(event: Pick<SyncEvent, 'object'>): SyncEvent['object'] {
  const { apiVersion, kind, metadata } = event.object;
  const { name, namespace, uid } = metadata;
  return { apiVersion, kind, metadata: { name, namespace, uid } };
}

export function fitsPayload(payload: string, maxPayload: number): boolean {
  return payload.length * 3 <= maxPayload || Buffer.byteLength(payload) <= maxPayload;
}
