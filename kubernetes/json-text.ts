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

const ascii = (text: string) => Buffer.from(text, 'latin1');

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

const LOWER_E = 101;
const UPPER_E = 69;
const PLUS = 43;
const DOT = 46;
const TRUE = ascii('true');
const FALSE = ascii('false');
const NULL = ascii('null');

/** Index just past the JSON number at `start`, or -1 (JSON's grammar: no leading zeros, no bare dot). */
function skipNumber(bytes: Uint8Array, start: number, end: number): number {
  let i = start;
  if (bytes[i] === MINUS) i++;
  if (bytes[i] === DIGIT_0) i++;
  else if (bytes[i] > DIGIT_0 && bytes[i] <= DIGIT_9) while (i < end && bytes[i] >= DIGIT_0 && bytes[i] <= DIGIT_9) i++;
  else return -1;
  if (bytes[i] === DOT) {
    const digits = ++i;
    while (i < end && bytes[i] >= DIGIT_0 && bytes[i] <= DIGIT_9) i++;
    if (i === digits) return -1;
  }
  if (bytes[i] === LOWER_E || bytes[i] === UPPER_E) {
    i++;
    if (bytes[i] === PLUS || bytes[i] === MINUS) i++;
    const digits = i;
    while (i < end && bytes[i] >= DIGIT_0 && bytes[i] <= DIGIT_9) i++;
    if (i === digits) return -1;
  }
  return i <= end ? i : -1;
}

const HEX = new Uint8Array(256);
for (const c of '0123456789abcdefABCDEF') HEX[c.charCodeAt(0)] = 1;
/** What may follow a backslash in a JSON string (u: four hex digits after it). */
const ESCAPES = new Uint8Array(256);
for (const c of '"\\/bfnrtu') ESCAPES[c.charCodeAt(0)] = 1;

/** Index just past the JSON string at `start` (a quote), or -1: no control character, only JSON's escapes. */
function skipValidString(bytes: Uint8Array, start: number, end: number): number {
  for (let i = start + 1; i < end; i++) {
    const c = bytes[i];
    if (c === QUOTE) return i + 1;
    if (c < 32) return -1;
    if (c === BACKSLASH) {
      const escape = bytes[++i];
      if (ESCAPES[escape] !== 1) return -1;
      if (escape === 117 /* u */) {
        if (i + 4 >= end || !(HEX[bytes[i + 1]] & HEX[bytes[i + 2]] & HEX[bytes[i + 3]] & HEX[bytes[i + 4]])) return -1;
        i += 4;
      }
    }
  }
  return -1;
}

/**
 * Index just past the JSON value at `start`, or -1 unless it is JSON that JSON.parse would
 * accept (and has no whitespace: the API server writes none, and anything else is parsed
 * whole): what is published unparsed must be valid, as if it had been parsed. Iterative, so a
 * deeply nested value cannot overflow the stack; nesting deeper than JSON.parse itself could
 * take is refused.
 */
function skipValidValue(bytes: Uint8Array, start: number, end: number): number {
  // Per open container: 1 for an object, 2 for an array.
  const stack = VALID_STACK;
  let depth = 0;
  let i = start;
  for (;;) {
    // A value at i.
    const c = bytes[i];
    if (c === QUOTE) i = skipValidString(bytes, i, end);
    else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (depth === stack.length) return -1;
      stack[depth++] = c === OPEN_BRACE ? 1 : 2;
      i++;
      const close = c === OPEN_BRACE ? CLOSE_BRACE : CLOSE_BRACKET;
      if (bytes[i] === close) {
        depth--;
        i++;
      } else if (c === OPEN_BRACE) {
        // The first key.
        if (bytes[i] !== QUOTE) return -1;
        i = skipValidString(bytes, i, end);
        if (i < 0 || bytes[i] !== COLON) return -1;
        i++;
        continue;
      } else continue;
    } else if (c === MINUS || (c >= DIGIT_0 && c <= DIGIT_9)) i = skipNumber(bytes, i, end);
    else if (c === LOWER_T) i = holdsAt(bytes, i, TRUE) ? i + 4 : -1;
    else if (c === LOWER_F) i = holdsAt(bytes, i, FALSE) ? i + 5 : -1;
    else if (c === LOWER_N) i = holdsAt(bytes, i, NULL) ? i + 4 : -1;
    else return -1;
    if (i < 0 || i > end) return -1;
    // After a value: the next member or item, or the end of containers.
    for (;;) {
      if (depth === 0) return i;
      const inObject = stack[depth - 1] === 1;
      const next = bytes[i];
      if (next === COMMA) {
        i++;
        if (inObject) {
          if (bytes[i] !== QUOTE) return -1;
          i = skipValidString(bytes, i, end);
          if (i < 0 || bytes[i] !== COLON) return -1;
          i++;
        }
        break;
      }
      if (next !== (inObject ? CLOSE_BRACE : CLOSE_BRACKET)) return -1;
      depth--;
      i++;
    }
  }
}

/** Deeper than this is refused (JSON.parse itself overflows its stack somewhere beyond it). */
const VALID_STACK = new Uint8Array(1000);

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

