/**
 * meshsync:metrics — serves the core's Prometheus registry, liveness, readiness and a JSON status
 * page over plain HTTP. Everything it counts is read at scrape time from the core's plain counters,
 * or once per sink batch: nothing here runs per event.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Counter, Gauge, type Metric, type MetricValueWithName, type Registry } from 'prom-client';
import { z } from 'zod';
import packageJson from '../../package.json' with { type: 'json' };
import { definePlugin, MeshSyncError, redactSecretsInText, type Batch, type BatchReport, type Core, type ErrorReport } from '../../core/index.ts';

const NAME = 'meshsync:metrics';

/** Seconds from the watch delivering a change to a sink accepting it; outages push it to minutes. */
export const DEFAULT_LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

const options = z.object({
  port: z.number().int().min(0).max(65535).default(11000)
    .describe('TCP port of the HTTP server. 11000 is the port MeshSync (Go) serves /healthz and /readyz on, so existing probes keep working.'),
  host: z.string().min(1).default('0.0.0.0').describe('Address to listen on; `127.0.0.1` keeps the endpoints inside the pod (kubelet probes then need an exec probe). The server has no authentication: `meshsync install` emits a NetworkPolicy that lets only the configured namespace reach it.'),
  statusDetail: z.boolean().default(false)
    .describe('/status also shows the cluster id, resource counts, lanes, counters and the last error text of each plugin. Off: only version, readiness and error counts per plugin and code, since anyone who reaches the port reads it.'),
  server: z.object({
    maxConnections: z.number().int().positive().default(64).describe('Connections served at once; more are refused.'),
    headersTimeoutMs: z.number().int().positive().default(5000).describe('How long a client may take to send the request headers.'),
    requestTimeoutMs: z.number().int().positive().default(10_000).describe('How long a client may take to send the whole request.'),
    keepAliveTimeoutMs: z.number().int().positive().default(5000).describe('How long an idle keep-alive connection stays open.'),
    maxHeaderBytes: z.number().int().positive().default(8192).describe('Largest request headers accepted.'),
  }).strict().prefault({}).describe('Limits of the HTTP server, so slow or many clients cannot hold it.'),
  path: z.string().regex(/^\/\S*$/, 'must start with /').default('/metrics').describe('Path of the Prometheus text exposition.'),
  defaultMetrics: z.boolean().default(true)
    .describe('Also expose prom-client\'s default process metrics (CPU, memory, file descriptors, event-loop lag, GC), unprefixed.'),
  latencyBuckets: z.array(z.number().positive()).min(1).default(DEFAULT_LATENCY_BUCKETS)
    .describe('Histogram buckets (seconds) of meshsync_event_latency_seconds.'),
  liveness: z.object({
    maxEventLoopDelayMs: z.number().positive().default(5000)
      .describe('/healthz fails when the event loop was blocked longer than this.'),
    windowMs: z.number().positive().default(10_000)
      .describe('How long a blocked event loop keeps /healthz failing; a single stall then fails at most one or two probes.'),
  }).prefault({}).describe('When /healthz reports the process as stuck.'),
  readiness: z.object({
    ignore: z.array(z.string()).default([])
      .describe('Readiness checks /readyz and meshsync_ready do not wait for, e.g. `["broker"]` to be ready while NATS is down.'),
  }).prefault({}).describe('What /readyz waits for: `synced` plus every check plugins register (the NATS sink registers `broker`).'),
});

export type MetricsOptions = z.output<typeof options>;

/** The last error a plugin reported, as /status shows it. */
export interface PluginErrorStatus {
  readonly hook: string;
  readonly code?: string;
  readonly message: string;
  readonly at: string;
  readonly count: number;
}

