import { expect } from 'chai';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { defineConfig } from '../../config/define.ts';
import type { LoadConfigOptions } from '../../config/load.ts';
import { loadConfig } from '../../cli/config.ts';
import { maskSecrets, MASK } from '../../config/mask.ts';
import { configSchema } from '../../config/schema.ts';
import { ConfigError } from '../../core/errors.ts';
import { createLogger } from '../../core/log.ts';

const CASES = fileURLToPath(new URL('../fixtures/configs/', import.meta.url));

interface ExpectedProblem { file?: string; path: string; message: string }
interface Expected {
  description: string;
  options?: Pick<LoadConfigOptions, 'configFile'>;
  env?: Record<string, string>;
  /** `secrets`: text of the config that must appear in no problem's message. */
  error?: { code: string; problems: ExpectedProblem[]; secrets?: string[] };
  result?: {
    file?: string;
    clusterId?: string;
    logLevel?: string;
    plugins?: string[];
    pipeline?: Record<string, number>;
    stopTimeoutMs?: number;
    pluginOptions?: Record<string, Record<string, unknown>>;
  };
}

const caseNames = readdirSync(CASES, { withFileTypes: true }).filter((entry) => entry.isDirectory()).map((entry) => entry.name).sort();

describe('config loader: case folders (test/fixtures/configs/<case>)', function () {
  // The first import of a built-in plugin (the Kubernetes client above all) takes seconds on a busy machine.
  this.timeout(60_000);
  for (const name of caseNames) {
    const dir = join(CASES, name);
    const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as Expected;

    it(`${name}: ${expected.description}`, async () => {
      const load = loadConfig({ cwd: dir, env: expected.env ?? {}, ...expected.options });
      if (expected.error) {
        const error = await load.then(() => undefined, (thrown: unknown) => thrown);
        expect(error, 'the config should have been rejected').to.be.instanceOf(ConfigError);
        const { code, problems } = error as ConfigError;
        expect(code).to.equal(expected.error.code);
        expect(problems.map((p) => p.path), `problems: ${JSON.stringify(problems)}`).to.have.members(expected.error.problems.map((p) => p.path));
        for (const want of expected.error.problems) {
          const got = problems.find((p) => p.path === want.path)!;
          expect(got.message).to.match(new RegExp(want.message));
          if (want.file !== undefined) expect(got.file && relative(dir, got.file)).to.equal(want.file);
        }
        for (const secret of expected.error.secrets ?? []) expect((error as ConfigError).message).to.not.include(secret);
        return;
      }
      const { file, config, plugins } = await load;
      const want = expected.result!;
      if (want.file !== undefined) expect(file && relative(dir, file)).to.equal(want.file);
      if (want.clusterId !== undefined) expect(config.clusterId).to.equal(want.clusterId);
      if (want.logLevel !== undefined) expect(config.logLevel).to.equal(want.logLevel);
      if (want.stopTimeoutMs !== undefined) expect(config.stopTimeoutMs).to.equal(want.stopTimeoutMs);
      if (want.plugins !== undefined) expect(plugins.map((p) => p.name)).to.deep.equal(want.plugins);
      if (want.pipeline !== undefined) expect(config.pipeline).to.include(want.pipeline);
      for (const [plugin, options] of Object.entries(want.pluginOptions ?? {})) {
        expect(config.plugins.find((p) => p.name === plugin)?.options).to.deep.include(options);
      }
      expect(Object.isFrozen(config)).to.equal(true);
      expect(Object.isFrozen(config.pipeline)).to.equal(true);
    });
  }
});

