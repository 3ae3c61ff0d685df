import { expect } from 'chai';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { formatError, main } from '../../cli/main.ts';
import { DEMO_MODULE, hasKubeConfig, type DemoModule } from '../../cli/demo.ts';
import { heapFlagsFor } from '../../cli/run.ts';
import * as demo from '../../testing/simulator/demo.ts';
import { ConfigError, MeshSyncError, pluginError } from '../../core/errors.ts';

function capture() {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (chunk: Buffer) => (text += chunk.toString()));
  return { stream, text: () => text };
}

describe('meshsync CLI (in process)', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'meshsync-cli-unit-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  async function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
    const stdout = capture();
    const stderr = capture();
    const code = await main(args, { stdout: stdout.stream, stderr: stderr.stream, env: { LOG_LEVEL: 'silent', ...env }, cwd: dir });
    return { code, stdout: stdout.text(), stderr: stderr.text() };
  }

  it('rejects a --log-level that is not a level, with exit code 2', async () => {
    const { code, stderr } = await cli(['validate', '--log-level', 'loud']);
    expect(code).to.equal(2);
    expect(stderr).to.contain('--log-level must be one of');
  });

  it('lists a LOG_LEVEL that is not a level with the config\'s own problems, instead of failing on it first', async () => {
    await writeFile(join(dir, 'meshsync.config.yaml'), 'clusterId: 5\n');
    const { code, stderr } = await cli(['validate'], { LOG_LEVEL: 'warnn' });
    expect(code).to.equal(1);
    expect(stderr).to.contain('LOG_LEVEL (environment): expected one of').and.contain('got "warnn"; did you mean "warn"?').and.contain('clusterId');
  });

  it('rejects an empty --config and a --config given twice, with exit code 2', async () => {
    const empty = await cli(['validate', '--config', '']);
    expect(empty.code).to.equal(2);
    expect(empty.stderr).to.contain('--config needs a file');
    const twice = await cli(['validate', '--config', 'a.yaml', '--config=b.yaml']);
    expect(twice.code).to.equal(2);
    expect(twice.stderr).to.contain('--config is given more than once');
    const short = await cli(['install', '-ca.yaml', '--config', 'b.yaml']);
    expect(short.code).to.equal(2);
    expect(short.stderr).to.contain('--config is given more than once');
  });

  it('validate reports a config with no source as a problem at plugins, naming the missing source; one with a source is valid', async () => {
    await writeFile(join(dir, 'meshsync.config.yaml'), 'plugins: [meshsync:stdout]\n');
    const without = await cli(['validate']);
    expect(without.code).to.equal(1);
    expect(without.stdout).to.equal('');
    expect(without.stderr).to.contain('MESHSYNC_CONFIG_INVALID').and.contain(`${join(dir, 'meshsync.config.yaml')}: plugins: no source plugin`)
      .and.contain('meshsync:kubernetes (plugins: meshsync:stdout, meshsync:redact-secrets)');
    await writeFile(join(dir, 'meshsync.config.yaml'), 'plugins: [meshsync:kubernetes, meshsync:stdout]\n');
    const withSource = await cli(['validate']);
    expect(withSource.code, withSource.stderr).to.equal(0);
    expect(withSource.stdout).to.equal(`valid: ${join(dir, 'meshsync.config.yaml')}\n`);
  });

  it('install reads -cFILE as run does', async () => {
    await writeFile(join(dir, 'x.yaml'), 'plugins:\n  - [meshsync:nats, { url: "nats://app:Pw-9@nats:4222" }]\n');
    const { code, stdout } = await cli(['install', '-cx.yaml']);
    expect(code).to.equal(0);
    expect(stdout).to.match(/^kind: Secret$/m);
  });

  it('rejects a --simulator value other than auto', async () => {
    const { code, stderr } = await cli(['run', '--simulator', 'maybe']);
    expect(code).to.equal(2);
    expect(stderr).to.contain('unexpected arguments: maybe');
  });

  it('snapshot without --out says what is missing, with exit code 2', async () => {
    const { code, stderr } = await cli(['snapshot']);
    expect(code).to.equal(2);
    expect(stderr).to.contain('snapshot needs --out');
  });

  it('print-config shows the file it loaded', async () => {
    await writeFile(join(dir, 'meshsync.config.yaml'), 'plugins: []\nclusterId: unit\n');
    const { code, stdout } = await cli(['print-config']);
    expect(code).to.equal(0);
    expect(JSON.parse(stdout)).to.deep.include({ clusterId: 'unit', file: join(dir, 'meshsync.config.yaml') });
  });

  it('install ships a config that holds credentials in a Secret, and says so; one without them in a ConfigMap', async () => {
    const kinds = (yaml: string) => yaml.split(/^---$/m).map((doc) => /^kind: (\w+)$/m.exec(doc)?.[1]).filter(Boolean);
    await writeFile(join(dir, 'secret.yaml'), 'plugins:\n  - [meshsync:nats, { url: "nats://app:Pw-9@nats:4222" }]\n');
    const withSecret = await cli(['install', '--config', 'secret.yaml']);
    expect(withSecret.code, withSecret.stderr).to.equal(0);
    expect(kinds(withSecret.stdout)).to.include('Secret').and.not.include('ConfigMap');
    expect(withSecret.stdout).to.match(/secret:\n\s+secretName: meshsync/);
    expect(withSecret.stderr).to.contain('the config holds credentials (plugins[0].options.url)').and.not.contain('Pw-9');

    await writeFile(join(dir, 'plain.yaml'), 'plugins:\n  - [meshsync:nats, { url: "nats://nats:4222" }]\n');
    const plain = await cli(['install', '--config', 'plain.yaml']);
    expect(kinds(plain.stdout)).to.include('ConfigMap').and.not.include('Secret');
    expect(plain.stderr).to.equal('');
  });

  it('finding 1 (HIGH): MESHSYNC_CONFIG_DIR is where the search starts, so the image finds /config without running from it', async () => {
    const mount = join(dir, 'mount');
    await mkdir(mount);
    await writeFile(join(mount, 'meshsync.config.yaml'), 'clusterId: from-mount\nplugins: [meshsync:stdout]\n');
    const { code, stdout } = await cli(['print-config'], { MESHSYNC_CONFIG_DIR: mount });
    expect(code).to.equal(0);
    expect(JSON.parse(stdout)).to.include({ file: join(mount, 'meshsync.config.yaml'), clusterId: 'from-mount' });
  });

  it('CLUSTER_ID from the environment shows in print-config', async () => {
    await writeFile(join(dir, 'meshsync.config.json'), JSON.stringify({ clusterId: 'file', plugins: [] }));
    const { stdout } = await cli(['print-config'], { CLUSTER_ID: 'env' });
    expect(JSON.parse(stdout).clusterId).to.equal('env');
  });
});