export const metrics = definePlugin({
  name: NAME,
  description: 'Prometheus metrics, /healthz, /readyz and /status over HTTP.',
  options,
  setup: (opts) => (core) => {
    const registry = core.metrics;
    const ignored = new Set(opts.readiness.ignore);
    const readiness = () => Object.entries(core.readiness()).filter(([name]) => !ignored.has(name));
    const lastErrors = new Map<string, PluginErrorStatus>();
    const pipeline = registerPipelineMetrics(registry, core, opts, () => readiness().every(([, ok]) => ok));
    const eventLoop = new EventLoopWatch(opts.liveness.maxEventLoopDelayMs, opts.liveness.windowMs);
    let server: Server | undefined;

    core.hooks.batch.tap(NAME, (report) => pipeline.observeBatch(report));
    core.hooks.error.tap(NAME, (report) => {
      pipeline.pluginErrors.inc({ plugin: report.plugin, hook: report.hook });
      lastErrors.set(report.plugin, describeError(report, lastErrors.get(report.plugin)));
    });

    const routes: Record<string, (response: ServerResponse) => void | Promise<void>> = {
      [opts.path]: async (response) => send(response, 200, await registry.metrics(), registry.contentType),
      '/healthz': (response) => {
        const loop = eventLoop.check();
        sendJson(response, loop.healthy ? 200 : 503, { status: loop.healthy ? 'ok' : 'event loop blocked', ...loop });
      },
      '/readyz': (response) => {
        const checks = Object.fromEntries(readiness());
        const failing = Object.keys(checks).filter((name) => !checks[name]);
        sendJson(response, failing.length === 0 ? 200 : 503, { ready: failing.length === 0, failing, checks });
      },
      '/status': (response) => sendJson(response, 200, opts.statusDetail ? status(core, readiness, lastErrors) : publicStatus(core, readiness, lastErrors)),
    };

    core.hooks.start.tapPromise(NAME, async () => {
      if (opts.defaultMetrics) collectDefaultMetrics({ register: registry });
      const limits = opts.server;
      server = createServer({
        maxHeaderSize: limits.maxHeaderBytes,
        headersTimeout: limits.headersTimeoutMs,
        requestTimeout: limits.requestTimeoutMs,
        keepAliveTimeout: limits.keepAliveTimeoutMs,
        // How often those timeouts are checked (Node's default, 30 s, would let a slow client stay that long).
        connectionsCheckingInterval: Math.min(1000, limits.headersTimeoutMs),
      }, (request, response) => {
        handle(routes, request, response).catch((error: unknown) => {
          core.logger.error({ plugin: NAME, err: error }, 'metrics endpoint failed');
          if (!response.headersSent) send(response, 500, 'internal error\n');
          else response.destroy();
        });
      });
      server.maxConnections = limits.maxConnections;
      await listen(server, opts.port, opts.host);
      server.on('error', (error) => core.logger.error({ plugin: NAME, err: error }, 'metrics server error'));
      eventLoop.start();
      // The bound port: with port 0 the system picks one, and this line is how to find it.
      const bound = (server.address() as AddressInfo).port;
      core.logger.info({ plugin: NAME, address: `${opts.host}:${bound}` }, `serving ${opts.path}, /healthz, /readyz and /status`);
    });

    core.hooks.stop.tapPromise(NAME, async () => {
      eventLoop.stop();
      if (!server?.listening) return;
      const closing = new Promise<void>((resolve) => server!.close(() => resolve()));
      server.closeAllConnections(); // keep-alive scrapers would otherwise hold stop() open
      await closing;
    });
  },
});

export default metrics;

/** The core's metrics: counters mirrored from core.counters at scrape time, latency per batch. */
function registerPipelineMetrics(registry: Registry, core: Core, opts: MetricsOptions, isReady: () => boolean) {
  const registers = [registry];
  const mirror = (name: string, help: string, labelNames: string[], read: () => Iterable<[Record<string, string>, number]>) =>
    new Counter({
      name, help, labelNames, registers,
      collect() {
        this.reset();
        for (const [labels, value] of read()) this.inc(labels, value);
      },
    });
  const perLane = (name: string, help: string, value: (lane: ReturnType<Core['state']['lanes']>[number]) => number) =>
    new Gauge({
      name, help, labelNames: ['sink'], registers,
      collect() {
        this.reset();
        for (const lane of core.state.lanes()) this.set({ sink: lane.sink }, value(lane));
      },
    });
  const perSink = (field: keyof Core['counters']['sinks'][string]) => () =>
    Object.entries(core.counters.sinks).map(([sink, counts]): [Record<string, string>, number] => [{ sink }, counts[field]]);

  mirror('meshsync_events_received_total', 'Events sources emitted into the pipeline.', [], () => [[{}, core.counters.received]]);
  mirror('meshsync_events_filtered_total', 'Events a filter plugin dropped on purpose.', [], () => [[{}, core.counters.filtered]]);
  mirror('meshsync_events_dropped_total', 'Events dropped because they were malformed (invalid) or a filter/transform threw (plugin-error).', ['reason'],
    () => Object.entries(core.counters.dropped).map(([reason, value]) => [{ reason }, value]));
  mirror('meshsync_sink_events_delivered_total', 'Events a sink accepted.', ['sink'], perSink('delivered'));
  mirror('meshsync_sink_batch_failures_total', 'Batch attempts a sink rejected (each is retried).', ['sink'], perSink('failedAttempts'));
  mirror('meshsync_sink_events_dead_lettered_total', 'Events a sink never accepted while it accepted others (poison events), skipped so they cannot stall it.', ['sink'], perSink('deadLettered'));
  mirror('meshsync_sink_events_undelivered_at_stop_total', 'Events a sink had not accepted when the stop deadline (stopTimeoutMs) passed: given up on, and logged with their count.', ['sink'], perSink('undeliveredAtStop'));
  perLane('meshsync_queue_depth', 'Events waiting for a sink, pending or in flight (coalesced: at most one per object, plus deletes).',
    (lane) => lane.pending + lane.inFlight);
  perLane('meshsync_queue_oldest_event_age_seconds', 'Age of the oldest event a sink has not accepted yet; 0 when its queue is empty.',
    (lane) => lane.oldestAgeMs / 1000);
  new Gauge({
    name: 'meshsync_ready', help: '1 when /readyz would answer 200 (initial sync done and every readiness check passing), else 0.', registers,
    collect() {
      this.set(isReady() ? 1 : 0);
    },
  });
  const latency = new BatchHistogram('meshsync_event_latency_seconds', 'Seconds from the watch delivering a change to a sink accepting it.',
    'sink', opts.latencyBuckets);
  registry.registerMetric(latency as unknown as Metric); // prom-client only formats what get() returns
  const pluginErrors = new Counter({
    name: 'meshsync_plugin_errors_total', help: 'Errors plugins reported, by plugin and hook (dropped events, failed batches, source errors).',
    labelNames: ['plugin', 'hook'], registers,
  });

  return {
    pluginErrors,
    /** Called once per sink batch attempt, off the emit path. */
    observeBatch(report: BatchReport): void {
      if (report.ok && report.events.length > 0) latency.observeBatch(report.sink, report.events, Date.now());
    },
  };
}

