import { isAscii } from 'node:buffer';
import type { KubeObject, ObjectMeta } from './types.ts';

/**
 * JSON made for an object, kept on the object itself: a source that serialises an object (to keep
 * it compactly) and a sink that sends it share one serialisation, and the very same bytes.
 *
 * Kept in a non-enumerable symbol property, not in a WeakMap: V8's young-generation GC keeps every
 * WeakMap entry whose key is young, so each event's object would be promoted to the old generation
 * and left for a major GC (bench/README.md, "Why an object's bytes are a symbol property"). The property is invisible to JSON.stringify, Object.keys and spreads, so a
 * transform's copy never carries it: sound because objects in the pipeline are never changed in
 * place (transforms copy on write).
 *
 * Only the bytes are kept, never the text: text cut from what the server sent is a slice of a
 * larger string (an HTTP chunk, a LIST page), which V8 keeps whole as long as the slice lives. An
 * event waiting in a queue (a sink down, a standby) would pin its chunk; the bytes are a copy of
 * exactly the object. `jsonOf` decodes them when text is wanted.
 */
const SERIALIZED = Symbol('meshsync.serialized');

function remembered(object: object): Uint8Array | undefined {
  return (object as { [SERIALIZED]?: Uint8Array })[SERIALIZED];
}

function remember(object: object, bytes: Uint8Array): void {
  // A frozen or sealed object simply goes without (it is serialised again when sent).
  if (Object.isExtensible(object)) Object.defineProperty(object, SERIALIZED, { value: bytes, writable: true, configurable: true });
}

/** UTF-8 bytes in an allocation of their own (a slice of Buffer's shared pool would pin the pool). */
function utf8(text: string): Uint8Array {
  const length = Buffer.byteLength(text);
  const bytes = Buffer.allocUnsafeSlow(length);
  // As many bytes as characters: all ASCII, where Latin-1 is UTF-8 and writing it is a plain copy
  // (the UTF-8 writer goes character by character).
  bytes.write(text, length === text.length ? 'latin1' : 'utf8');
  return bytes;
}

/**
 * UTF-8 bytes as text. All-ASCII bytes (JSON from an API server usually is) are copied as
 * Latin-1, which is UTF-8 for them: checking and copying costs about a third of decoding.
 */
export function textOf(bytes: Uint8Array): string {
  const buffer = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return buffer.toString(isAscii(buffer) ? 'latin1' : 'utf8');
}

/** The object's JSON text: decoded from the remembered bytes when a source left some. */
export function jsonOf(object: object): string {
  const bytes = remembered(object);
  return bytes === undefined ? JSON.stringify(object) : textOf(bytes);
}

/** The object's JSON in UTF-8: the remembered bytes (shared, not copied) when there are some. */
export function jsonBytesOf(object: object): Uint8Array {
  return remembered(object) ?? utf8(JSON.stringify(object));
}

/** The remembered bytes of the object's JSON, if a source left them. */
export function knownJsonBytes(object: object): Uint8Array | undefined {
  return remembered(object);
}

/**
 * Serialises an object for a source that keeps it as bytes, and remembers the bytes on it so the
 * sinks reuse them. `json`: the object's JSON when the source already has it (cut from what the
 * server sent), which must parse to exactly this object: text is copied into bytes; bytes are
 * remembered as they are, so they must be the source's own copy (never a view of a larger buffer,
 * which it would keep alive) and never change.
 */
export function serializeForPipeline(object: object, json: string | Uint8Array = JSON.stringify(object)): Uint8Array {
  const bytes = typeof json === 'string' ? utf8(json) : json;
  remember(object, bytes);
  return bytes;
}

/**
 * Marks an object its source keeps, and gives with its current state in its snapshot for as long
 * as it exists there: a sink that must be able to republish what it sent (the NATS sink's resync)
 * can read it from the snapshot instead of keeping a copy of its own. A transform's copy is not
 * marked (the symbol does not survive a spread), so what a sink keeps for it stays its own.
 *
 * `rereadable`: the source's own record of the object, which can parse its latest state again
 * (the kubernetes store's bytes). A lane that holds events for long (a standby, a sink down) then
 * keeps that record instead of the parsed object, a small fraction of its size.
 */
const KEPT_BY_SOURCE = Symbol('meshsync.keptBySource');

/** A source's record of one object it keeps: `parse()` gives its latest state, as a new object. */
export interface Rereadable {
  parse(): object;
}

export function markKeptBySource(object: object, rereadable?: Rereadable): void {
  if (Object.isExtensible(object)) Object.defineProperty(object, KEPT_BY_SOURCE, { value: rereadable ?? true, configurable: true });
}

export function isKeptBySource(object: object): boolean {
  return (object as { [KEPT_BY_SOURCE]?: unknown })[KEPT_BY_SOURCE] !== undefined;
}

/** The source's record of the object, when it keeps one that can be read again. */
export function rereadableOf(object: object): Rereadable | undefined {
  const kept = (object as { [KEPT_BY_SOURCE]?: true | Rereadable })[KEPT_BY_SOURCE];
  return kept === undefined || kept === true ? undefined : kept;
}

/**
 * Bytes held for long (a store, a sink's view of what it sent): the ArrayBuffer alone when the view
 * spans all of it, as the ones made here do: one heap object per held object instead of two, less
 * heap and fewer objects for every major GC to mark.
 */
export type HeldBytes = ArrayBuffer | Uint8Array;

export function holdBytes(bytes: Uint8Array): HeldBytes {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? (bytes.buffer as ArrayBuffer) : bytes;
}

export function heldView(bytes: HeldBytes): Uint8Array {
  return bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
}

/** Parses JSON bytes back into an object, remembering the bytes on it. */
export function parseJsonBytes<T extends object>(held: HeldBytes): T {
  const bytes = heldView(held);
  const object = JSON.parse(textOf(bytes)) as T;
  remember(object, bytes);
  return object;
}

/**
 * An object of which only apiVersion, kind and metadata were parsed: the rest is in its JSON
 * bytes, remembered on it, which the sinks publish as they are. A source emits views for the
 * resources no plugin declared it reads whole (`Core.readsWholeObjects`): parsing a pod's spec
 * and status is most of what a source would spend on it. `wholeObject` parses the rest for a
 * plugin that finds it needs it after all; JSON.stringify of a view writes the whole object.
 * A spread of a view (a transform's copy) has the three fields only: a plugin that copies objects
 * declares that it reads them whole.
 */
export class ObjectView implements KubeObject {
  [field: string]: unknown;
  constructor(readonly apiVersion: string, readonly kind: string, readonly metadata: ObjectMeta, bytes: Uint8Array) {
    remember(this, bytes);
  }

  toJSON(): KubeObject {
    return wholeObject(this);
  }
}

/** The object with every field parsed: a view's bytes parsed anew, any other object itself. */
export function wholeObject(object: KubeObject): KubeObject {
  if (!(object instanceof ObjectView)) return object;
  const whole = parseJsonBytes<KubeObject>(remembered(object)!);
  markKeptLike(whole, object);
  return whole;
}

/** What the source said of `view` (kept, re-readable), said of its whole object too. */
function markKeptLike(whole: object, view: object): void {
  const kept = (view as { [KEPT_BY_SOURCE]?: true | Rereadable })[KEPT_BY_SOURCE];
  if (kept !== undefined) markKeptBySource(whole, kept === true ? undefined : kept);
}
