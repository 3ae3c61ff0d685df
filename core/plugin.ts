import { z } from 'zod';
import { ConfigError, type ConfigProblem } from './errors.ts';
import type { Core, Plugin } from './types.ts';

/** A plugin factory, as built-ins and third-party packages export it. */
export interface PluginFactory<S extends z.ZodType = z.ZodType> {
  (options?: z.input<S>): Plugin;
  readonly pluginName: string;
  readonly description: string;
  /** The options schema: validates at construction and feeds the website's reference. */
  readonly optionsSchema: S;
}

export interface PluginSpec<S extends z.ZodType> {
  readonly name: string;
  readonly description: string;
  readonly options: S;
  /** Receives the validated options; returns what apply(core) does (tap hooks, no I/O). */
  setup(options: z.output<S>): (core: Core) => void;
}

/**
 * Defines a plugin: its options are checked against the schema when the factory is called, and
 * every problem is reported at once, with the plugin's name and the option's path.
 */
export function definePlugin<S extends z.ZodType>(spec: PluginSpec<S>): PluginFactory<S> {
  const factory = (input?: z.input<S>): Plugin => {
    const parsed = spec.options.safeParse(input ?? {});
    if (!parsed.success) {
      throw new ConfigError(zodProblems(parsed.error, `${spec.name} options`), 'MESHSYNC_PLUGIN_OPTIONS');
    }
    return { name: spec.name, options: parsed.data, apply: spec.setup(parsed.data) };
  };
  return Object.assign(factory, { pluginName: spec.name, description: spec.description, optionsSchema: spec.options });
}

/**
 * z.enum whose error also says what was given: `expected one of "ADDED"|"MODIFIED"|"DELETED", got
 * "DELETE"`. For enums of names and levels only: the value given is quoted back.
 */
export function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, {
    error: (issue) => `expected one of ${values.map((value) => JSON.stringify(value)).join('|')}, got ${JSON.stringify(issue.input)?.slice(0, 60) ?? String(issue.input)}`,
  });
}

/** Turns a zod error into config problems, each with a readable path under `prefix`. */
export function zodProblems(error: z.ZodError, prefix = '', file?: string): ConfigProblem[] {
  return error.issues.map((issue) => ({
    file,
    path: joinPath(prefix, issue.path),
    message: issue.message,
  }));
}

export function joinPath(prefix: string, path: readonly PropertyKey[]): string {
  let out = prefix;
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out ? `.${String(key)}` : String(key);
  }
  return out;
}

/** True when a value looks like a plugin instance. */
export function isPlugin(value: unknown): value is Plugin {
  return typeof value === 'object' && value !== null
    && typeof (value as Plugin).name === 'string' && typeof (value as Plugin).apply === 'function';
}
