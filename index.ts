/** The package entry (`meshsync`): the engine's public API, and defineConfig for config files. */
export * from './core/index.ts';
export { defineConfig, type ConfigEnv, type ConfigExport } from './config/define.ts';
export type { MeshSyncConfig, ResolvedConfig } from './config/schema.ts';
