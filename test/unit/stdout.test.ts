import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { Writable } from 'node:stream';
import { join } from 'node:path';
import { createTestCore, makeObject, POD, DEPLOYMENT } from '../../testing/index.ts';
import type { ResourceRef } from '../../core/types.ts';
import stdoutDefault, { stdout, stdoutTo, prettyLine } from '../../plugins/stdout/index.ts';
import { eventLine } from '../../core/event.ts';

/** A writable that records each write call and can hold its buffer full until released. */
class RecordingStream extends Writable {
  readonly writes: string[] = [];
  isTTY?: boolean;
  private pending: (() => void)[] = [];
  constructor(options: { highWaterMark?: number; slow?: boolean } = {}) {
    super({ highWaterMark: options.highWaterMark ?? 16 * 1024, decodeStrings: false });
    this.slow = options.slow ?? false;
  }
  slow: boolean;
  override _write(chunk: unknown, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    this.writes.push(String(chunk));
    if (this.slow) this.pending.push(() => done());
    else done();
  }
  release(): void {
    this.slow = false;
    for (const done of this.pending.splice(0)) done();
  }
}

const NODE: ResourceRef = { group: '', version: 'v1', resource: 'nodes', kind: 'Node', namespaced: false };

describe('meshsync:stdout', () => {
  it('is exported as a named and a default export', () => {
    expect(stdoutDefault).to.equal(stdout);
    expect(stdout.pluginName).to.equal('meshsync:stdout');
  });

  it('writes one JSON line per event with type, resource id, cluster id and object, one write per batch', async () => {
    const out = new RecordingStream();
    const t = createTestCore({ plugins: [stdoutTo(out, { format: 'json' })] });
    await t.start();
    t.source.emit('ADDED', POD, makeObject(POD, 'web', { resourceVersion: '7' }));
    t.source.emit('ADDED', DEPLOYMENT, makeObject(DEPLOYMENT, 'web'));
    await t.drain();
    expect(out.writes).to.have.length(1);
    const lines = out.writes[0].split('\n');
    expect(lines.pop()).to.equal('', 'every line ends with a newline');
    const records = lines.map((line) => JSON.parse(line));
    expect(Object.keys(records[0])).to.deep.equal(['type', 'resource', 'cluster_id', 'object']);
    expect(records.map((record) => [record.type, record.resource, record.cluster_id, record.object.metadata.name]))
      .to.deep.equal([['ADDED', 'pods.v1.', 'test-cluster', 'web'], ['ADDED', 'deployments.v1.apps', 'test-cluster', 'web']]);
    await t.stop();
  });

  it('writes readable lines on a terminal when the format is auto', async () => {
    const out = new RecordingStream();
    out.isTTY = true;
    const t = createTestCore({ plugins: [stdoutTo(out)] });
    await t.start();
    t.source.emit('MODIFIED', POD, makeObject(POD, 'web-7d9', { resourceVersion: '1234' }));
    await t.drain();
    expect(out.writes[0]).to.match(/^\d\d:\d\d:\d\d MODIFIED pods\.v1\.  default\/web-7d9  rv=1234\n$/);
    await t.stop();
  });

  it('formats the time of observation, pads the type and leaves the namespace out for cluster-scoped objects', () => {
    const at = new Date(2026, 0, 2, 12, 0, 1).getTime();
    expect(prettyLine({ type: 'ADDED', resource: POD, object: makeObject(POD, 'web-7d9', { resourceVersion: '1234' }), clusterId: 'c', observedAt: at }))
      .to.equal('12:00:01 ADDED    pods.v1.  default/web-7d9  rv=1234');
    expect(prettyLine({ type: 'DELETED', resource: NODE, object: makeObject(NODE, 'node-1', { resourceVersion: '9' }), clusterId: 'c', observedAt: at }))
      .to.equal('12:00:01 DELETED  nodes.v1.  node-1  rv=9');
  });

  it('waits for the stream to drain before accepting the batch (backpressure)', async () => {
    const out = new RecordingStream({ highWaterMark: 16, slow: true });
    const t = createTestCore({ plugins: [stdoutTo(out, { format: 'json' })] });
    await t.start();
    t.source.emit('ADDED', POD, makeObject(POD, 'web'));
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(out.writes).to.have.length(1, 'the batch was written');
    expect(t.sink.events).to.have.length(1, 'the other sink is not held up');
    expect(t.core.state.lanes().find((lane) => lane.sink === 'meshsync:stdout')?.inFlight).to.equal(1, 'not accepted while the stream is full');
    out.release();
    await t.drain();
    expect(t.core.counters.sinks['meshsync:stdout'].delivered).to.equal(1);
    await t.stop();
  });

  it('rejects the batch on a write error so the core retries it', async () => {
    let calls = 0;
    const writes: string[] = [];
    const out = {
      write(chunk: string, callback: (error?: Error | null) => void) {
        calls++;
        if (calls === 1) setImmediate(() => callback(new Error('EPIPE')));
        else {
          writes.push(chunk);
          setImmediate(() => callback());
        }
        return true;
      },
      on: () => out,
      once: () => out,
      removeListener: () => out,
    };
    const t = createTestCore({ plugins: [stdoutTo(out as never, { format: 'json' })] });
    await t.start();
    t.source.emit('ADDED', POD, makeObject(POD, 'web'));
    await t.drain();
    expect(t.core.counters.sinks['meshsync:stdout'].failedAttempts).to.equal(1);
    expect(writes.map((chunk) => JSON.parse(chunk).object.metadata.name)).to.deep.equal(['web'], 'the same batch, written again');
    await t.stop();
  });

  it('writes JSON lines on the real stdout of a process when stdout is a pipe', async function () {
    this.timeout(30_000); // starts a node process with tsx
    const script = `
      import { createTestCore, makeObject, POD } from './testing/index.ts';
      import { stdout } from './plugins/stdout/index.ts';
      const t = createTestCore({ plugins: [stdout()] });
      await t.start();
      t.source.emit('ADDED', POD, makeObject(POD, 'web'));
      await t.drain();
      await t.stop();
    `;
    const root = join(import.meta.dirname, '../..');
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    const code = await new Promise((resolve) => child.on('close', resolve));
    expect(code).to.equal(0);
    expect(output).to.equal(`${eventLine({ type: 'ADDED', resource: POD, object: makeObject(POD, 'web'), clusterId: 'test-cluster', observedAt: 0 })}\n`);
  });
});
