/**
 * Meshery mode checked by Meshery's own Go code (test/meshery: meshkit's broker and encoding,
 * meshsync's pkg/model), against `meshsync run` with the real nats-server and the API simulator.
 */
import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSimulator, KUBE_SYSTEM_UID, type KubeSimulator } from '../../testing/simulator/index.ts';
import { encodeMesheryEvent } from '../../plugins/nats/meshery/wire.ts';
import { PipelineEvent, type KubeObject } from '../../core/index.ts';
import { mesheryCheckBinary, mesheryId, parseWithGoMeshSync, startMesheryCheck, type CheckLine, type MesheryCheck } from '../support/meshery-check.ts';
import { startMeshsync, ROOT, type MeshsyncProcess } from '../support/meshsync-process.ts';
import { freePort, startNatsServer, type NatsServerHandle } from '../support/nats-server.ts';
import { sleep, until, untilAsync } from '../support/wait.ts';

const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const WATCHED = ['namespaces.v1.', 'configmaps.v1.', 'secrets.v1.', 'services.v1.', 'deployments.v1.apps'];
const CORE_REF = (resource: string, kind: string) => ({ group: '', version: 'v1', resource, kind, namespaced: resource !== 'namespaces' });

/** Meshery's key of every object the simulator holds for the watched resources. */
function simulatorIds(sim: KubeSimulator): Set<string> {
  return new Set(WATCHED.flatMap((id) => sim.list(id)).map((object) => mesheryId(KUBE_SYSTEM_UID, object)));
}

const linesAfter = (check: MesheryCheck, from: number) => check.lines.slice(from);
const events = (lines: CheckLine[]) => lines.filter((line): line is Extract<CheckLine, { kind: 'event' }> => line.kind === 'event');

