import { expect } from 'chai';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestCore, makeObject, POD, SECRET } from '../../testing/index.ts';
import type { SyncEvent } from '../../core/types.ts';
import fileDefault, { file, writeSnapshot } from '../../plugins/file/index.ts';

const readLines = async (path: string) => (await readFile(path, 'utf8')).split('\n').filter(Boolean).map((line) => JSON.parse(line));

describe('meshsync:file', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'meshsync-file-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('is exported as a named and a default export', () => {
    expect(fileDefault).to.equal(file);
    expect(file.pluginName).to.equal('meshsync:file');
  });

  it('appends every event as a JSON line in events mode, after what the file already held', async () => {
    const path = join(dir, 'sub', 'events.jsonl');
    const first = createTestCore({ plugins: [file({ path })] });
    await first.start();
    first.source.emit('ADDED', POD, makeObject(POD, 'a'));
    await first.stop();
    const t = createTestCore({ plugins: [file({ path, mode: 'events' })] });
    await t.start();
    t.source.emit('ADDED', POD, makeObject(POD, 'b'));
    await t.drain();
    t.source.emit('DELETED', POD, makeObject(POD, 'b'));
    await t.stop();
    const lines = await readLines(path);
    expect(lines.map((line) => [line.type, line.resource, line.cluster_id, line.object.metadata.name]))
      .to.deep.equal([['ADDED', 'pods.v1.', 'test-cluster', 'a'], ['ADDED', 'pods.v1.', 'test-cluster', 'b'], ['DELETED', 'pods.v1.', 'test-cluster', 'b']]);
  });

  it('keeps the latest state per object in snapshot mode and writes it at stop', async () => {
    const path = join(dir, 'snapshot.jsonl');
    const t = createTestCore({ plugins: [file({ path, mode: 'snapshot', intervalMs: 60_000 })] });
    await t.start();
    t.source.emit('ADDED', POD, makeObject(POD, 'a', { resourceVersion: '1' }));
    t.source.emit('ADDED', POD, makeObject(POD, 'b'));
    t.source.emit('ADDED', SECRET, makeObject(SECRET, 'a'));
    await t.drain();
    t.source.emit('MODIFIED', POD, makeObject(POD, 'a', { resourceVersion: '2' }));
    t.source.emit('DELETED', POD, makeObject(POD, 'b'));
    await t.stop();
    const lines = await readLines(path);
    expect(lines.map((line) => [line.type, line.resource, line.object.metadata.name, line.object.metadata.resourceVersion]))
      .to.deep.equal([['ADDED', 'pods.v1.', 'a', '2'], ['ADDED', 'secrets.v1.', 'a', '1']]);
  });

  it('rewrites the snapshot while running, no more often than intervalMs', async () => {
    const path = join(dir, 'snapshot.jsonl');
    const t = createTestCore({ plugins: [file({ path, mode: 'snapshot', intervalMs: 1000 })] });
    await t.start();
    t.source.emit('ADDED', POD, makeObject(POD, 'a'));
    await t.drain();
    await waitFor(async () => (await readLines(path).catch(() => [])).length === 1);
    t.source.emit('ADDED', POD, makeObject(POD, 'b'));
    await t.drain();
    expect(await readLines(path)).to.have.length(1, 'the second write waits for the interval');
    await waitFor(async () => (await readLines(path)).length === 2);
    await t.stop();
  });

  it('writes an empty snapshot at stop when no event arrived', async () => {
    const path = join(dir, 'snapshot.jsonl');
    const t = createTestCore({ plugins: [file({ path, mode: 'snapshot' })] });
    await t.start();
    await t.stop();
    expect(await readFile(path, 'utf8')).to.equal('');
  });

  it('writeSnapshot replaces the file atomically and leaves no temp file behind', async () => {
    const path = join(dir, 'out.jsonl');
    await writeFile(path, 'old content\n');
    const events: SyncEvent[] = [1, 2, 3].map((i) => ({ type: 'ADDED', resource: POD, object: makeObject(POD, `p${i}`), clusterId: 'c', observedAt: 0 }));
    expect(await writeSnapshot(path, events), 'events written').to.equal(3);
    expect((await readLines(path)).map((line) => line.object.metadata.name)).to.deep.equal(['p1', 'p2', 'p3']);
    expect(await readdir(dir)).to.deep.equal(['out.jsonl']);
  });

  it('writeSnapshot writes one JSON document (an array) in json format, empty or not', async () => {
    const path = join(dir, 'out.json');
    const events: SyncEvent[] = [1, 2].map((i) => ({ type: 'ADDED', resource: POD, object: makeObject(POD, `p${i}`), clusterId: 'c', observedAt: 0 }));
    expect(await writeSnapshot(path, events, 'json')).to.equal(2);
    expect((JSON.parse(await readFile(path, 'utf8')) as { object: { metadata: { name: string } } }[]).map((e) => e.object.metadata.name)).to.deep.equal(['p1', 'p2']);
    await writeSnapshot(path, [], 'json');
    expect(JSON.parse(await readFile(path, 'utf8'))).to.deep.equal([]);
  });

  it('writeSnapshot leaves the old file in place and removes its temp file when the write fails', async () => {
    const path = join(dir, 'out.jsonl');
    await writeFile(path, 'old content\n');
    const broken: SyncEvent = { type: 'ADDED', resource: POD, object: makeObject(POD, 'p', {}, { loop: 1n }), clusterId: 'c', observedAt: 0 };
    let error: unknown;
    try {
      await writeSnapshot(path, [broken]);
    } catch (caught) {
      error = caught;
    }
    expect(error).to.be.instanceOf(TypeError, 'a BigInt does not serialise');
    expect(await readFile(path, 'utf8')).to.equal('old content\n');
    expect(await readdir(dir)).to.deep.equal(['out.jsonl']);
  });

  it('refuses options without a path', () => {
    expect(() => file({} as never)).to.throw(/meshsync:file options\.path/);
    expect(() => file({ path: 'x', mode: 'tail' } as never)).to.throw(/options\.mode/);
  });
});

async function waitFor(check: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
