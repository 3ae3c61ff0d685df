// scripts/slim-client-node.mjs on a copy of the installed client-node: a tree of symlinks to the
// real files, except its dist/config.js (copied, so the script can rewrite it) and its
// dist/gen/index.js, a stub that throws when loaded. The tests' own node runs with
// --preserve-symlinks so that every import of the index, however indirect, lands on the stub.
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect } from 'chai';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const script = join(root, 'scripts', 'slim-client-node.mjs');
const run = promisify(execFile);

/** `dir` holding a symlink to each entry of `from`, but for `except`, which the caller fills. */
function mirror(from: string, dir: string, except: string[]): void {
  mkdirSync(dir, { recursive: true });
  for (const name of readdirSync(from)) if (!except.includes(name)) symlinkSync(join(from, name), join(dir, name));
}

/** Exit code and output of a node process. */
async function node(args: string[], cwd: string): Promise<{ code: number; out: string; err: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, args, { cwd });
    return { code: 0, out: stdout, err: stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, out: failed.stdout, err: failed.stderr };
  }
}

// Loads KubeConfig the way kubernetes/client.ts does and applies a token context.
const LOAD_KUBECONFIG = `
const { KubeConfig } = await import('@kubernetes/client-node/dist/config.js');
const kc = new KubeConfig();
kc.loadFromOptions({ clusters: [{ name: 'c', server: 'http://127.0.0.1:1', skipTLSVerify: true }], users: [{ name: 'u', token: 't0ken' }], contexts: [{ name: 'x', cluster: 'c', user: 'u' }], currentContext: 'x' });
const options = {};
await kc.applyToHTTPSOptions(options);
console.log(JSON.stringify({ authorization: options.headers.Authorization, rejectUnauthorized: options.rejectUnauthorized }));
`;

describe('scripts/slim-client-node.mjs', function () {
  this.timeout(30_000);
  let dir: string;
  let modules: string;
  let config: string;
  const loadKubeConfig = () => node(['--preserve-symlinks', '--input-type=module', '-e', LOAD_KUBECONFIG], dir);

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'meshsync-slim-'));
    modules = join(dir, 'node_modules');
    const installed = join(root, 'node_modules', '@kubernetes', 'client-node');
    mirror(join(root, 'node_modules'), modules, ['@kubernetes']);
    mirror(installed, join(modules, '@kubernetes', 'client-node'), ['dist']);
    mirror(join(installed, 'dist'), join(modules, '@kubernetes', 'client-node', 'dist'), ['config.js', 'gen']);
    mirror(join(installed, 'dist', 'gen'), join(modules, '@kubernetes', 'client-node', 'dist', 'gen'), ['index.js']);
    config = join(modules, '@kubernetes', 'client-node', 'dist', 'config.js');
    copyFileSync(join(installed, 'dist', 'config.js'), config);
    // It exports the names config.js takes from the real one, so it is linked, then run (and throws).
    writeFileSync(join(modules, '@kubernetes', 'client-node', 'dist', 'gen', 'index.js'), "throw new Error('gen/index.js was loaded');\nexport let createConfiguration, ServerConfiguration;\n");
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  it('starts from a KubeConfig module that loads the generated API client', async () => {
    const loaded = await loadKubeConfig();
    expect(loaded.code).to.not.equal(0);
    expect(loaded.err).to.include('gen/index.js was loaded');
  });

  it('rewrites it so that KubeConfig loads without it and still applies credentials', async () => {
    const slimmed = await node([script, modules], dir);
    expect(slimmed.code, slimmed.err).to.equal(0);
    expect(slimmed.err).to.include('no longer loads the generated API');
    const loaded = await loadKubeConfig();
    expect(loaded.code, loaded.err).to.equal(0);
    expect(JSON.parse(loaded.out)).to.deep.equal({ authorization: 'Bearer t0ken', rejectUnauthorized: false });
  });

  it('leaves a slimmed file as it is when run again', async () => {
    expect((await node([script, modules], dir)).code).to.equal(0);
    const before = readFileSync(config, 'utf8');
    const again = await node([script, modules], dir);
    expect(again.code, again.err).to.equal(0);
    expect(readFileSync(config, 'utf8')).to.equal(before);
  });

  for (const [how, line] of [
    ['an import for its side effects', "import './api.js';"],
    ['a generated model imported directly', "import './gen/models/ObjectSerializer.js';"],
  ]) {
    it(`stops the build when loading it still loads the generated API through ${how}`, async () => {
      expect((await node([script, modules], dir)).code).to.equal(0);
      const slimmed = readFileSync(config, 'utf8');
      writeFileSync(config, `${line}\n${slimmed}`);
      try {
        const refused = await node([script, modules], dir);
        expect(refused.code).to.equal(1);
        expect(refused.err).to.include('still loads the generated API');
      } finally {
        writeFileSync(config, slimmed);
      }
    });
  }

  it('stops the build when client-node no longer imports the index as the script expects', async () => {
    writeFileSync(config, "import { createConfiguration, ServerConfiguration } from './gen/index.js';\nexport class KubeConfig {}\n");
    const refused = await node([script, modules], dir);
    expect(refused.code).to.equal(1);
    expect(refused.err).to.include('review this script for the installed version');
  });

  it('names the directory when client-node is not installed there', async () => {
    const refused = await node([script, join(dir, 'nowhere')], dir);
    expect(refused.code).to.equal(1);
    expect(refused.err).to.include(join(dir, 'nowhere', '@kubernetes', 'client-node', 'dist', 'config.js')).and.include('not found');
  });
});
