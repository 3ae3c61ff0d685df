import { expect } from 'chai';
import { cutWatchObject, listItemBytes, listItemSpans, listPageWithoutItems } from '../../kubernetes/json-text.ts';

const managedFields = [{ manager: 'kubectl', operation: 'Update', fieldsV1: { 'f:metadata': { 'f:labels': { '.': {}, 'f:app': {} } } }, time: '2026-01-01T00:00:00Z' }];
const tricky = {
  'kubectl.kubernetes.io/last-applied-configuration': '{"metadata":{"managedFields":[{"x":"}]"}],"name":"a\\"b"}}\n',
  quotes: 'a "quoted" \\ back\\\\slash } ] { [',
  unicode: 'é ✓ 😀 <b>&',
};
const pod = (metadata: Record<string, unknown>) => ({
  kind: 'Pod', apiVersion: 'v1',
  metadata: { name: 'p', namespace: 'default', uid: 'u-1', resourceVersion: '7', ...metadata },
  spec: { containers: [{ name: 'c', image: 'nginx', ports: [{ containerPort: 80 }], args: [] }], nodeName: null, priority: 0, enableServiceLinks: true },
  status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] },
});
/** managedFields as the first member of metadata: the comma after it is cut with it. */
const managedFieldsFirst = () => {
  const object = pod({ annotations: tricky });
  return { ...object, metadata: { managedFields, ...object.metadata } };
};
const without = (object: ReturnType<typeof pod>) => {
  const { managedFields: _dropped, ...metadata } = object.metadata as Record<string, unknown>;
  return { ...object, metadata };
};
const line = (type: string, object: unknown) => JSON.stringify({ type, object });
/** The cut, from the line's bytes as a watch hands them over: a view into a larger chunk. */
const cut = (text: string) => {
  const chunk = Buffer.from(`{"type":"ADDED","object":{}}\n${text}\n{"type"`);
  const result = cutWatchObject(chunk.subarray(chunk.indexOf(10) + 1, chunk.lastIndexOf(10)));
  return result === undefined ? undefined : { type: result.type, text: Buffer.from(result.object).toString('utf8') };
};

