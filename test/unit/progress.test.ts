import { expect } from 'chai';
import { PassThrough } from 'node:stream';
import { createCore } from '../../core/core.ts';
import type { Plugin, SourceContext, SourceProgress } from '../../core/types.ts';
import { createProgressDisplay, renderProgress } from '../../cli/progress.ts';

/** A source whose progress and sync the test drives, behind a clusterId tap the test releases. */
function steppedSource() {
  let ctx: SourceContext | undefined;
  let releaseClusterId!: (id: string) => void;
  let progress: SourceProgress = { waitingFor: 'discovery', resources: [] };
  const plugin: Plugin = {
    name: 'test:source',
    apply(core) {
      core.hooks.clusterId.tapPromise('test:source', () => new Promise((resolve) => (releaseClusterId = resolve)));
      core.hooks.source.tapPromise('test:source', async (context) => {
        ctx = context;
        context.provideProgress(() => progress);
      });
    },
  };
  return {
    plugin,
    releaseClusterId: (id: string) => releaseClusterId(id),
    set: (next: SourceProgress) => (progress = next),
    synced: () => ctx!.synced(),
  };
}

describe('sync progress', () => {
  it('says what start-up and the initial sync wait for, phase by phase', async () => {
    const source = steppedSource();
    const core = createCore({ plugins: [source.plugin] });
    expect(core.state.progress()).to.deep.include({ phase: 'created', waitingFor: [] });
    const started = core.start();
    await new Promise((resolve) => setImmediate(resolve));
    expect(core.state.progress()).to.deep.include({ phase: 'cluster id', waitingFor: ['the cluster id'] });
    source.releaseClusterId('c1');
    await started;
    expect(core.state.progress()).to.deep.include({ phase: 'sync', waitingFor: ['test:source: discovery'] });
    source.set({ resources: [{ id: 'pods.v1.', objects: 40, listed: false }, { id: 'nodes.v1.', objects: 2, listed: true }] });
    expect(core.state.progress()).to.deep.include({ phase: 'sync', waitingFor: ['pods.v1.'], objects: 42 });
    source.synced();
    expect(core.state.progress()).to.deep.include({ phase: 'synced', waitingFor: [] });
    await core.stop();
  });

  it('renders objects per resource still listing, the total, the rate and what else is awaited', () => {
    const text = renderProgress({
      phase: 'sync',
      waitingFor: ['pods.v1.', 'meshsync:other: discovery'],
      resources: [{ id: 'pods.v1.', objects: 1500, listed: false }, { id: 'nodes.v1.', objects: 500, listed: true }],
      objects: 2000,
    }, 'initial sync', 4000);
    expect(text.split('\n')).to.deep.equal([
      'initial sync: 2,000 objects, 500/s, 1 of 2 resources listed, 4 s',
      `  ${'pods.v1.'.padEnd(40)}     1,500 listing`,
      '  waiting for meshsync:other: discovery',
    ]);
  });

  it('draws in place on a terminal, with log lines above it, and leaves only the log lines when stopped', async () => {
    const terminal = Object.assign(new PassThrough(), { isTTY: true, rows: 40, columns: 120 }) as unknown as NodeJS.WriteStream;
    let written = '';
    (terminal as unknown as PassThrough).on('data', (chunk: Buffer) => (written += chunk.toString()));
    const display = createProgressDisplay(terminal, () => 0);
    display.logStream.write('before the display\n');
    display.follow(() => ({ phase: 'sync', waitingFor: [], resources: [{ id: 'pods.v1.', objects: 7, listed: false }], objects: 7 }), 'snapshot');
    display.logStream.write('a log line\n');
    display.stop();
    display.logStream.write('after\n');
    await new Promise((resolve) => setImmediate(resolve));
    const plain = written.replace(/\u001B\[[0-9;?]*[A-Za-z]/g, '');
    expect(plain).to.match(/^before the display\n/);
    expect(plain).to.contain('snapshot: 7 objects').and.contain('a log line').and.match(/after\n$/);
    expect(written).to.contain('\u001B[1A'); // the frame is erased and redrawn, not appended
  });
});