describe('config loader', function () {
  this.timeout(60_000);
  let empty: string;
  beforeEach(async () => {
    empty = await mkdtemp(join(tmpdir(), 'meshsync-config-'));
  });
  afterEach(() => rm(empty, { recursive: true, force: true }));

  it('runs the MeshSync defaults when there is no config file, stdout without BROKER_URL', async () => {
    const { file, plugins, config } = await loadConfig({ cwd: empty, env: {} });
    expect(file).to.equal(undefined);
    expect(plugins.map((p) => p.name)).to.deep.equal(['meshsync:kubernetes', 'meshsync:watch-list', 'meshsync:meshsync-resource', 'meshsync:redact-secrets', 'meshsync:stdout', 'meshsync:metrics']);
    expect(config.pipeline.batchSize).to.equal(500);
    expect(config.clusterId).to.equal(undefined);
  });

  it('publishes to NATS by default when BROKER_URL is set', async () => {
    let asked = 0;
    const { plugins } = await loadConfig({ cwd: empty, env: { BROKER_URL: 'nats://localhost:4222' }, resourceNamesBroker: async () => (asked++, false) });
    expect(plugins.map((p) => p.name)).to.deep.equal(['meshsync:kubernetes', 'meshsync:watch-list', 'meshsync:meshsync-resource', 'meshsync:redact-secrets', 'meshsync:nats', 'meshsync:metrics']);
    expect(asked, 'BROKER_URL wins: the resource is not asked').to.equal(0);
  });

  it('publishes to NATS by default when the MeshSync resource names a broker, asking it only when the defaults apply', async () => {
    let asked = 0;
    const { plugins } = await loadConfig({ cwd: empty, env: {}, resourceNamesBroker: async () => (asked++, true) });
    expect(plugins.map((p) => p.name)).to.include('meshsync:nats').and.not.include('meshsync:stdout');
    expect(asked).to.equal(1);
    await writeFile(join(empty, 'meshsync.config.yaml'), 'plugins: [meshsync:kubernetes, meshsync:stdout]\n');
    const listed = await loadConfig({ cwd: empty, env: {}, resourceNamesBroker: async () => (asked++, true) });
    expect(listed.plugins.map((p) => p.name)).to.deep.equal(['meshsync:kubernetes', 'meshsync:stdout', 'meshsync:redact-secrets']);
    expect(asked, 'a config that lists plugins is not second-guessed').to.equal(1);
  });

  it('writes to stdout by default when BROKER_URL holds only spaces', async () => {
    const { plugins } = await loadConfig({ cwd: empty, env: { BROKER_URL: '  ' } });
    expect(plugins.map((p) => p.name)).to.include('meshsync:stdout').and.not.include('meshsync:nats');
  });

  it('watches the fifteen default resources when there is no config file', async () => {
    const { config } = await loadConfig({ cwd: empty, env: {} });
    const kubernetes = config.plugins.find((p) => p.name === 'meshsync:kubernetes');
    expect((kubernetes?.options as { resources: string[] }).resources).to.have.length(15);
  });

  it('logs at info when it adds redact-secrets to a config that lists none', async () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'info', pretty: false, destination: { write: (line: string) => lines.push(line) } as never });
    const { plugins } = await loadConfig({ cwd: join(CASES, 'good-package-json'), env: {}, logger });
    expect(plugins.at(-1)?.name).to.equal('meshsync:redact-secrets');
    const record = lines.map((line) => JSON.parse(line)).find((r) => r.plugin === 'meshsync:redact-secrets');
    expect(record?.level).to.equal(30);
    expect(record?.msg).to.match(/enabled: false/);
  });

  it('stops at a syntax error in a TS config it transpiles (outside any project), with its line', async () => {
    await writeFile(join(empty, 'meshsync.config.ts'), "export default { clusterId: 'a' logLevel: 'info' };\n");
    const error = await loadConfig({ cwd: empty, env: {} }).catch((e: unknown) => e);
    expect(error).to.be.instanceOf(ConfigError);
    expect((error as ConfigError).code).to.equal('MESHSYNC_CONFIG_LOAD');
    expect((error as ConfigError).problems[0].message).to.match(/^TypeScript: line 1, column 33: ',' expected/);
  });

  it('finding 1 (HIGH): a data config naming a Node built-in ("os") never runs a file of that name beside it or in the working directory', async () => {
    // Today's resolver turned "os" into <cwd>/os and imported it: a file in a ConfigMap mount ran.
    const marker = `__meshsyncRan${Date.now()}`;
    await writeFile(join(empty, 'os'), `globalThis.${marker} = true;\n`);
    await writeFile(join(empty, 'meshsync.config.json'), JSON.stringify({ plugins: ['os', 'meshsync:stdout'] }));
    const cwd = process.cwd();
    process.chdir(empty);
    let error: unknown;
    try {
      error = await loadConfig({ cwd: empty, env: {} }).catch((e: unknown) => e);
    } finally {
      process.chdir(cwd);
    }
    expect((globalThis as Record<string, unknown>)[marker], 'the file named os ran').to.equal(undefined);
    expect(error).to.be.instanceOf(ConfigError);
    expect((error as ConfigError).problems.map((p) => p.path)).to.deep.equal(['plugins[0]']);
    expect((error as ConfigError).problems[0].message).to.match(/"os" is a Node.js built-in module, not a plugin package/);
  });

  it('finding 1 (HIGH): a plugin package resolves only to a file inside its node_modules directory', async () => {
    const marker = `__meshsyncRan${Date.now()}`;
    const packageDir = join(empty, 'node_modules', 'meshsync-plugin-escapes');
    await mkdir(packageDir, { recursive: true });
    await writeFile(join(packageDir, 'package.json'), JSON.stringify({ name: 'meshsync-plugin-escapes', main: '../../evil.cjs' }));
    await writeFile(join(empty, 'evil.cjs'), `globalThis.${marker} = true; module.exports = () => ({ name: 'x', apply() {} });\n`);
    await writeFile(join(empty, 'meshsync.config.json'), JSON.stringify({ plugins: ['meshsync-plugin-escapes', 'meshsync:stdout'] }));
    const error = await loadConfig({ cwd: empty, env: {} }).catch((e: unknown) => e);
    expect((globalThis as Record<string, unknown>)[marker], 'the file outside the package ran').to.equal(undefined);
    expect((error as ConfigError).code).to.equal('MESHSYNC_PLUGIN_NOT_FOUND');
    expect((error as ConfigError).problems[0].message).to.match(/outside its package directory/);
  });

  it('rejects a LOG_LEVEL that is not a level', async () => {
    const error = await loadConfig({ cwd: empty, env: { LOG_LEVEL: 'chatty' } }).catch((e: unknown) => e);
    expect((error as ConfigError).problems.map((p) => p.path)).to.deep.equal(['LOG_LEVEL (environment)']);
  });
});

