/**
 * The one schema of a meshsync config: it gives the TypeScript type (defineConfig), the runtime
 * check (the loader) and the website's reference (`z.toJSONSchema(configSchema, { unrepresentable: 'any' })`).
 */
import { z } from 'zod';
import { pipelineSchema, stopTimeoutMsSchema, type PipelineOptions } from '../core/settings.ts';
import { isPlugin, oneOf } from '../core/plugin.ts';
import type { Plugin } from '../core/types.ts';

export { pipelineSchema, type PipelineOptions };

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const pluginName = z.string().min(1)
  .describe('A built-in plugin (`meshsync:nats`) or a third-party package name (`meshsync-plugin-label-enricher`).');

const pluginInstance = z.custom<Plugin>(isPlugin, { message: 'expected a plugin instance { name, apply(core) }' })
  .describe('A plugin instance, as a factory returns it: `nats({ subject })` (TS/JS configs).');

const pluginPair = z.tuple([pluginName, z.record(z.string(), z.unknown()).optional()
  .describe('The plugin\'s options, checked against its schema.')])
  .describe('`[name, options]`, for JSON and YAML configs.');

export const pluginEntrySchema = z.union([pluginInstance, pluginName, pluginPair], {
  error: 'expected a plugin instance, a plugin name, or a [name, options] pair',
}).describe('One plugin: an instance, a name, or a [name, options] pair.');


export const configSchema = z.strictObject({
  clusterId: z.string().min(1).optional()
    .describe('The id stamped on every event (`cluster_id`). Default: the uid of the kube-system namespace. The CLUSTER_ID environment variable overrides it.'),
  plugins: z.array(pluginEntrySchema).optional()
    .describe('The plugins, in order. Omitted: the MeshSync defaults (kubernetes, redact-secrets, nats or stdout, metrics). `meshsync:redact-secrets` is added when missing.'),
  pipeline: pipelineSchema.prefault({}),
  stopTimeoutMs: stopTimeoutMsSchema,
  logLevel: oneOf(LOG_LEVELS).default('info')
    .describe('Log level. The LOG_LEVEL environment variable and --log-level override it.'),
}).describe('The meshsync configuration.');

export type PluginEntry = z.input<typeof pluginEntrySchema>;
/** A config as written in a file (defaults not applied). */
export type MeshSyncConfig = z.input<typeof configSchema>;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** What a plugin looks like in the resolved config: its name and validated options. */
export interface PluginSummary {
  readonly name: string;
  readonly options?: unknown;
}

/** The config in force once defaults, environment overrides and plugins are resolved. Frozen. */
export interface ResolvedConfig {
  readonly clusterId?: string;
  readonly plugins: readonly PluginSummary[];
  readonly pipeline: Readonly<PipelineOptions>;
  readonly stopTimeoutMs: number;
  readonly logLevel: LogLevel;
}
