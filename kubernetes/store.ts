/**
 * What a reflector keeps: every object of its resource, by namespace and name, as compact as it
 * can be: by default only a fingerprint (uid and resourceVersion, all a watch needs to tell an
 * add from a change and a relist what was deleted; the current objects are listed afresh when a
 * snapshot asks for them), or, where configured, full objects as their JSON bytes and
 * metadata-only objects parsed, their repeated strings shared. Either way marked as kept by
 * their source, whose snapshot gives their current state (see markKeptBySource).
 */
import { holdBytes, markKeptBySource, parseJsonBytes, serializeForPipeline, type HeldBytes, type KubeObject, type Rereadable } from '../core/index.ts';

/**
 * A full object as the store keeps it: its JSON in UTF-8 bytes, with its identity and version at
 * hand. The bytes live outside the JavaScript heap, so a 100k-object cache neither slows the
 * garbage collector nor makes the heap grow.
 *
 * The store owns its buffer and rewrites it in place when the object changes (a copy of the
 * event's bytes, which stay immutable for the pipeline). A new buffer per change would be kept
 * until a major GC, and V8 starts one for every 64 MB of such memory: under steady churn, a major
 * GC stall at regular intervals (bench/README.md, "Why the store rewrites its buffers").
 */
class ObjectBytes {
  private buffer: ArrayBuffer;
  private length: number;

  constructor(public uid: string | undefined, public resourceVersion: string | undefined, bytes: Uint8Array) {
    this.buffer = new ArrayBuffer(roomFor(bytes.length));
    this.length = 0;
    this.write(uid, resourceVersion, bytes);
  }

  /** Takes the object's new bytes: in place when they fit without wasting half the buffer. */
  write(uid: string | undefined, resourceVersion: string | undefined, bytes: Uint8Array): void {
    if (bytes.length > this.buffer.byteLength || bytes.length < this.buffer.byteLength / 2) this.buffer = new ArrayBuffer(roomFor(bytes.length));
    new Uint8Array(this.buffer).set(bytes);
    this.length = bytes.length;
    this.uid = uid;
    this.resourceVersion = resourceVersion;
  }

  /** The object, parsed from a copy of the bytes (the buffer is rewritten on the next change). */
  parse(): KubeObject {
    const object = parseJsonBytes<KubeObject>(new Uint8Array(this.buffer.slice(0, this.length)));
    markKeptBySource(object);
    return object;
  }
}

/** A buffer for `length` bytes with room for the few more a change usually adds (a longer resourceVersion). */
const roomFor = (length: number) => (length + 32 + 31) & ~31;

/**
 * A metadata-only object, as the store keeps it. A class rather than a literal: the store marks
 * what it keeps (`markKeptBySource`), and on a literal that extra property costs a property array
 * of its own; made in the constructor, it has a slot in the object (bench/README.md,
 * "Why metadata-only objects are classes"). JSON and spreads see the three fields only.
 */
export class MetadataOnlyObject implements KubeObject {
  [field: string]: unknown;
  constructor(readonly apiVersion: string, readonly kind: string, readonly metadata: KubeObject['metadata']) {
    markKeptBySource(this);
  }
}

/**
 * An object the store keeps the fingerprint of only: 4 slots, ~100 bytes with its uid and
 * resourceVersion strings, where its bytes take some 3.5 KB for a pod (bench/README.md, "memory").
 */
class Fingerprint {
  constructor(public uid: string | undefined, public resourceVersion: string | undefined) {}
}

/**
 * An object's own bytes as its source's record of it, where the store keeps only fingerprints: a
 * lane holding events for long (a standby, a sink down) keeps these (the ArrayBuffer and two small
 * objects) instead of the parsed object, and parses them when it delivers.
 */
class ObjectJson implements Rereadable {
  private readonly held: HeldBytes;
  constructor(bytes: Uint8Array) {
    this.held = holdBytes(bytes);
  }

  parse(): KubeObject {
    return parseJsonBytes<KubeObject>(this.held);
  }
}

