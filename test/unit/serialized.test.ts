import { expect } from 'chai';
import { heldView, holdBytes, jsonBytesOf, jsonOf, knownJsonBytes, parseJsonBytes, serializeForPipeline, textOf } from '../../core/serialized.ts';
import { makeObject, POD } from '../../testing/index.ts';

describe('serialised objects', () => {
  it('shares one serialisation between the source that made it and the sinks, bytes included', () => {
    const object = makeObject(POD, 'a', { labels: { app: 'é' } });
    const bytes = serializeForPipeline(object);
    expect(new TextDecoder().decode(bytes)).to.equal(JSON.stringify(object));
    expect(jsonOf(object)).to.equal(JSON.stringify(object));
    expect(jsonBytesOf(object)).to.equal(bytes, 'the same bytes, not a copy');
  });

  it('serialises anew an object nobody serialised, and a transform\'s copy', () => {
    const object = makeObject(POD, 'a');
    serializeForPipeline(object);
    const copy = { ...object, metadata: { ...object.metadata, labels: { changed: 'yes' } } };
    expect(JSON.parse(jsonOf(copy)).metadata.labels).to.deep.equal({ changed: 'yes' });
    expect(JSON.parse(new TextDecoder().decode(jsonBytesOf(copy))).metadata.labels).to.deep.equal({ changed: 'yes' });
  });

  it('keeps what it remembers out of JSON, keys and spreads, so a copy never inherits stale bytes', () => {
    const object = makeObject(POD, 'a');
    serializeForPipeline(object);
    expect(JSON.stringify(object)).to.equal(jsonOf(object));
    expect(Object.keys(object)).to.deep.equal(Object.keys(makeObject(POD, 'a')));
    expect(knownJsonBytes({ ...object })).to.equal(undefined);
    const frozen = Object.freeze(makeObject(POD, 'f'));
    expect(new TextDecoder().decode(serializeForPipeline(frozen))).to.equal(JSON.stringify(frozen));
  });

  it('parses bytes back and remembers them for that object', () => {
    const bytes = new TextEncoder().encode(JSON.stringify(makeObject(POD, 'b')));
    const object = parseJsonBytes<ReturnType<typeof makeObject>>(bytes);
    expect(object.metadata.name).to.equal('b');
    expect(jsonBytesOf(object)).to.equal(bytes);
  });

  it('remembers a copy in bytes of text it is given, never the text (a slice would keep its whole page alive)', () => {
    const object = makeObject(POD, 'd');
    const page = `${'x'.repeat(100_000)}${JSON.stringify(object)}`;
    const bytes = serializeForPipeline(object, page.slice(100_000));
    const kept = Object.getOwnPropertySymbols(object).map((key) => (object as unknown as Record<symbol, unknown>)[key]);
    expect(kept).to.deep.equal([bytes]);
    expect(bytes.byteLength).to.equal(JSON.stringify(object).length);
    expect(jsonOf(object)).to.equal(JSON.stringify(object));
  });

  it('remembers bytes it is given as they are (the source\'s own copy, cut from what the server sent)', () => {
    const object = makeObject(POD, 'e');
    const given = Buffer.from(JSON.stringify(object));
    expect(serializeForPipeline(object, given)).to.equal(given);
    expect(jsonBytesOf(object)).to.equal(given);
    expect(jsonOf(object)).to.equal(JSON.stringify(object));
  });

  it('holds bytes that span their buffer as the buffer alone, a slice as it is, and reads both back', () => {
    const object = makeObject(POD, 'c', { labels: { app: 'é' } });
    const bytes = serializeForPipeline(object);
    const held = holdBytes(bytes);
    expect(held).to.be.instanceOf(ArrayBuffer);
    expect(held).to.equal(bytes.buffer, 'the same memory, not a copy');
    expect(parseJsonBytes<typeof object>(held).metadata.labels).to.deep.equal({ app: 'é' });
    const slice = Buffer.from(`xx${JSON.stringify(object)}`).subarray(2);
    const heldSlice = holdBytes(slice);
    expect(heldSlice).to.equal(slice);
    expect(parseJsonBytes<typeof object>(heldSlice).metadata.name).to.equal('c');
    expect(new TextDecoder().decode(heldView(held))).to.equal(JSON.stringify(object));
  });
});

describe('textOf', () => {
  it('decodes UTF-8, ASCII or not, from a Buffer or from a view into a larger buffer', () => {
    for (const text of ['{"name":"plain ascii"}', '{"name":"é ✓ 😀 <b>&"}', '', '\u007f\u0080']) {
      const bytes = Buffer.from(`xx${text}yy`);
      expect(textOf(bytes.subarray(2, bytes.length - 2))).to.equal(text);
      expect(textOf(new Uint8Array(bytes.buffer, bytes.byteOffset + 2, bytes.length - 4))).to.equal(text);
    }
    expect(textOf(Buffer.from([0xc3, 0xa9]))).to.equal('é', 'not read as two Latin-1 characters');
  });
});
