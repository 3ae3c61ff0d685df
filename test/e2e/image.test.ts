// The container image end to end: built with podman (scripts/image-build.sh), run the way the
// Deployment runs it (read-only root, uid 65532, config from /config, broker from BROKER_URL)
// against the Kubernetes API simulator and a real nats-server on the host network.
import { execFile, spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { startSimulator } from '../../testing/simulator/index.ts';
import type { KubeSimulator } from '../../testing/simulator/index.ts';
import { freePort, startNatsServer, subscriber } from '../support/nats-server.ts';
import type { NatsServerHandle } from '../support/nats-server.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SUBJECT = 'meshery.meshsync.request';
const env = { ...process.env, CONTAINERS_CONF: process.env.CONTAINERS_CONF ?? join(root, 'deploy/podman/containers.conf') };

/** podman, asynchronously: the simulator serves the container from this very process. */
async function podman(...args: string[]): Promise<string> {
  const { stdout } = await promisify(execFile)('podman', args, { env, maxBuffer: 64 << 20 });
  return stdout.trim();
}

/** The third-party plugin the test image holds: packed into image-plugins/, named in PLUGINS as users do. */
const FIXTURE_PLUGIN = 'meshsync-plugin-image-fixture';

/**
 * Builds the image (podman's layer cache makes an unchanged tree quick) unless MESHSYNC_IMAGE names
 * one, with the fixture plugin added by the PLUGINS build argument (npm run image's way).
 */
async function buildImage(): Promise<string> {
  if (process.env.MESHSYNC_IMAGE) return process.env.MESHSYNC_IMAGE;
  const { stdout } = await promisify(execFile)('npm', ['pack', '--silent', '--pack-destination', join(root, 'image-plugins'), join(root, 'test/fixtures/image-plugin')], { env });
  const tarball = `./image-plugins/${stdout.trim().split('\n').pop()}`;
  return new Promise((resolve, reject) => {
    const child = spawn(join(root, 'scripts/image-build.sh'), { env: { ...env, IMAGE: 'localhost/meshsync:e2e', PLUGINS: tarball }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let log = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    child.stderr.on('data', (chunk) => (log += chunk));
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`scripts/image-build.sh exited ${code}:\n${log.slice(-8000)}`));
      process.stderr.write(`      ${log.trim().split('\n').pop()}\n`); // image-build: <image> built in Ns, size N MB
      resolve(out.trim().split('\n').pop()!);
    });
  });
}

async function get(url: string): Promise<{ status: number; body: string }> {
  const res = await fetch(url);
  return { status: res.status, body: await res.text() };
}

async function eventually<T>(what: string, probe: () => Promise<T | undefined>, attempts = 120): Promise<T> {
  for (let i = 0; i < attempts; i++) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`gave up waiting for ${what}`);
}

const pod = (name: string) => ({
  apiVersion: 'v1', kind: 'Pod',
  metadata: { name, namespace: 'default', labels: { app: 'image-test' } },
  spec: { containers: [{ name: 'c', image: 'busybox' }] },
});

