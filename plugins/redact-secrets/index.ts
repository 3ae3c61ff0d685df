/**
 * meshsync:redact-secrets — Secret values never leave in clear; managedFields never leave at all.
 * Copy on write: the event it was given is never changed, and an event with nothing to change is
 * passed on as is (the hot path: a non-Secret without managedFields costs two property reads).
 */
import { createHmac } from 'node:crypto';
import { z } from 'zod';
import { ConfigError, definePlugin, type KubeObject, type ObjectMeta, type ResourceRef, type SyncEvent } from '../../core/index.ts';

/** What replaces a Secret value when no fingerprint key is set. */
export const REDACTED = '<redacted>';
export const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';
const FINGERPRINT_BYTES = 16;
const MIN_KEY_LENGTH = 16;

const fingerprintOptions = z.object({
  key: z.string().min(MIN_KEY_LENGTH, `the fingerprint key must be at least ${MIN_KEY_LENGTH} characters`)
    .optional().describe('HMAC key for fingerprints. Prefer `keyEnv`, so the key stays out of config files.'),
  keyEnv: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'not an environment variable name')
    .optional().describe('Name of the environment variable holding the HMAC key (read once, when the plugin is built).'),
}).strict().refine((value) => (value.key === undefined) !== (value.keyEnv === undefined), {
  message: 'set exactly one of `key` and `keyEnv`',
});

export const redactSecretsOptions = z.object({
  enabled: z.boolean().default(true)
    .describe('Redact Secret values. `false` is the explicit opt-out: Secret data then leaves in clear (a warning is logged at start).'),
  fingerprint: fingerprintOptions.optional()
    .describe('Adds a keyed HMAC-SHA256 of each value to its marker, so a consumer sees that a value changed without learning it.'),
  stripManagedFields: z.boolean().default(true)
    .describe('Remove metadata.managedFields from every object (any kind): server-side apply bookkeeping, large and of no use downstream.'),
}).strict();

export type RedactSecretsOptions = z.input<typeof redactSecretsOptions>;

export interface Redactor {
  /** The event to pass on: the same object when nothing changes, otherwise a copy. */
  (event: SyncEvent): SyncEvent;
}

/** True for core-group Secrets (`secrets.v1.`). */
export function isSecret(event: SyncEvent): boolean {
  return isSecretResource(event.resource);
}

const isSecretResource = (resource: ResourceRef) => resource.resource === 'secrets' && resource.group === '';

/**
 * Builds the redaction function. `key` (when given) makes markers `<redacted:hmac-sha256:<32 hex>>`;
 * the HMAC covers namespace, name and entry key as well as the value, so equal values in two
 * Secrets do not show as equal, while a change of one value shows as a change of its marker.
 */
export function createRedactor(options: { redactSecrets: boolean; stripManagedFields: boolean; key?: string }): Redactor {
  const { redactSecrets, stripManagedFields, key } = options;
  const marker = key === undefined
    ? () => REDACTED
    : (meta: ObjectMeta, entry: string, value: unknown, encoding: 'base64' | 'utf8') => {
      const hmac = createHmac('sha256', key);
      hmac.update(`${meta.namespace ?? ''}\0${meta.name}\0${entry}\0`);
      // data holds base64 and stringData plain text: the decoded bytes are fingerprinted, so the
      // same value gets the same marker in either field (as in last-applied vs live object).
      hmac.update(typeof value === 'string' ? Buffer.from(value, encoding) : Buffer.from(JSON.stringify(value) ?? ''));
      return `<redacted:hmac-sha256:${hmac.digest().subarray(0, FINGERPRINT_BYTES).toString('hex')}>`;
    };

  const redactValues = (values: unknown, meta: ObjectMeta, encoding: 'base64' | 'utf8'): unknown => {
    // Not a map of values (a malformed Secret, or one as written in an annotation): nothing of it is kept.
    if (typeof values !== 'object' || values === null || Array.isArray(values)) return REDACTED;
    // fromEntries, not assignment: a key named __proto__ stays a key.
    return Object.fromEntries(Object.entries(values).map(([entry, value]) => [entry, marker(meta, entry, value, encoding)]));
  };

  /**
   * A Secret as it may leave: an allow-list, never a list of what to remove. Kept: apiVersion,
   * kind, type, immutable, the metadata fields below, and the keys of data and stringData, each
   * value replaced by a marker. Anything else (a `StringData` spelling the API server accepts, a
   * field of a later API version) is left out, whatever it is.
   */
  const projectSecret = (object: Record<string, unknown>, meta: ObjectMeta, depth: number): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    for (const field of ['apiVersion', 'kind', 'type'] as const) if (typeof object[field] === 'string') out[field] = object[field];
    if (typeof object.immutable === 'boolean') out.immutable = object.immutable;
    if (isRecord(object.metadata)) out.metadata = projectMeta(object.metadata, meta, depth);
    if (object.data !== undefined && object.data !== null) out.data = redactValues(object.data, meta, 'base64');
    if (object.stringData !== undefined && object.stringData !== null) out.stringData = redactValues(object.stringData, meta, 'utf8');
    return out;
  };

  const projectMeta = (metadata: Record<string, unknown>, meta: ObjectMeta, depth: number): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    for (const field of SECRET_METADATA) if (metadata[field] !== undefined) out[field] = metadata[field];
    for (const field of ['labels', 'annotations'] as const) {
      if (metadata[field] === undefined) continue;
      // Only string values: a map of anything else is not metadata an API server would store.
      const entries = isRecord(metadata[field]) ? Object.entries(metadata[field]).filter(([, value]) => typeof value === 'string') : [];
      out[field] = Object.fromEntries(entries.map(([name, value]) => [name, field === 'annotations' && name === LAST_APPLIED ? redactLastApplied(value as string, meta, depth + 1) : value]));
    }
    return out;
  };

  /** The applied Secret, projected as the live one is; anything that is not one Secret object (a List, text that does not parse) is a marker. */
  const redactLastApplied = (text: string, meta: ObjectMeta, depth = 0): string => {
    if (depth > MAX_LAST_APPLIED_DEPTH) return REDACTED;
    let applied: unknown;
    try {
      applied = JSON.parse(text);
    } catch {
      return REDACTED;
    }
    if (!isRecord(applied) || (applied.kind !== undefined && applied.kind !== 'Secret')) return REDACTED;
    // kubectl writes the annotation with a trailing newline; keep the shape it had.
    return JSON.stringify(projectSecret(applied, meta, depth)) + (text.endsWith('\n') ? '\n' : '');
  };

  return (event) => {
    const object = event.object;
    const meta = object.metadata;
    const secret = redactSecrets && isSecret(event);
    const strip = stripManagedFields && meta.managedFields !== undefined;
    if (!secret && !strip) return event;

    let metadata: ObjectMeta = meta;
    if (strip) {
      const { managedFields: _dropped, ...rest } = meta;
      metadata = rest as ObjectMeta;
    }
    if (!secret) return { ...event, object: { ...object, metadata } };
    const redacted = projectSecret({ ...object, metadata }, meta, 0) as KubeObject;
    return { ...event, object: redacted };
  };
}

