/**
 * Where MeshSync's live settings come from and which one wins. Pure functions: the plugin feeds
 * them what it read (the custom resource, the ConfigMap, the files in /config, the environment).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { redactUrlCredentials, type KubeObject } from '../../core/index.ts';

/** The layers, highest precedence first. */
export const LAYERS = ['environment', 'custom-resource', 'configmap', 'config-files'] as const;
export type LayerName = (typeof LAYERS)[number];

/** A watch-list in MeshSync's legacy form: JSON strings, as the CR and the ConfigMap carry them. */
export interface LegacyWatchList {
  readonly whitelist?: string;
  readonly blacklist?: string;
}

export interface Layer {
  readonly watchList?: LegacyWatchList;
  /** The broker URL this layer names. */
  readonly broker?: string;
}

export type Layers = Partial<Record<LayerName, Layer>>;

export interface Resolved {
  /** The watch-list to apply, and the layer it came from; undefined: the config file's stays in force. */
  readonly watchList?: LegacyWatchList;
  readonly watchListFrom?: LayerName;
  /** The broker URL in force by these layers, and where it came from. */
  readonly broker?: string;
  readonly brokerFrom?: LayerName;
}

function nonEmpty(value: unknown): string | undefined {
  return typeof value === 'string' && value.trim() !== '' ? value : undefined;
}

/** whitelist/blacklist from a ConfigMap-shaped `data` object; undefined when neither is set. */
export function watchListOf(data: unknown): LegacyWatchList | undefined {
  if (typeof data !== 'object' || data === null) return undefined;
  const record = data as Record<string, unknown>;
  const whitelist = nonEmpty(record.whitelist);
  const blacklist = nonEmpty(record.blacklist);
  if (whitelist === undefined && blacklist === undefined) return undefined;
  return { ...(whitelist === undefined ? {} : { whitelist }), ...(blacklist === undefined ? {} : { blacklist }) };
}

/**
 * The MeshSync CR's layer: `spec.watch-list.data`, and the broker its `spec.broker` resolves to
 * (broker.ts: that takes the API server, so the plugin resolves it and hands the URL in).
 */
export function customResourceLayer(cr: KubeObject | undefined, broker?: string): Layer | undefined {
  if (cr === undefined) return undefined;
  const spec = (cr.spec ?? {}) as Record<string, any>;
  const watchList = watchListOf(spec['watch-list']?.data);
  return { ...(watchList ? { watchList } : {}), ...(broker ? { broker } : {}) };
}

export function configMapLayer(cm: KubeObject | undefined): Layer | undefined {
  if (cm === undefined) return undefined;
  const watchList = watchListOf(cm.data);
  return watchList ? { watchList } : {};
}

/** Files named after the ConfigMap keys (`whitelist`, `blacklist`), as a mounted ConfigMap lays them out. */
export function configFilesLayer(dir: string): Layer | undefined {
  const read = (name: string) => {
    const file = join(dir, name);
    return existsSync(file) ? readFileSync(file, 'utf8') : undefined;
  };
  const watchList = watchListOf({ whitelist: read('whitelist'), blacklist: read('blacklist') });
  return watchList ? { watchList } : undefined;
}

/** BROKER_URL, which MeshSync itself reads (the Meshery operator sets it from the CR's broker). */
export function environmentLayer(env: Readonly<Record<string, string | undefined>>): Layer | undefined {
  const broker = nonEmpty(env.BROKER_URL?.trim());
  return broker ? { broker } : undefined;
}

/**
 * Highest layer wins, per setting. A watch-list is taken whole from one layer (a whitelist from
 * the CR is never mixed with a blacklist from the ConfigMap): MeshSync reads the CR and falls back
 * to its ConfigMap only when the CR has none.
 */
export function resolve(layers: Layers): Resolved {
  let out: Resolved = {};
  for (const name of LAYERS) {
    const layer = layers[name];
    if (!layer) continue;
    if (out.watchList === undefined && layer.watchList) out = { ...out, watchList: layer.watchList, watchListFrom: name };
    if (out.broker === undefined && layer.broker) out = { ...out, broker: layer.broker, brokerFrom: name };
  }
  return out;
}

/** The broker address as shown in the CR's status (passwords and tokens masked). */
export function publishingTo(resolved: Resolved): string {
  return resolved.broker === undefined ? '' : resolved.broker.split(',').map((url) => redactUrlCredentials(url.trim())).join(',');
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

/** The next conditions: `lastTransitionTime` moves only when the status flips. */
export function nextCondition(previous: readonly Condition[] | undefined, next: Omit<Condition, 'lastTransitionTime'>, now: Date): Condition {
  const before = previous?.find((condition) => condition.type === next.type);
  const lastTransitionTime = before && before.status === next.status ? before.lastTransitionTime : now.toISOString().replace(/\.\d{3}Z$/, 'Z');
  return { ...next, lastTransitionTime };
}
