import { expect } from 'chai';
import { Gauge } from 'prom-client';
import { z } from 'zod';
import packageJson from '../../package.json' with { type: 'json' };
import { createCore } from '../../core/core.ts';
import { ConfigError } from '../../core/errors.ts';
import { definePlugin } from '../../core/plugin.ts';
import { createTestCore, makeObject, memorySink, memorySource, POD, type TestCore } from '../../testing/index.ts';
import type { Plugin } from '../../core/types.ts';
import metrics, { statusMessage } from '../../plugins/metrics/index.ts';
import { connect } from 'node:net';
import { freePort } from '../support/wait.ts';



interface Sample { name: string; labels: Record<string, string>; value: number }

/** Parses the Prometheus text format (what /metrics serves) into samples and TYPE lines. */
function parseExposition(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) {
      expect(types.has(type[1]), `${type[1]} is declared once`).to.equal(false);
      types.set(type[1], type[2]);
      continue;
    }
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    expect(match, `a valid sample line: ${line}`).to.not.equal(null);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match![2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[key] = value;
    samples.push({ name: match![1], labels, value: Number(match![3]) });
  }
  return { samples, types };
}

function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

async function scrape(port: number, path = '/metrics') {
  const response = await fetch(`http://127.0.0.1:${port}${path}`);
  expect(response.status).to.equal(200);
  expect(response.headers.get('content-type')).to.match(/^text\/plain/);
  return parseExposition(await response.text());
}

