import { expect } from 'chai';
import { Agent, request } from 'node:http';
import { createServer, type Server } from 'node:net';
import { createTestCore, makeObject, POD } from '../../testing/index.ts';
import metrics from '../../plugins/metrics/index.ts';
import { freePort } from '../support/wait.ts';


/** GET over a given agent, so a test can hold a keep-alive connection open. */
function get(port: number, path: string, agent: Agent): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path, agent }, (response) => {
      let body = '';
      response.setEncoding('utf8').on('data', (chunk) => (body += chunk)).on('end', () => resolve({ status: response.statusCode!, body }));
    }).on('error', reject).end();
  });
}

function sample(text: string, line: RegExp): number {
  const match = text.split('\n').map((l) => line.exec(l)).find(Boolean);
  expect(match, String(line)).to.not.equal(undefined);
  return Number(match![1]);
}

describe('meshsync:metrics (HTTP server lifecycle)', () => {
  it('stops promptly while a scraper holds a keep-alive connection, and frees the port for the next instance', async () => {
    const port = await freePort();
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const first = createTestCore({ plugins: [metrics({ port, host: '127.0.0.1' })] });
    await first.start();
    expect((await get(port, '/healthz', agent)).status).to.equal(200);
    expect(agent.freeSockets, 'the scraper keeps its connection').to.not.deep.equal({});

    await first.stop();
    const refused = await get(port, '/healthz', new Agent()).then(() => 'answered', (error: NodeJS.ErrnoException) => error.code);
    expect(refused).to.equal('ECONNREFUSED');

    const second = createTestCore({ plugins: [metrics({ port, host: '127.0.0.1' })] });
    await second.start();
    expect((await get(port, '/readyz', new Agent())).status).to.equal(200);
    await second.stop();
    agent.destroy();
  });

  it('fails to start with MESHSYNC_LISTEN_FAILED when another program holds the port', async () => {
    const port = await freePort();
    const squatter: Server = await new Promise((resolve) => {
      const server = createServer().listen(port, '127.0.0.1', () => resolve(server));
    });
    const t = createTestCore({ plugins: [metrics({ port, host: '127.0.0.1' })] });
    try {
      const error: any = await t.start().then(() => undefined, (caught) => caught);
      expect(error?.code).to.equal('MESHSYNC_LISTEN_FAILED');
      expect(error.message).to.match(new RegExp(`meshsync:metrics cannot listen on 127\\.0\\.0\\.1:${port}: the port is already in use`));
      expect(error.remedy).to.be.a('string').and.not.equal('');
    } finally {
      await t.stop();
      await new Promise((resolve) => squatter.close(resolve));
    }
  });

  it('serves consistent counters while scraped concurrently with a stream of events', async () => {
    const port = await freePort();
    const t = createTestCore({ batchSize: 100, plugins: [metrics({ port, host: '127.0.0.1' })] });
    await t.start();
    const agent = new Agent({ keepAlive: true, maxSockets: 4 });
    try {
      const scrapes: Promise<{ status: number; body: string }>[] = [];
      for (let round = 0; round < 20; round++) {
        for (let i = 0; i < 500; i++) t.source.emit('ADDED', POD, makeObject(POD, `p${round}-${i}`));
        scrapes.push(get(port, '/metrics', agent));
        await new Promise((resolve) => setImmediate(resolve));
      }
      for (const { status, body } of await Promise.all(scrapes)) {
        expect(status).to.equal(200);
        const received = sample(body, /^meshsync_events_received_total (\d+)$/);
        const delivered = sample(body, /^meshsync_sink_events_delivered_total\{sink="test:memory-sink"\} (\d+)$/);
        const depth = sample(body, /^meshsync_queue_depth\{sink="test:memory-sink"\} (\d+)$/);
        expect(delivered + depth, 'every received event is delivered or queued').to.equal(received);
      }
      await t.drain();
      const final = (await get(port, '/metrics', agent)).body;
      expect(sample(final, /^meshsync_events_received_total (\d+)$/)).to.equal(10_000);
      expect(sample(final, /^meshsync_sink_events_delivered_total\{sink="test:memory-sink"\} (\d+)$/)).to.equal(t.sink.events.length);
      expect(sample(final, /^meshsync_event_latency_seconds_count\{sink="test:memory-sink"\} (\d+)$/)).to.equal(10_000);
    } finally {
      agent.destroy();
      await t.stop();
    }
  });
});