describe('formatError', () => {
  it('gives the code, the message and the remedy of every code involved', () => {
    const error = new ConfigError([
      { path: 'plugins[0]', message: 'not installed', code: 'MESHSYNC_PLUGIN_NOT_FOUND' } as never,
      { path: 'clusterId', message: 'expected string', code: 'MESHSYNC_CONFIG_INVALID' } as never,
    ]);
    const text = formatError(error);
    expect(text).to.match(/^meshsync: error MESHSYNC_CONFIG_INVALID: invalid configuration \(2 problems\)/);
    expect(text).to.contain('remedy (MESHSYNC_PLUGIN_NOT_FOUND): Install the package');
    expect(text).to.contain('remedy (MESHSYNC_CONFIG_INVALID): Fix every listed problem');
  });

  it('masks the credentials an error quotes', () => {
    const text = formatError(pluginError('test:x', 'start', new Error('cannot reach nats://app:S3cretPw@nats:4222')));
    expect(text).to.contain('nats://app:[redacted]@nats:4222').and.not.contain('S3cretPw');
  });

  it('names a mistyped option key, and a problem at a secret-named key, instead of masking them; values stay masked', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'meshsync-format-'));
    try {
      await writeFile(join(dir, 'meshsync.config.yaml'), [
        'plugins:',
        '  - [meshsync:stdout, { formt: json }]',
        '  - [meshsync:nats, { url: "nats://app:S3cretPw@nats:4222", auth: { token: 5 } }]',
        '',
      ].join('\n'));
      const stderr = capture();
      const code = await main(['validate'], { stdout: capture().stream, stderr: stderr.stream, env: { LOG_LEVEL: 'silent' }, cwd: dir });
      expect(code).to.equal(1);
      expect(stderr.text()).to.contain('plugins[0].options.formt: unknown key; did you mean "format"?');
      expect(stderr.text()).to.match(/plugins\[1\]\.options\.auth\.token: .*expected string/);
      expect(stderr.text()).not.to.contain('[redacted]').and.not.contain('S3cretPw');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('still masks a credential a config problem quotes', () => {
    const text = formatError(new ConfigError([{ path: 'plugins[0].options.url', message: 'cannot use nats://app:S3cretPw@nats:4222 here', code: 'MESHSYNC_PLUGIN_OPTIONS' } as never]));
    expect(text).to.contain('plugins[0].options.url: cannot use nats://app:[redacted]@nats:4222').and.not.contain('S3cretPw');
  });

  it('names the cause of a plugin failure and its remedy', () => {
    const text = formatError(pluginError('meshsync:kubernetes', 'start', new MeshSyncError('MESHSYNC_KUBE_CONFIG', 'no kubeconfig')));
    expect(text).to.contain('MESHSYNC_PLUGIN_FAILED').and.to.contain('caused by MESHSYNC_KUBE_CONFIG: no kubeconfig');
    expect(text).to.contain('Set KUBECONFIG');
  });
});

