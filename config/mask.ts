/** Masks secrets in a config before it is printed: by key name, and passwords inside URLs. */

export const MASK = '[redacted]';

// Whole key names, or the last word of a camelCase / snake_case / kebab-case key.
const SECRET_WORDS = 'password|passwd|passphrase|pass|token|seed|nkey|secret|creds|credentials|authorization|key|privatekey|apikey';
const SECRET_KEY = new RegExp(`^(${SECRET_WORDS})$|[_-](${SECRET_WORDS})$`, 'i');
const SECRET_CAMEL = /[a-z0-9](Password|Passwd|Passphrase|Pass|Token|Seed|Nkey|Secret|Creds|Credentials|Authorization|Key)$/;
// `nats://user:pass@host` keeps the user; `nats://token@host` (a bare token) is masked whole.
const URL_USERINFO = /([a-z][a-z0-9+.-]*:\/\/)([^@/\s]+)@/gi;

export function isSecretKey(key: string): boolean {
  return SECRET_KEY.test(key) || SECRET_CAMEL.test(key);
}

/** A JSON-ready copy of `value` with every secret masked; functions become '[function]'. */
export function maskSecrets(value: unknown, seen = new WeakSet<object>()): unknown {
  if (typeof value === 'string') return value.replace(URL_USERINFO, (_match, scheme: string, userinfo: string) => {
    const colon = userinfo.indexOf(':');
    return `${scheme}${colon < 0 ? MASK : `${userinfo.slice(0, colon)}:${MASK}`}@`;
  });
  if (typeof value === 'function') return '[function]';
  if (typeof value === 'bigint') return value.toString();
  if (typeof value !== 'object' || value === null) return value;
  if (seen.has(value)) return '[circular]';
  seen.add(value);
  if (Array.isArray(value)) return value.map((item) => maskSecrets(item, seen));
  if (value instanceof RegExp) return value.toString();
  if (value instanceof URL) return maskSecrets(value.href, seen);
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    out[key] = isSecretKey(key) && item !== undefined && item !== null && item !== '' ? MASK : maskSecrets(item, seen);
  }
  return out;
}
