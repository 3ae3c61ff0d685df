/**
 * The built-in plugins by name: the catalog the CLI hands the config loader. Loaders are lazy so a
 * config pays only for the plugins it uses (the NATS client is not loaded for a stdout-only config).
 */
import { isPluginFactory, type PluginCatalog } from '../config/load.ts';
import type { PluginFactory } from '../core/index.ts';

export type PluginModule = { readonly default: unknown };
export type PluginLoader = () => Promise<PluginModule>;

export const BUILTIN_PLUGINS: Readonly<Record<string, PluginLoader>> = Object.freeze({
  'meshsync:kubernetes': () => import('../plugins/kubernetes/index.ts'),
  'meshsync:watch-list': () => import('../plugins/watch-list/index.ts'),
  'meshsync:redact-secrets': () => import('../plugins/redact-secrets/index.ts'),
  'meshsync:stdout': () => import('../plugins/stdout/index.ts'),
  'meshsync:file': () => import('../plugins/file/index.ts'),
  'meshsync:nats': () => import('../plugins/nats/index.ts'),
  'meshsync:metrics': () => import('../plugins/metrics/index.ts'),
  'meshsync:meshsync-resource': () => import('../plugins/meshsync-resource/index.ts'),
  'meshsync:leader-election': () => import('../plugins/leader-election/index.ts'),
});

/** Built-ins a process runs once at most, and why (a config listing one twice is refused). */
export const BUILTINS_RUN_ONCE: Readonly<Record<string, string>> = Object.freeze({
  'meshsync:metrics': 'a process has one set of metrics and one endpoint for them',
  'meshsync:leader-election': 'a process holds one lease',
  'meshsync:meshsync-resource': 'a process follows one MeshSync resource',
});

/** Imports a built-in plugin's factory; throws (the import error) when its module cannot load. */
export async function loadBuiltinPlugin(name: string): Promise<PluginFactory> {
  const loader = BUILTIN_PLUGINS[name];
  if (loader === undefined) throw new Error(`unknown built-in plugin ${name}`);
  const module = await loader();
  if (!isPluginFactory(module.default)) throw new TypeError(`built-in plugin ${name} has no default export factory`);
  return module.default;
}

export const BUILTINS: PluginCatalog = Object.freeze({
  names: Object.freeze(Object.keys(BUILTIN_PLUGINS)),
  runOnce: BUILTINS_RUN_ONCE,
  load: loadBuiltinPlugin,
});
