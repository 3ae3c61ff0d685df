import type { MeshSyncConfig } from './schema.ts';

/** What the function form of a config receives. */
export interface ConfigEnv {
  /** The CLI command being run (`run`, `validate`, `print-config`, `snapshot`). */
  readonly command: string;
}

export type ConfigFn = (env: ConfigEnv) => MeshSyncConfig | Promise<MeshSyncConfig>;
export type ConfigExport = MeshSyncConfig | Promise<MeshSyncConfig> | ConfigFn;

/** Types a config (`export default defineConfig({...})`); returns its argument unchanged. */
export function defineConfig(config: MeshSyncConfig): MeshSyncConfig;
export function defineConfig(config: Promise<MeshSyncConfig>): Promise<MeshSyncConfig>;
export function defineConfig(config: ConfigFn): ConfigFn;
export function defineConfig(config: ConfigExport): ConfigExport {
  return config;
}
