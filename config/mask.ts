/** Masks secrets in a config before it is printed: by key name, and credentials inside URLs. */
import { isSecretKey, MASK, redactUrlCredentials } from '../core/secrets.ts';

export { isSecretKey, MASK };

/** A JSON-ready copy of `value` with every secret masked; functions become '[function]'. */
export function maskSecrets(value: unknown): unknown {
  return mask(value, '', new WeakSet(), []);
}

/** Where `value` holds secrets (the paths maskSecrets masks), e.g. `plugins[1].options.auth.token`. */
export function secretPaths(value: unknown): string[] {
  const found: string[] = [];
  mask(value, '', new WeakSet(), found);
  return found;
}

function mask(value: unknown, path: string, seen: WeakSet<object>, found: string[]): unknown {
  if (typeof value === 'string') {
    const masked = redactUrlCredentials(value);
    if (masked !== value) found.push(path);
    return masked;
  }
  if (typeof value === 'function') return '[function]';
  if (typeof value === 'bigint') return value.toString();
  if (typeof value !== 'object' || value === null) return value;
  if (seen.has(value)) return '[circular]';
  seen.add(value);
  if (Array.isArray(value)) return value.map((item, index) => mask(item, `${path}[${index}]`, seen, found));
  if (value instanceof RegExp) return value.toString();
  if (value instanceof URL) return mask(value.href, path, seen, found);
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    const at = path ? `${path}.${key}` : key;
    if (isSecretKey(key) && item !== undefined && item !== null && item !== '') {
      found.push(at);
      out[key] = MASK;
    } else out[key] = mask(item, at, seen, found);
  }
  return out;
}