describe('watch object cut', () => {
  it('is the line\'s type and its object as sent, byte for byte, without metadata.managedFields wherever it stands', () => {
    const objects = [
      pod({ labels: { app: 'x' }, annotations: tricky, managedFields }),
      pod({ managedFields, annotations: tricky }),
      pod({ annotations: tricky }),
      managedFieldsFirst(),
    ];
    for (const object of objects) {
      for (const type of ['ADDED', 'MODIFIED', 'DELETED']) {
        expect(cut(line(type, object))).to.deep.equal({ type, text: JSON.stringify(without(object)) });
      }
    }
    const only = { kind: 'Pod', apiVersion: 'v1', metadata: { managedFields }, spec: {} };
    expect(JSON.parse(cut(line('ADDED', only))!.text)).to.deep.equal({ kind: 'Pod', apiVersion: 'v1', metadata: {}, spec: {} });
  });

  it('is a copy in an allocation of its own, never a view of the chunk it was cut from', () => {
    const chunk = Buffer.from(`${line('MODIFIED', pod({ managedFields }))}\n${line('MODIFIED', pod({}))}\n`);
    for (const bytes of [chunk.subarray(0, chunk.indexOf(10)), chunk.subarray(chunk.indexOf(10) + 1, chunk.length - 1)]) {
      const { object } = cutWatchObject(bytes)!;
      expect(object.buffer).to.not.equal(chunk.buffer);
      expect([object.byteOffset, object.byteLength]).to.deep.equal([0, object.buffer.byteLength]);
    }
  });

  it('keeps the server\'s own escapes (Go writes < as \\u003c), which parse to the same values', () => {
    const sent = '{"type":"MODIFIED","object":{"kind":"Pod","apiVersion":"v1","metadata":{"name":"\\u003cp\\u003e","managedFields":[{"a":1}],"labels":{"x":"\\u0026"}}}}';
    const { text } = cut(sent)!;
    expect(text).to.include('\\u003cp\\u003e');
    expect(JSON.parse(text)).to.deep.equal({ kind: 'Pod', apiVersion: 'v1', metadata: { name: '<p>', labels: { x: '&' } } });
  });

  it('gives up on any other shape, so the whole line is parsed as before', () => {
    const object = pod({ managedFields });
    const body = JSON.stringify(object);
    const shapes = [
      `{"object":${body},"type":"MODIFIED"}`, // other key order
      `{"type":"MODIFIED","object":${body},"extra":1}`, // a member after the object
      `{"type":"MODIFIED","object":${body},"object":${body}}`, // a repeated key
      `{"type":"MODIFIED","object":${body},"type":"ADDED"}`, // a repeated type: JSON.parse keeps the last
      `{"type":"MODIFIED", "object":${body}}`, // whitespace
      `{"type":"MODIFIED","object":${body.slice(0, -1)}}`, // cut short
      `{"type":"BOOKMARK","object":${body}}`,
      `{"type":"ERROR","object":{"kind":"Status","code":410}}`,
      JSON.stringify({ type: 'MODIFIED', object }, null, 1), // pretty-printed
    ];
    for (const shape of shapes) expect(cut(shape), shape.slice(0, 40)).to.equal(undefined);
    const wrap = (metadata: string, rest = '') => `{"type":"ADDED","object":{"kind":"Pod","apiVersion":"v1",${rest}"metadata":${metadata}}}`;
    for (const risky of [
      wrap('{"name":"p","managedFields": [{"a":1},{"b":2}]}'), // whitespace before a value
      wrap('{"name":"p","managedFields":[],"managedFields":[]}'), // JSON.parse keeps the last
      wrap('{"name":"p","managedFields":[],"managed\\u0046ields":[]}'), // an escaped key that decodes to it
      wrap('{"name":"p","managedFields":[]},"metadata":{"name":"q","managedFields":[]}'), // two metadata
    ]) {
      JSON.parse(risky); // well-formed: the reflector would get this far
      expect(cut(risky), risky).to.equal(undefined);
    }
    // A key named managedFields anywhere but directly in metadata is left where it is.
    for (const risky of [
      wrap('{"name":"p","labels":{"a":"1","managedFields":"x"},"managedFields":[]}'),
      wrap('{"name":"p","managedFields":[]}', '"spec":{"a":1,"metadata":{"managedFields":1}},'),
    ]) {
      const expected = JSON.parse(risky).object;
      delete expected.metadata.managedFields;
      expect(JSON.parse(cut(risky)!.text)).to.deep.equal(expected);
    }
  });
});