describe('hasKubeConfig', () => {
  let home: string;
  beforeEach(async () => {
    home = await mkdtemp(join(tmpdir(), 'meshsync-home-'));
  });
  afterEach(() => rm(home, { recursive: true, force: true }));

  it('is false with no KUBECONFIG, no ~/.kube/config and no service account', () => {
    expect(hasKubeConfig({ HOME: home })).to.equal(false);
  });

  it('is true with KUBECONFIG set, or with ~/.kube/config', async () => {
    expect(hasKubeConfig({ HOME: home, KUBECONFIG: '/somewhere' })).to.equal(true);
    await mkdir(join(home, '.kube'));
    await writeFile(join(home, '.kube', 'config'), 'apiVersion: v1\n');
    expect(hasKubeConfig({ HOME: home })).to.equal(true);
  });
});

describe('demo mode', () => {
  it('loads the demo cluster of testing/ from beside the CLI, as the CLI types it', async () => {
    const typed: DemoModule = demo; // what the CLI expects is what testing/ provides
    expect(typed.startDemoCluster).to.be.a('function');
    expect((await import(DEMO_MODULE.href) as DemoModule).startDemoCluster).to.be.a('function');
  });
});

describe('heapFlagsFor', () => {
  it('lets the old generation grow to 3x what a major GC left alive', () => {
    expect(heapFlagsFor([])).to.deep.equal(['--heap-growing-percent=200']);
    expect(heapFlagsFor(['--max-old-space-size=512', '--import', 'tsx'])).to.deep.equal(['--heap-growing-percent=200']);
  });

  it('leaves the growth to a value given on node\'s command line, in either spelling', () => {
    expect(heapFlagsFor(['--heap-growing-percent=50'])).to.deep.equal([]);
    expect(heapFlagsFor(['--heap_growing_percent', '50'])).to.deep.equal([]);
  });
});
