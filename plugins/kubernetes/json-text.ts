/**
 * The JSON of a watch event's object, cut from the bytes of the line the API server sent instead of
 * made again with JSON.stringify. Only a structural scan over the bytes: it finds where values
 * begin and end (strings with their escapes, nesting), never decodes them; UTF-8 never puts an
 * ASCII byte inside a multi-byte character, so the structure is found byte by byte. Anything not
 * as expected gives `undefined`, and the caller serialises the parsed object as before.
 */

const QUOTE = 34; // "
const BACKSLASH = 92;
const OPEN_BRACE = 123; // {
const CLOSE_BRACE = 125; // }
const OPEN_BRACKET = 91; // [
const CLOSE_BRACKET = 93; // ]
const COMMA = 44;
const COLON = 58;
const MINUS = 45;
const DIGIT_0 = 48;
const DIGIT_9 = 57;
const LOWER_T = 116;
const LOWER_F = 102;
const LOWER_N = 110;

/** Index just past the string that starts at `start` (a quote), or -1. */
function skipString(bytes: Uint8Array, start: number, end: number): number {
  for (let i = start + 1; i < end; i++) {
    const c = bytes[i];
    if (c === QUOTE) return i + 1;
    if (c === BACKSLASH) i++;
  }
  return -1;
}

/** Index just past the JSON value that starts at `start` (no whitespace around it), or -1. */
function skipValue(bytes: Uint8Array, start: number, end: number): number {
  const first = bytes[start];
  if (first === QUOTE) return skipString(bytes, start, end);
  if (first !== OPEN_BRACE && first !== OPEN_BRACKET) {
    // A number, true, false or null (anything else, such as whitespace, is not for us): up to the next delimiter.
    if (!(first === MINUS || (first >= DIGIT_0 && first <= DIGIT_9) || first === LOWER_T || first === LOWER_F || first === LOWER_N)) return -1;
    let i = start;
    while (i < end && bytes[i] !== COMMA && bytes[i] !== CLOSE_BRACE && bytes[i] !== CLOSE_BRACKET) i++;
    return i > start ? i : -1;
  }
  let depth = 0;
  for (let i = start; i < end; i++) {
    const c = bytes[i];
    if (c === QUOTE) {
      // Inside a string: only its end matters.
      for (i++; i < end && bytes[i] !== QUOTE; i++) if (bytes[i] === BACKSLASH) i++;
      if (i >= end) return -1;
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) depth++;
    else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      if (--depth === 0) return i + 1;
    }
  }
  return -1;
}

interface Member {
  /** Where the member's key begins. */
  readonly start: number;
  /** Just past its value. */
  readonly end: number;
  readonly valueStart: number;
}

/** Whether `bytes` holds `wanted` at `at`. */
function holdsAt(bytes: Uint8Array, at: number, wanted: Uint8Array): boolean {
  if (at + wanted.length > bytes.length) return false;
  for (let k = 0; k < wanted.length; k++) if (bytes[at + k] !== wanted[k]) return false;
  return true;
}

/**
 * Walks every member of the object that starts at `objectStart`: where it ends, and its member
 * `key` (given as the bytes of `"key":`). Undefined when the object is not as expected, when the
 * key appears twice (JSON.parse keeps the last, this would cut the first) or when a key has an
 * escape (it might decode to the key).
 */
function scanObject(bytes: Uint8Array, objectStart: number, end: number, key: Uint8Array): { end: number; member?: Member } | undefined {
  if (bytes[objectStart] !== OPEN_BRACE) return undefined;
  let member: Member | undefined;
  let i = objectStart + 1;
  if (bytes[i] === CLOSE_BRACE) return { end: i + 1 };
  for (;;) {
    if (bytes[i] !== QUOTE) return undefined;
    const keyEnd = skipString(bytes, i, end);
    if (keyEnd < 0 || bytes[keyEnd] !== COLON) return undefined;
    for (let k = i + 1; k < keyEnd - 1; k++) if (bytes[k] === BACKSLASH) return undefined;
    const valueEnd = skipValue(bytes, keyEnd + 1, end);
    if (valueEnd < 0) return undefined;
    if (keyEnd + 1 - i === key.length && holdsAt(bytes, i, key)) {
      if (member !== undefined) return undefined;
      member = { start: i, end: valueEnd, valueStart: keyEnd + 1 };
    }
    const next = bytes[valueEnd];
    if (next === CLOSE_BRACE) return { end: valueEnd + 1, member };
    if (next !== COMMA) return undefined;
    i = valueEnd + 1;
  }
}

/**
 * `bytes[start, end)` without `[cutStart, cutEnd)`, in an allocation of its own (never a view of
 * the HTTP chunk).
 */
function copyOf(bytes: Uint8Array, start: number, end: number, cutStart = end, cutEnd = end): Uint8Array {
  const out = Buffer.allocUnsafeSlow(end - start - (cutEnd - cutStart));
  out.set(bytes.subarray(start, cutStart), 0);
  out.set(bytes.subarray(cutEnd, end), cutStart - start);
  return out;
}

/** A copy of `bytes[start, end)` without `member` and one of the commas around it. */
function copyWithout(bytes: Uint8Array, start: number, end: number, member: Member): Uint8Array {
  if (bytes[member.start - 1] === COMMA) return copyOf(bytes, start, end, member.start - 1, member.end);
  if (bytes[member.end] === COMMA) return copyOf(bytes, start, end, member.start, member.end + 1);
  return copyOf(bytes, start, end, member.start, member.end);
}

const ascii = (text: string) => Buffer.from(text, 'latin1');
const METADATA_KEY = ascii('"metadata":');
const MANAGED_FIELDS_KEY = ascii('"managedFields":');
const HEADS = new Map(['ADDED', 'MODIFIED', 'DELETED'].map((type) => [type, ascii(`{"type":"${type}","object":`)]));

/**
 * The object's JSON from the bytes of a watch line `{"type":"<type>","object":{...}}` (what the API
 * server sends), without `metadata.managedFields` when `withoutManagedFields`; undefined when the
 * line is shaped otherwise. The object's span is checked to end exactly where the line does.
 */
export function watchObjectBytes(line: Uint8Array, type: string, withoutManagedFields: boolean): Uint8Array | undefined {
  const head = HEADS.get(type);
  if (head === undefined || !holdsAt(line, 0, head) || line[line.length - 1] !== CLOSE_BRACE) return undefined;
  const start = head.length;
  const end = line.length - 1;
  if (!withoutManagedFields) return line[start] === OPEN_BRACE && skipValue(line, start, end) === end ? copyOf(line, start, end) : undefined;
  const object = scanObject(line, start, end, METADATA_KEY);
  if (object?.end !== end || object.member === undefined) return undefined;
  const managedFields = scanObject(line, object.member.valueStart, end, MANAGED_FIELDS_KEY)?.member;
  return managedFields === undefined ? undefined : copyWithout(line, start, end, managedFields);
}