async function getJson(port: number, path: string): Promise<{ status: number; body: any }> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`);
  expect(response.headers.get('content-type')).to.match(/^application\/json/);
  return { status: response.status, body: await response.json() };
}

/** Drops pods in namespace `skip`; throws on a pod named `boom` (a plugin error that drops the event). */
const pickyPlugin = definePlugin({
  name: 'test:picky',
  description: '',
  options: z.object({}),
  setup: () => (core) => {
    core.hooks.filter.tap('test:picky', (event) => (event.object.metadata.namespace === 'skip' ? false : undefined));
    core.hooks.transform.tap('test:picky', (event) => {
      if (event.object.metadata.name === 'boom') throw new Error('cannot transform boom');
      return event;
    });
  },
})();

function brokerCheck(state: { up: boolean }): Plugin {
  return { name: 'test:broker', apply: (core) => core.addReadinessCheck('broker', () => state.up) };
}

describe('meshsync:metrics', () => {
  let running: { stop(): Promise<unknown> }[] = [];
  afterEach(async () => {
    await Promise.all(running.map((core) => core.stop()));
    running = [];
  });

  async function startTestCore(options: Parameters<typeof metrics>[0] = {}, plugins: Plugin[] = []): Promise<{ t: TestCore; port: number }> {
    const port = await freePort();
    const t = createTestCore({ plugins: [metrics({ port, host: '127.0.0.1', ...options }), ...plugins] });
    running.push(t);
    await t.start();
    return { t, port };
  }

  describe('options', () => {
    it('defaults to the port MeshSync serves its probes on, every address, and /metrics', () => {
      expect(metrics().options).to.deep.include({ port: 11000, host: '0.0.0.0', path: '/metrics', defaultMetrics: true });
      expect(metrics().options).to.deep.include({ liveness: { maxEventLoopDelayMs: 5000, windowMs: 10_000 }, readiness: { ignore: [] } });
    });

    it('rejects bad options with every problem and its path', () => {
      let error: unknown;
      try {
        metrics({ port: 70000, path: 'metrics' });
      } catch (caught) {
        error = caught;
      }
      expect(error).to.be.instanceOf(ConfigError);
      expect((error as ConfigError).code).to.equal('MESHSYNC_PLUGIN_OPTIONS');
      expect((error as ConfigError).problems.map((p) => p.path)).to.have.members(['meshsync:metrics options.port', 'meshsync:metrics options.path']);
    });

    it('has a schema the website can turn into JSON Schema, with a description on every option', () => {
      const schema = z.toJSONSchema(metrics.optionsSchema, { io: 'input' }) as any;
      for (const key of ['port', 'host', 'path', 'defaultMetrics', 'latencyBuckets', 'liveness', 'readiness']) {
        expect(schema.properties[key].description, key).to.be.a('string').and.not.equal('');
      }
    });
  });

  describe('/metrics', () => {
    it('counts received, filtered, dropped, delivered events and plugin errors after a known sequence', async () => {
      const { t, port } = await startTestCore({}, [pickyPlugin]);
      for (const name of ['a', 'b', 'c']) t.source.emit('ADDED', POD, makeObject(POD, name));
      t.source.emit('ADDED', POD, makeObject(POD, 'd', { namespace: 'skip' }));
      t.source.emit('ADDED', POD, makeObject(POD, 'boom'));
      t.source.emit('ADDED', POD, makeObject(POD, undefined as unknown as string));
      await t.drain();

      const { samples, types } = await scrape(port);
      const sink = { sink: 'test:memory-sink' };
      expect(value(samples, 'meshsync_events_received_total')).to.equal(6);
      expect(value(samples, 'meshsync_events_filtered_total')).to.equal(1);
      expect(value(samples, 'meshsync_events_dropped_total', { reason: 'invalid' })).to.equal(1);
      expect(value(samples, 'meshsync_events_dropped_total', { reason: 'plugin-error' })).to.equal(1);
      expect(value(samples, 'meshsync_sink_events_delivered_total', sink)).to.equal(3);
      expect(value(samples, 'meshsync_sink_batch_failures_total', sink)).to.equal(0);
      expect(value(samples, 'meshsync_sink_events_dead_lettered_total', sink)).to.equal(0);
      expect(value(samples, 'meshsync_queue_depth', sink)).to.equal(0);
      expect(value(samples, 'meshsync_queue_oldest_event_age_seconds', sink)).to.equal(0);
      expect(value(samples, 'meshsync_event_latency_seconds_count', sink)).to.equal(3);
      expect(value(samples, 'meshsync_event_latency_seconds_bucket', { ...sink, le: '+Inf' })).to.equal(3);
      expect(value(samples, 'meshsync_ready')).to.equal(1);
      expect(value(samples, 'meshsync_plugin_errors_total', { plugin: 'test:picky', hook: 'transform' })).to.equal(1);
      expect(value(samples, 'meshsync_plugin_errors_total', { plugin: 'test:memory-source', hook: 'source' })).to.equal(1);

      expect(Object.fromEntries([...types].filter(([name]) => name.startsWith('meshsync_')))).to.deep.equal({
        meshsync_events_received_total: 'counter',
        meshsync_events_filtered_total: 'counter',
        meshsync_events_dropped_total: 'counter',
        meshsync_sink_events_delivered_total: 'counter',
        meshsync_sink_batch_failures_total: 'counter',
        meshsync_sink_events_dead_lettered_total: 'counter',
        meshsync_sink_events_undelivered_at_stop_total: 'counter',
        meshsync_queue_depth: 'gauge',
        meshsync_queue_oldest_event_age_seconds: 'gauge',
        meshsync_ready: 'gauge',
        meshsync_event_latency_seconds: 'histogram',
        meshsync_plugin_errors_total: 'counter',
      });
      expect(types.get('process_cpu_user_seconds_total'), 'default process metrics, unprefixed').to.equal('counter');
      expect(types.get('nodejs_eventloop_lag_seconds')).to.equal('gauge');
    });

    it('shows what a failing sink holds, then its failed attempts once it recovers', async () => {
      const { t, port } = await startTestCore();
      t.sink.failing = true;
      t.source.emit('ADDED', POD, makeObject(POD, 'a'));
      t.source.emit('ADDED', POD, makeObject(POD, 'b'));
      await waitUntil(() => t.sink.rejected >= 2);

      const during = (await scrape(port)).samples;
      const sink = { sink: 'test:memory-sink' };
      expect(value(during, 'meshsync_queue_depth', sink)).to.equal(2);
      expect(value(during, 'meshsync_queue_oldest_event_age_seconds', sink)).to.be.greaterThan(0);
      expect(value(during, 'meshsync_sink_events_delivered_total', sink)).to.equal(0);
      expect(value(during, 'meshsync_event_latency_seconds_count', sink), 'a rejected batch has no latency').to.equal(undefined);

      t.sink.failing = false;
      await t.drain();
      const after = (await scrape(port)).samples;
      expect(value(after, 'meshsync_queue_depth', sink)).to.equal(0);
      expect(value(after, 'meshsync_sink_events_delivered_total', sink)).to.equal(2);
      expect(value(after, 'meshsync_sink_batch_failures_total', sink)).to.equal(t.sink.rejected);
      expect(value(after, 'meshsync_plugin_errors_total', { plugin: 'test:memory-sink', hook: 'sink' })).to.equal(t.sink.rejected);
      expect(value(after, 'meshsync_event_latency_seconds_count', sink)).to.equal(2);
    });

    it('puts each delivered event in the latency bucket of its age since the watch delivered it', async () => {
      const port = await freePort();
      const now = Date.now();
      const ages = [0, 5, 5, 50, 400]; // seconds before emit; delivery adds well under a second
      const agedSource = definePlugin({
        name: 'test:aged-source', description: '', options: z.object({}),
        setup: () => (core) => core.hooks.source.tap('test:aged-source', (ctx) => {
          ages.forEach((age, i) => ctx.emit('ADDED', POD, makeObject(POD, `p${i}`), now - age * 1000));
          ctx.synced();
        }),
      })();
      const sink = memorySink();
      const core = createCore({ batchMaxWaitMs: 5, plugins: [agedSource, metrics({ port, host: '127.0.0.1', latencyBuckets: [10, 1, 100] }), sink.plugin] });
      running.push(core);
      await core.start();
      await core.drain();
      const { samples } = await scrape(port);
      const bucket = (le: string) => value(samples, 'meshsync_event_latency_seconds_bucket', { sink: 'test:memory-sink', le });
      expect([bucket('1'), bucket('10'), bucket('100'), bucket('+Inf')], 'cumulative counts, buckets sorted').to.deep.equal([1, 3, 4, 5]);
      expect(value(samples, 'meshsync_event_latency_seconds_count', { sink: 'test:memory-sink' })).to.equal(5);
      expect(value(samples, 'meshsync_event_latency_seconds_sum', { sink: 'test:memory-sink' })).to.be.within(460, 465);
    });

    it('serves the registry other plugins register their metrics in, on the configured path', async () => {
      const port = await freePort();
      const extra: Plugin = {
        name: 'test:extra',
        apply: (core) => {
          core.metrics.registerMetric(new Gauge({ name: 'meshsync_broker_connected', help: 'test', registers: [] }));
        },
      };
      const t = createTestCore({ plugins: [extra, metrics({ port, host: '127.0.0.1', path: '/prom', defaultMetrics: false })] });
      running.push(t);
      await t.start();
      const { types } = await scrape(port, '/prom');
      expect(types.get('meshsync_broker_connected')).to.equal('gauge');
      expect(types.has('process_cpu_user_seconds_total'), 'default metrics off').to.equal(false);
      expect((await fetch(`http://127.0.0.1:${port}/metrics`)).status).to.equal(404);
    });
  });

  describe('/readyz', () => {
    it('answers 503 naming `synced` until the sources synced, then 200', async () => {
      const port = await freePort();
      const source = memorySource('test:slow-source', { syncedAtStart: false });
      const core = createCore({ plugins: [source.plugin, metrics({ port, host: '127.0.0.1' }), memorySink().plugin] });
      running.push(core);
      await core.start();

      const before = await getJson(port, '/readyz');
      expect(before.status).to.equal(503);
      expect(before.body).to.deep.equal({ ready: false, failing: ['synced'], checks: { synced: false } });
      expect(value((await scrape(port)).samples, 'meshsync_ready')).to.equal(0);

      source.handle.synced();
      const after = await getJson(port, '/readyz');
      expect(after.status).to.equal(200);
      expect(after.body).to.deep.equal({ ready: true, failing: [], checks: { synced: true } });
      expect(value((await scrape(port)).samples, 'meshsync_ready')).to.equal(1);
    });

    it('answers 503 naming a failing readiness check, and 200 once it passes', async () => {
      const broker = { up: false };
      const { port } = await startTestCore({}, [brokerCheck(broker)]);
      const down = await getJson(port, '/readyz');
      expect(down.status).to.equal(503);
      expect(down.body.failing).to.deep.equal(['broker']);
      expect(down.body.checks).to.deep.equal({ synced: true, broker: false });

      broker.up = true;
      expect((await getJson(port, '/readyz')).status).to.equal(200);
    });

    it('does not wait for the checks listed in readiness.ignore', async () => {
      const { port } = await startTestCore({ readiness: { ignore: ['broker'] } }, [brokerCheck({ up: false })]);
      const ready = await getJson(port, '/readyz');
      expect(ready.status).to.equal(200);
      expect(ready.body.checks).to.deep.equal({ synced: true });
      expect(value((await scrape(port)).samples, 'meshsync_ready')).to.equal(1);
    });
  });

  describe('/healthz', () => {
    it('answers 200 while the event loop runs freely', async () => {
      const { port } = await startTestCore();
      const health = await getJson(port, '/healthz');
      expect(health.status).to.equal(200);
      expect(health.body).to.include({ status: 'ok', healthy: true, maxEventLoopDelayMs: 5000 });
    });

    it('answers 503 after the event loop was blocked longer than the limit, and 200 again once the window passed', async () => {
      const { port } = await startTestCore({ liveness: { maxEventLoopDelayMs: 200, windowMs: 400 } });
      blockEventLoop(800);
      const stuck = await getJson(port, '/healthz');
      expect(stuck.status).to.equal(503);
      expect(stuck.body).to.include({ status: 'event loop blocked', healthy: false });
      expect(stuck.body.worstRecentStallMs).to.be.greaterThan(200);

      await new Promise((resolve) => setTimeout(resolve, 600));
      expect((await getJson(port, '/healthz')).status).to.equal(200);
    });
  });

  describe('/status', () => {
    it('reports version, cluster id, readiness, resource counts, lanes, counters and the last error per plugin', async () => {
      const broker = { up: false };
      const { t, port } = await startTestCore({ statusDetail: true }, [pickyPlugin, brokerCheck(broker)]);
      for (const name of ['a', 'b', 'c']) t.source.emit('ADDED', POD, makeObject(POD, name));
      t.source.emit('ADDED', POD, makeObject(POD, 'boom'));
      await t.drain();

      const { status, body } = await getJson(port, '/status');
      expect(status).to.equal(200);
      expect(body).to.include({ name: 'meshsync', version: packageJson.version, clusterId: 'test-cluster', started: true, ready: false, objects: 4 });
      expect(body.readiness).to.deep.equal({ synced: true, broker: false });
      expect(body.resources).to.deep.equal({ 'pods.v1.': 4 });
      expect(body.lanes).to.deep.equal([{ sink: 'test:memory-sink', pending: 0, inFlight: 0, oldestEventAgeSeconds: 0 }]);
      expect(body.counters).to.deep.include({ received: 4, filtered: 0 });
      expect(body.counters.sinks).to.deep.equal({ 'test:memory-sink': { delivered: 3, failedAttempts: 0, deadLettered: 0, undeliveredAtStop: 0 } });
      expect(body.errors['test:picky']).to.include({ hook: 'transform', code: 'MESHSYNC_PLUGIN_FAILED', count: 1 });
      expect(body.errors['test:picky'].message).to.contain('cannot transform boom');
      expect(JSON.stringify(body.errors), 'errors carry messages, not the event').to.not.contain('uid-pods-boom');
    });

    it('finding 7 (LOW): without statusDetail, /status shows neither the cluster id nor error texts, only readiness and error counts', async () => {
      const { t, port } = await startTestCore({}, [pickyPlugin]);
      t.source.emit('ADDED', POD, makeObject(POD, 'boom'));
      await t.drain();
      const { status, body } = await getJson(port, '/status');
      expect(status).to.equal(200);
      expect(JSON.stringify(body)).to.not.contain('test-cluster').and.not.contain('cannot transform boom');
      expect(body).to.not.have.any.keys('clusterId', 'resources', 'lanes', 'counters');
      expect(body).to.include({ name: 'meshsync', ready: true });
      expect(body.errors['test:picky']).to.include({ hook: 'transform', code: 'MESHSYNC_PLUGIN_FAILED', count: 1 }).and.not.have.key('message');
    });

    it('shows what each plugin tells of itself (addStatus), with and without statusDetail; a reader that throws shows its error', async () => {
      let state = 'available';
      const telling: Plugin = { name: 'test:telling', apply: (core) => {
        core.addStatus('test:telling', () => ({ ledger: state }));
        core.addStatus('test:broken', () => { throw new Error('not now'); });
      } };
      for (const statusDetail of [false, true]) {
        const { port } = await startTestCore({ statusDetail }, [telling]);
        expect((await getJson(port, '/status')).body.plugins).to.deep.equal({ 'test:telling': { ledger: state }, 'test:broken': { error: 'not now' } });
        state = 'unavailable';
        expect((await getJson(port, '/status')).body.plugins['test:telling']).to.deep.equal({ ledger: 'unavailable' });
      }
    });

    it('never shows credentials an error message quotes', async () => {
      const leaky = definePlugin({
        name: 'test:leaky', description: '', options: z.object({}),
        setup: () => (core) => core.hooks.transform.tap('test:leaky', () => {
          throw new Error('cannot reach nats://meshsync:hunter2@broker:4222 with token=abc123');
        }),
      })();
      const { t, port } = await startTestCore({ statusDetail: true }, [leaky]);
      t.source.emit('ADDED', POD, makeObject(POD, 'a'));
      const { body } = await getJson(port, '/status');
      const message = body.errors['test:leaky'].message as string;
      expect(message).to.not.contain('hunter2').and.not.contain('abc123');
      expect(message).to.contain('nats://meshsync:[redacted]@broker:4222');
    });
  });

  describe('the HTTP server: finding 7 (LOW), limits', () => {
    it('finding 7 (LOW): closes a connection that has not sent its headers within headersTimeoutMs (a slow client cannot hold it)', async function () {
      this.timeout(10_000);
      const { port } = await startTestCore({ server: { headersTimeoutMs: 300, requestTimeoutMs: 600 } });
      const socket = connect(port, '127.0.0.1');
      socket.write('GET /metrics HTTP/1.1\r\nHost: x\r\n');
      const started = Date.now();
      let answer = '';
      socket.on('data', (chunk) => (answer += chunk));
      await new Promise<void>((resolve) => socket.on('close', () => resolve()).on('error', () => undefined));
      expect(answer).to.match(/^HTTP\/1.1 408/);
      expect(Date.now() - started).to.be.below(5000);
    });

    it('finding 7 (LOW): serves at most maxConnections connections at once', async () => {
      const { port } = await startTestCore({ server: { maxConnections: 2 } });
      const idle = [connect(port, '127.0.0.1'), connect(port, '127.0.0.1')];
      await Promise.all(idle.map((socket) => new Promise((resolve) => socket.on('connect', resolve))));
      await new Promise((resolve) => setTimeout(resolve, 50));
      const refused = await fetch(`http://127.0.0.1:${port}/healthz`).then(() => false, () => true);
      for (const socket of idle) socket.destroy();
      expect(refused).to.equal(true);
    });
  });

  describe('the HTTP server', () => {
    it('answers 404 on unknown paths, 405 on other methods, and HEAD without a body', async () => {
      const { port } = await startTestCore();
      expect((await fetch(`http://127.0.0.1:${port}/nope`)).status).to.equal(404);
      const post = await fetch(`http://127.0.0.1:${port}/metrics`, { method: 'POST' });
      expect(post.status).to.equal(405);
      expect(post.headers.get('allow')).to.equal('GET, HEAD');
      const head = await fetch(`http://127.0.0.1:${port}/readyz`, { method: 'HEAD' });
      expect(head.status).to.equal(200);
      expect(await head.text()).to.equal('');
      expect((await fetch(`http://127.0.0.1:${port}/metrics?debug=1`)).status, 'query strings are ignored').to.equal(200);
    });

    it('fails a second start on the same port with a clear error', async () => {
      const { port } = await startTestCore();
      const second = createTestCore({ plugins: [metrics({ port, host: '127.0.0.1' })] });
      running.push(second);
      let error: any;
      await second.start().catch((caught) => {
        error = caught;
      });
      expect(error, 'the second start rejects').to.not.equal(undefined);
      expect(error.code).to.equal('MESHSYNC_LISTEN_FAILED');
      expect(error.message).to.contain(`127.0.0.1:${port}`).and.contain('already in use');
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 'the first keeps serving').to.equal(200);
    });
  });

  describe('hot path', () => {
    it('taps no per-event hook: it reads counters at scrape time and observes latency per batch', () => {
      const t = createTestCore({ plugins: [metrics({ port: 0 })] });
      const tapsOf = (hook: { taps: { name: string }[] }) => hook.taps.map((tap) => tap.name);
      expect(tapsOf(t.core.hooks.filter as never)).to.not.include('meshsync:metrics');
      expect(tapsOf(t.core.hooks.transform as never)).to.not.include('meshsync:metrics');
      expect(tapsOf(t.core.hooks.batch as never)).to.include('meshsync:metrics');
    });
  });

  describe('statusMessage', () => {
    const cases: [string, string][] = [
      ['dial nats://user:pa55@nats:4222 failed', 'dial nats://user:[redacted]@nats:4222 failed'],
      ['bad password=s3cret here', 'bad password=[redacted] here'],
      ['sent Authorization: Bearer abc.def-123', 'sent Authorization: [redacted] [redacted]'],
      ['plain message', 'plain message'],
    ];
    for (const [input, expected] of cases) {
      it(`masks ${JSON.stringify(input)}`, () => expect(statusMessage(input)).to.equal(expected));
    }

    it('caps long messages', () => expect(statusMessage('x'.repeat(2000)).length).to.be.at.most(501));
  });
});

function blockEventLoop(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) { /* busy: what a stuck loop looks like */ }
}

async function waitUntil(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
