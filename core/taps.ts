/**
 * Calling taps: the adapter from tapable's three tap types to one promise, and the attribution of
 * what a tap throws to its plugin and hook. The core's per-tap hooks and the lanes call taps here.
 */
import { MeshSyncError, pluginError } from './errors.ts';
import type { Batch, SinkContext } from './types.ts';

/** A registered tap, as tapable keeps it. */
export interface TapInfo {
  type: 'sync' | 'async' | 'promise';
  name: string;
  fn: (...args: any[]) => any;
}

/** Tap names, made distinct (`name#2`) where a plugin runs twice: lanes and readiness are per tap. */
export function distinctNames(taps: readonly TapInfo[]): string[] {
  const seen = new Map<string, number>();
  return taps.map((tap) => {
    const count = (seen.get(tap.name) ?? 0) + 1;
    seen.set(tap.name, count);
    return count === 1 ? tap.name : `${tap.name}#${count}`;
  });
}

/** Calls one tap of any type; resolves with what it returned (a waterfall's next value). */
export function callTap(tap: TapInfo, args: unknown[]): Promise<unknown> {
  try {
    if (tap.type === 'async') {
      return new Promise((resolve, reject) => tap.fn(...args, (error?: unknown, result?: unknown) => (error ? reject(error) : resolve(result))));
    }
    return Promise.resolve(tap.fn(...args));
  } catch (error) {
    return Promise.reject(error);
  }
}

/** A tap's function that throws (or rejects, or calls back with) its error attributed to it. */
export function attributedTap(tap: TapInfo, hook: string): TapInfo['fn'] {
  const fn = tap.fn;
  const named = (error: unknown) => attributed(tap.name, hook, error);
  switch (tap.type) {
    case 'async':
      return (...args: unknown[]) => {
        const callback = args.pop() as (error?: unknown, result?: unknown) => void;
        try {
          fn(...args, (error?: unknown, result?: unknown) => (error ? callback(named(error)) : callback(undefined, result)));
        } catch (error) {
          callback(named(error));
        }
      };
    case 'promise':
      return (...args: unknown[]) => {
        try {
          return Promise.resolve(fn(...args)).catch((error: unknown) => Promise.reject(named(error)));
        } catch (error) {
          return Promise.reject(named(error));
        }
      };
    default:
      return (...args: unknown[]) => {
        try {
          return fn(...args);
        } catch (error) {
          throw named(error);
        }
      };
  }
}

/**
 * What a plugin threw, naming the plugin and the hook; a MeshSyncError (MESHSYNC_LISTEN_FAILED,
 * MESHSYNC_BROKER_UNREACHABLE) already says what failed and what to do, and stays as it is.
 */
export function attributed(plugin: string, hook: string, error: unknown): Error {
  return error instanceof MeshSyncError ? error : pluginError(plugin, hook, error);
}

/** The last stage of a sink's lane: hands a batch to the sink's tap, with the sink's context. */
export function sendTo(tap: TapInfo, context: SinkContext): (batch: Batch) => Promise<void> {
  return async (batch) => {
    await callTap(tap, [batch, context]);
  };
}
