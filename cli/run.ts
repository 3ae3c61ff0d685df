/** `meshsync run` and `meshsync snapshot`: a core built from the resolved config, started and stopped. */
import { createCore, type Logger, type MeshSyncCore } from '../core/index.ts';
import type { LoadedConfig } from '../config/load.ts';
import { writeSnapshot } from '../plugins/file/index.ts';

/** The core a resolved config describes; nothing runs until start(). */
export function createCoreFrom(loaded: LoadedConfig, logger: Logger): MeshSyncCore {
  const { config } = loaded;
  return createCore({ plugins: loaded.plugins, clusterId: config.clusterId, logger, ...config.pipeline, stopTimeoutMs: config.stopTimeoutMs });
}

/** `meshsync run`: syncs until a signal; a second signal exits without draining. Resolves with the exit code. */
export async function run(loaded: LoadedConfig, logger: Logger): Promise<number> {
  const core = createCoreFrom(loaded, logger);
  let stopping = false;
  const stopped = new Promise<number>((resolveStopped) => {
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        const left = core.state.lanes().reduce((sum, lane) => sum + lane.pending + lane.inFlight, 0);
        logger.warn({ signal, events: left }, 'second signal: exiting without draining; these events are not delivered');
        resolveStopped(1);
        return;
      }
      stopping = true;
      logger.info({ signal }, 'stopping: draining sinks');
      core.stop().then(() => resolveStopped(0), (error) => {
        logger.error({ err: error }, 'stop failed');
        resolveStopped(1);
      });
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  logger.info({ file: loaded.file ?? null, plugins: loaded.plugins.map((plugin) => plugin.name) }, 'meshsync starting');
  try {
    await core.start();
  } catch (error) {
    // A signal during start-up (say, while the API server is unreachable) aborts what start waits for: a stop, not a failure.
    if (stopping) {
      logger.info('stopped before start-up completed');
      return await stopped;
    }
    await core.stop().catch(() => undefined);
    throw error;
  }
  logger.info({ clusterId: core.clusterId }, 'meshsync started');
  core.whenReady().then(() => logger.info({ readiness: core.readiness() }, 'meshsync ready: every source synced'), () => undefined);
  const code = await stopped;
  logger.info('meshsync stopped');
  return code;
}

/** `meshsync snapshot`: syncs once, writes the state to `out` as JSON lines, stops. */
export async function snapshot(loaded: LoadedConfig, logger: Logger, out: string, timeoutMs: number): Promise<number> {
  const core = createCoreFrom(loaded, logger);
  try {
    await core.start();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the sources did not finish their initial sync within ${timeoutMs} ms`)), timeoutMs);
    });
    await Promise.race([core.whenReady(), timeout]).finally(() => clearTimeout(timer));
    const count = await writeSnapshot(out, core.snapshot());
    logger.info({ file: out, events: count }, 'snapshot written');
  } finally {
    await core.stop();
  }
  return 0;
}


/**
 * V8 flags for a long-running sync: its old generation may grow to 3x what a major GC left alive
 * (V8 picks about 1.5x here). With the store's bytes outside the heap, what is left alive is small,
 * 1.5x of it is less room than one scavenge may promote, and V8 would mark almost without pause
 * under steady churn, stalling every few seconds. At 3x, peak RSS is unchanged and those stalls go
 * (bench/README.md, "Why the CLI raises --heap-growing-percent"). A value given on node's command line wins
 * (NODE_OPTIONS cannot carry V8 flags such as this one: node refuses to start).
 */
export function heapFlagsFor(execArgv: readonly string[]): string[] {
  return execArgv.some((arg) => /^--heap[-_]growing[-_]percent\b/.test(arg)) ? [] : ['--heap-growing-percent=200'];
}
