/** Config API (`meshsync/config`): defineConfig, the schema, the loader. */
export { defineConfig, type ConfigEnv, type ConfigExport, type ConfigFn } from './define.ts';
export {
  configSchema, pipelineSchema, pluginEntrySchema, LOG_LEVELS,
  type LogLevel, type MeshSyncConfig, type PipelineOptions, type PluginEntry, type PluginSummary, type ResolvedConfig,
} from './schema.ts';
export { loadConfig, defaultPluginEntries, SEARCH_PLACES, REDACT_SECRETS, type LoadConfigOptions, type LoadedConfig, type LoadProblem } from './load.ts';
export { maskSecrets, isSecretKey, MASK } from './mask.ts';
// Kept for users of meshsync/config; each constant is defined by the plugin that owns it.
export { DEFAULT_RESOURCES } from '../plugins/kubernetes/defaults.ts';
export { DEFAULT_SUBJECT } from '../plugins/nats/options.ts';