describe('list item bytes', () => {
  const TAIL = Buffer.from(',"kind":"Pod","apiVersion":"v1"');
  /** A built-in list item as the API server sends it: no kind, no apiVersion. */
  const listed = (metadata: Record<string, unknown>) => {
    const { kind: _kind, apiVersion: _apiVersion, ...item } = pod(metadata);
    return item;
  };
  const page = (items: unknown[], after = '\n') => Buffer.from(`${JSON.stringify({ kind: 'PodList', apiVersion: 'v1', metadata: { resourceVersion: '9', continue: 'x' }, items })}${after}`);
  /** What the reflector stores for a listed item: managedFields dropped, then kind and apiVersion added. */
  const normalized = (item: any) => {
    const { managedFields: _dropped, ...metadata } = item.metadata;
    return { ...item, metadata, ...(item.kind === undefined && item.apiVersion === undefined ? { kind: 'Pod', apiVersion: 'v1' } : {}) };
  };
  const text = (bytes: Uint8Array | undefined) => (bytes === undefined ? undefined : Buffer.from(bytes).toString('utf8'));

  it('is each item as JSON.stringify would make it after normalising, byte for byte', () => {
    const { kind: _kind, ...withoutKind } = pod({ managedFields });
    const items = [
      listed({ labels: { app: 'x' }, annotations: tricky, managedFields }),
      listed({ managedFields, annotations: tricky }),
      listed({ annotations: tricky, managedFields }),
      listed({ annotations: tricky }),
      pod({ managedFields }), // a custom resource's item keeps kind and apiVersion
      (({ kind: _kind, apiVersion: _apiVersion, ...item }) => item)(managedFieldsFirst()),
      withoutKind, // an apiVersion alone takes no tail (normalize then adds the kind, and the item is serialised)
      { metadata: { name: 'p', annotations: { kind: 'x', apiVersion: 'y' } }, spec: { kind: 'Deep' } }, // kind below the top takes the tail
    ];
    for (const after of ['\n', '']) {
      const bytes = page(items, after);
      const spans = listItemSpans(bytes)!;
      expect(spans.count).to.equal(items.length);
      items.forEach((item, index) => {
        expect(text(listItemBytes(bytes, spans, index, TAIL)), `item ${index}`).to.equal(JSON.stringify(normalized(item)));
      });
      expect(JSON.parse(text(listPageWithoutItems(bytes, spans))!)).to.deep.equal({ kind: 'PodList', apiVersion: 'v1', metadata: { resourceVersion: '9', continue: 'x' }, items: [] });
    }
    const empty = page([]);
    expect(listItemSpans(empty)!.count).to.equal(0);
  });

  it('is a copy in an allocation of its own, never a view of the page', () => {
    const bytes = page([listed({ managedFields }), listed({}), pod({})]);
    const spans = listItemSpans(bytes)!;
    for (const index of [0, 1, 2]) {
      const item = listItemBytes(bytes, spans, index, TAIL)!;
      expect(item.buffer).to.not.equal(bytes.buffer);
      expect([item.byteOffset, item.byteLength]).to.deep.equal([0, item.buffer.byteLength]);
    }
  });

  it('gives up on a page shaped otherwise, and on an empty item, so the page is parsed whole as before', () => {
    const item = JSON.stringify(listed({ managedFields }));
    for (const shape of [
      JSON.stringify({ kind: 'PodList', items: [JSON.parse(item)] }, null, 1), // pretty-printed
      `{"kind":"PodList","items":[${item}],"items":[${item}]}`, // a repeated key: JSON.parse keeps the last
      `{"kind":"PodList","items":[${item}] }`, // whitespace
      `{"kind":"PodList","items":[${item.replace('"metadata":', '"metadata": ')}]}`, // whitespace in an item
      `{"kind":"PodList","items":[${item.replace('"name":"p"', '"name":"p","managedFields":[]')}]}`, // managedFields twice
      `{"kind":"PodList","items":[${item.replace('"metadata":', '"\\u006bind":"Pod","metadata":')}]}`, // an escaped key (it might be kind)
      `{"kind":"PodList","items":[${item}]`, // cut short
      `{"kind":"PodList","items":{}}`,
      `{"kind":"PodList","items":null}`,
    ]) {
      JSON.parse(shape.endsWith(']') ? `${shape}}` : shape); // well-formed but for the one cut short
      expect(listItemSpans(Buffer.from(shape)), shape.slice(0, 60)).to.equal(undefined);
    }
    const bytes = page([listed({}), {}]);
    const spans = listItemSpans(bytes)!;
    expect(listItemBytes(bytes, spans, 1, TAIL)).to.equal(undefined, 'an empty object takes no tail');
  });
});

