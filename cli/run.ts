/** `meshsync run` and `meshsync snapshot`: a core built from the resolved config, started and stopped. */
import { extname } from 'node:path';
import { ConfigError, createCore, MeshSyncError, type Logger, type MeshSyncCore } from '../core/index.ts';
import type { LoadedConfig } from '../config/load.ts';
import { writeSnapshot } from '../plugins/file/index.ts';
import type { ProgressDisplay } from './progress.ts';

/**
 * The core a resolved config describes; nothing runs until start(). A config without a source is
 * refused here, where the plugins' taps are known: it would sync 0 objects and call that complete.
 */
export function createCoreFrom(loaded: LoadedConfig, logger: Logger): MeshSyncCore {
  const { config } = loaded;
  const core = createCore({ plugins: loaded.plugins, clusterId: config.clusterId, logger, ...config.pipeline, stopTimeoutMs: config.stopTimeoutMs });
  if (core.hooks.source.taps.length === 0) {
    throw new ConfigError([{
      file: loaded.file,
      path: 'plugins',
      message: `no source plugin: nothing would be read and every sink would get 0 objects; add a source, meshsync:kubernetes (plugins: ${loaded.plugins.map((plugin) => plugin.name).join(', ')})`,
    }]);
  }
  return core;
}

/**
 * One Ctrl-C may reach the process more than once within milliseconds: the terminal signals the
 * whole process group, and npm (and tsx) relay what they get to their child. A signal this soon
 * after the first is that same one; only a later one means "exit without draining".
 */
export const REPEATED_SIGNAL_MS = 1000;

/** The exit code of a run stopped with events its sinks never accepted (the log gives their count per sink). */
export const EXIT_UNDELIVERED = 3;

/** `meshsync run`: syncs until a signal; a second signal (a second or more after the first) exits without draining. Resolves with the exit code. */
export async function run(loaded: LoadedConfig, logger: Logger, display?: ProgressDisplay): Promise<number> {
  const core = createCoreFrom(loaded, logger);
  let stoppingAt: number | undefined;
  const stopped = new Promise<number>((resolveStopped) => {
    const onSignal = (signal: NodeJS.Signals) => {
      if (stoppingAt !== undefined) {
        if (Date.now() - stoppingAt < REPEATED_SIGNAL_MS) return;
        const left = core.state.lanes().reduce((sum, lane) => sum + lane.pending + lane.inFlight, 0);
        logger.warn({ signal, events: left }, 'second signal: exiting without draining; these events are not delivered');
        resolveStopped(1);
        return;
      }
      stoppingAt = Date.now();
      display?.stop();
      logger.info({ signal }, 'stopping: draining sinks (a second Ctrl-C exits at once)');
      core.stop().then((report) => {
        if (report.undeliveredTotal === 0) return resolveStopped(0);
        logger.error({ events: report.undeliveredTotal, sinks: report.undelivered, code: 'MESHSYNC_STOP_TIMEOUT' },
          `stopped with ${report.undeliveredTotal} events not delivered (exit code ${EXIT_UNDELIVERED}); the next start lists the cluster again, but cannot resend a deletion among them`);
        resolveStopped(EXIT_UNDELIVERED);
      }, (error) => {
        logger.error({ err: error }, 'stop failed');
        resolveStopped(1);
      });
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  logger.info({ file: loaded.file ?? null, plugins: loaded.plugins.map((plugin) => plugin.name) }, 'meshsync starting');
  display?.follow(() => core.state.progress(), 'initial sync');
  try {
    await core.start();
  } catch (error) {
    display?.stop();
    // A signal during start-up (say, while the API server is unreachable) aborts what start waits for: a stop, not a failure.
    if (stoppingAt !== undefined) {
      logger.info('stopped before start-up completed');
      return await stopped;
    }
    await core.stop().catch(() => undefined);
    throw error;
  }
  logger.info({ clusterId: core.clusterId }, 'meshsync started');
  core.whenReady().then(() => {
    display?.stop();
    void announceReady(core, logger, () => stoppingAt !== undefined);
  }, () => undefined);
  const code = await stopped;
  logger.info('meshsync stopped');
  return code;
}

/**
 * Logs `meshsync ready` when /readyz would answer 200: every source synced and every readiness
 * check passing (the broker connected, say). Until then it says what is not ready, once.
 */
async function announceReady(core: MeshSyncCore, logger: Logger, stopping: () => boolean): Promise<void> {
  let said = false;
  while (!stopping()) {
    const readiness = core.readiness();
    const waiting = Object.keys(readiness).filter((check) => !readiness[check]);
    if (waiting.length === 0) {
      logger.info({ readiness }, 'meshsync ready: every source synced, every readiness check passes');
      return;
    }
    if (!said) logger.info({ readiness }, `every source synced; not ready yet: waiting for ${waiting.join(', ')}`);
    said = true;
    await new Promise((resolve) => setTimeout(resolve, READINESS_POLL_MS).unref());
  }
}

const READINESS_POLL_MS = 250;

/**
 * `meshsync snapshot`: syncs once, writes the state to `out` (a JSON array for `.json`, else JSON
 * lines), stops. `timeoutMs` bounds the whole run, start-up included (reading the cluster id from
 * an unreachable server retries forever). Nothing is delivered to the config's sinks.
 */
export async function snapshot(loaded: LoadedConfig, logger: Logger, out: string, timeoutMs: number, display?: ProgressDisplay): Promise<number> {
  const core = createCoreFrom(loaded, logger);
  core.holdDelivery('meshsync snapshot', true);
  core.keepStateResident(); // the state is read once synced: from memory, not listed a second time
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(resolve, timeoutMs, 'timeout')));
  display?.follow(() => core.state.progress(), 'snapshot');
  try {
    const synced = core.start().then(() => core.whenReady());
    if ((await Promise.race([synced, timedOut])) === 'timeout') {
      synced.catch(() => undefined); // stop() below aborts it
      const { waitingFor } = core.state.progress();
      throw new MeshSyncError('MESHSYNC_SNAPSHOT_TIMEOUT',
        `the snapshot did not finish within --timeout ${timeoutMs} ms: still waiting for ${waitingFor.join(', ') || 'the sources'} (the warnings above say why)`,
        { details: { waitingFor } });
    }
    display?.stop();
    const count = await writeSnapshot(out, core.snapshot(), extname(out) === '.json' ? 'json' : 'jsonl');
    logger.info({ file: out, events: count }, 'snapshot written');
  } finally {
    clearTimeout(timer);
    display?.stop();
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
