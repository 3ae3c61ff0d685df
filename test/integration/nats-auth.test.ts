import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { nkeys } from '@nats-io/transport-node';
import { createTestCore, makeObject, POD } from '../../testing/index.ts';
import { createLogger, type Logger } from '../../core/log.ts';
import nats, { type NatsOptionsInput } from '../../plugins/nats/index.ts';
import { startAnnounced, startNatsServer, subscriber, type NatsServerHandle } from '../support/nats-server.ts';
import { decentralizedAuth } from '../support/nats-jwt.ts';

function memoryLog() {
  const lines: string[] = [];
  const destination = new Writable({ write(chunk, _, done) { lines.push(String(chunk)); done(); } });
  return { logger: createLogger({ level: 'debug', destination, pretty: false }), lines };
}

/** Starts meshsync with the nats sink and checks one event reaches a subscriber. */
async function deliversOneEvent(server: NatsServerHandle, options: NatsOptionsInput, subscriberOptions: Parameters<typeof subscriber>[2], logger?: Logger) {
  const sub = await subscriber(server.url, 'meshery.meshsync.request', subscriberOptions);
  const t = createTestCore({ logger, plugins: [nats({ url: server.url, reconnectInitialMs: 20, ...options })] });
  try {
    await startAnnounced(t.start, sub);
    t.source.emit('ADDED', POD, makeObject(POD, 'p1'));
    await t.drain();
    await sub.waitFor((m) => m.length === 1);
    expect(sub.messages[0].json<any>().object.metadata.name).to.equal('p1');
  } finally {
    await t.stop();
    await sub.close();
  }
}

