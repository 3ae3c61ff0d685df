/**
 * The JSON of a watch event's object or a list's item, cut from the bytes the API server sent, so
 * that only it is parsed and nothing is made again with JSON.stringify. Only a structural scan
 * over the bytes: it finds where values begin and end (strings with their escapes, nesting),
 * never decodes them; UTF-8 never puts an ASCII byte inside a multi-byte character, so the
 * structure is found byte by byte. Anything not as expected gives `undefined`, and the caller
 * parses what the server sent whole, as before. What is cut away (managedFields) is only
 * delimited, never checked: it is dropped unread, so nonsense inside it no longer makes the
 * object malformed. Everything kept is parsed.
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
 * escape (it might decode to the key). `skipKeyValue` walks the key's value (and may note what it
 * finds there); it returns where the value ends, or -1. `typeMeta`: whether it has a member named
 * kind or apiVersion.
 */
function scanObject(
  bytes: Uint8Array, objectStart: number, end: number, key: Uint8Array,
  skipKeyValue: (bytes: Uint8Array, start: number, end: number) => number = skipValue,
): { end: number; member?: Member; typeMeta: boolean } | undefined {
  if (bytes[objectStart] !== OPEN_BRACE) return undefined;
  let member: Member | undefined;
  let typeMeta = false;
  let i = objectStart + 1;
  if (bytes[i] === CLOSE_BRACE) return { end: i + 1, typeMeta };
  for (;;) {
    if (bytes[i] !== QUOTE) return undefined;
    const keyEnd = skipString(bytes, i, end);
    if (keyEnd < 0 || bytes[keyEnd] !== COLON) return undefined;
    for (let k = i + 1; k < keyEnd - 1; k++) if (bytes[k] === BACKSLASH) return undefined;
    const keyLength = keyEnd + 1 - i;
    const isKey = keyLength === key.length && holdsAt(bytes, i, key);
    if (isKey && member !== undefined) return undefined;
    if ((keyLength === KIND_KEY.length && holdsAt(bytes, i, KIND_KEY)) || (keyLength === API_VERSION_KEY.length && holdsAt(bytes, i, API_VERSION_KEY))) typeMeta = true;
    const valueEnd = (isKey ? skipKeyValue : skipValue)(bytes, keyEnd + 1, end);
    if (valueEnd < 0) return undefined;
    if (isKey) member = { start: i, end: valueEnd, valueStart: keyEnd + 1 };
    const next = bytes[valueEnd];
    if (next === CLOSE_BRACE) return { end: valueEnd + 1, member, typeMeta };
    if (next !== COMMA) return undefined;
    i = valueEnd + 1;
  }
}

/**
 * `bytes[start, end)` without `[cutStart, cutEnd)`, and with `tail` before its last byte (the
 * closing brace), in an allocation of its own (never a view of the HTTP chunk or the list page).
 */
function copyOf(bytes: Uint8Array, start: number, end: number, cutStart: number, cutEnd: number, tail?: Uint8Array): Uint8Array {
  const tailLength = tail?.length ?? 0;
  const out = Buffer.allocUnsafeSlow(end - start - (cutEnd - cutStart) + tailLength);
  out.set(bytes.subarray(start, cutStart), 0);
  if (tail === undefined) {
    out.set(bytes.subarray(cutEnd, end), cutStart - start);
    return out;
  }
  out.set(bytes.subarray(cutEnd, end - 1), cutStart - start);
  out.set(tail, out.length - 1 - tailLength);
  out[out.length - 1] = CLOSE_BRACE;
  return out;
}

/** Where `member` lies together with one of the commas around it: what to cut to remove it. */
function cutOf(bytes: Uint8Array, member: Member): [number, number] {
  if (bytes[member.start - 1] === COMMA) return [member.start - 1, member.end];
  if (bytes[member.end] === COMMA) return [member.start, member.end + 1];
  return [member.start, member.end];
}

const ascii = (text: string) => Buffer.from(text, 'latin1');
const METADATA_KEY = ascii('"metadata":');
const MANAGED_FIELDS_KEY = ascii('"managedFields":');
const ITEMS_KEY = ascii('"items":');
const KIND_KEY = ascii('"kind":');
const API_VERSION_KEY = ascii('"apiVersion":');
const HEADS = new Map((['ADDED', 'MODIFIED', 'DELETED'] as const).map((type) => [type, ascii(`{"type":"${type}","object":`)]));

/** Set by `skipMetadata`: the managedFields member of the metadata it walked last. */
let managedFieldsFound: Member | undefined;

/** Walks a metadata value as `skipValue` would, noting its managedFields member on the way. */
function skipMetadata(bytes: Uint8Array, start: number, end: number): number {
  const metadata = scanObject(bytes, start, end, MANAGED_FIELDS_KEY);
  managedFieldsFound = metadata?.member;
  return metadata === undefined ? -1 : metadata.end;
}

/**
 * Walks a Kubernetes object in one pass: where it ends, and the cut that removes its
 * metadata.managedFields (with a comma beside it; empty when it has none).
 */
