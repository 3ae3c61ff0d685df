/**
 * JSON already made for an object, by identity. A source that serialises an object anyway (to keep
 * it compactly) records it here, and a sink takes it instead of serialising the object again, or
 * keeps the very same bytes instead of a copy. Sound because objects in the pipeline are never
 * changed in place: a transform that changes one returns a copy, and a copy has no entry.
 */
interface Serialized {
  readonly text: string;
  bytes?: Uint8Array;
}

const made = new WeakMap<object, Serialized>();
const utf8 = new TextEncoder();

export function rememberJson(object: object, text: string, bytes?: Uint8Array): void {
  made.set(object, { text, bytes });
}

/** `JSON.stringify(object)`, from the recorded text when a source left one. */
export function jsonOf(object: object): string {
  return made.get(object)?.text ?? JSON.stringify(object);
}

/** The object's JSON in UTF-8: the recorded bytes when there are some (shared, not copied). */
export function jsonBytesOf(object: object): Uint8Array {
  const known = made.get(object);
  if (known === undefined) return utf8.encode(JSON.stringify(object));
  known.bytes ??= utf8.encode(known.text);
  return known.bytes;
}

/** Parses JSON bytes back into an object, recording text and bytes for it. */
export function parseJsonBytes<T extends object>(bytes: Uint8Array): T {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
  const object = JSON.parse(text) as T;
  made.set(object, { text, bytes });
  return object;
}