describe('nats sink authentication and TLS (real nats-server)', function () {
  this.timeout(20_000);
  const servers: NatsServerHandle[] = [];
  afterEach(async () => {
    for (const server of servers.splice(0)) await server.dispose();
  });
  const start = async (config: string) => {
    const server = await startNatsServer({ config });
    servers.push(server);
    return server;
  };

  it('authenticates with user and password', async () => {
    const server = await start('authorization { user: meshsync, password: "s3cret-pw" }');
    await deliversOneEvent(server, { auth: { user: 'meshsync', password: 's3cret-pw' } }, { user: 'meshsync', pass: 's3cret-pw' });
  });

  it('authenticates with a token', async () => {
    const server = await start('authorization { token: "tok-123456" }');
    await deliversOneEvent(server, { auth: { token: 'tok-123456' } }, { token: 'tok-123456' });
  });

  it('authenticates with an NKey seed, inline or from a file', async () => {
    const user = nkeys.createUser();
    const seed = new TextDecoder().decode(user.getSeed());
    const server = await start(`authorization { users: [ { nkey: ${user.getPublicKey()} } ] }`);
    const subscriberAuth = { authenticator: (await import('@nats-io/transport-node')).nkeyAuthenticator(user.getSeed()) };
    await deliversOneEvent(server, { auth: { nkeySeed: seed } }, subscriberAuth);
    const dir = mkdtempSync(join(tmpdir(), 'meshsync-nkey-'));
    try {
      writeFileSync(join(dir, 'seed'), `${seed}\n`);
      await deliversOneEvent(server, { auth: { nkeySeedFile: join(dir, 'seed') } }, subscriberAuth);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('authenticates with a creds file (user JWT and seed) against an operator-mode server, and never logs the seed', async () => {
    const auth = decentralizedAuth();
    const server = await start(auth.serverConfig);
    const dir = mkdtempSync(join(tmpdir(), 'meshsync-creds-'));
    try {
      const credsFile = join(dir, 'meshsync.creds');
      writeFileSync(credsFile, auth.creds);
      const subscriberAuth = { authenticator: (await import('@nats-io/transport-node')).credsAuthenticator(new TextEncoder().encode(auth.creds)) };
      // Without the creds the server refuses the connection: the test's server really checks them.
      const refused = await subscriber(server.url, 'x', { reconnect: false }).then(async (sub) => (await sub.close(), false), () => true);
      expect(refused).to.equal(true);
      const { logger, lines } = memoryLog();
      await deliversOneEvent(server, { auth: { credsFile } }, subscriberAuth, logger);
      expect(lines.join('')).to.include('NATS connected').and.not.include(auth.userSeed);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('finding 9 (LOW): credentials in the URL (nats://user:pass@host) authenticate', async () => {
    const server = await start('authorization { user: meshsync, password: "url-pw-42" }');
    await deliversOneEvent(server, { url: `nats://meshsync:url-pw-42@127.0.0.1:${server.port}` }, { user: 'meshsync', pass: 'url-pw-42' });
  });

  it('finding 9 (LOW): a token in the URL (nats://token@host) authenticates', async () => {
    const server = await start('authorization { token: "url-token-42" }');
    await deliversOneEvent(server, { url: `nats://url-token-42@127.0.0.1:${server.port}` }, { token: 'url-token-42' });
  });

  it('finding 9 (LOW): credentials both in the URL and in auth are refused at start with a clear error, naming neither', async () => {
    const error = await Promise.resolve().then(() => nats({ url: 'nats://a:url-secret@127.0.0.1:4222', auth: { user: 'b', password: 'auth-secret' } })).then(() => undefined, (e: Error) => e);
    expect(error?.message).to.match(/credentials both in the server URL and in auth/);
    expect(error?.message).to.not.contain('url-secret').and.not.contain('auth-secret');
  });

  it('keeps retrying with a wrong password and never logs it', async () => {
    const server = await start('authorization { user: meshsync, password: "right-pw" }');
    const { logger, lines } = memoryLog();
    const t = createTestCore({ logger, stopTimeoutMs: 100, plugins: [nats({ url: `nats://meshsync:wrong-pw-77@127.0.0.1:${server.port}`, reconnectInitialMs: 20, reconnectMaxMs: 50 })] });
    try {
      await t.start();
      t.source.emit('ADDED', POD, makeObject(POD, 'p1'));
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(t.core.readiness().broker).to.equal(false);
      expect(t.core.counters.sinks['meshsync:nats'].delivered).to.equal(0);
      const log = lines.join('');
      expect(log).to.include('cannot connect to NATS');
      expect(log).not.to.include('wrong-pw-77');
    } finally {
      await t.stop();
    }
  });

  it('connects over TLS with a CA made for the test, and with a client certificate', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshsync-tls-'));
    try {
      const file = (name: string) => join(dir, name);
      const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' });
      openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=meshsync-test-ca', '-keyout', file('ca.key'), '-out', file('ca.pem'));
      writeFileSync(file('san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
      for (const name of ['server', 'client']) {
        openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', `/CN=${name}`, '-keyout', file(`${name}.key`), '-out', file(`${name}.csr`));
        openssl('x509', '-req', '-in', file(`${name}.csr`), '-CA', file('ca.pem'), '-CAkey', file('ca.key'), '-CAcreateserial', '-days', '1', '-extfile', file('san.ext'), '-out', file(`${name}.pem`));
      }
      const tls = (verify: boolean) => `tls { cert_file: "${file('server.pem')}", key_file: "${file('server.key')}", ca_file: "${file('ca.pem')}", verify: ${verify} }`;

      const server = await start(tls(false));
      const clientTls = { tls: { caFile: file('ca.pem') } };
      await deliversOneEvent(server, { tls: { caFile: file('ca.pem') } }, clientTls);

      const verifying = await start(tls(true));
      const mutual = { tls: { caFile: file('ca.pem'), certFile: file('client.pem'), keyFile: file('client.key') } };
      await deliversOneEvent(verifying, mutual, mutual);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('meshsync install --nats-permissions (real nats-server)', function () {
  this.timeout(20_000);
  it('finding 3: the emitted users lock the subjects down: meshsync publishes and answers requests, the consumer reads and asks, neither can do the other\'s part', async () => {
    const { natsPermissions } = await import('../../cli/install/nats.ts');
    const config = natsPermissions().replace('$MESHSYNC_NATS_PASSWORD', '"pw-meshsync"').replace('$MESHERY_NATS_PASSWORD', '"pw-meshery"');
    const server = await startNatsServer({ config });
    const meshery = await subscriber(server.url, 'meshery.meshsync.request', { user: 'meshery', pass: 'pw-meshery' });
    const t = createTestCore({ plugins: [nats({ url: server.url, reconnectInitialMs: 20, auth: { user: 'meshsync', password: 'pw-meshsync' } })] });
    try {
      await startAnnounced(t.start, meshery);
      t.source.emit('ADDED', POD, makeObject(POD, 'p1'));
      await t.drain();
      await meshery.waitFor((m) => m.length === 1);
      // The consumer's request is answered (allow_responses lets meshsync reply to it, and only to it).
      const reply = await meshery.nc.request('meshery.meshsync.control', 'meta', { timeout: 2000 });
      expect(reply.json<any>().cluster_id).to.equal('test-cluster');
      // The consumer cannot forge events: its publish on the event subject is refused by the server.
      const forged = await subscriber(server.url, 'meshery.meshsync.request', { user: 'meshery', pass: 'pw-meshery' });
      forged.nc.publish('meshery.meshsync.request', '{"forged":true}');
      await forged.nc.flush();
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(meshery.json().some((payload) => payload.forged)).to.equal(false);
      await forged.close();
      // Nobody without a user connects at all.
      const anonymous = await subscriber(server.url, 'meshery.meshsync.control').then(() => 'connected', (error: Error) => error.message);
      expect(anonymous).to.match(/Authorization/i);
    } finally {
      await t.stop();
      await meshery.close();
      await server.dispose();
    }
  });

  it('grant the ledger (JetStream on the server): with only those permissions a restart still publishes just the diff against it', async () => {
    const { natsPermissions } = await import('../../cli/install/nats.ts');
    const config = natsPermissions({ ledger: { bucket: 'meshsync-ledger-{cluster}', clusterId: 'test-cluster' } })
      .replace('$MESHSYNC_NATS_PASSWORD', '"pw-meshsync"').replace('$MESHERY_NATS_PASSWORD', '"pw-meshery"');
    const server = await startNatsServer({ config, jetstream: true });
    const meshery = await subscriber(server.url, 'meshery.meshsync.request', { user: 'meshery', pass: 'pw-meshery' });
    const pod = (name: string) => makeObject(POD, name, { uid: `uid-${name}`, resourceVersion: '1' });
    const meshsync = () => createTestCore({ logger: process.env.DEBUG_LEDGER ? createLogger({ level: 'debug', pretty: false }) : undefined, source: { syncedAtStart: false }, plugins: [nats({ url: server.url, reconnectInitialMs: 20, auth: { user: 'meshsync', password: 'pw-meshsync' } })] });
    const first = meshsync();
    const second = meshsync();
    try {
      await first.start();
      for (const name of ['kept', 'gone']) first.source.emit('ADDED', POD, pod(name));
      first.source.synced();
      await meshery.waitFor((m) => m.length === 2);
      expect(first.core.state.statuses()['meshsync:nats']).to.deep.equal({ ledger: 'available', converge: 'every consumer' });
      await first.stop();
      meshery.messages.length = 0;
      await second.start();
      second.source.emit('ADDED', POD, pod('kept'));
      second.source.synced();
      await meshery.waitFor((m) => m.length === 1);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(meshery.json().map((p) => `${p.type} ${p.object.metadata.name}`)).to.deep.equal(['DELETED gone']);
    } finally {
      await second.stop();
      await meshery.close();
      await server.dispose();
    }
  });
});
