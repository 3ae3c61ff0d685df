/**
 * JSON text already made for an object, by identity. A source that serialises an object anyway
 * (to keep it compactly) records the text here, and a sink takes it instead of serialising the
 * object again. Sound because objects in the pipeline are never changed in place: a transform
 * that changes one returns a copy, and a copy has no entry.
 */
const texts = new WeakMap<object, string>();

export function rememberJson(object: object, json: string): void {
  texts.set(object, json);
}

/** `JSON.stringify(object)`, from the recorded text when a source left one. */
export function jsonOf(object: object): string {
  return texts.get(object) ?? JSON.stringify(object);
}
