import { expect } from 'chai';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../cli/config.ts';
import { ConfigError } from '../../core/errors.ts';
import { createTestCore, makeObject, POD } from '../../testing/index.ts';
import { main } from '../../cli/main.ts';
import { OWN_IMAGE } from '../../cli/package-info.ts';
import { PassThrough } from 'node:stream';

async function runMain(args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = { stdout: '', stderr: '' };
  const stream = (key: 'stdout' | 'stderr') => new PassThrough().on('data', (chunk: Buffer) => (out[key] += chunk.toString()));
  const code = await main(args, { stdout: stream('stdout'), stderr: stream('stderr'), env: { LOG_LEVEL: 'silent' }, cwd });
  return { code, ...out };
}

// The repository root: npm links node_modules/meshsync-plugin-label-enricher there (workspaces).
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

describe('third-party plugins', () => {
  let dir: string;
  beforeEach(async () => {
    // Inside the repository, so the package resolves from the config's directory as in a user's project.
    dir = await mkdtemp(join(ROOT, 'test', '.tmp-third-party-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('loads a plugin package named in a JSON config, with its options, and runs its transform', async () => {
    await writeFile(join(dir, 'meshsync.config.json'), JSON.stringify({
      plugins: [['meshsync-plugin-label-enricher', { labels: { team: 'meshsync.io/owner' } }]],
    }));
    const { plugins, config } = await loadConfig({ cwd: dir, env: {} });
    expect(plugins.map((p) => p.name)).to.deep.equal(['meshsync-plugin-label-enricher', 'meshsync:redact-secrets']);
    expect(config.plugins[0].options).to.deep.equal({ labels: { team: 'meshsync.io/owner' }, overwrite: false });

    const test = createTestCore({ plugins: [plugins[0]] });
    await test.start();
    test.source.emit('ADDED', POD, makeObject(POD, 'web-1', { labels: { team: 'payments' } }));
    await test.drain();
    expect(test.sink.events[0].object.metadata.annotations).to.deep.equal({ 'meshsync.io/owner': 'payments' });
    await test.stop();
  });

  it('finds a plugin package installed beside meshsync when the config is elsewhere (the image: /config and /app)', async () => {
    const outside = await mkdtemp(join(tmpdir(), 'meshsync-config-elsewhere-'));
    try {
      await writeFile(join(outside, 'meshsync.config.yaml'), 'plugins:\n  - [meshsync-plugin-label-enricher, { labels: { team: owner } }]\n');
      const { plugins } = await loadConfig({ cwd: outside, env: {} });
      expect(plugins.map((p) => p.name)).to.include('meshsync-plugin-label-enricher');
    } finally {
      await rm(outside, { recursive: true, force: true });
    }
  });

  it('install: refuses to deploy the default image (built-ins only) with a config naming a plugin package; with --image, says the image must hold it', async () => {
    await writeFile(join(dir, 'meshsync.config.yaml'), 'plugins:\n  - meshsync:kubernetes\n  - [meshsync-plugin-label-enricher, { labels: { team: owner } }]\n  - meshsync:nats\n');
    const refused = await runMain(['install'], dir);
    expect(refused.code).to.equal(1);
    expect(refused.stdout).to.equal('');
    expect(refused.stderr).to.contain('MESHSYNC_IMAGE_LACKS_PLUGIN').and.contain(`the default image ${OWN_IMAGE} does not hold`)
      .and.contain('PLUGINS="meshsync-plugin-label-enricher" npm run image');
    const custom = await runMain(['install', '--image', 'registry.local/meshsync:with-plugins'], dir);
    expect(custom.code, custom.stderr).to.equal(0);
    expect(custom.stderr).to.contain('the image registry.local/meshsync:with-plugins must hold them');
    expect(custom.stdout).to.contain('image: registry.local/meshsync:with-plugins');
  });

  it('reports a third-party plugin\'s option problems under plugins[i].options', async () => {
    await writeFile(join(dir, 'meshsync.config.json'), JSON.stringify({
      plugins: ['meshsync:stdout', ['meshsync-plugin-label-enricher', { labels: { team: 7 } }]],
    }));
    const error = await loadConfig({ cwd: dir, env: {} }).catch((e: unknown) => e) as ConfigError;
    expect(error.code).to.equal('MESHSYNC_PLUGIN_OPTIONS');
    expect(error.problems.map((p) => p.path)).to.deep.equal(['plugins[1].options.labels.team']);
  });

  it('fails with MESHSYNC_PLUGIN_NOT_FOUND naming a package that is not installed, and how to install it', async () => {
    await writeFile(join(dir, 'meshsync.config.json'), JSON.stringify({ plugins: ['meshsync-plugin-does-not-exist'] }));
    const error = await loadConfig({ cwd: dir, env: {} }).catch((e: unknown) => e) as ConfigError;
    expect(error).to.be.instanceOf(ConfigError);
    expect(error.code).to.equal('MESHSYNC_PLUGIN_NOT_FOUND');
    expect(error.problems).to.have.length(1);
    expect(error.problems[0]).to.include({ file: join(dir, 'meshsync.config.json'), path: 'plugins[0]' });
    expect(error.problems[0].message).to.contain('"meshsync-plugin-does-not-exist"').and.to.contain('npm install meshsync-plugin-does-not-exist');
  });

  it('fails with MESHSYNC_PLUGIN_INVALID for a package whose default export is not a factory', async () => {
    const packageDir = join(dir, 'node_modules', 'meshsync-plugin-not-a-factory');
    await mkdir(packageDir, { recursive: true });
    await writeFile(join(packageDir, 'package.json'), JSON.stringify({ name: 'meshsync-plugin-not-a-factory', type: 'module', exports: { '.': { import: './index.js' } } }));
    await writeFile(join(packageDir, 'index.js'), 'export default { name: "oops" };\n');
    await writeFile(join(dir, 'meshsync.config.json'), JSON.stringify({ plugins: ['meshsync-plugin-not-a-factory'] }));
    const error = await loadConfig({ cwd: dir, env: {} }).catch((e: unknown) => e) as ConfigError;
    expect(error.code).to.equal('MESHSYNC_PLUGIN_INVALID');
    expect(error.problems[0].message).to.contain('meshsync-plugin-not-a-factory').and.to.contain('default export');
  });
});
