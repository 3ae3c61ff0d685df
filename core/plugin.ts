import { z } from 'zod';
import { ConfigError, type ConfigProblem } from './errors.ts';
import { didYouMean } from './suggest.ts';
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
      throw new ConfigError(zodProblems(parsed.error, `${spec.name} options`, undefined, spec.options), 'MESHSYNC_PLUGIN_OPTIONS');
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
    error: (issue) => `expected one of ${values.map((value) => JSON.stringify(value)).join('|')}, got ${JSON.stringify(issue.input)?.slice(0, 60) ?? String(issue.input)}`
      + (typeof issue.input === 'string' ? didYouMean(issue.input, values) : ''),
  });
}

/**
 * Turns a zod error into config problems, each with a readable path under `prefix`. An unknown key
 * is a problem at its own path, with the nearest known keys of `schema` (a typo: `formt`, `urll`).
 * Key names are never secrets, so they are named; zod's own text for them is not used.
 */
export function zodProblems(error: z.ZodError, prefix = '', file?: string, schema?: z.ZodType): ConfigProblem[] {
  return error.issues.flatMap((issue): ConfigProblem[] => {
    if (issue.code !== 'unrecognized_keys') return [{ file, path: joinPath(prefix, issue.path), message: issue.message }];
    const known = schema === undefined ? [] : keysAt(schema, issue.path);
    return issue.keys.map((key) => ({
      file,
      path: joinPath(prefix, [...issue.path, key]),
      message: `unknown key${didYouMean(key, known)}${known.length ? ` (known: ${known.join(', ')})` : ''}`,
    }));
  });
}

/** The keys an object schema at `path` inside `schema` takes ([] when the path leads to no object). */
export function keysAt(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
  const keys = new Set<string>();
  const visit = (node: z.ZodType | undefined, at: number, depth: number): void => {
    const def = (node as { _zod?: { def?: Record<string, any> } } | undefined)?._zod?.def;
    if (def === undefined || depth > 32) return;
    switch (def.type) {
      case 'object':
        if (at === path.length) for (const key of Object.keys(def.shape)) keys.add(key);
        else visit(def.shape[String(path[at])], at + 1, depth + 1);
        return;
      case 'array':
        if (at < path.length) visit(def.element, at + 1, depth + 1);
        return;
      case 'record':
        if (at < path.length) visit(def.valueType, at + 1, depth + 1);
        return;
      case 'union':
        for (const option of def.options) visit(option, at, depth + 1);
        return;
      case 'intersection':
        visit(def.left, at, depth + 1);
        visit(def.right, at, depth + 1);
        return;
      case 'pipe':
        visit(def.in, at, depth + 1);
        return;
      case 'lazy':
        visit(def.getter(), at, depth + 1);
        return;
      default:
        // optional, nullable, default, prefault, catch, readonly, nonoptional: a wrapper.
        if (def.innerType) visit(def.innerType, at, depth + 1);
    }
  };
  visit(schema, 0, 0);
  return [...keys];
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