/** What `scanObject` found. */
interface ScannedObject {
  readonly end: number;
  readonly member?: Member;
  /** Whether it has a member named kind or apiVersion. */
  readonly typeMeta: boolean;
  /** Where the values of its kind and apiVersion members start (-1: none); each ends where the next member starts, less the comma. */
  readonly kind?: Member;
  readonly apiVersion?: Member;
}

/**
 * Walks every member of the object that starts at `objectStart`: where it ends, its member `key`
 * (given as the bytes of `"key":`), and its kind and apiVersion members. Undefined when the object
 * is not as expected, when the key appears twice (JSON.parse keeps the last, this would cut the
 * first) or when a key has an escape (it might decode to the key). `skipKeyValue` walks the key's
 * value (and may note what it finds there); `skipOther` every other value; each returns where the
 * value ends, or -1.
 */
function scanObject(
  bytes: Uint8Array, objectStart: number, end: number, key: Uint8Array,
  skipKeyValue: (bytes: Uint8Array, start: number, end: number) => number = skipValue,
  skipOther: (bytes: Uint8Array, start: number, end: number) => number = skipValue,
): ScannedObject | undefined {
  if (bytes[objectStart] !== OPEN_BRACE) return undefined;
  let member: Member | undefined;
  let kind: Member | undefined;
  let apiVersion: Member | undefined;
  let i = objectStart + 1;
  if (bytes[i] === CLOSE_BRACE) return { end: i + 1, typeMeta: false };
  for (;;) {
    if (bytes[i] !== QUOTE) return undefined;
    const keyEnd = skipString(bytes, i, end);
    if (keyEnd < 0 || bytes[keyEnd] !== COLON) return undefined;
    for (let k = i + 1; k < keyEnd - 1; k++) if (bytes[k] === BACKSLASH) return undefined;
    const keyLength = keyEnd + 1 - i;
    const isKey = keyLength === key.length && holdsAt(bytes, i, key);
    if (isKey && member !== undefined) return undefined;
    const isKind = keyLength === KIND_KEY.length && holdsAt(bytes, i, KIND_KEY);
    const isApiVersion = keyLength === API_VERSION_KEY.length && holdsAt(bytes, i, API_VERSION_KEY);
    const valueEnd = (isKey ? skipKeyValue : skipOther)(bytes, keyEnd + 1, end);
    if (valueEnd < 0) return undefined;
    const found = { start: i, end: valueEnd, valueStart: keyEnd + 1 };
    if (isKey) member = found;
    // A repeated kind or apiVersion: the last one counts, as for JSON.parse.
    else if (isKind) kind = found;
    else if (isApiVersion) apiVersion = found;
    const next = bytes[valueEnd];
    if (next === CLOSE_BRACE) return { end: valueEnd + 1, member, typeMeta: kind !== undefined || apiVersion !== undefined, kind, apiVersion };
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
 * The kind and apiVersion an object must have (as JSON: `"Pod"`, `"v1"`) for its bytes to be
 * published with only its metadata parsed (see `KubeObjectSpans.metadataStart`).
 */
export interface TypeMeta {
  readonly kind: Uint8Array;
  readonly apiVersion: Uint8Array;
}

const valueIs = (bytes: Uint8Array, member: Member | undefined, expected: Uint8Array) =>
  member !== undefined && member.end - member.valueStart === expected.length && holdsAt(bytes, member.valueStart, expected);

/** Where a Kubernetes object lies, and what to cut from it. */
interface KubeObjectScan {
  readonly end: number;
  /** The cut that removes metadata.managedFields (with a comma beside it; empty when it has none). */
  readonly cutStart: number;
  readonly cutEnd: number;
  readonly typeMeta: boolean;
  /**
   * Where its metadata value lies (with managedFields in it), or -1: only when `valid` was asked
   * for and everything else in it is valid JSON, and it has the given kind and apiVersion, or
   * (`tailed`: a list item, which listItemBytes gives them) neither of them.
   */
  readonly metadataStart: number;
  readonly metadataEnd: number;
}

/**
 * Walks a Kubernetes object in one pass. With `valid`, every member but metadata is checked to be
 * JSON as JSON.parse would accept it (metadata is parsed by the caller, managedFields dropped
 * unread): its bytes can then be published with only the metadata parsed.
 */
function scanKubeObject(bytes: Uint8Array, start: number, end: number, valid?: TypeMeta, tailed = false): KubeObjectScan | undefined {
  managedFieldsFound = undefined;
  const object = scanObject(bytes, start, end, METADATA_KEY, skipMetadata, valid === undefined ? skipValue : skipValidValue);
  if (object === undefined) return undefined;
  const managedFields = object.member === undefined ? undefined : managedFieldsFound;
  const [cutStart, cutEnd] = managedFields === undefined ? [object.end, object.end] : cutOf(bytes, managedFields);
  const typed = valid !== undefined && ((tailed && !object.typeMeta) || (valueIs(bytes, object.kind, valid.kind) && valueIs(bytes, object.apiVersion, valid.apiVersion)));
  const metadata = typed ? object.member : undefined;
  return {
    end: object.end, cutStart, cutEnd, typeMeta: object.typeMeta,
    metadataStart: metadata === undefined ? -1 : metadata.valueStart, metadataEnd: metadata === undefined ? -1 : metadata.end,
  };
}

/** `at` in a copy of `[start, …)` less `[cutStart, cutEnd)` (see `copyOf`). */
const inCopy = (at: number, start: number, cutStart: number, cutEnd: number) => (at <= cutStart ? at - start : at - start - (cutEnd - cutStart));

/** A watch event that carries an object the store keeps. */
export type WatchObjectType = 'ADDED' | 'MODIFIED' | 'DELETED';

/** A watch event's object, cut from its line. */
export interface CutObject {
  readonly type: WatchObjectType;
  /** The object's JSON without metadata.managedFields, in an allocation of its own. */
  readonly object: Uint8Array;
  /**
   * Where in `object` its metadata lies (-1: not known to be publishable unparsed): only when a
   * `TypeMeta` was given and the object has that kind and apiVersion and is valid JSON outside
   * its metadata. Parsing just that span then gives everything but the bytes' other members.
   */
  readonly metadataStart: number;
  readonly metadataEnd: number;
}

/**
 * The type and object of a watch line `{"type":"<type>","object":{...}}` as the API server sends
 * it: the object's JSON without metadata.managedFields, cut from the line into a copy of its own,
 * so that only it need be parsed. Undefined when the line is shaped otherwise (a BOOKMARK or an
 * ERROR, another key order, whitespace, a member after the object): the caller parses the line.
 * `valid`: check the object for publishing with its metadata alone parsed (see `CutObject`).
 */
export function cutWatchObject(line: Uint8Array, valid?: TypeMeta): CutObject | undefined {
  if (line[line.length - 1] !== CLOSE_BRACE) return undefined;
  for (const [type, head] of HEADS) {
    if (!holdsAt(line, 0, head)) continue;
    const start = head.length;
    const end = line.length - 1;
    // Ending exactly where the line does: the line has no member after the object, so no second "type" either.
    const object = scanKubeObject(line, start, end, valid);
    if (object?.end !== end) return undefined;
    const { cutStart, cutEnd, metadataStart } = object;
    return {
      type, object: copyOf(line, start, end, cutStart, cutEnd),
      metadataStart: metadataStart < 0 ? -1 : inCopy(metadataStart, start, cutStart, cutEnd),
      metadataEnd: metadataStart < 0 ? -1 : inCopy(object.metadataEnd, start, cutStart, cutEnd),
    };
  }
  return undefined;
}

/**
 * Where the items of a list page lie in its bytes: item i spans `[spans[2i], spans[2i+1])`, and
 * its metadata.managedFields member, with a comma beside it, `[cuts[2i], cuts[2i+1])` (an empty
 * span when it has none); `typeMeta[i]` is 1 when it has a kind or an apiVersion. The items
 * array itself spans `[itemsStart, itemsEnd)`. `metadata[2i], metadata[2i+1]`: where the item's
 * metadata lies in the bytes `listItemBytes` gives (-1: not publishable unparsed, see `CutObject`).
 */
export interface ListItemSpans {
  readonly count: number;
  readonly spans: Int32Array;
  readonly cuts: Int32Array;
  readonly typeMeta: Uint8Array;
  readonly metadata: Int32Array;
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
export function listItemSpans(page: Uint8Array, valid?: TypeMeta): ListItemSpans | undefined {
  let end = page.length;
  while (end > 0 && isSpace(page[end - 1])) end--;
  const spans: number[] = [];
  const cuts: number[] = [];
  const typeMeta: number[] = [];
  const metadata: number[] = [];
  const walkItems = (bytes: Uint8Array, start: number, stop: number): number => {
    if (bytes[start] !== OPEN_BRACKET) return -1;
    let i = start + 1;
    if (bytes[i] === CLOSE_BRACKET) return i + 1;
    for (;;) {
      // Built-in resources' items have neither kind nor apiVersion (listItemBytes adds them); a
      // custom resource's have both, as a watch's objects have.
      const item = scanKubeObject(bytes, i, stop, valid, true);
      if (item === undefined) return -1;
      spans.push(i, item.end);
      cuts.push(item.cutStart, item.cutEnd);
      typeMeta.push(item.typeMeta ? 1 : 0);
      const known = item.metadataStart >= 0;
      metadata.push(known ? inCopy(item.metadataStart, i, item.cutStart, item.cutEnd) : -1, known ? inCopy(item.metadataEnd, i, item.cutStart, item.cutEnd) : -1);
      const next = bytes[item.end];
      if (next === CLOSE_BRACKET) return item.end + 1;
      if (next !== COMMA) return -1;
      i = item.end + 1;
    }
  };
  const list = scanObject(page, 0, end, ITEMS_KEY, walkItems);
  if (list?.end !== end || list.member === undefined) return undefined;
  return {
    count: spans.length / 2, spans: Int32Array.from(spans), cuts: Int32Array.from(cuts), typeMeta: Uint8Array.from(typeMeta), metadata: Int32Array.from(metadata),
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