async function handle(routes: Record<string, (response: ServerResponse) => void | Promise<void>>, request: IncomingMessage, response: ServerResponse): Promise<void> {
  const path = (request.url ?? '/').split('?', 1)[0];
  const route = Object.hasOwn(routes, path) ? routes[path] : undefined;
  if (route === undefined) return send(response, 404, `not found; try ${Object.keys(routes).join(', ')}\n`);
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    response.setHeader('allow', 'GET, HEAD');
    return send(response, 405, 'method not allowed\n');
  }
  await route(response);
}

function send(response: ServerResponse, status: number, body: string, contentType = 'text/plain; charset=utf-8'): void {
  response.writeHead(status, { 'content-type': contentType, 'cache-control': 'no-store' });
  response.end(response.req.method === 'HEAD' ? undefined : body);
}

function sendJson(response: ServerResponse, status: number, body: unknown): void {
  send(response, status, `${JSON.stringify(body, null, 2)}\n`, 'application/json; charset=utf-8');
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      server.off('listening', onListening);
      const why = error.code === 'EADDRINUSE' ? 'the port is already in use (another meshsync, or another server?)'
        : error.code === 'EACCES' ? 'permission denied (ports below 1024 need privileges)'
          : error.message;
      reject(new MeshSyncError('MESHSYNC_LISTEN_FAILED', `${NAME} cannot listen on ${host}:${port}: ${why}; set another port in its options`, {
        cause: error, details: { plugin: NAME, hook: 'start', host, port },
      }));
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(port, host);
  });
}

function status(core: Core, readiness: () => [string, boolean][], lastErrors: ReadonlyMap<string, PluginErrorStatus>) {
  const checks = Object.fromEntries(readiness());
  const resources = core.state.resourceCounts();
  return {
    name: packageJson.name,
    version: packageJson.version,
    clusterId: core.clusterId,
    started: core.state.started,
    ready: Object.values(checks).every(Boolean),
    readiness: checks,
    resources,
    unreadable: core.state.unreadableResources(),
    objects: Object.values(resources).reduce((sum, count) => sum + count, 0),
    lanes: core.state.lanes().map((lane) => ({
      sink: lane.sink, pending: lane.pending, inFlight: lane.inFlight, oldestEventAgeSeconds: lane.oldestAgeMs / 1000,
    })),
    counters: core.counters,
    plugins: core.state.statuses(),
    errors: Object.fromEntries(lastErrors),
  };
}

/** /status for anyone who reaches the port: readiness, and how many errors of which code, never their text or the cluster's identity. */
function publicStatus(core: Core, readiness: () => [string, boolean][], lastErrors: ReadonlyMap<string, PluginErrorStatus>) {
  const checks = Object.fromEntries(readiness());
  return {
    name: packageJson.name,
    version: packageJson.version,
    started: core.state.started,
    ready: Object.values(checks).every(Boolean),
    readiness: checks,
    plugins: core.state.statuses(),
    errors: Object.fromEntries([...lastErrors].map(([plugin, error]) => [plugin, { hook: error.hook, ...(error.code ? { code: error.code } : {}), at: error.at, count: error.count }])),
    detail: 'off (statusDetail: true in the metrics plugin shows the cluster id, counts, lanes and error texts)',
  };
}

