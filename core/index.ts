/** The public API of the engine: everything a plugin, built-in or third-party, may import. */
export * from './types.ts';
export { createCore, MeshSyncCore, CORE_DEFAULTS, type CoreOptions } from './core.ts';
export { definePlugin, type PluginFactory, type PluginSpec } from './plugin.ts';
export { ERROR_CODES, MeshSyncError, ConfigError, type ConfigProblem, type ErrorCode } from './errors.ts';
export { createLogger, type Logger } from './log.ts';
export { objectKey, coalesce } from './lane/lane.ts';
export { resourceId, parseResourceId } from './resource.ts';
export { jsonOf, jsonBytesOf, knownJsonBytes, parseJsonBytes, serializeForPipeline } from './serialized.ts';
