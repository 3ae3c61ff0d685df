/**
 * JSON made for an object, remembered by identity: a source that serialises an object (to keep it
 * compactly) and a sink that sends it share one serialisation, and the very same bytes. Sound
 * because objects in the pipeline are never changed in place: a transform that changes one
 * returns a copy, and a copy has no entry.
 */
interface Serialized {
  readonly text: string;
  readonly bytes: Uint8Array;
}

const made = new WeakMap<object, Serialized>();

/** UTF-8 bytes in an allocation of their own (a slice of Buffer's shared pool would pin the pool). */
function utf8(text: string): Uint8Array {
  const bytes = Buffer.allocUnsafeSlow(Buffer.byteLength(text));
  bytes.write(text, 'utf8');
  return bytes;
}

/** `JSON.stringify(object)`, from the recorded text when a source left one. */
export function jsonOf(object: object): string {
  return made.get(object)?.text ?? JSON.stringify(object);
}

/** The object's JSON in UTF-8: the remembered bytes (shared, not copied) when there are some. */
export function jsonBytesOf(object: object): Uint8Array {
  return made.get(object)?.bytes ?? utf8(JSON.stringify(object));
}

/** The remembered bytes of the object's JSON, if a source left them. */
export function knownJsonBytes(object: object): Uint8Array | undefined {
  return made.get(object)?.bytes;
}

/**
 * Serialises an object for a source that keeps it as bytes, and remembers text and bytes while the
 * object lives (in the pipeline), so the sinks reuse them. Only for objects the source does not
 * keep itself, or the text would live as long as they do.
 */
export function serializeForPipeline(object: object): Uint8Array {
  const text = JSON.stringify(object);
  const bytes = utf8(text);
  made.set(object, { text, bytes });
  return bytes;
}

/** Parses JSON bytes back into an object, recording text and bytes for it. */
export function parseJsonBytes<T extends object>(bytes: Uint8Array): T {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
  const object = JSON.parse(text) as T;
  made.set(object, { text, bytes });
  return object;
}