/** What /status keeps of an error: the message (credentials in URLs and key=value pairs masked), never the event. */
function describeError(report: ErrorReport, previous: PluginErrorStatus | undefined): PluginErrorStatus {
  const code = (report.error as Partial<MeshSyncError>).code;
  return {
    hook: report.hook,
    ...(typeof code === 'string' ? { code } : {}),
    message: statusMessage(report.error.message),
    at: new Date().toISOString(),
    count: (previous?.count ?? 0) + 1,
  };
}

const MAX_MESSAGE_LENGTH = 500;

/** An error message fit for /status: the credentials it may quote masked, its length capped. */
export function statusMessage(message: string): string {
  const masked = redactSecretsInText(message);
  return masked.length > MAX_MESSAGE_LENGTH ? `${masked.slice(0, MAX_MESSAGE_LENGTH)}…` : masked;
}

/**
 * A histogram of event latency fed one batch at a time. prom-client's observe() hashes the labels on
 * every call, which costs more than the core spends on an event; this counts into a plain array.
 */
class BatchHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly bounds: number[];
  private readonly series = new Map<string, { counts: number[]; sum: number; count: number }>();

  constructor(readonly name: string, readonly help: string, private readonly labelName: string, buckets: readonly number[]) {
    this.bounds = [...new Set(buckets)].sort((a, b) => a - b);
  }

  /** Observes `now - observedAt` of every event, in seconds. */
  observeBatch(labelValue: string, events: Batch, now: number): void {
    let series = this.series.get(labelValue);
    if (series === undefined) this.series.set(labelValue, (series = { counts: new Array(this.bounds.length + 1).fill(0), sum: 0, count: 0 }));
    const { bounds } = this;
    const { counts } = series;
    let sum = 0;
    for (const event of events) {
      const seconds = Math.max(0, now - event.observedAt) / 1000;
      let bucket = 0;
      while (bucket < bounds.length && seconds > bounds[bucket]) bucket++;
      counts[bucket]++;
      sum += seconds;
    }
    series.sum += sum;
    series.count += events.length;
  }

  /** What the registry formats: cumulative buckets, sum and count per label value. */
  async get(): Promise<{ name: string; help: string; type: 'histogram'; aggregator: 'sum'; values: MetricValueWithName<string>[] }> {
    const values: MetricValueWithName<string>[] = [];
    for (const [labelValue, { counts, sum, count }] of this.series) {
      let cumulative = 0;
      for (let i = 0; i < counts.length; i++) {
        cumulative += counts[i];
        const le = i < this.bounds.length ? this.bounds[i] : '+Inf';
        values.push({ metricName: `${this.name}_bucket`, labels: { le, [this.labelName]: labelValue }, value: cumulative });
      }
      values.push({ metricName: `${this.name}_sum`, labels: { [this.labelName]: labelValue }, value: sum });
      values.push({ metricName: `${this.name}_count`, labels: { [this.labelName]: labelValue }, value: count });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    this.series.clear();
  }
}

/**
 * Watches the event loop by timer drift: a loop blocked for N ms runs the next tick N ms late. A
 * handler cannot answer while the loop is blocked, so /healthz reports stalls seen within a window.
 */
class EventLoopWatch {
  private readonly intervalMs: number;
  private timer: NodeJS.Timeout | undefined;
  private lastTick = 0;
  private lastDelayMs = 0;
  private worstStallMs = 0;
  private stalledAt = Number.NEGATIVE_INFINITY;

  constructor(private readonly maxDelayMs: number, private readonly windowMs: number) {
    this.intervalMs = Math.min(1000, Math.max(10, maxDelayMs / 2));
  }

  start(): void {
    this.lastTick = performance.now();
    this.timer = setInterval(() => {
      const now = performance.now();
      this.record(now - this.lastTick - this.intervalMs, now);
      this.lastTick = now;
    }, this.intervalMs).unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  check(): { healthy: boolean; eventLoopDelayMs: number; worstRecentStallMs: number; maxEventLoopDelayMs: number } {
    const now = performance.now();
    if (this.timer !== undefined) this.record(now - this.lastTick - this.intervalMs, now); // a tick overdue right now counts too
    const recent = now - this.stalledAt <= this.windowMs;
    if (!recent) this.worstStallMs = 0;
    return {
      healthy: !recent,
      eventLoopDelayMs: Math.round(this.lastDelayMs),
      worstRecentStallMs: Math.round(this.worstStallMs),
      maxEventLoopDelayMs: this.maxDelayMs,
    };
  }

  private record(delayMs: number, now: number): void {
    this.lastDelayMs = Math.max(0, delayMs);
    if (delayMs > this.maxDelayMs) {
      this.stalledAt = now;
      this.worstStallMs = Math.max(this.worstStallMs, delayMs);
    }
  }
}