describe('defineConfig', () => {
  it('is imported from one place, meshsync, in every doc and example; meshsync/config does not offer a second', async () => {
    const root = fileURLToPath(new URL('../../', import.meta.url));
    const docs = ['README.md', 'config/README.md', ...['website/guide', 'examples/meshsync-plugin-label-enricher', ...readdirSync(join(root, 'plugins')).map((name) => `plugins/${name}`)]
      .flatMap((dir) => readdirSync(join(root, dir)).filter((name) => name.endsWith('.md')).map((name) => `${dir}/${name}`))];
    const from = docs.flatMap((doc) => [...readFileSync(join(root, doc), 'utf8').matchAll(/import \{[^}]*\bdefineConfig\b[^}]*\} from '([^']+)'/g)].map((m) => `${doc}: ${m[1]}`));
    expect(from.length).to.be.greaterThan(3);
    expect(from.filter((line) => !line.endsWith(': meshsync'))).to.deep.equal([]);
    expect(Object.keys(await import('../../cli/config.ts'))).to.not.include('defineConfig');
  });

  it('returns the config, function or promise it was given', async () => {
    const object = { clusterId: 'a' };
    const fn = () => object;
    const promise = Promise.resolve(object);
    expect(defineConfig(object)).to.equal(object);
    expect(defineConfig(fn)).to.equal(fn);
    expect(await defineConfig(promise)).to.equal(object);
  });
});

describe('config schema', () => {
  it('fills every default from an empty config', () => {
    const parsed = configSchema.parse({});
    expect(parsed).to.deep.equal({
      pipeline: { batchSize: 500, batchMaxWaitMs: 0, retryInitialMs: 200, retryMaxMs: 30_000, highWaterMark: 100_000, sourcePauseAbove: 300 },
      stopTimeoutMs: 10_000,
      logLevel: 'info',
    });
  });

  it('yields a JSON Schema with a description on every field, for the website', () => {
    const schema = z.toJSONSchema(configSchema, { unrepresentable: 'any', io: 'input' }) as { properties: Record<string, { description?: string; properties?: Record<string, { description?: string }> }> };
    for (const [key, property] of Object.entries(schema.properties)) {
      expect(property.description, key).to.be.a('string');
      for (const [inner, value] of Object.entries(property.properties ?? {})) expect(value.description, `${key}.${inner}`).to.be.a('string');
    }
  });
});

describe('maskSecrets', () => {
  it('masks secret-looking keys at any depth and passwords in URLs', () => {
    const masked = maskSecrets({
      servers: ['nats://app:hunter2@nats:4222', 'nats://s3cr3t-token@nats:4222', 'nats://nats:4222'],
      auth: { password: 'p', token: 't', nkeySeed: 'SUA...', credsFile: '/etc/creds', user: 'app' },
      fingerprint: { key: 'k' },
      hmac_key: 'h',
      enabled: false,
    });
    expect(masked).to.deep.equal({
      servers: [`nats://app:${MASK}@nats:4222`, `nats://${MASK}@nats:4222`, 'nats://nats:4222'],
      auth: { password: MASK, token: MASK, nkeySeed: MASK, credsFile: '/etc/creds', user: 'app' },
      fingerprint: { key: MASK },
      hmac_key: MASK,
      enabled: false,
    });
  });

  it('leaves empty secret fields visible as empty, so a missing secret can be seen', () => {
    expect(maskSecrets({ password: '', token: undefined })).to.deep.equal({ password: '', token: undefined });
  });
});
