/**
 * The engine's settings, each defined once: name, type, default and meaning. The same schema
 * types CoreOptions, gives CORE_DEFAULTS, checks the `pipeline` key of a config (config/schema.ts)
 * and documents it on the website. Why the defaults are what they are: bench/README.md.
 */
import { z } from 'zod';

export const pipelineSchema = z.strictObject({
  batchSize: z.int().positive().default(500)
    .describe('Largest batch of events handed to a sink at once.'),
  batchMaxWaitMs: z.int().nonnegative().default(0)
    .describe('How long (ms) a partial batch waits for more events before it is delivered. 0: as soon as the sink is free; batches then form while a delivery is in flight.'),
  retryInitialMs: z.int().positive().default(200)
    .describe('First delay (ms) before a failed batch is retried; doubles with jitter up to retryMaxMs.'),
  retryMaxMs: z.int().positive().default(30_000)
    .describe('Longest delay (ms) between retries of a failed batch. Retries never stop.'),
  highWaterMark: z.int().positive().default(100_000)
    .describe('Pending events per sink above which a warning is logged; nothing is dropped (events coalesce per object).'),
  // Low, so that a burst waiting in the lanes stays a small part of V8's young generation
  // (bench/README.md, "Why sourcePauseAbove is 300").
  sourcePauseAbove: z.int().positive().default(300)
    .describe('Events held by every sink above which sources pause until a sink catches up, so a large initial sync or a burst of changes does not pile up in memory: lists wait between pages, watches stop reading (at most the kubernetes option watchHoldMaxMs; then they read on and the queues coalesce by object). One slow sink never pauses the others.'),
}).describe('How events are queued, batched and retried per sink.');

export const stopTimeoutMsSchema = z.int().nonnegative().default(10_000)
  .describe('How long (ms) a stop waits for every sink to drain before giving up on what is left; plugins then get 2 s more to close (the whole stop never takes longer). Events left undelivered are counted and logged, and `meshsync run` exits 3.');

/** How long stop taps may take after stopTimeoutMs (closing connections, servers), so the whole stop is bounded. */
export const STOP_MARGIN_MS = 2_000;

export type PipelineOptions = z.output<typeof pipelineSchema>;

/** The default of every setting. */
export const CORE_DEFAULTS: Readonly<PipelineOptions & { stopTimeoutMs: number }> = Object.freeze({ ...pipelineSchema.parse({}), stopTimeoutMs: stopTimeoutMsSchema.parse(undefined) });
