/** What stands in for a secret in logs, errors and printed configs. */
export const MASK = '[redacted]';

/**
 * Words that name a credential: a key that is one of them, or ends in one (`auth_token`,
 * `fingerprintKey`), holds a secret. Longer words first, so a pattern built from them prefers them.
 */
export const SECRET_WORDS: readonly string[] = Object.freeze([
  'password', 'passwd', 'passphrase', 'pass', 'token', 'seed', 'nkey', 'secret', 'creds', 'credentials',
  'authorization', 'privatekey', 'apikey', 'key',
]);

const WORDS = SECRET_WORDS.join('|');
// Whole key names, or the last word of a snake_case / kebab-case or camelCase key (exported for the
// Helm chart, whose templates check its values' keys with the same patterns).
export const SECRET_KEY = new RegExp(`^(${WORDS})$|[_-](${WORDS})$`, 'i');
export const SECRET_CAMEL = new RegExp(`[a-z0-9](${SECRET_WORDS.map((word) => word[0].toUpperCase() + word.slice(1)).join('|')})$`);

/** True when a key names a secret (`password`, `auth_token`, `nkeySeed`, `fingerprintKey`). */
export function isSecretKey(key: string): boolean {
  return SECRET_KEY.test(key) || SECRET_CAMEL.test(key);
}

/**
 * Text with the credentials of every URL in it masked: `nats://user:pass@host` keeps the user,
 * `nats://token@host` loses the token. So are URLs without a scheme (`user:pass@host:4222`, as
 * BROKER_URL takes them), each URL of a comma-separated list, and passwords holding `/` or `@`
 * (credentials end at a URL's last `@`).
 */
export function redactUrlCredentials(text: string): string {
  if (!text.includes('@')) return text;
  // Split, not one regex over the text: that would rescan a long run without an `@` from each of its characters.
  return text.split(/([\s,]+)/).map((token) => (token.includes('@') ? maskUserinfo(token) : token)).join('');
}

/** One token holding an `@`, its userinfo masked. */
function maskUserinfo(url: string): string {
  const at = url.lastIndexOf('@');
  const schemeEnd = url.indexOf('://');
  const start = schemeEnd >= 0 && schemeEnd < at ? schemeEnd + 3 : 0;
  const userinfo = url.slice(start, at);
  // No scheme and a slash before the `@`: a path (an image digest, say), not credentials.
  if (start === 0 && userinfo.includes('/')) return url;
  const colon = userinfo.indexOf(':');
  return `${url.slice(0, start)}${colon <= 0 ? MASK : `${userinfo.slice(0, colon)}:${MASK}`}@${url.slice(at + 1)}`;
}

/** `password=…`, `"token": "…"`: a secret word, then = or :, then the value (quoted or up to a delimiter). */
const SECRET_PAIR = new RegExp(`(?<![A-Za-z0-9])(${WORDS})(["']?\\s*[=:]\\s*)("[^"]*"|'[^']*'|[^\\s,}]+)`, 'gi');

/**
 * Free text (an error's message or stack) with the credentials it may quote masked: in URLs, after
 * `Bearer` or `Basic`, in `password=…`, `token: …` and similar pairs, and the text V8 quotes from
 * JSON it could not parse (which may be a Secret's).
 */
export function redactSecretsInText(text: string): string {
  return redactUrlCredentials(withoutJsonExcerpt(text))
    .replace(/\b(bearer|basic)\s+[\w.~+/=-]+/gi, `$1 ${MASK}`)
    // The key may end a longer name (access_token, client_secret, api_key) and be quoted ("password": "…").
    .replace(SECRET_PAIR, `$1$2${MASK}`);
}

/**
 * A JSON.parse error message without the text V8 quotes from the input: `Unexpected token 'U',
 * ..."password":UzNDUk"... is not valid JSON` becomes `Unexpected token 'U' (the text is not shown)`.
 */
export function withoutJsonExcerpt(message: string): string {
  if (!message.includes(' is not valid JSON')) return message;
  // V8 quotes a few characters either side of the error: a bounded excerpt keeps the scan linear.
  return message.replace(/,? (?:\.\.\.)?"[^]{0,100}?"(?:\.\.\.)? is not valid JSON/g, ' (the text is not shown)');
}
