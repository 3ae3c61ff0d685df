import { expect } from 'chai';
import { ConfigError } from 'meshsync';
import { createTestCore, makeObject, POD } from 'meshsync/testing';
import labelEnricher from '../src/index.ts';

describe('meshsync-plugin-label-enricher', () => {
  it('copies a mapped label into the annotation it is mapped to', async () => {
    const test = createTestCore({ plugins: [labelEnricher({ labels: { team: 'meshsync.io/owner' } })] });
    await test.start();
    test.source.emit('ADDED', POD, makeObject(POD, 'web-1', { labels: { team: 'payments', app: 'web' } }));
    await test.drain();
    const [event] = test.sink.events;
    expect(event.object.metadata.annotations).to.deep.equal({ 'meshsync.io/owner': 'payments' });
    expect(event.object.metadata.labels).to.deep.equal({ team: 'payments', app: 'web' });
    await test.stop();
  });

  it('never changes the object it was given', async () => {
    const test = createTestCore({ plugins: [labelEnricher({ labels: { team: 'meshsync.io/owner' } })] });
    await test.start();
    const object = makeObject(POD, 'web-1', { labels: { team: 'payments' }, annotations: { note: 'x' } });
    test.source.emit('MODIFIED', POD, object);
    await test.drain();
    expect(object.metadata.annotations).to.deep.equal({ note: 'x' });
    expect(test.sink.events[0].object.metadata.annotations).to.deep.equal({ note: 'x', 'meshsync.io/owner': 'payments' });
    await test.stop();
  });

  it('keeps an annotation the object already has unless overwrite is set', async () => {
    const kept = createTestCore({ plugins: [labelEnricher({ labels: { team: 'owner' } })] });
    const replaced = createTestCore({ plugins: [labelEnricher({ labels: { team: 'owner' }, overwrite: true })] });
    for (const test of [kept, replaced]) {
      await test.start();
      test.source.emit('ADDED', POD, makeObject(POD, 'web-1', { labels: { team: 'new' }, annotations: { owner: 'old' } }));
      await test.drain();
      await test.stop();
    }
    expect(kept.sink.events[0].object.metadata.annotations).to.deep.equal({ owner: 'old' });
    expect(replaced.sink.events[0].object.metadata.annotations).to.deep.equal({ owner: 'new' });
  });

  it('passes objects without the label through untouched', async () => {
    const test = createTestCore({ plugins: [labelEnricher({ labels: { team: 'meshsync.io/owner' } })] });
    await test.start();
    const object = makeObject(POD, 'web-1', { labels: { app: 'web' } });
    test.source.emit('ADDED', POD, object);
    await test.drain();
    expect(test.sink.events[0].object).to.equal(object);
    await test.stop();
  });

  it('rejects an empty label map with the option path', () => {
    expect(() => labelEnricher({ labels: {} })).to.throw(ConfigError, /labels/);
  });

  it('rejects an option it does not know, naming it, as the built-ins do', () => {
    // @ts-expect-error: a typo of overwrite (the types catch it too)
    expect(() => labelEnricher({ labels: { team: 'owner' }, overwite: true })).to.throw(ConfigError, /options\.overwite: unknown key; did you mean "overwrite"\?/);
  });
});