describe('objects publishable with their metadata alone parsed (views)', () => {
  const POD_TYPE = { kind: Buffer.from('"Pod"'), apiVersion: Buffer.from('"v1"') };
  const metadataOf = (result: { object: Uint8Array; metadataStart: number; metadataEnd: number } | undefined) =>
    result === undefined || result.metadataStart < 0 ? undefined : JSON.parse(Buffer.from(result.object.subarray(result.metadataStart, result.metadataEnd)).toString('utf8'));

  it('finds the metadata span in the cut bytes, wherever managedFields stood', () => {
    for (const object of [pod({ labels: { app: 'x' }, annotations: tricky, managedFields }), pod({ annotations: tricky }), managedFieldsFirst()]) {
      const result = cutWatchObject(Buffer.from(line('MODIFIED', object)), POD_TYPE)!;
      expect(Buffer.from(result.object).toString('utf8')).to.equal(JSON.stringify(without(object)));
      expect(metadataOf(result)).to.deep.equal(without(object).metadata);
    }
  });

  it('is refused (the object is parsed whole) unless the rest is JSON that JSON.parse accepts and the kind and apiVersion are the resource\'s', () => {
    const body = (spec: string) => `{"type":"ADDED","object":{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p","managedFields":[nonsense]},"spec":${spec}}}`;
    const valid = ['{}', '[]', '{"a":[1,-2.5e+3,0,true,false,null,"\\u00e9\\n\\"x\\""],"b":{"c":{}}}', '-0', '"é✓"', '[[[[]]]]'];
    const invalid = ['{"a":01}', '{"a":1.}', '{"a":.5}', '{"a":tru}', '{"a":nul}', '{"a":[1,]}', '{"a":1,}', '{,}', '{"a"}', '{"a":"\\x"}', '{"a":"\\u12"}',
      '{"a":"tab\there"}', '{"a" :1}', '[1 ]', '{"a":1e}', '{"a":-}', '{"a":[}', '{"a":{]}', '{a:1}', 'NaN', '1.5.5', '"a" "b"'];
    for (const spec of valid) {
      expect(JSON.parse(body(spec).replace('[nonsense]', '[]')).object.spec).to.not.equal(undefined);
      expect(metadataOf(cutWatchObject(Buffer.from(body(spec)), POD_TYPE)), spec).to.deep.equal({ name: 'p' });
    }
    for (const spec of invalid) {
      const result = cutWatchObject(Buffer.from(body(spec)), POD_TYPE);
      expect(result?.metadataStart ?? -1, spec).to.equal(-1);
    }
    const deep = '['.repeat(5000) + ']'.repeat(5000);
    expect(cutWatchObject(Buffer.from(body(deep)), POD_TYPE)?.metadataStart ?? -1, 'nested deeper than the validator goes').to.equal(-1);
    for (const [kind, apiVersion] of [['"Pod"', '"v2"'], ['"Node"', '"v1"'], ['"P\\u006fd"', '"v1"']]) {
      const text = `{"type":"ADDED","object":{"kind":${kind},"apiVersion":${apiVersion},"metadata":{"name":"p"},"spec":{}}}`;
      expect(cutWatchObject(Buffer.from(text), POD_TYPE)!.metadataStart, text).to.equal(-1);
    }
    expect(cutWatchObject(Buffer.from('{"type":"ADDED","object":{"metadata":{"name":"p"},"spec":{}}}'), POD_TYPE)!.metadataStart, 'a watch object without kind').to.equal(-1);
    expect(cutWatchObject(Buffer.from(line('ADDED', pod({}))))!.metadataStart, 'not asked for').to.equal(-1);
  });

  it('gives each list item\'s metadata span in the bytes listItemBytes makes: items without kind and apiVersion take the tail, typed ones must match', () => {
    const TAIL = Buffer.from(',"kind":"Pod","apiVersion":"v1"');
    const { kind: _kind, apiVersion: _apiVersion, ...listed } = pod({ managedFields, annotations: tricky });
    const { kind: _k, ...apiVersionOnly } = pod({});
    const items = [listed, pod({ managedFields }), apiVersionOnly, { ...pod({}), kind: 'Node' }];
    const page = Buffer.from(`${JSON.stringify({ kind: 'PodList', apiVersion: 'v1', metadata: {}, items })}\n`);
    const spans = listItemSpans(page, POD_TYPE)!;
    const known = items.map((_, index) => {
      const bytes = listItemBytes(page, spans, index, TAIL)!;
      return metadataOf({ object: bytes, metadataStart: spans.metadata[2 * index], metadataEnd: spans.metadata[2 * index + 1] });
    });
    expect(known).to.deep.equal([without(pod({ managedFields, annotations: tricky })).metadata, without(pod({})).metadata, undefined, undefined]);
  });
});