/** What the store holds per object: a fingerprint, its bytes (full objects) or the object itself (metadata only: small, and cheaper without a wrapper). */
export type StoredObject = Fingerprint | ObjectBytes | KubeObject;

export const storedMeta = (stored: StoredObject) => (stored instanceof ObjectBytes || stored instanceof Fingerprint ? stored : stored.metadata);

/** How a store keeps its objects: `fingerprints`, `bytes` (full objects) or `objects` (as they are). */
export type Resident = 'fingerprints' | 'bytes' | 'objects';

/**
 * Objects keyed by namespace, then name. Two levels rather than one `namespace/name` string key:
 * the names are the objects' own strings, so a key costs no memory of its own.
 */
export class ObjectStore {
  private readonly namespaces = new Map<string, Map<string, StoredObject>>();
  private count = 0;

  /**
   * `identity`: the object a fingerprint stands for when one must be handed out (the DELETED of an
   * object gone in a relist): apiVersion, kind and metadata name, namespace, uid, resourceVersion.
   */
  constructor(readonly resident: Resident = 'objects', private readonly identity?: (meta: KubeObject['metadata']) => KubeObject) {}

  /** Whether the objects themselves are kept (values() gives them), not only their fingerprints. */
  get keepsObjects(): boolean {
    return this.resident !== 'fingerprints';
  }

  /** The object as kept: parsed anew from its bytes on each call, or stood for by its identity (snapshots and relists: rare). */
  private objectOf(stored: StoredObject, namespace: string, name: string): KubeObject {
    if (stored instanceof ObjectBytes) return stored.parse();
    if (!(stored instanceof Fingerprint)) return stored;
    const meta = { name, namespace: namespace === '' ? undefined : namespace, uid: stored.uid, resourceVersion: stored.resourceVersion };
    if (this.identity === undefined) return { metadata: meta };
    return this.identity(meta);
  }

  /** The object stored under the namespace and name of `object`, as `objectOf` gives it. */
  objectFor(stored: StoredObject, object: KubeObject): KubeObject {
    return this.objectOf(stored, object.metadata.namespace ?? '', object.metadata.name);
  }

  get size(): number {
    return this.count;
  }

  get(object: KubeObject): StoredObject | undefined {
    return this.namespaces.get(object.metadata.namespace ?? '')?.get(object.metadata.name);
  }

  /** Stores the object in place of the one with its namespace and name; `json`: its JSON bytes, when the caller has them (its own copy). */
  set(object: KubeObject, json?: Uint8Array): StoredObject {
    const meta = object.metadata;
    const namespace = meta.namespace ?? '';
    let names = this.namespaces.get(namespace);
    if (names === undefined) this.namespaces.set(namespace, (names = new Map()));
    // The store marks what it keeps, in both modes: a snapshot gives the object's current state
    // for as long as the store has it. Bytes can be parsed again (a lane holding events for long
    // keeps them instead of the object); a metadata-only object is itself what the store keeps.
    let stored: StoredObject = object;
    if (this.resident === 'fingerprints') {
      // The bytes the source cut go with the object to the sinks, as they would from a store of bytes.
      if (json !== undefined) serializeForPipeline(object, json);
      const record = json === undefined ? undefined : new ObjectJson(json);
      const previous = names.get(meta.name);
      if (previous instanceof Fingerprint) {
        previous.uid = meta.uid;
        previous.resourceVersion = meta.resourceVersion;
        markKeptBySource(object, record);
        return previous;
      }
      stored = new Fingerprint(meta.uid, meta.resourceVersion);
      markKeptBySource(object, record);
    } else if (this.resident === 'bytes') {
      const bytes = serializeForPipeline(object, json);
      const previous = names.get(meta.name);
      if (previous instanceof ObjectBytes) {
        previous.write(meta.uid, meta.resourceVersion, bytes);
        markKeptBySource(object, previous);
        return previous;
      }
      stored = new ObjectBytes(meta.uid, meta.resourceVersion, bytes);
    }
    if (!(stored instanceof Fingerprint)) markKeptBySource(object, stored instanceof ObjectBytes ? stored : undefined);
    const before = names.size;
    names.set(meta.name, stored);
    this.count += names.size - before;
    return stored;
  }

