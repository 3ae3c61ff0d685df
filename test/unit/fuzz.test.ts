/**
 * Property tests (fast-check) over what outsiders control: config files, watch-list rules (the
 * MeshSync CR), watch lines (the API server) and Secrets (the cluster). Random and adversarial
 * input never crashes the process, never leaks a secret value, never stalls a lane. Each property
 * is bounded in time (a few seconds), so the suite runs in every `npm test`.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../cli/config.ts';
import { ConfigError } from '../../core/errors.ts';
import type { Batch, Core, KubeObject, SyncEvent } from '../../core/types.ts';
import type { KubeClient, WatchHandlers } from '../../kubernetes/client.ts';
import { Reflector } from '../../kubernetes/reflector.ts';
import { cutWatchObject } from '../../kubernetes/json-text.ts';
import { jsonOf } from '../../core/serialized.ts';
import { createRedactor, LAST_APPLIED } from '../../plugins/redact-secrets/index.ts';
import { compileWatchList, watchListOptions } from '../../plugins/watch-list/index.ts';
import { createTestCore, makeObject, POD, SECRET } from '../../testing/index.ts';

/**
 * Each property stops after this long, passing if nothing failed until then. A failure ends the
 * property at once, unshrunk: shrinking cut off by the time limit would otherwise pass it.
 */
const TIME_LIMIT_MS = 3000;
const bounded = (numRuns: number): fc.Parameters<unknown> => ({ numRuns, interruptAfterTimeLimit: TIME_LIMIT_MS, markInterruptAsFailure: false, endOnFailure: true });

const SECRET_VALUE = 'fuzz-s3cret-Value-9f27';
const b64 = (text: string) => Buffer.from(text).toString('base64');

/** Values of any JSON shape, now and then a deep one. */
const jsonValue = fc.oneof(
  { weight: 8, arbitrary: fc.jsonValue({ maxDepth: 4 }) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 3000 }).map((depth) => Array.from({ length: depth }).reduce<unknown>((inner) => ({ a: inner }), {})) },
);

