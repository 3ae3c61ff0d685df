import { expect } from 'chai';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { createTestCore, makeObject, POD } from '../../testing/index.ts';
import { ConfigError } from '../../core/errors.ts';
import { parseResourceId } from '../../core/resource.ts';
import type { EventType, ResourceRef } from '../../core/types.ts';
import watchListDefault, { watchList, compileWatchList, watchListOptions } from '../../plugins/watch-list/index.ts';

const CASES = join(import.meta.dirname, '../fixtures/watch-list');

interface CaseEvent { type: EventType; resource: string; name: string }
interface CaseInput { about: string; candidates: string[]; events: CaseEvent[] }
type CaseExpected = { selected: string[]; events: CaseEvent[] } | { errors: string[]; messages?: string[] };

const readJson = <T>(file: string): T => JSON.parse(readFileSync(file, 'utf8')) as T;

function refOf(id: string): ResourceRef {
  const parsed = parseResourceId(id);
  if (!parsed) throw new Error(`bad id in fixture: ${id}`);
  return { ...parsed, kind: parsed.resource, namespaced: true };
}

describe('meshsync:watch-list cases (test/fixtures/watch-list)', () => {
  for (const name of readdirSync(CASES).sort()) {
    const dir = join(CASES, name);
    const config = readJson<Record<string, unknown>>(join(dir, 'config.json'));
    const input = readJson<CaseInput>(join(dir, 'input.json'));
    const expected = readJson<CaseExpected>(join(dir, 'expected.json'));

    it(name, async () => {
      if ('errors' in expected) {
        let error: unknown;
        try {
          watchList(config as never);
        } catch (caught) {
          error = caught;
        }
        expect(error).to.be.instanceOf(ConfigError);
        const paths = (error as ConfigError).problems.map((problem) => problem.path.replace('meshsync:watch-list options.', ''));
        expect(paths).to.deep.equal(expected.errors);
        if (expected.messages) expect((error as ConfigError).problems.map((problem) => problem.message)).to.deep.equal(expected.messages);
        return;
      }
      const t = createTestCore({ plugins: [watchList(config as never)] });
      expect(t.core.hooks.selectResources.call([...input.candidates])).to.deep.equal(expected.selected);
      await t.start();
      const refs = new Map<string, ResourceRef>();
      for (const event of input.events) {
        const ref = refs.get(event.resource) ?? refOf(event.resource);
        refs.set(event.resource, ref);
        t.source.emit(event.type, ref, makeObject(ref, event.name));
      }
      await t.drain();
      const out = t.sink.events.map((event) => ({ type: event.type, resource: `${event.resource.resource}.${event.resource.version}.${event.resource.group}`, name: event.object.metadata.name }));
      expect(out).to.deep.equal(expected.events);
      await t.stop();
    });
  }
});

describe('meshsync:watch-list', () => {
  it('is exported as a named and a default export', () => {
    expect(watchListDefault).to.equal(watchList);
    expect(watchList.pluginName).to.equal('meshsync:watch-list');
  });

  it('passes everything when neither include nor exclude is set', () => {
    const compiled = compileWatchList(watchListOptions.parse({}));
    expect(compiled.select(['pods.v1.', 'nodes.v1.'])).to.deep.equal(['pods.v1.', 'nodes.v1.']);
    expect(compiled.maskOf('anything.v1.example.com')).to.equal(7);
  });

  it('treats an empty include list as not set, as MeshSync does with an empty whitelist', () => {
    const compiled = compileWatchList(watchListOptions.parse({ include: [], whitelist: '' }));
    expect(compiled.included).to.equal(undefined);
    expect(compiled.select(['pods.v1.'])).to.deep.equal(['pods.v1.']);
  });

  it('refuses include and its legacy name whitelist set together', () => {
    expect(() => watchList({ include: ['pods.v1.'], whitelist: '["nodes.v1."]' })).to.throw(ConfigError, /whitelist.*legacy name of `include`/);
  });

  it('refuses an empty events list instead of matching nothing', () => {
    expect(() => watchList({ exclude: [{ resource: 'pods.v1.', events: [] }] })).to.throw(ConfigError, /exclude\[0\]\.events/);
  });

  it('unions the events of a resource listed twice', () => {
    const compiled = compileWatchList(watchListOptions.parse({ include: [{ resource: 'pods.v1.', events: ['ADDED'] }, { resource: 'pods.v1.', events: ['DELETED'] }] }));
    expect(compiled.maskOf('pods.v1.')).to.equal(1 | 4);
    expect(compiled.included).to.deep.equal(['pods.v1.']);
  });

  it('matches events by resource id even when each event carries its own ResourceRef object', async () => {
    const t = createTestCore({ plugins: [watchList({ exclude: [{ resource: 'pods.v1.', events: ['MODIFIED'] }] })] });
    await t.start();
    t.source.emit('MODIFIED', { ...POD }, makeObject(POD, 'a'));
    t.source.emit('MODIFIED', { ...POD }, makeObject(POD, 'b'));
    t.source.emit('ADDED', { ...POD }, makeObject(POD, 'c'));
    await t.drain();
    expect(t.sink.events.map((event) => event.object.metadata.name)).to.deep.equal(['c']);
    expect(t.core.counters.filtered).to.equal(2);
    await t.stop();
  });

  it('counts dropped events per resource and type in the metrics registry', async () => {
    const t = createTestCore({ plugins: [watchList({ blacklist: '["pods.v1."]' })] });
    await t.start();
    t.source.emit('ADDED', POD, makeObject(POD, 'a'));
    t.source.emit('ADDED', POD, makeObject(POD, 'b'));
    t.source.emit('DELETED', POD, makeObject(POD, 'a'));
    const text = await t.core.metrics.metrics();
    expect(text).to.include('meshsync_watch_list_dropped_events_total{resource="pods.v1.",type="ADDED"} 2');
    expect(text).to.include('meshsync_watch_list_dropped_events_total{resource="pods.v1.",type="DELETED"} 1');
    await t.stop();
  });

  it('has an options schema the website can turn into JSON Schema', () => {
    const schema = z.toJSONSchema(watchList.optionsSchema, { io: 'input' }) as { properties: Record<string, { description?: string }> };
    expect(Object.keys(schema.properties)).to.deep.equal(['include', 'exclude', 'whitelist', 'blacklist', 'allowedResources']);
    for (const property of Object.values(schema.properties)) expect(property.description).to.be.a('string');
  });
});
