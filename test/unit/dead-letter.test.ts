import { expect } from 'chai';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Batch, type Core, type ErrorReport, type KubeObject } from '../../core/index.ts';
import file from '../../plugins/file/index.ts';
import { createTestCore, makeObject, POD } from '../../testing/index.ts';

/** An object nested `depth` levels: JSON.stringify overflows the stack on it. */
export function deepObject(name: string, depth = 20_000): KubeObject {
  let spec: Record<string, unknown> = {};
  for (let i = 0; i < depth; i++) spec = { a: spec };
  return makeObject(POD, name, {}, { spec });
}

async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A sink that throws for any batch holding an event named `bad`, as a plugin with a bug for one object would. */
function picky(taken: string[], down = { now: false }) {
  return {
    name: 'test:picky',
    apply(core: Core) {
      core.hooks.sink.tapPromise('test:picky', async (batch: Batch) => {
        if (down.now) throw new Error('connection refused');
        if (batch.some((event) => event.object.metadata.name.startsWith('bad'))) throw new TypeError("Cannot read properties of undefined (reading 'x')");
        taken.push(...batch.map((event) => event.object.metadata.name));
      });
    },
  };
}

describe('dead letters (lane/retry.ts)', function () {
  this.timeout(20_000);
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'meshsync-dead-letter-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  // Found by the fuzz suite: two failing events took turns as each other's probe for ever, and
  // one-event batches widened to the same poison events again and again.
  for (const [title, names, batchSize] of [
    ['poison events side by side do not take turns as each other\'s probe', ['bad-1', 'bad-2', 'good-1', 'good-2', 'bad-3', 'good-3'], 5],
    ['poison events at the front of one-event batches reach the good one behind them', ['bad-1', 'bad-2', 'bad-3', 'good-1'], 1],
  ] as const) {
    it(`finding 2: ${title}`, async () => {
      const taken: string[] = [];
      const t = createTestCore({ plugins: [picky(taken)], batchSize, retryInitialMs: 1, retryMaxMs: 2 });
      await t.start();
      for (const name of names) t.source.emit('ADDED', POD, makeObject(POD, name));
      let timer: NodeJS.Timeout | undefined;
      const outcome = await Promise.race([t.drain().then(() => 'drained'), new Promise((resolve) => (timer = setTimeout(resolve, 3000, 'stalled')))]).finally(() => clearTimeout(timer));
      expect(outcome).to.equal('drained');
      expect(taken).to.have.members(names.filter((name) => name.startsWith('good')));
      expect(t.core.counters.sinks['test:picky'].deadLettered).to.equal(names.filter((name) => name.startsWith('bad')).length);
      await t.stop();
    });
  }

  it('finding 2: a tail of poison events is given up on only once an event behind it shows the sink works (having worked before proves nothing)', async () => {
    const taken: string[] = [];
    const t = createTestCore({ plugins: [picky(taken)], batchSize: 2, retryInitialMs: 1, retryMaxMs: 2 });
    await t.start();
    for (const name of ['good-1', 'good-2', 'bad-1', 'bad-2', 'bad-3']) t.source.emit('ADDED', POD, makeObject(POD, name));
    await until(() => taken.length === 2, 'the good events before the tail');
    await new Promise((resolve) => setTimeout(resolve, 200));
    // A sink that now fails everything looks the same as this: nothing may be condemned yet.
    expect(t.core.counters.sinks['test:picky'].deadLettered).to.equal(0);
    t.source.emit('ADDED', POD, makeObject(POD, 'good-3'));
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([t.drain().then(() => 'drained'), new Promise((resolve) => (timer = setTimeout(resolve, 3000, 'stalled')))]).finally(() => clearTimeout(timer));
    expect(outcome).to.equal('drained');
    expect(taken).to.have.members(['good-1', 'good-2', 'good-3']);
    expect(t.core.counters.sinks['test:picky'].deadLettered).to.equal(3);
    await t.stop();
  });

  it('finding 2 (HIGH): an object nested 20,000 levels is dead-lettered by the file sink, which goes on writing the events around it', async () => {
    const path = join(dir, 'events.jsonl');
    const reports: ErrorReport[] = [];
    const t = createTestCore({ plugins: [file({ path })], retryInitialMs: 1, retryMaxMs: 5 });
    t.core.hooks.error.tap('test', (report) => void reports.push(report));
    await t.start();
    t.source.emit('ADDED', POD, makeObject(POD, 'before'));
    t.source.emit('ADDED', POD, deepObject('deep'));
    t.source.emit('ADDED', POD, makeObject(POD, 'after'));
    const names = async () => (await readFile(path, 'utf8').catch(() => '')).split('\n').filter(Boolean).map((line) => JSON.parse(line).object.metadata.name as string);
    await until(async () => (await names()).includes('after'), 'the file sink to write past the deep object');
    t.source.emit('ADDED', POD, makeObject(POD, 'later'));
    await t.drain();
    expect(await names()).to.have.members(['before', 'after', 'later']);
    expect(t.core.counters.sinks['meshsync:file'].deadLettered).to.equal(1);
    const dead = reports.filter((report) => (report.error as { code?: string }).code === 'MESHSYNC_EVENT_UNDELIVERABLE');
    expect(dead, 'reported once').to.have.length(1);
    expect(dead[0].error.message).to.contain('pods.v1. default/deep (uid uid-pods-deep)').and.to.contain('Maximum call stack size exceeded');
    expect(dead[0].event?.object.metadata.name).to.equal('deep');
    await t.stop();
  });

  it('finding 2 (HIGH): a poison event alone in its batch is dead-lettered once the events behind it show the sink works', async () => {
    const taken: string[] = [];
    const t = createTestCore({ plugins: [picky(taken)], retryInitialMs: 1, retryMaxMs: 5 });
    await t.start();
    t.source.emit('ADDED', POD, makeObject(POD, 'bad-1'));
    await until(() => t.core.counters.sinks['test:picky'].failedAttempts >= 3, 'the lone poison event to fail a few times');
    t.source.emit('ADDED', POD, makeObject(POD, 'good-1'));
    t.source.emit('ADDED', POD, makeObject(POD, 'good-2'));
    await t.drain();
    expect(taken).to.have.members(['good-1', 'good-2']);
    expect(t.core.counters.sinks['test:picky'].deadLettered).to.equal(1);
    await t.stop();
  });

  it('finding 2 (HIGH): any exception a sink plugin throws for one event skips that event only, wherever it is in the batch', async () => {
    const taken: string[] = [];
    const t = createTestCore({ plugins: [picky(taken)], retryInitialMs: 1, retryMaxMs: 5 });
    await t.start();
    const names = Array.from({ length: 40 }, (_, i) => (i % 13 === 0 ? `bad-${i}` : `good-${i}`));
    for (const name of names) t.source.emit('ADDED', POD, makeObject(POD, name));
    await t.drain();
    expect(taken).to.have.members(names.filter((name) => name.startsWith('good')));
    expect(t.core.counters.sinks['test:picky'].deadLettered).to.equal(names.filter((name) => name.startsWith('bad')).length);
    await t.stop();
  });

  it('finding 2 (HIGH): a sink that is down for everything gives up on nothing, and delivers all once it is back', async () => {
    const taken: string[] = [];
    const down = { now: true };
    const t = createTestCore({ plugins: [picky(taken, down)], retryInitialMs: 1, retryMaxMs: 5 });
    await t.start();
    for (let i = 0; i < 20; i++) t.source.emit('ADDED', POD, makeObject(POD, `good-${i}`));
    await until(() => t.core.counters.sinks['test:picky'].failedAttempts >= 40, 'many failed attempts');
    t.source.emit('ADDED', POD, makeObject(POD, 'good-late'));
    await until(() => t.core.counters.sinks['test:picky'].failedAttempts >= 60, 'more failed attempts');
    down.now = false;
    await t.drain();
    expect(taken).to.have.length(21);
    expect(t.core.counters.sinks['test:picky'].deadLettered).to.equal(0);
    await t.stop();
  });

  it('finding 2 (HIGH): events of one object keep their order while a poison event is isolated', async () => {
    const taken: string[] = [];
    const seen: { name: string; type: string }[] = [];
    const t = createTestCore({ plugins: [picky(taken)], retryInitialMs: 1, retryMaxMs: 5 });
    t.core.hooks.batch.tap('test', (report) => {
      if (report.ok && report.sink === 'test:picky') for (const event of report.events) seen.push({ name: event.object.metadata.name, type: event.type });
    });
    await t.start();
    t.source.emit('ADDED', POD, makeObject(POD, 'bad-x'));
    t.source.emit('ADDED', POD, makeObject(POD, 'good-a'));
    await t.drain();
    // good-a deleted then created again: the DELETED must arrive before the new ADDED.
    t.source.emit('ADDED', POD, makeObject(POD, 'bad-y'));
    t.source.emit('DELETED', POD, makeObject(POD, 'good-a'));
    t.source.emit('ADDED', POD, makeObject(POD, 'good-a', { uid: 'uid-pods-good-a', resourceVersion: '3' }));
    await t.drain();
    const goodA = seen.filter((event) => event.name === 'good-a').map((event) => event.type);
    expect(goodA).to.deep.equal(['ADDED', 'DELETED', 'ADDED']);
    expect(t.core.counters.sinks['test:picky'].deadLettered).to.equal(2);
    await t.stop();
  });
});