describe('fuzz (fast-check, bounded)', function () {
  this.timeout(30_000);

  describe('config loader', () => {
    let dir: string;
    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'meshsync-fuzz-config-'));
    });
    after(() => rm(dir, { recursive: true, force: true }));

    const pluginName = fc.oneof(
      fc.constantFrom('meshsync:stdout', 'meshsync:nats', 'meshsync:watch-list', 'meshsync:redact-secrets', 'meshsync:file', 'meshsync:nope',
        'os', 'fs', 'child_process', './plugins/x.js', '../x', '/etc/passwd', 'node:os', '@scope/pkg', 'meshsync-plugin-absent', '__proto__', 'constructor'),
      fc.string({ maxLength: 20 }),
    );
    const entry = fc.oneof(pluginName, fc.tuple(pluginName, fc.oneof(jsonValue, fc.constant({ auth: { user: 'u', password: SECRET_VALUE }, url: 7 })))).map((e) => e as unknown);
    const config = fc.oneof(
      fc.record({ clusterId: fc.oneof(fc.string(), jsonValue), plugins: fc.array(entry, { maxLength: 4 }), pipeline: jsonValue, logLevel: fc.oneof(fc.string(), jsonValue) }, { requiredKeys: [] }),
      jsonValue,
    );

    it('never throws anything but a ConfigError, and never quotes a secret value it was given, for any JSON or YAML config', async () => {
      let n = 0;
      await fc.assert(fc.asyncProperty(config, fc.boolean(), fc.string({ maxLength: 40 }), async (value, asYaml, noise) => {
        const file = join(dir, `c${n++}.${asYaml ? 'yaml' : 'json'}`);
        const text = asYaml && noise.length > 0 ? `${JSON.stringify(value) ?? 'null'}\n${noise}` : JSON.stringify(value) ?? 'null';
        await writeFile(file, text);
        const outcome = await loadConfig({ configFile: file, cwd: dir, env: {} }).then(() => undefined, (error: unknown) => error);
        if (outcome === undefined) return;
        expect(outcome, String(outcome)).to.be.instanceOf(ConfigError);
        expect((outcome as Error).message).to.not.contain(SECRET_VALUE);
      }), bounded(150));
    });
  });

  describe('watch-list parser (the MeshSync CR)', () => {
    const legacyEntry = fc.oneof(
      fc.record({ Resource: fc.oneof(fc.constantFrom('pods.v1.', 'deployments.v1.apps', 'pods', '', '*.v1.', '..'), fc.string()), Events: fc.oneof(fc.array(fc.constantFrom('ADDED', 'MODIFIED', 'DELETED', 'added', 'BOGUS')), jsonValue) }, { requiredKeys: [] }),
      fc.string(), jsonValue,
    );
    const rules = fc.oneof(fc.array(legacyEntry, { maxLength: 5 }).map((list) => JSON.stringify(list)), fc.string(), fc.array(legacyEntry, { maxLength: 5 }), jsonValue);

    it('accepts or rejects any rules without throwing; accepted rules compile and select without throwing', () => {
      fc.assert(fc.property(rules, rules, fc.array(fc.constantFrom('pods.v1.', 'deployments.v1.apps', 'secrets.v1.'), { maxLength: 3 }), (whitelist, blacklist, candidates) => {
        const parsed = watchListOptions.safeParse({ whitelist, blacklist });
        if (!parsed.success) return;
        const compiled = compileWatchList(parsed.data);
        for (const id of compiled.select(candidates)) expect(id).to.be.a('string');
      }), bounded(500));
    });
  });

  describe('watch-line decoder (the API server)', () => {
    const POD_REF = { group: '', version: 'v1', resource: 'pods', kind: 'Pod', namespaced: true } as const;
    const TIMING = { pageSize: 500, minWatchTimeoutSeconds: 60, watchSilenceTimeoutMs: 0, watchHoldMaxMs: 0, backoffInitialMs: 1, backoffMaxMs: 2 };
    const sentinel = '{"type":"ADDED","object":{"kind":"Pod","apiVersion":"v1","metadata":{"name":"sentinel","namespace":"d","uid":"uid-sentinel","resourceVersion":"99"}}}';
    const eventLine = fc.record({
      type: fc.oneof(fc.constantFrom('ADDED', 'MODIFIED', 'DELETED', 'BOOKMARK', 'ERROR'), fc.string()),
      object: fc.oneof(jsonValue, fc.record({ metadata: fc.record({ name: fc.oneof(fc.string(), jsonValue), uid: fc.oneof(fc.string(), jsonValue), resourceVersion: fc.oneof(fc.string(), jsonValue) }, { requiredKeys: [] }) }, { requiredKeys: [] })),
    }, { requiredKeys: [] }).map((event) => JSON.stringify(event));
    const line = fc.oneof(eventLine, eventLine.map((text) => text.slice(0, Math.max(1, text.length - 3))), fc.string({ maxLength: 200 }), fc.jsonValue().map((v) => JSON.stringify(v) ?? 'null'));

    for (const views of [false, true]) it(`survives any watch lines${views ? ' (objects as views)' : ''}: emits only objects with a string name, and reads on (the sentinel after them arrives)`, async () => {
      await fc.assert(fc.asyncProperty(fc.array(line, { maxLength: 20 }), async (lines) => {
        const events: KubeObject[] = [];
        let watches = 0;
        const client = {
          async getBytes() {
            return Buffer.from('{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":[]}');
          },
          async watch(_path: string, handlers: WatchHandlers, options: { signal?: AbortSignal }) {
            // As the client does: a line that throws (an ERROR event) ends this watch; the next one
            // (after a relist, for a 410) brings what the server sends next: here, the sentinel.
            if (watches++ === 0) for (const text of lines) handlers.line(Buffer.from(text));
            handlers.line(Buffer.from(sentinel));
            await new Promise((resolve) => options.signal?.addEventListener('abort', resolve));
          },
        } as unknown as KubeClient;
        const abort = new AbortController();
        const reflector = new Reflector(client, POD_REF, { views }, TIMING, {
          emit: (_type, object) => void events.push(object),
          listed() {}, relisted() {}, watchRestarted() {}, failed() {}, malformedLine() {},
        });
        reflector.start(abort.signal);
        const deadline = Date.now() + 2000;
        while (!events.some((o) => o.metadata.name === 'sentinel') && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 2));
        abort.abort();
        expect(events.some((o) => o.metadata.name === 'sentinel'), 'the watch read on').to.equal(true);
        for (const object of events) {
          expect(object.metadata.name).to.be.a('string');
          // What a sink publishes parses, views included.
          expect(() => JSON.parse(jsonOf(object))).to.not.throw();
        }
      }), bounded(60));
    });

    it('publishes a view\'s bytes unparsed only when they are JSON that parses to the object a full parse gives', () => {
      const POD_TYPE = { kind: Buffer.from('"Pod"'), apiVersion: Buffer.from('"v1"') };
      // Near-JSON: JSON values, and text made of JSON's own characters (most of it malformed).
      const nearJson = fc.oneof(
        fc.jsonValue().map((value) => JSON.stringify(value) ?? 'null'),
        fc.array(fc.constantFrom('{', '}', '[', ']', ',', ':', '"', '\\', 'u', '0', '1', '-', '.', 'e', '+', 't', 'r', 'n', 'l', 'a', 'f', 's', ' ', '\t'), { maxLength: 30 }).map((chars) => chars.join('')),
      );
      fc.assert(fc.property(nearJson, (spec) => {
        const text = `{"type":"ADDED","object":{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p","managedFields":[]},"spec":${spec}}}`;
        const cut = cutWatchObject(Buffer.from(text), POD_TYPE);
        if (cut === undefined || cut.metadataStart < 0) return;
        const expected = JSON.parse(text).object;
        delete expected.metadata.managedFields;
        expect(JSON.parse(Buffer.from(cut.object).toString('utf8'))).to.deep.equal(expected);
      }), bounded(2000));
    });
  });

  describe('redactor (Secrets)', () => {
    const redact = createRedactor({ redactSecrets: true, stripManagedFields: true });
    const holder = (value: unknown) => fc.oneof(
      fc.constant({ password: value }),
      fc.dictionary(fc.string({ maxLength: 8 }), fc.constant(value), { minKeys: 1, maxKeys: 3 }),
      fc.constant([value]),
      fc.constant(value),
    );
    const spelling = fc.constantFrom('data', 'stringData', 'StringData', 'Data', 'stringdata', 'DATA', 'extra', 'spec', 'items');
    /** A Secret-shaped body that holds the value (plain or base64) under some spellings, maybe nested in a last-applied copy or a List. */
    const secretBody: fc.Arbitrary<Record<string, unknown>> = fc.letrec<{ body: Record<string, unknown> }>((tie) => ({
      body: fc.record({
        fields: fc.array(fc.tuple(spelling, fc.oneof(holder(SECRET_VALUE), holder(b64(SECRET_VALUE)))), { maxLength: 3 }),
        kind: fc.constantFrom('Secret', 'List', undefined, 'ConfigMap'),
        nested: fc.option(tie('body'), { nil: undefined, depthSize: 'small' }),
        trailingNewline: fc.boolean(),
      }).map(({ fields, kind, nested, trailingNewline }) => {
        const body: Record<string, unknown> = Object.fromEntries(fields);
        if (kind !== undefined) body.kind = kind;
        if (kind === 'List' && nested !== undefined) body.items = [nested];
        else if (nested !== undefined) body.metadata = { name: 'db', annotations: { [LAST_APPLIED]: JSON.stringify(nested) + (trailingNewline ? '\n' : '') } };
        return body;
      }),
    })).body;

    it('never lets a value out of a Secret, whatever field or spelling holds it, nested in last-applied copies or Lists', () => {
      fc.assert(fc.property(secretBody, (body) => {
        const object = { ...makeObject(SECRET, 'db'), ...body, apiVersion: 'v1', kind: 'Secret', metadata: { ...(body.metadata as object ?? {}), name: 'db', namespace: 'shop', uid: 'u1' } } as KubeObject;
        const out = JSON.stringify(redact({ type: 'ADDED', resource: SECRET, object, clusterId: 'c', observedAt: 0 }).object);
        expect(out).to.not.contain(SECRET_VALUE);
        expect(out).to.not.contain(b64(SECRET_VALUE));
      }), bounded(1000));
    });
  });

  describe('lanes', () => {
    it('never stall: whatever events a sink throws on, every other event is delivered and the lane drains', async () => {
      await fc.assert(fc.asyncProperty(fc.array(fc.tuple(fc.integer({ min: 0, max: 30 }), fc.boolean()), { minLength: 1, maxLength: 40 }), fc.integer({ min: 1, max: 8 }), async (spec, batchSize) => {
        const poison = new Set(spec.filter(([, bad]) => bad).map(([id]) => `p${id}`));
        // Poison is given up on only once a later event shows the sink works (a sink that fails
        // everything must condemn nothing): every lane here ends with a good event, `last`.
        const taken = new Set<string>();
        const sink = {
          name: 'test:fuzzy-sink',
          apply(core: Core) {
            core.hooks.sink.tapPromise('test:fuzzy-sink', async (batch: Batch) => {
              if (batch.some((event: SyncEvent) => poison.has(event.object.metadata.name))) throw new RangeError('Maximum call stack size exceeded');
              for (const event of batch) taken.add(event.object.metadata.name);
            });
          },
        };
        const t = createTestCore({ plugins: [sink], batchSize, retryInitialMs: 1, retryMaxMs: 2 });
        await t.start();
        for (const [id] of spec) t.source.emit('ADDED', POD, makeObject(POD, `p${id}`));
        t.source.emit('ADDED', POD, makeObject(POD, 'last'));
        let timer: NodeJS.Timeout | undefined;
        // Well inside the time limit, so a stall fails the property instead of running out its time.
        const stalled = new Promise<'stalled'>((resolve) => (timer = setTimeout(resolve, 1000, 'stalled')));
        const outcome = await Promise.race([t.drain().then(() => 'drained' as const), stalled]).finally(() => clearTimeout(timer));
        await t.stop();
        expect(outcome).to.equal('drained');
        const names = new Set([...spec.map(([id]) => `p${id}`), 'last']);
        expect([...taken].sort()).to.deep.equal([...names].filter((name) => !poison.has(name)).sort());
        expect(t.core.counters.sinks['test:fuzzy-sink'].deadLettered).to.equal(poison.size);
      }), bounded(40));
    });
  });
});
