/**
 * `meshsync/config`: the config API of config/, with the loader knowing the built-in plugins.
 * The composition root gives config/ its catalog, so config/ itself imports no plugin.
 */
import { loadConfig as load, type LoadConfigOptions, type LoadedConfig } from '../config/load.ts';
import { BUILTINS } from './builtins.ts';

export * from '../config/index.ts';
// Kept for users of meshsync/config; each constant is defined by the plugin that owns it.
export { DEFAULT_RESOURCES } from '../plugins/kubernetes/defaults.ts';
export { DEFAULT_SUBJECT } from '../plugins/nats/options.ts';

/** Finds, reads, checks and resolves the meshsync config, built-in plugins included. */
export function loadConfig(options: LoadConfigOptions = {}): Promise<LoadedConfig> {
  return load({ builtins: BUILTINS, ...options });
}