describe('container image', function () {
  this.timeout(15 * 60_000); // a cold build downloads every dependency
  let image: string;
  let sim: KubeSimulator;
  let nats: NatsServerHandle;
  let dir: string;
  let container: string | undefined;

  before(async () => {
    image = await buildImage();
  });

  beforeEach(async () => {
    sim = await startSimulator();
    nats = await startNatsServer();
    // Readable by the container's uid 65532; the mounts are read-only.
    dir = await mkdtemp(join(tmpdir(), 'meshsync-image-'));
    await chmod(dir, 0o755);
  });

  afterEach(async function () {
    if (container) {
      if (this.currentTest?.state === 'failed') process.stderr.write(await podman('logs', container).catch(String));
      await podman('rm', '-f', container).catch(() => undefined);
      container = undefined;
    }
    await sim.close();
    await nats.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  it('is labelled, runs as uid 65532 and takes its config from the /config volume', async () => {
    const [config] = JSON.parse(await podman('image', 'inspect', image)).map((i: any) => i.Config);
    expect(config.User).to.equal('65532:65532');
    expect(config.Entrypoint).to.deep.equal(['node', '--max-semi-space-size=4', '/app/bin/meshsync.js']);
    expect(Object.keys(config.Volumes)).to.deep.equal(['/config']);
    // finding 1: the process never runs from the ConfigMap mount; it only searches it.
    expect(config.WorkingDir).to.equal('/app');
    expect(config.Env).to.include('MESHSYNC_CONFIG_DIR=/config');
    expect(config.Labels).to.include.keys('org.opencontainers.image.title', 'org.opencontainers.image.version',
      'org.opencontainers.image.revision', 'org.opencontainers.image.source', 'org.opencontainers.image.licenses');
  });

  it('ships no test double: no testing/ (nor the simulator) in it, and --simulator says the image has no demo', async () => {
    expect(await podman('run', '--rm', '--entrypoint', 'node', image, '-e', "console.log(require('fs').existsSync('/app/dist/testing'), require('fs').readdirSync('/app/dist').sort().join(','))"))
      .to.equal('false cli,config,core,index.js,kubernetes,package.json,plugins');
    const demo = await promisify(execFile)('podman', ['run', '--rm', image, 'run', '--simulator'], { env }).then(() => undefined, (error: { code?: number; stderr?: string }) => error);
    expect(demo?.code).to.equal(1);
    expect(demo?.stderr).to.match(/MESHSYNC_KUBE_CONFIG: demo mode \(--simulator\) needs the Kubernetes API simulator/);
  });

  it('holds the plugin packages of its PLUGINS build argument: a config names one by its package, its options are checked', async () => {
    const configDir = join(dir, 'config');
    await mkdir(configDir, { mode: 0o755 });
    await writeFile(join(configDir, 'meshsync.config.yaml'), `plugins:\n  - meshsync:kubernetes\n  - [${FIXTURE_PLUGIN}, { valu: x }]\n  - meshsync:stdout\n`, { mode: 0o644 });
    const rejected = await promisify(execFile)('podman', ['run', '--rm', '--read-only', '-v', `${configDir}:/config:ro`, image, 'validate'], { env }).then(() => undefined, (error: { code?: number; stderr?: string }) => error);
    expect(rejected?.code, rejected?.stderr).to.equal(1);
    expect(rejected?.stderr).to.contain('plugins[1].options.valu: unknown key; did you mean "value"?');
    await writeFile(join(configDir, 'meshsync.config.yaml'), `plugins:\n  - meshsync:kubernetes\n  - [${FIXTURE_PLUGIN}, { value: x }]\n  - meshsync:stdout\n`, { mode: 0o644 });
    expect(await podman('run', '--rm', '--read-only', '-v', `${configDir}:/config:ro`, image, 'validate')).to.equal('valid: /config/meshsync.config.yaml');
  });

  it('finding 11: ships only what runs: no source maps or type declarations in dist, and refuses a base given by tag alone', async () => {
    const leftovers = await podman('run', '--rm', '--entrypoint', 'node', image, '-e',
      "const fs = require('fs'), path = require('path'); const out = []; (function walk(d) { for (const e of fs.readdirSync(d, { withFileTypes: true })) { const f = path.join(d, e.name); if (e.isDirectory()) walk(f); else if (/\\.(map|d\\.ts)$/.test(e.name)) out.push(f); } })('/app/dist'); console.log(out.length)");
    expect(leftovers).to.equal('0');
    const [config] = JSON.parse(await podman('image', 'inspect', image)).map((i: any) => i.Config);
    expect((config.Env as string[]).some((e) => e.includes('enable-source-maps'))).to.equal(false);
    // The pin check runs first in the build: a tag-only base fails it before anything else is built.
    const unpinned = await promisify(execFile)('podman', ['build', '--build-arg', 'BASE_IMAGE=node:22-alpine', '--build-arg', `BUILD_IMAGE=${process.env.MESHSYNC_BUILD_IMAGE ?? `localhost/meshsync-base:node${process.versions.node.split('.')[0]}-build`}`, '--target', 'build', '-f', join(root, 'Dockerfile'), root], { env, maxBuffer: 64 << 20 })
      .then(() => undefined, (error: { stderr?: string; stdout?: string }) => `${error.stdout ?? ''}${error.stderr ?? ''}`);
    expect(unpinned).to.match(/pin the base by digest/);
  });

  it('publishes cluster changes to NATS from a read-only container, serves /metrics and /readyz, and stops cleanly on SIGTERM', async () => {
    const metricsPort = await freePort();
    const kubeconfig = join(dir, 'kubeconfig');
    await sim.writeKubeconfig(kubeconfig);
    await chmod(kubeconfig, 0o644);
    const configDir = join(dir, 'config');
    await mkdir(configDir, { mode: 0o755 });
    // A TypeScript config on a read-only mount (a ConfigMap always is): it is transpiled elsewhere.
    await writeFile(join(configDir, 'meshsync.config.ts'), [
      "import { defineConfig } from 'meshsync';",
      "import metrics from 'meshsync/plugins/metrics';",
      `const port: number = ${metricsPort};`,
      // A plugin package the PLUGINS build argument added, named as a YAML config would name it.
      `export default defineConfig({ plugins: ['meshsync:kubernetes', ['${FIXTURE_PLUGIN}', { value: 'from-the-image' }], 'meshsync:redact-secrets', 'meshsync:nats', metrics({ port })] });`,
    ].join('\n'), { mode: 0o644 });
    sim.create('pods.v1.', pod('before-start'));
    const sub = await subscriber(nats.url, SUBJECT);

    try {
      // No command: the image's default `run` discovers /config/meshsync.config.ts.
      container = await podman('run', '-d', '--network', 'host', '--read-only', '--user', '65532',
        '-e', `BROKER_URL=${nats.url}`, '-e', 'CLUSTER_ID=image-test', '-e', 'KUBECONFIG=/kube/config',
        '-v', `${kubeconfig}:/kube/config:ro`, '-v', `${configDir}:/config:ro`, image);

      const metricsUrl = `http://127.0.0.1:${metricsPort}`;
      const ready = await eventually('/readyz', async () => ((await get(`${metricsUrl}/readyz`)).status === 200 ? true : undefined));
      expect(ready).to.equal(true);

      await sub.waitFor((ms) => ms.some((m) => m.json<any>().object?.metadata?.name === 'before-start'), 30_000);
      sim.create('pods.v1.', pod('after-start'));
      await sub.waitFor((ms) => ms.some((m) => m.json<any>().object?.metadata?.name === 'after-start'), 30_000);
      const event = sub.json().find((m) => m.object?.metadata?.name === 'after-start')!;
      expect(event).to.include({ type: 'ADDED', cluster_id: 'image-test' });
      expect(event.object).to.include({ kind: 'Pod', apiVersion: 'v1' });
      expect(event.object.metadata.annotations).to.include({ 'image-fixture': 'from-the-image' });

      const metrics = await get(`${metricsUrl}/metrics`);
      expect(metrics.status).to.equal(200);
      expect(metrics.body).to.match(/^meshsync_\w+/m);
      expect((await get(`${metricsUrl}/healthz`)).status).to.equal(200);

      // Exit code 0 means it finished on SIGTERM within the grace period; podman kills (137) after it.
      await podman('stop', '-t', '10', container);
      const state = JSON.parse(await podman('inspect', container))[0].State;
      expect(state.ExitCode, await podman('logs', container)).to.equal(0);
      expect(await podman('logs', container)).to.not.match(/EROFS|EACCES|read-only file system/i);
    } finally {
      await sub.close();
    }
  });
});
