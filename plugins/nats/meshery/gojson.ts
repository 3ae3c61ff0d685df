/**
 * JSON text as Go's encoding/json writes it, because Meshery mode has to match what Go MeshSync
 * puts on the wire: compact, map keys sorted byte-wise at every level, `<` `>` `&` U+2028 U+2029
 * escaped, lone surrogates (invalid UTF-8 to Go) as U+FFFD.
 */

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
const GO_ESCAPED = /[<>&\u2028\u2029]/g;
const HAS_GO_ESCAPED = /[<>&\u2028\u2029]/;
const GO_ESCAPES: Record<string, string> = { '<': '\\u003c', '>': '\\u003e', '&': '\\u0026', '\u2028': '\\u2028', '\u2029': '\\u2029' };

/** A string as Go's encoder quotes it. JSON.stringify already escapes control characters as Go does (`\b \f \n \r \t`, else `\u00xx`). */
export function goString(value: string): string {
  const quoted = JSON.stringify(value.replace(LONE_SURROGATE, '\uFFFD'));
  return HAS_GO_ESCAPED.test(quoted) ? quoted.replace(GO_ESCAPED, (c) => GO_ESCAPES[c]) : quoted;
}

/** Go sorts map keys by their UTF-8 bytes; UTF-16 order differs only past U+FFFF. */
function byteOrder(a: string, b: string): number {
  if (a === b) return 0;
  // eslint-disable-next-line no-control-regex
  if (/^[\x00-\x7f]*$/.test(a) && /^[\x00-\x7f]*$/.test(b)) return a < b ? -1 : 1;
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

export function sortedKeys(object: object): string[] {
  return Object.keys(object).sort(byteOrder);
}

/**
 * A decoded JSON value (an unstructured Kubernetes object or part of one) as Go's `json.Marshal`
 * of a `map[string]interface{}` writes it. Numbers are written as JavaScript holds them, which
 * is what Go writes for an int64 up to 2^53 and for any float64.
 */
export function goJson(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  switch (typeof value) {
    case 'string':
      return goString(value);
    case 'number':
      // Go refuses NaN and infinities; a decoded JSON document has none.
      return Number.isFinite(value) ? JSON.stringify(value) : 'null';
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object': {
      if (Array.isArray(value)) return `[${value.map(goJson).join(',')}]`;
      const record = value as Record<string, unknown>;
      const parts: string[] = [];
      for (const key of sortedKeys(record)) {
        if (record[key] === undefined) continue;
        parts.push(`${goString(key)}:${goJson(record[key])}`);
      }
      return `{${parts.join(',')}}`;
    }
    default:
      return 'null';
  }
}

/**
 * What buger/jsonparser hands Go MeshSync for a value of that Go-encoded document: the raw JSON
 * text, and for a string the text between its quotes with the escapes kept (so `a&b` is `a\u0026b`).
 */
export function goRaw(value: unknown): string {
  if (typeof value === 'string') return goString(value).slice(1, -1);
  return goJson(value);
}