function scanKubeObject(bytes: Uint8Array, start: number, end: number): { end: number; cutStart: number; cutEnd: number; typeMeta: boolean } | undefined {
  managedFieldsFound = undefined;
  const object = scanObject(bytes, start, end, METADATA_KEY, skipMetadata);
  if (object === undefined) return undefined;
  const managedFields = object.member === undefined ? undefined : managedFieldsFound;
  if (managedFields === undefined) return { end: object.end, cutStart: object.end, cutEnd: object.end, typeMeta: object.typeMeta };
  const [cutStart, cutEnd] = cutOf(bytes, managedFields);
  return { end: object.end, cutStart, cutEnd, typeMeta: object.typeMeta };
}

/** A watch event that carries an object the store keeps. */
export type WatchObjectType = 'ADDED' | 'MODIFIED' | 'DELETED';

/**
 * The type and object of a watch line `{"type":"<type>","object":{...}}` as the API server sends
 * it: the object's JSON without metadata.managedFields, cut from the line into a copy of its own,
 * so that only it need be parsed. Undefined when the line is shaped otherwise (a BOOKMARK or an
 * ERROR, another key order, whitespace, a member after the object): the caller parses the line.
 */
export function cutWatchObject(line: Uint8Array): { type: WatchObjectType; object: Uint8Array } | undefined {
  if (line[line.length - 1] !== CLOSE_BRACE) return undefined;
  for (const [type, head] of HEADS) {
    if (!holdsAt(line, 0, head)) continue;
    const start = head.length;
    const end = line.length - 1;
    // Ending exactly where the line does: the line has no member after the object, so no second "type" either.
    const object = scanKubeObject(line, start, end);
    return object?.end === end ? { type, object: copyOf(line, start, end, object.cutStart, object.cutEnd) } : undefined;
  }
  return undefined;
}

/**
 * Where the items of a list page lie in its bytes: item i spans `[spans[2i], spans[2i+1])`, and
 * its metadata.managedFields member, with a comma beside it, `[cuts[2i], cuts[2i+1])` (an empty
 * span when it has none); `typeMeta[i]` is 1 when it has a kind or an apiVersion. The items
 * array itself spans `[itemsStart, itemsEnd)`.
 */
export interface ListItemSpans {
  readonly count: number;
  readonly spans: Int32Array;
  readonly cuts: Int32Array;
  readonly typeMeta: Uint8Array;
  readonly itemsStart: number;
  readonly itemsEnd: number;
  /** Where the page ends, before the whitespace after it. */
  readonly end: number;
}

const isSpace = (c: number) => c === 32 || c === 10 || c === 13 || c === 9;

/**
 * Finds the items of a list page as the API server sends it (`{"kind":…,"items":[{…},…]}`, no
 * whitespace inside, a newline after it) in one pass over its bytes; undefined when the page is
 * shaped otherwise.
 */
export function listItemSpans(page: Uint8Array): ListItemSpans | undefined {
  let end = page.length;
  while (end > 0 && isSpace(page[end - 1])) end--;
  const spans: number[] = [];
  const cuts: number[] = [];
  const typeMeta: number[] = [];
  const walkItems = (bytes: Uint8Array, start: number, stop: number): number => {
    if (bytes[start] !== OPEN_BRACKET) return -1;
    let i = start + 1;
    if (bytes[i] === CLOSE_BRACKET) return i + 1;
    for (;;) {
      const item = scanKubeObject(bytes, i, stop);
      if (item === undefined) return -1;
      spans.push(i, item.end);
      cuts.push(item.cutStart, item.cutEnd);
      typeMeta.push(item.typeMeta ? 1 : 0);
      const next = bytes[item.end];
      if (next === CLOSE_BRACKET) return item.end + 1;
      if (next !== COMMA) return -1;
      i = item.end + 1;
    }
  };
  const list = scanObject(page, 0, end, ITEMS_KEY, walkItems);
  if (list?.end !== end || list.member === undefined) return undefined;
  return {
    count: spans.length / 2, spans: Int32Array.from(spans), cuts: Int32Array.from(cuts), typeMeta: Uint8Array.from(typeMeta),
    itemsStart: list.member.valueStart, itemsEnd: list.member.end, end,
  };
}

/** The page's JSON with an empty items array: its kind, apiVersion and metadata, cheap to parse. */
export function listPageWithoutItems(page: Uint8Array, items: ListItemSpans): Uint8Array {
  return Buffer.concat([page.subarray(0, items.itemsStart), EMPTY_ARRAY, page.subarray(items.itemsEnd, items.end)]);
}

const EMPTY_ARRAY = ascii('[]');

/**
 * The JSON of item `index` of a list page (see `listItemSpans`), as its own copy: without
 * metadata.managedFields, and with `tail` (such as `,"kind":"Pod","apiVersion":"v1"`) added
 * before its closing brace when the item has neither kind nor apiVersion (built-in resources'
 * list items have not). Undefined for an empty item, which has no member to put a tail after.
 */
export function listItemBytes(page: Uint8Array, items: ListItemSpans, index: number, tail: Uint8Array): Uint8Array | undefined {
  const start = items.spans[2 * index];
  const end = items.spans[2 * index + 1];
  const typed = items.typeMeta[index] === 1;
  if (!typed && page[start + 1] === CLOSE_BRACE) return undefined;
  return copyOf(page, start, end, items.cuts[2 * index], items.cuts[2 * index + 1], typed ? undefined : tail);
}
