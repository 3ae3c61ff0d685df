import { expect } from 'chai';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startSimulator } from '../../testing/simulator/index.ts';
import { freshClone } from '../support/fresh-clone.ts';
import { freePort, startNatsServer, type NatsServerHandle } from '../support/nats-server.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CASES = join(ROOT, 'test', 'fixtures', 'configs');
const unreachableKubeconfig = [
  'apiVersion: v1', 'kind: Config',
  'clusters: [{name: c, cluster: {server: "http://127.0.0.1:1", insecure-skip-tls-verify: true}}]',
  'users: [{name: u, user: {token: t}}]', 'contexts: [{name: x, context: {cluster: c, user: u}}]', 'current-context: x', '',
].join('\n');

interface Cli {
  readonly child: ChildProcess;
  stdout: string;
  stderr: string;
  readonly exited: Promise<number | null>;
}

/** Spawns the real bin of a fresh clone (no dist/: it runs the TS sources), as `npx meshsync` does; no kubeconfig unless the test gives one. */
function startCli(args: string[], options: { cwd?: string; env?: Record<string, string> } = {}): Cli {
  const child = spawn(process.execPath, [join(freshClone(), 'bin', 'meshsync.js'), ...args], {
    cwd: options.cwd ?? freshClone(),
    env: { PATH: process.env.PATH ?? '', HOME: options.cwd ?? tmpdir(), ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const cli: Cli = {
    child,
    stdout: '',
    stderr: '',
    exited: new Promise((resolve) => child.on('exit', (code) => resolve(code))),
  };
  child.stdout!.on('data', (chunk: Buffer) => (cli.stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (cli.stderr += chunk.toString()));
  return cli;
}

async function runCli(args: string[], options: { cwd?: string; env?: Record<string, string> } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const cli = startCli(args, options);
  const code = await cli.exited;
  return { code, stdout: cli.stdout, stderr: cli.stderr };
}

async function waitFor(condition: () => boolean, what: string, cli: Cli, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (cli.child.exitCode !== null) throw new Error(`the CLI exited (${cli.child.exitCode}) before ${what}:\n${cli.stderr}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${cli.stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('meshsync CLI', function () {
  this.timeout(90_000);
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'meshsync-cli-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('prints the package version with --version', async () => {
    const manifest = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const { code, stdout } = await runCli(['--version']);
    expect(code).to.equal(0);
    expect(stdout.trim()).to.equal(manifest.version);
  });

  it('prints usage with --help', async () => {
    const { code, stdout } = await runCli(['--help']);
    expect(code).to.equal(0);
    expect(stdout).to.match(/^Usage: meshsync/).and.to.contain('validate').and.to.contain('--simulator');
  });

  it('runs from a fresh clone without a build: the bin, npx meshsync and npm run meshsync', async function () {
    const clone = freshClone();
    expect(existsSync(join(clone, 'dist'))).to.equal(false);
    const bin = await runCli(['--help']);
    expect(bin.code, bin.stderr).to.equal(0);
    expect(bin.stdout).to.match(/^Usage: meshsync/);
    const env = { PATH: process.env.PATH ?? '', HOME: dir, npm_config_update_notifier: 'false' };
    const npx = await promisify(execFile)('npx', ['--no-install', 'meshsync', '--version'], { cwd: clone, env });
    expect(npx.stdout.trim()).to.match(/^\d+\.\d+\.\d+/);
    const npmRun = await promisify(execFile)('npm', ['run', '--silent', 'meshsync', '--', 'validate', '--help'], { cwd: clone, env });
    expect(npmRun.stdout).to.match(/^Usage: meshsync validate/);
  });

  it('gives each command its own help: its flags and an example', async () => {
    const snapshot = await runCli(['snapshot', '--help']);
    expect(snapshot.code).to.equal(0);
    expect(snapshot.stdout).to.match(/^Usage: meshsync snapshot/).and.contain('--out <file>').and.contain('--timeout <ms>').and.match(/Examples?:\n  meshsync snapshot /);
    const validate = await runCli(['validate', '-h']);
    expect(validate.stdout).to.match(/^Usage: meshsync validate/).and.contain('--config').and.match(/Example:\n  meshsync validate/).and.not.contain('--out');
    const install = await runCli(['install', '--help']);
    expect(install.stdout).to.match(/^Usage: meshsync install/).and.contain('--image <ref>').and.contain('Example:');
    const rbac = await runCli(['rbac', '--help']);
    expect(rbac.stdout).to.match(/^Usage: meshsync rbac/).and.not.contain('--image');
  });

  it('names an unknown flag, with the nearest one, in a closed sentence; exit 2', async () => {
    const bogus = await runCli(['--bogus']);
    expect(bogus.code).to.equal(2);
    expect(bogus.stderr).to.match(/^meshsync: unknown option --bogus; run takes --config, --log-level, --simulator, --help \(see meshsync run --help\)\n$/);
    const typo = await runCli(['snapshot', '--tiemout', '5', '--out', 'x.json']);
    expect(typo.stderr).to.contain('unknown option --tiemout; did you mean --timeout?');
    const elsewhere = await runCli(['run', '--out', 'x.json']);
    expect(elsewhere.stderr).to.contain('--out is an option of snapshot, not of run');
    const install = await runCli(['install', '--imag', 'x']);
    expect(install.code).to.equal(2);
    expect(install.stderr).to.contain('unknown option --imag; did you mean --image?').and.not.contain("'-- \"");
  });

  it('validate: prints valid: and nothing else, no log line before it', async () => {
    await writeFile(join(dir, 'meshsync.config.yaml'), 'plugins: [meshsync:kubernetes, meshsync:stdout]\n');
    const { code, stdout, stderr } = await runCli(['validate'], { cwd: dir });
    expect(code, stderr).to.equal(0);
    expect(stdout).to.equal(`valid: ${join(dir, 'meshsync.config.yaml')}\n`);
    expect(stderr).to.equal('');
  });

  it('exits 2 with a hint on an unknown command', async () => {
    const { code, stderr } = await runCli(['frobnicate']);
    expect(code).to.equal(2);
    expect(stderr).to.contain('unknown command "frobnicate"').and.to.contain('--help');
    const typo = await runCli(['valdate']);
    expect(typo.stderr).to.contain('unknown command "valdate"; did you mean "validate"?');
  });

  it('validate: exits 0 and says valid for a good config', async () => {
    const { code, stdout } = await runCli(['validate', '--config', join(CASES, 'good-yaml', '.meshsyncrc.yml')]);
    expect(code).to.equal(0);
    expect(stdout).to.match(/^valid: .*\.meshsyncrc\.yml$/m);
  });

  it('validate: exits 1 listing every problem with its path, code and remedy', async () => {
    const { code, stdout, stderr } = await runCli(['validate'], { cwd: join(CASES, 'bad-options-two-plugins') });
    expect(code).to.equal(1);
    expect(stdout).to.equal('');
    expect(stderr).to.contain('MESHSYNC_PLUGIN_OPTIONS').and.to.contain('2 problems');
    expect(stderr).to.contain('plugins[0].options.include').and.to.contain('plugins[2].options.port');
    expect(stderr).to.match(/remedy: .*option paths/);
  });

  it('print-config: prints the resolved config as JSON with secrets masked', async () => {
    const key = 'hmac-key-that-must-not-leak-0123456789';
    await writeFile(join(dir, 'meshsync.config.json'), JSON.stringify({
      clusterId: 'c1',
      plugins: [['meshsync:redact-secrets', { fingerprint: { key } }], ['meshsync:metrics', { port: 0 }]],
    }));
    const { code, stdout } = await runCli(['print-config'], { cwd: dir });
    expect(code).to.equal(0);
    expect(stdout).not.to.contain(key);
    const printed = JSON.parse(stdout) as { file: string; clusterId: string; plugins: { name: string; options: Record<string, any> }[]; pipeline: object };
    expect(printed.file).to.equal(join(dir, 'meshsync.config.json'));
    expect(printed.clusterId).to.equal('c1');
    expect(printed.plugins.map((p) => p.name)).to.deep.equal(['meshsync:redact-secrets', 'meshsync:metrics']);
    expect(printed.plugins[0].options.fingerprint.key).to.equal('[redacted]');
    expect(printed.pipeline).to.include({ batchSize: 500 });
  });

  it('a config with no source is a config error naming the missing source: validate, run and snapshot exit 1', async () => {
    const file = join(dir, 'meshsync.config.yaml');
    await writeFile(file, 'plugins: [meshsync:stdout]\n');
    for (const args of [['validate'], ['run'], ['snapshot', '--out', join(dir, 'state.jsonl')]]) {
      const { code, stdout, stderr } = await runCli(args, { cwd: dir, env: { KUBECONFIG: join(dir, 'kubeconfig') } });
      expect(code, `${args[0]}: ${stderr}`).to.equal(1);
      expect(stderr, args[0]).to.contain('MESHSYNC_CONFIG_INVALID').and.to.contain(`${file}: plugins: no source plugin`).and.to.contain('add a source, meshsync:kubernetes');
      expect(stderr, args[0]).not.to.contain('initial sync complete');
      expect(stdout, args[0]).to.equal('');
    }
    expect(existsSync(join(dir, 'state.jsonl'))).to.equal(false);
  });

  it('run: a bad config stops start-up with exit 1, the code and the remedy', async () => {
    const { code, stderr } = await runCli(['run', '--config', join(CASES, 'unknown-key', 'meshsync.config.yaml')]);
    expect(code).to.equal(1);
    expect(stderr).to.contain('MESHSYNC_CONFIG_INVALID').and.to.contain('clusterid: unknown key').and.to.contain('remedy:');
  });

  it('run --simulator: prints ADDED events from the simulated cluster, then exits 0 on SIGTERM', async () => {
    await writeFile(join(dir, 'meshsync.config.json'), JSON.stringify({
      plugins: ['meshsync:kubernetes', ['meshsync:stdout', { format: 'json' }]],
    }));
    const cli = startCli(['run', '--simulator'], { cwd: dir });
    try {
      await waitFor(() => cli.stderr.includes('SIMULATED Kubernetes cluster'), 'the demo banner', cli);
      await waitFor(() => cli.stdout.includes('"type":"ADDED"'), 'an ADDED event on stdout', cli);
      await waitFor(() => cli.stderr.includes('meshsync ready'), 'readiness', cli);
    } finally {
      cli.child.kill('SIGTERM');
    }
    expect(await cli.exited).to.equal(0);
    const first = JSON.parse(cli.stdout.split('\n')[0]) as { type: string; object: { kind: string } };
    expect(first.type).to.equal('ADDED');
    expect(first.object.kind).to.be.a('string');
    expect(cli.stderr).to.contain('meshsync stopped');
  });

  it('snapshot --simulator: writes the synced state as JSON lines and exits 0', async () => {
    await writeFile(join(dir, 'meshsync.config.json'), JSON.stringify({
      plugins: [['meshsync:kubernetes', { resources: ['namespaces.v1.', 'pods.v1.'] }]],
    }));
    const out = join(dir, 'state', 'snapshot.jsonl');
    const { code, stderr } = await runCli(['snapshot', '--simulator', '--out', out], { cwd: dir });
    expect(code, stderr).to.equal(0);
    const lines = (await readFile(out, 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as { type: string; resource: string; object: { metadata: { name: string } } });
    expect(lines.map((line) => line.resource)).to.include.members(['namespaces.v1.', 'pods.v1.']);
    expect(lines.every((line) => line.type === 'ADDED')).to.equal(true);
    expect(lines.map((line) => line.object.metadata.name)).to.include('kube-system');
    expect(stderr).to.contain('snapshot written');
  });

  it('snapshot --out F.json: writes one JSON document, and delivers nothing to the config\'s sinks (no events on stdout)', async () => {
    await writeFile(join(dir, 'meshsync.config.json'), JSON.stringify({
      plugins: [['meshsync:kubernetes', { resources: ['namespaces.v1.'] }], ['meshsync:stdout', { format: 'json' }]],
    }));
    const out = join(dir, 'snap.json');
    const { code, stdout, stderr } = await runCli(['snapshot', '--simulator', '--out', out], { cwd: dir });
    expect(code, stderr).to.equal(0);
    const state = JSON.parse(await readFile(out, 'utf8')) as { type: string; object: { metadata: { name: string } } }[];
    expect(state.map((event) => event.object.metadata.name)).to.include('kube-system');
    expect(stdout).to.equal('');
  });

  it('snapshot --timeout bounds the whole run: an unreachable API server fails it in time, saying what it waited for', async () => {
    await writeFile(join(dir, 'kubeconfig'), unreachableKubeconfig);
    await writeFile(join(dir, 'meshsync.config.json'), JSON.stringify({ plugins: [['meshsync:kubernetes', { resources: ['pods.v1.'] }]] }));
    const startedAt = Date.now();
    const { code, stderr } = await runCli(['snapshot', '--timeout', '2000', '--out', join(dir, 'x.json')], { cwd: dir, env: { KUBECONFIG: join(dir, 'kubeconfig') } });
    expect(code, stderr).to.equal(1);
    expect(Date.now() - startedAt).to.be.below(20_000); // bounded; it retried for 200 s before
    expect(stderr).to.contain('MESHSYNC_SNAPSHOT_TIMEOUT').and.contain('within --timeout 2000 ms: still waiting for the cluster id');
    expect(stderr).to.contain('MESHSYNC_KUBE_UNREACHABLE').and.not.match(/\n\s+at /); // warnings without stack traces
  });

  it('run: one Ctrl-C delivered twice at once (npm relays it, the process group gets it too) still drains; a later one exits at once', async () => {
    const port = await freePort(); // no broker there: the drain waits for it
    await writeFile(join(dir, 'meshsync.config.json'), JSON.stringify({
      plugins: [['meshsync:kubernetes', { resources: ['namespaces.v1.'] }], ['meshsync:nats', { url: `nats://127.0.0.1:${port}` }]],
      stopTimeoutMs: 30_000,
    }));
    const cli = startCli(['run', '--simulator'], { cwd: dir });
    await waitFor(() => cli.stderr.includes('every source synced'), 'the initial sync', cli);
    cli.child.kill('SIGINT');
    cli.child.kill('SIGINT');
    await waitFor(() => cli.stderr.includes('stopping: draining sinks'), 'the drain', cli);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(cli.child.exitCode, 'still draining').to.equal(null);
    expect(cli.stderr).not.to.contain('second signal');
    cli.child.kill('SIGINT');
    expect(await cli.exited).to.equal(1);
    expect(cli.stderr).to.contain('second signal: exiting without draining');
  });

  it('run: SIGTERM with the broker stopped exits 3 within stopTimeoutMs + 2 s, logging the count of the events it had pending', async () => {
    const sim = await startSimulator();
    const nats = await startNatsServer();
    try {
      await sim.writeKubeconfig(join(dir, 'kubeconfig'));
      const metricsPort = await freePort();
      const stopTimeoutMs = 1500;
      await writeFile(join(dir, 'meshsync.config.json'), JSON.stringify({
        plugins: [
          ['meshsync:kubernetes', { resources: ['configmaps.v1.'] }],
          ['meshsync:nats', { url: nats.url, reconnectInitialMs: 50, reconnectMaxMs: 200 }],
          ['meshsync:metrics', { port: metricsPort, host: '127.0.0.1', defaultMetrics: false }],
        ],
        stopTimeoutMs,
      }));
      const cli = startCli(['run'], { cwd: dir, env: { KUBECONFIG: join(dir, 'kubeconfig') } });
      await waitFor(() => cli.stderr.includes('meshsync ready'), 'readiness (the broker connected)', cli);
      await nats.stop();
      const pending = 12;
      for (let i = 0; i < pending; i++) sim.create('configmaps.v1.', { metadata: { name: `held-${i}`, namespace: 'default' }, data: { secretish: `value-${i}` } });
      // What the NATS lane holds, read from /metrics: the count the stop must log.
      const queueDepth = async () => {
        const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
        return Number(/^meshsync_queue_depth\{sink="meshsync:nats"\} (\d+)$/m.exec(text)?.[1] ?? -1);
      };
      const deadline = Date.now() + 30_000;
      while ((await queueDepth()) !== pending) {
        if (Date.now() > deadline) throw new Error(`the lane never held ${pending} events (it holds ${await queueDepth()}):\n${cli.stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const stopping = Date.now();
      cli.child.kill('SIGTERM');
      const code = await cli.exited;
      const took = Date.now() - stopping;
      expect(code, cli.stderr).to.equal(3);
      // The deadline, its fixed margin, and a process's exit (flushing its output) at most.
      expect(took, cli.stderr).to.be.below(stopTimeoutMs + 2000 + 1000);
      const logs = cli.stderr.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as Record<string, any>);
      expect(logs.find((line) => line.code === 'MESHSYNC_STOP_TIMEOUT' && line.sink === 'meshsync:nats')).to.include({ events: pending });
      const summary = logs.find((line) => /^stopped with \d+ events not delivered/.test(line.msg));
      expect(summary, cli.stderr).to.deep.include({ events: pending, sinks: { 'meshsync:nats': pending } });
      expect(cli.stderr).not.to.contain('value-').and.not.to.contain('held-');
    } finally {
      await nats.dispose();
      await sim.close();
    }
  });

  it('run: says "meshsync ready" only once /readyz would pass (the broker connected), not when the sources synced', async () => {
    const port = await freePort();
    await writeFile(join(dir, 'meshsync.config.json'), JSON.stringify({
      plugins: [['meshsync:kubernetes', { resources: ['namespaces.v1.'] }], ['meshsync:nats', { url: `nats://127.0.0.1:${port}`, reconnectMaxMs: 200 }]],
    }));
    const cli = startCli(['run', '--simulator'], { cwd: dir });
    let nats: NatsServerHandle | undefined;
    try {
      await waitFor(() => cli.stderr.includes('not ready yet: waiting for broker'), 'the sources synced, the broker not', cli);
      expect(cli.stderr).not.to.contain('meshsync ready');
      nats = await startNatsServer({ port });
      await waitFor(() => cli.stderr.includes('meshsync ready'), 'readiness once the broker is up', cli);
    } finally {
      cli.child.kill('SIGTERM');
      await cli.exited;
      await nats?.dispose();
    }
  });

  it('run: a SIGTERM while start-up waits for an unreachable API server stops it with exit 0', async () => {
    await writeFile(join(dir, 'kubeconfig'), unreachableKubeconfig);
    await writeFile(join(dir, 'meshsync.config.json'), JSON.stringify({ plugins: [['meshsync:kubernetes', { resources: ['pods.v1.'] }], 'meshsync:stdout'] }));
    const cli = startCli(['run'], { cwd: dir, env: { KUBECONFIG: join(dir, 'kubeconfig') } });
    await waitFor(() => cli.stderr.includes('meshsync starting'), 'start-up', cli);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    cli.child.kill('SIGTERM');
    expect(await cli.exited, cli.stderr).to.equal(0);
    expect(cli.stderr).to.contain('stopped before start-up completed').and.not.contain('MESHSYNC_PLUGIN_FAILED');
  });

  it('run --simulator auto: starts no simulator when KUBECONFIG is set', async () => {
    // KUBECONFIG names a cluster of its own (a simulator this test runs): meshsync syncs it instead of starting one.
    const sim = await startSimulator();
    try {
      await sim.writeKubeconfig(join(dir, 'kubeconfig'));
      await writeFile(join(dir, 'meshsync.config.json'), JSON.stringify({ plugins: [['meshsync:kubernetes', { resources: ['namespaces.v1.'] }], ['meshsync:metrics', { port: 0 }]] }));
      const cli = startCli(['run', '--simulator', 'auto'], { cwd: dir, env: { KUBECONFIG: join(dir, 'kubeconfig') } });
      await waitFor(() => cli.stderr.includes('meshsync ready'), 'readiness', cli);
      cli.child.kill('SIGTERM');
      expect(await cli.exited).to.equal(0);
      expect(cli.stderr).not.to.contain('SIMULATED');
    } finally {
      await sim.close();
    }
  });

  it('rbac: prints list and watch on exactly the resources a config watches', async () => {
    await writeFile(join(dir, 'meshsync.config.yaml'), 'plugins:\n  - [meshsync:kubernetes, { resources: [pods.v1., deployments.v1.apps] }]\n  - meshsync:stdout\n');
    const { code, stdout, stderr } = await runCli(['rbac', '--config', join(dir, 'meshsync.config.yaml')], { cwd: dir });
    expect(code, stderr).to.equal(0);
    const { parseAllDocuments } = await import('yaml');
    const role = parseAllDocuments(stdout).map((d) => d.toJS()).find((o) => o.kind === 'ClusterRole');
    const watched = role.rules.filter((r: any) => r.verbs.includes('watch') && !r.resourceNames)
      .flatMap((r: any) => r.resources.map((res: string) => `${res}.${r.apiGroups[0]}`));
    expect(watched).to.include.members(['pods.', 'deployments.apps']);
    expect(watched.filter((id: string) => !id.startsWith('customresourcedefinitions.'))).to.have.length(2);
  });

  it('rbac --namespace: a plugin that defaults its namespace to the pod\'s gets --namespace, not this machine\'s POD_NAMESPACE', async () => {
    await writeFile(join(dir, 'meshsync.config.yaml'), 'plugins:\n  - meshsync:kubernetes\n  - meshsync:meshsync-resource\n  - meshsync:stdout\n');
    const { code, stdout, stderr } = await runCli(['rbac', '--namespace', 'sync-here', '--config', join(dir, 'meshsync.config.yaml')], { cwd: dir, env: { POD_NAMESPACE: 'elsewhere' } });
    expect(code, stderr).to.equal(0);
    const { parseAllDocuments } = await import('yaml');
    const roles = parseAllDocuments(stdout).map((d) => d.toJS()).filter((o) => o.kind === 'Role');
    const meshsyncRole = roles.find((r) => r.rules.some((rule: any) => rule.resources.includes('meshsyncs')));
    expect(meshsyncRole?.metadata.namespace).to.equal('sync-here');
    expect(stdout).not.to.contain('elsewhere');
  });

  it('install: prints manifests with the flags applied, and --help the usage', async () => {
    const { code, stdout, stderr } = await runCli(['install', '--namespace', 'ops', '--cluster-id', 'eu-1', '--replicas', '2'], { cwd: dir });
    expect(code, stderr).to.equal(0);
    const { parseAllDocuments } = await import('yaml');
    const objects = parseAllDocuments(stdout).map((d) => d.toJS());
    const deployment = objects.find((o) => o.kind === 'Deployment');
    expect(deployment.metadata.namespace).to.equal('ops');
    expect(deployment.spec.replicas).to.equal(2);
    expect(deployment.spec.template.spec.containers[0].env).to.deep.include({ name: 'CLUSTER_ID', value: 'eu-1' });
    expect(objects.map((o) => o.kind)).to.include.members(['Namespace', 'ServiceAccount', 'ConfigMap', 'Service', 'CustomResourceDefinition']);
    const help = await runCli(['install', '--help'], { cwd: dir });
    expect(help.stdout).to.contain('--broker-url');
  });

  it('install: with no config file, grants what the in-cluster defaults use (the MeshSync resource, the leader lease)', async () => {
    const { code, stdout, stderr } = await runCli(['install'], { cwd: dir });
    expect(code, stderr).to.equal(0);
    const { parseAllDocuments } = await import('yaml');
    const role = parseAllDocuments(stdout).map((d) => d.toJS()).find((o) => o.kind === 'Role');
    expect(role.rules.map((r: any) => r.resources[0])).to.include.members(['meshsyncs', 'meshsyncs/status', 'leases']);
  });

  it('install: ships a TypeScript config as it is, and runs the pod with it', async () => {
    const file = join(dir, 'meshsync.config.ts');
    await writeFile(file, "import { defineConfig } from 'meshsync';\nexport default defineConfig({ plugins: [['meshsync:kubernetes', { resources: ['pods.v1.'] }], 'meshsync:nats'] });\n");
    const { code, stdout, stderr } = await runCli(['install', '--config', file], { cwd: dir });
    expect(code, stderr).to.equal(0);
    const { parseAllDocuments } = await import('yaml');
    const objects = parseAllDocuments(stdout).map((d) => d.toJS());
    expect(objects.find((o) => o.kind === 'ConfigMap').data['meshsync.config.ts']).to.contain("'meshsync:kubernetes'");
    expect(objects.find((o) => o.kind === 'Deployment').spec.template.spec.containers[0].args).to.deep.equal(['run', '--config', '/config/meshsync.config.ts']);
    const role = objects.find((o) => o.kind === 'ClusterRole');
    expect(role.rules.filter((r: any) => r.verbs.includes('watch') && !r.resourceNames).flatMap((r: any) => r.resources)).to.include('pods').and.not.include('services');
  });
});
