/**
 * The config API: the schema and the loader (published as `meshsync/config` by cli/config.ts).
 * defineConfig is imported from `meshsync` (index.ts), its one place.
 */
export { type ConfigEnv, type ConfigExport, type ConfigFn } from './define.ts';
export {
  configSchema, pipelineSchema, pluginEntrySchema, LOG_LEVELS,
  type LogLevel, type MeshSyncConfig, type PipelineOptions, type PluginEntry, type PluginSummary, type ResolvedConfig,
} from './schema.ts';
export { loadConfig, defaultPluginEntries, isPluginFactory, type PluginCatalog, SEARCH_PLACES, REDACT_SECRETS, type LoadConfigOptions, type LoadedConfig, type LoadProblem } from './load.ts';
export { maskSecrets, isSecretKey, MASK } from './mask.ts';