/** Metadata a Secret keeps as it is (labels and annotations are kept as string maps, the last-applied copy projected). */
const SECRET_METADATA = [
  'name', 'namespace', 'uid', 'resourceVersion', 'generation', 'generateName', 'creationTimestamp', 'deletionTimestamp',
  'deletionGracePeriodSeconds', 'ownerReferences', 'finalizers', 'managedFields',
] as const;
/** A last-applied copy inside a last-applied copy is projected; deeper ones are markers. */
const MAX_LAST_APPLIED_DEPTH = 2;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Reads the fingerprint key from the options or the environment; never puts the key in an error. */
function fingerprintKey(fingerprint: z.output<typeof fingerprintOptions> | undefined): string | undefined {
  if (fingerprint === undefined) return undefined;
  if (fingerprint.key !== undefined) return fingerprint.key;
  const name = fingerprint.keyEnv as string;
  const value = process.env[name];
  const path = 'meshsync:redact-secrets options.fingerprint.keyEnv';
  if (value === undefined || value === '') throw new ConfigError([{ path, message: `environment variable ${name} is not set or empty` }], 'MESHSYNC_PLUGIN_OPTIONS');
  if (value.length < MIN_KEY_LENGTH) throw new ConfigError([{ path, message: `environment variable ${name} holds a key shorter than ${MIN_KEY_LENGTH} characters` }], 'MESHSYNC_PLUGIN_OPTIONS');
  return value;
}

const redactSecretsPlugin = definePlugin({
  name: 'meshsync:redact-secrets',
  description: 'Replaces Secret values (data, stringData, last-applied annotation) by markers, optionally keyed fingerprints; strips managedFields.',
  options: redactSecretsOptions,
  setup: (options) => {
    const key = options.enabled ? fingerprintKey(options.fingerprint) : undefined;
    const redact = createRedactor({ redactSecrets: options.enabled, stripManagedFields: options.stripManagedFields, key });
    return (core) => {
      if (options.enabled || options.stripManagedFields) core.hooks.transform.tap('meshsync:redact-secrets', redact);
      // Secrets are projected field by field; any other object only loses managedFields, which a
      // source's view (see ObjectView) never has.
      core.readsWholeObjects('meshsync:redact-secrets', options.enabled ? isSecretResource : () => false);
      core.hooks.start.tap('meshsync:redact-secrets', () => {
        const logger = core.logger.child({ plugin: 'meshsync:redact-secrets' });
        if (!options.enabled) logger.warn('Secret redaction is disabled (enabled: false): Secret data leaves in clear');
        else logger.info({ fingerprints: key !== undefined, stripManagedFields: options.stripManagedFields }, 'Secret values are redacted');
      });
    };
  },
});

/** The factory, with the fingerprint key masked in the options it keeps (`meshsync print-config` shows them). */
export const redactSecrets: typeof redactSecretsPlugin = Object.assign(
  (input?: RedactSecretsOptions) => {
    const plugin = redactSecretsPlugin(input);
    const options = plugin.options as z.output<typeof redactSecretsOptions>;
    if (options.fingerprint?.key === undefined) return plugin;
    return { ...plugin, options: { ...options, fingerprint: { ...options.fingerprint, key: '[redacted]' } } };
  },
  { pluginName: redactSecretsPlugin.pluginName, description: redactSecretsPlugin.description, optionsSchema: redactSecretsPlugin.optionsSchema },
);

export default redactSecrets;