describe('meshery wire mode: Meshery\'s own Go code decodes and accepts meshsync run (API simulator, real nats-server)', function () {
  this.timeout(120_000);
  let nats: NatsServerHandle;
  let monitorPort: number;
  let sim: KubeSimulator;
  let dir: string;
  const cleanups: (() => Promise<unknown> | unknown)[] = [];

  before(async function () {
    // A fresh machine builds the checker from the Go module proxy here (minutes); cached after.
    this.timeout(20 * 60_000);
    mesheryCheckBinary();
    monitorPort = await freePort();
    nats = await startNatsServer({ args: ['-m', String(monitorPort)] });
    sim = await startSimulator({ bookmarkIntervalMs: 200 });
    dir = mkdtempSync(join(tmpdir(), 'meshsync-meshery-'));
    await sim.writeKubeconfig(join(dir, 'kubeconfig'));
  });

  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  after(async () => {
    await sim?.close();
    await nats?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  const run = (env: Record<string, string> = {}, broker = nats.url): MeshsyncProcess => {
    const meshsync = startMeshsync({
      dir,
      config: {
        plugins: [
          ['meshsync:kubernetes', { kubeconfig: join(dir, 'kubeconfig'), resources: WATCHED }],
          'meshsync:redact-secrets',
          ['meshsync:nats', { meshery: { resyncDebounceMs: 300 } }],
          ['meshsync:metrics', { port: 0, host: '127.0.0.1' }],
        ],
      },
      env: { BROKER_URL: broker, MESHSYNC_PROTOCOL: 'meshery', ...env },
    });
    cleanups.push(() => meshsync.stop());
    return meshsync;
  };

  it('accepts every message of a churn run: 100% decoded, stable ids, the store holds every object, a resync resends everything, meta carries the version', async () => {
    sim.create('namespaces.v1.', { metadata: { name: 'shop' } });
    sim.create('deployments.v1.apps', { metadata: { name: 'web', namespace: 'shop', labels: { app: 'web' }, annotations: { note: 'say "hi" & <bye>' } }, spec: { replicas: 1, selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'web', image: 'nginx' }] } } } });
    sim.create('services.v1.', { metadata: { name: 'prometheus-server', namespace: 'shop' }, spec: { type: 'NodePort', clusterIP: '10.96.0.20', ports: [{ port: 9090, nodePort: 30090 }] } });
    sim.create('secrets.v1.', { metadata: { name: 'db', namespace: 'shop' }, type: 'Opaque', data: { password: Buffer.from('hunter2').toString('base64') } });

    // Meshery Server subscribes, then asks for the store once meshsync listens; the ConfigMap list
    // fails a few times first, so the request comes before the initial sync, which the reply waits for.
    const check = await startMesheryCheck(nats.url);
    cleanups.push(() => check.stop());
    sim.failRequests({ resourceId: 'configmaps.v1.', verbs: ['list', 'watch'], times: 2, status: 503, retryAfterSeconds: 1 });
    const meshsync = run();
    await meshsync.waitForLog(/answering Meshery requests/);
    expect(meshsync.logs().some((l) => /informer-store answered/.test(String(l.msg)))).to.equal(false);
    await check.send('store');
    const initial = simulatorIds(sim);
    await untilAsync(async () => (await check.verdict()).storeIds.length >= initial.size, 'the first store reply', 30_000);
    expect(new Set((await check.verdict()).storeIds)).to.deep.equal(initial);
    const order = ['informer-store request before the initial sync', 'initial sync complete', 'informer-store answered']
      .map((text) => meshsync.logs().findIndex((l) => String(l.msg).startsWith(text)));
    expect(order[0]).to.be.at.least(0);
    expect(order).to.deep.equal([...order].sort((a, b) => a - b));

    // Churn: ConfigMaps created, changed and deleted while meshsync publishes.
    const names: string[] = [];
    const deleted: string[] = [];
    for (let i = 0; i < 150; i++) {
      const roll = Math.random();
      if (names.length < 10 || roll < 0.4) {
        const name = `churn-${i}`;
        sim.create('configmaps.v1.', { metadata: { name, namespace: 'shop' }, data: { n: String(i), html: '<&>' } });
        names.push(name);
      } else if (roll < 0.8) {
        sim.patch('configmaps.v1.', 'shop', names[Math.floor(Math.random() * names.length)], { data: { n: String(i) } });
      } else {
        const [name] = names.splice(Math.floor(Math.random() * names.length), 1);
        sim.delete('configmaps.v1.', 'shop', name);
        deleted.push(name);
      }
      await sleep(10);
    }

    // Meshery's table converges on the cluster, every message decoded as the server decodes it.
    const expected = simulatorIds(sim);
    await untilAsync(async () => {
      const verdict = await check.verdict();
      return verdict.view.length === expected.size && verdict.view.every((row) => expected.has(row.id));
    }, 'Meshery\'s table to hold exactly the simulator\'s objects', 30_000);
    const verdict = await check.verdict();
    expect(verdict.core.errors).to.deep.equal([]);
    expect(verdict.core.failed).to.equal(0);
    expect(verdict.core.unknownFields).to.equal(0);
    expect(verdict.core.decoded).to.equal(verdict.core.messages);
    expect(Object.keys(verdict.core.byEventType)).to.have.members(['ADDED', 'MODIFIED', 'DELETED']);
    expect(verdict.core.byObjectType).to.deep.equal({ 'meshsync-data': verdict.core.messages });
    expect(verdict.unstableIds, 'one SetID id per object across ADDED/MODIFIED/DELETED').to.deep.equal([]);
    expect(verdict.objectsSeen).to.be.greaterThan(expected.size);
    expect(new Set(verdict.view.map((row) => row.cluster_id))).to.deep.equal(new Set([KUBE_SYSTEM_UID]));

    // Store replies come in batches of at most 5.
    expect(verdict.store.messages).to.be.greaterThan(0);
    expect(verdict.storeNonArray).to.equal(0);
    expect(Object.keys(verdict.storeBatches).map(Number).every((size) => size >= 1 && size <= 5)).to.equal(true);
    expect(verdict.store.failed).to.equal(0);

    // Asked again once quiet: the reply holds every object.
    await check.send('store');
    await untilAsync(async () => (await check.verdict()).storeIds.length >= expected.size, 'the store reply', 20_000);
    await sleep(300);
    const stored = await check.verdict();
    expect(new Set(stored.storeIds)).to.deep.equal(expected);
    expect(stored.store.failed).to.equal(0);

    // resync-discovery: everything again as ADDED, and a DELETED for each object deleted since the last announce.
    const beforeResync = check.lines.length;
    await check.send('resync');
    await untilAsync(async () => events(linesAfter(check, beforeResync)).filter((e) => e.eventType === 'ADDED').length >= expected.size, 'the resync', 20_000);
    await sleep(300);
    const resync = events(linesAfter(check, beforeResync));
    expect(new Set(resync.filter((e) => e.eventType === 'ADDED').map((e) => e.object.id))).to.deep.equal(expected);
    const deletedIds = deleted.map((name) => mesheryId(KUBE_SYSTEM_UID, { kind: 'ConfigMap', apiVersion: 'v1', metadata: { namespace: 'shop', name } }));
    expect(new Set(resync.filter((e) => e.eventType === 'DELETED').map((e) => e.object.id))).to.deep.equal(new Set(deletedIds));
    expect(resync.every((e) => e.object.decoded)).to.equal(true);

    // meshsync-meta: the package version.
    await check.send('meta');
    await until(() => check.lines.some((line) => line.kind === 'meta'), 'the meta reply');
    expect(check.lines.filter((line) => line.kind === 'meta')).to.deep.equal([{ kind: 'meta', objectType: '', version: VERSION }]);

    // The Secret reached Meshery, its value did not.
    expect(events(check.lines).some((e) => e.object.kind === 'Secret' && e.object.decoded)).to.equal(true);
    expect(JSON.stringify(check.lines)).to.not.include(Buffer.from('hunter2').toString('base64'));

    expect(meshsync.logs().filter((l) => l.level >= 50)).to.deep.equal([]);
  });

  it('drops a null Request and an unknown entity, answers log-stream, exec-request and active-exec with an error, and goes on', async () => {
    const check = await startMesheryCheck(nats.url);
    cleanups.push(() => check.stop());
    const meshsync = run();
    await meshsync.waitForLog(/answering Meshery requests/);
    await check.send('raw {"ObjectType":"","EventType":"","Request":null,"Object":null}');
    await check.send('raw not json at all');
    await check.send('raw {"Request":{"Entity":"no-such-entity"}}');
    await check.send('raw {"ObjectType":"request-payload","EventType":"ADDED","Request":{"Entity":"log-stream","Payload":{"operator":{"id":"1","name":"web","namespace":"shop","container":"c"}}}}');
    await check.send('raw {"Request":{"Entity":"exec-request","Payload":{"x":{"id":"s1","name":"web","namespace":"shop","container":"c"}}}}');
    await check.send('raw {"Request":{"Entity":"active-exec"}}');
    await check.send('meta');
    await until(() => check.lines.some((line) => line.kind === 'meta'), 'the meta reply after the bad requests');
    await until(() => check.lines.filter((line) => line.kind === 'reply').length >= 3, 'three error replies');
    const replies = check.lines.filter((line): line is Extract<CheckLine, { kind: 'reply' }> => line.kind === 'reply');
    expect(replies.map((r) => [r.subject, r.objectType])).to.have.deep.members([
      ['meshery.meshsync.logs', 'error'], ['exec.>', 'error'], ['active_sessions.exec', 'error'],
    ]);
    expect(replies.every((r) => /not supported/.test(r.text))).to.equal(true);
    await meshsync.waitForLog(/invalid Meshery request \(Request is null/);
    await meshsync.waitForLog(/Meshery request is not JSON/);
    await meshsync.waitForLog(/Meshery request log-stream is not supported/);
    expect(meshsync.child.exitCode).to.equal(null);
    const metricsAt = (meshsync.logs().find((l) => /serving \/metrics/.test(String(l.msg))) ?? {}).address as string;
    const metrics = await (await fetch(`http://${metricsAt}/metrics`)).text();
    expect(metrics).to.match(/meshsync_meshery_requests_total\{entity="none",outcome="invalid"\} 2/);
    expect(metrics).to.match(/meshsync_meshery_requests_total\{entity="no-such-entity",outcome="ignored"\} 1/);
    expect(metrics).to.match(/meshsync_meshery_requests_total\{entity="log-stream",outcome="unsupported"\} 1/);
    expect((await fetch(`http://${metricsAt}/readyz`)).status).to.equal(200);
  });

  it('with two replicas, only the leader is in the request queue group: every request is answered, also after a takeover', async () => {
    const check = await startMesheryCheck(nats.url);
    cleanups.push(() => check.stop());
    const replica = (identity: string) => {
      const meshsync = startMeshsync({
        dir,
        config: {
          plugins: [
            ['meshsync:kubernetes', { kubeconfig: join(dir, 'kubeconfig'), resources: ['namespaces.v1.'] }],
            ['meshsync:leader-election', { kubeconfig: join(dir, 'kubeconfig'), namespace: 'default', identity, leaseName: 'meshery-ha', leaseDurationSeconds: 3, renewDeadlineSeconds: 2, retryPeriodSeconds: 0.5 }],
            'meshsync:nats',
          ],
        },
        env: { BROKER_URL: nats.url, MESHSYNC_PROTOCOL: 'meshery' },
      });
      cleanups.push(() => meshsync.kill());
      return meshsync;
    };
    const a = replica('meshery-a');
    await a.waitForLog(/became the leader/);
    await a.waitForLog(/answering Meshery requests/);
    const b = replica('meshery-b');
    await b.waitForLog(/standing by/);
    await sleep(500);
    // The queue group hands each request to one member: a standby in it would drop about half.
    const metaReplies = () => check.lines.filter((line) => line.kind === 'meta').length;
    for (let i = 0; i < 10; i++) await check.send('meta');
    await until(() => metaReplies() === 10, 'ten meta replies');
    expect(b.logs().some((l) => /answering Meshery requests/.test(String(l.msg))), 'the standby stays out of the group').to.equal(false);
    await a.kill();
    await b.waitForLog(/became the leader/, 15_000);
    await b.waitForLog(/answering Meshery requests/);
    for (let i = 0; i < 5; i++) await check.send('meta');
    await until(() => metaReplies() === 15, 'five more meta replies, from the new leader');
  });

  it('connects as the operator sets it up: client name meshsync on /connz, a token from the URL or NATS_TOKEN, never logged', async () => {
    const token = 's3cr3t-token-for-tests';
    const authed = await startNatsServer({ config: `authorization { token: "${token}" }`, args: ['-m', String(await freePort())] });
    cleanups.push(() => authed.dispose());
    const check = await startMesheryCheck(authed.url, { token });
    cleanups.push(() => check.stop());
    for (const [broker, env] of [[authed.url.replace('nats://', `nats://${token}@`), {}], [authed.url, { NATS_TOKEN: token }]] as const) {
      const before = check.lines.length;
      const meshsync = run(env, broker);
      await meshsync.waitForLog(/answering Meshery requests/);
      await check.send('meta');
      await until(() => linesAfter(check, before).some((line) => line.kind === 'meta'), 'the meta reply over token auth');
      await meshsync.stop();
      expect(meshsync.stderr()).to.not.include(token);
    }
    // The client name Meshery looks for on the monitor's /connz.
    const meshsync = run();
    await meshsync.waitForLog(/NATS connected/);
    const connz = await (await fetch(`http://127.0.0.1:${monitorPort}/connz`)).json() as { connections: { name?: string }[] };
    expect(connz.connections.map((c) => c.name)).to.include('meshsync');
  });

  it('writes what Go MeshSync\'s own ParseList writes for the same objects, byte for byte, but for the listed differences', async () => {
    const objects: { resource: ReturnType<typeof CORE_REF>; object: KubeObject }[] = [
      { resource: CORE_REF('configmaps', 'ConfigMap'), object: sim.create('configmaps.v1.', { metadata: { name: 'diff-cm', namespace: 'shop', labels: { 'z': '1', a: 'x"y' }, annotations: { 'k&': '<v>' }, finalizers: ['a/b'] }, data: { 'b': '1', a: 'é\u2028' }, immutable: true }) },
      { resource: CORE_REF('secrets', 'Secret'), object: sim.create('secrets.v1.', { metadata: { name: 'diff-secret', namespace: 'shop' }, type: 'kubernetes.io/tls', data: { 'tls.crt': 'AAAA' } }) },
      { resource: CORE_REF('services', 'Service'), object: sim.create('services.v1.', { metadata: { name: 'diff-svc', namespace: 'shop' }, spec: { clusterIP: 'None', ports: [{ port: 80 }, { port: 443 }] } }) },
      { resource: CORE_REF('namespaces', 'Namespace'), object: sim.get('namespaces.v1.', undefined, 'kube-system')! },
      { resource: { group: 'apps', version: 'v1', resource: 'deployments', kind: 'Deployment', namespaced: true }, object: sim.create('deployments.v1.apps', { metadata: { name: 'diff-deploy', namespace: 'shop', generation: 3, labels: { 'design.meshery.io/id': '6f1c2a7e-3b4d-4e5f-8a9b-0c1d2e3f4a5b' } }, spec: { replicas: 2, strategy: { type: 'Recreate' } }, status: { replicas: 2 } }) },
    ];
    for (const type of ['ADDED', 'MODIFIED', 'DELETED'] as const) {
      // meshsync's objects leave without managedFields (Go MeshSync at HEAD drops them too; v1.0.0 still sent them).
      const inputs = objects.map(({ object }) => ({ type, cluster_id: KUBE_SYSTEM_UID, object: { ...object, metadata: { ...object.metadata, managedFields: undefined } } }));
      const go = await parseWithGoMeshSync(inputs);
      const ours = objects.map(({ resource, object }) => encodeMesheryEvent(new PipelineEvent(type, resource, inputs.find((i) => i.object.metadata.uid === object.metadata.uid)!.object, KUBE_SYSTEM_UID, 0), { maxPayload: 1 << 20 }).payload);
      expect(ours.map((p) => (typeof p === 'string' ? p : Buffer.from(p).toString('utf8')))).to.deep.equal(go);
    }
  });
});