  delete(object: KubeObject): boolean {
    const namespace = object.metadata.namespace ?? '';
    const names = this.namespaces.get(namespace);
    if (!names?.delete(object.metadata.name)) return false;
    this.count--;
    if (names.size === 0) this.namespaces.delete(namespace);
    return true;
  }

  /** Removes every object not in `kept`; returns the removed ones. */
  removeExcept(kept: ReadonlySet<StoredObject>): KubeObject[] {
    const removed: KubeObject[] = [];
    for (const [namespace, names] of this.namespaces) {
      for (const [name, stored] of names) {
        if (kept.has(stored)) continue;
        names.delete(name);
        this.count--;
        removed.push(this.objectOf(stored, namespace, name));
      }
      if (names.size === 0) this.namespaces.delete(namespace);
    }
    return removed;
  }

  /** Every object kept, or (fingerprints) the identity of each. */
  *values(): IterableIterator<KubeObject> {
    for (const [namespace, names] of this.namespaces) for (const [name, stored] of names) yield this.objectOf(stored, namespace, name);
  }

  clear(): void {
    this.namespaces.clear();
    this.count = 0;
  }
}

/**
 * Many string values repeat across objects (images, owner names and uids, label values,
 * timestamps, condition reasons) but JSON.parse gives each object its own copies of those longer
 * than a few characters. Sharing one copy makes the metadata-only cache (kept parsed) much
 * smaller. The pool is cleared when it fills up, so unique values cannot make it grow without bound.
 */
export class StringPool {
  private pool = new Map<string, string>();
  constructor(private readonly capacity = 20_000) {}

  intern(value: string): string {
    const shared = this.pool.get(value);
    if (shared !== undefined) return shared;
    if (this.pool.size >= this.capacity) this.pool = new Map();
    this.pool.set(value, value);
    return value;
  }

  /** Replaces, in place, every string in a freshly parsed value by its shared copy. */
  internAll(value: unknown): void {
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) {
        const item = value[i];
        if (typeof item === 'string') value[i] = item.length > SHORT && item.length <= LONG ? this.intern(item) : item;
        else if (typeof item === 'object' && item !== null) this.internAll(item);
      }
      return;
    }
    const object = value as Record<string, unknown>;
    for (const key in object) {
      const item = object[key];
      if (typeof item === 'string') {
        if (item.length > SHORT && item.length <= LONG) object[key] = this.intern(item);
      } else if (typeof item === 'object' && item !== null) this.internAll(item);
    }
  }
}

/** V8 already shares parsed strings this short; longer ones are rarely repeated. */
const SHORT = 10;
const LONG = 256;
/** Metadata fields unique to each object: pooling them would only churn the pool. */
const UNIQUE_METADATA = new Set(['name', 'uid', 'resourceVersion', 'selfLink']);

/** Shares repeated strings of an object in place (its unique identity fields are left alone). */
export function internObject(pool: StringPool, object: Record<string, unknown>): void {
  for (const key in object) {
    const value = object[key];
    if (key === 'metadata' && typeof value === 'object' && value !== null) {
      const meta = value as Record<string, unknown>;
      for (const field in meta) {
        if (UNIQUE_METADATA.has(field)) continue;
        const item = meta[field];
        if (typeof item === 'string') {
          if (item.length > SHORT && item.length <= LONG) meta[field] = pool.intern(item);
        } else if (typeof item === 'object' && item !== null) pool.internAll(item);
      }
    } else if (typeof value === 'object' && value !== null) pool.internAll(value);
    else if (typeof value === 'string' && value.length > SHORT && value.length <= LONG) object[key] = pool.intern(value);
  }
}
