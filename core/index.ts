/** The public API of the engine: everything a plugin, built-in or third-party, may import. */
export * from './types.ts';
export { createCore, MeshSyncCore, type CoreOptions } from './core.ts';
export { CORE_DEFAULTS, pipelineSchema, STOP_MARGIN_MS, stopTimeoutMsSchema, type PipelineOptions } from './settings.ts';
export { PipelineEvent, eventLine, objectKey } from './event.ts';
export { definePlugin, oneOf, zodProblems, joinPath, isPlugin, type PluginFactory, type PluginSpec } from './plugin.ts';
export { ERROR_CODES, MeshSyncError, ConfigError, pluginError, asError, type ConfigProblem, type ErrorCode } from './errors.ts';
export { createLogger, silentLogger, type Logger, type LogLevel } from './log.ts';
export { coalesce } from './lane/queue.ts';
export { resourceId, parseResourceId, resourceIdProblem } from './resource.ts';
export { contentHash } from './fingerprint.ts';
export { closestNames, didYouMean, editDistance } from './suggest.ts';
export { MASK, redactSecretsInText, redactUrlCredentials, withoutJsonExcerpt } from './secrets.ts';
export {
  heldView, holdBytes, isKeptBySource, jsonBytesOf, jsonOf, knownJsonBytes, markKeptBySource, ObjectView, parseJsonBytes, serializeForPipeline, textOf, wholeObject,
  type HeldBytes, type Rereadable,
} from './serialized.ts';
