// The newcomer's path: every command of the README's and the getting-started and plugin-tutorial
// pages' shell blocks, in page order, in a fresh clone (test/support/fresh-clone.ts). Each is run
// as written with bash, `meshsync` being `node bin/meshsync.js` as the page says, against the
// Kubernetes API simulator and the real kubectl; the few that cannot run here say why and what
// runs them instead. A command added to a page without a line in COMMANDS fails the test.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { freshClone, ROOT } from '../support/fresh-clone.ts';
import { startSimulator, type KubeSimulator } from '../../testing/simulator/index.ts';

const PAGES = ['README.md', 'website/guide/getting-started.md', 'website/guide/writing-a-plugin.md'];

interface Context {
  readonly clone: string;
  readonly env: NodeJS.ProcessEnv;
  readonly sim: KubeSimulator;
  /** The `meshsync` started by its step, stopped by a later one. */
  running?: Running;
}

interface Running {
  readonly child: ChildProcess;
  stdout: string;
  stderr: string;
  readonly exited: Promise<number | null>;
}

/** How each command is exercised: run (and checked), or why it is not run here. */
const COMMANDS: Record<string, { run?: (command: string, ctx: Context) => Promise<void>; instead?: { why: string; by: string } }> = {
  // The clone's node_modules comes from this checkout's `npm ci`, from the same lockfile.
  'npm ci && npm start': { run: (command, ctx) => startAndInterrupt('npm start', ctx) },
  'npm test': { instead: { why: 'the whole suite, this test among them: CI runs it', by: '.ci/run' } },
  'npm ci && npm test': { instead: { why: 'the whole suite, this test among them: CI runs it', by: '.ci/run' } },
  'npm run build': {
    run: async (command, ctx) => {
      const { code, stderr } = await sh(command, ctx, 600_000);
      expect(code, stderr).to.equal(0);
      expect(existsSync(join(ctx.clone, 'dist', 'cli', 'main.js'))).to.equal(true); // meshsync runs the build from here on
    },
  },
  'meshsync validate': {
    run: async (command, ctx) => {
      const { code, stdout, stderr } = await sh(command, ctx);
      expect(code, stderr).to.equal(0);
      expect(stdout).to.equal(`valid: ${join(ctx.clone, 'meshsync.config.ts')}\n`);
    },
  },
  meshsync: {
    run: async (command, ctx) => {
      ctx.running = spawnSh(command, ctx);
      await until(ctx.running, () => ctx.running!.stderr.includes('meshsync ready'), 'meshsync ready');
    },
  },
  'kubectl run hello --image=nginx': {
    run: async (command, ctx) => {
      expect((await sh(command, ctx)).code).to.equal(0);
      await until(ctx.running!, () => events(ctx.running!).some((e) => e.type === 'ADDED' && e.object.metadata.name === 'hello'), 'the ADDED event of pod hello');
    },
  },
  'kubectl delete pod hello': {
    run: async (command, ctx) => {
      expect((await sh(command, ctx)).code).to.equal(0);
      await until(ctx.running!, () => events(ctx.running!).some((e) => e.type === 'DELETED' && e.object.metadata.name === 'hello'), 'the DELETED event of pod hello');
      ctx.running!.child.kill('SIGINT');
      expect(await ctx.running!.exited).to.equal(0);
    },
  },
  'npm run image': { instead: { why: 'builds the container image with podman; the image test builds it so and runs it', by: 'test/e2e/image.test.ts' } },
  "echo 'logLevel: info' > cluster.yaml": {
    run: async (command, ctx) => {
      expect((await sh(command, ctx)).code).to.equal(0);
      expect(readFileSync(join(ctx.clone, 'cluster.yaml'), 'utf8')).to.equal('logLevel: info\n');
    },
  },
  'meshsync install --config cluster.yaml --broker-url nats://meshery-nats.meshery:4222 | kubectl apply -f -': {
    run: async (command, ctx) => {
      const { code, stdout, stderr } = await sh(`set -o pipefail; ${command}`, ctx);
      expect(code, stderr).to.equal(0);
      expect(stdout).to.match(/^deployment\.apps\/meshsync created$/m);
    },
  },
  'kubectl -n meshery rollout status deployment/meshsync': {
    instead: { why: 'needs a cluster that runs pods (a kubelet, the image loaded): the simulator and the cluster suite\'s control plane run none; the image test runs the image as the Deployment does', by: 'test/e2e/image.test.ts' },
  },
  'npm run test:example': {
    run: async (command, ctx) => {
      const { code, stdout, stderr } = await sh(command, ctx, 120_000);
      expect(code, stderr).to.equal(0);
      expect(stdout).to.match(/\d+ passing/).and.not.match(/failing|pending/);
    },
  },
};

/** Every command line of a page's ```sh blocks: continuations joined, comments dropped. */
function shellCommands(markdown: string): string[] {
  const commands: string[] = [];
  for (const block of markdown.matchAll(/^```sh\n([^]*?)^```$/gm)) {
    const text = block[1].replace(/\\\n\s*/g, '');
    for (const line of text.split('\n')) {
      const command = line.replace(/\s+#.*$/, '').replace(/^#.*$/, '').replace(/\s+/g, ' ').trim();
      if (command) commands.push(command);
    }
  }
  return commands;
}

function spawnSh(command: string, ctx: Context): Running {
  // Its own process group, so a Ctrl-C can be sent as a terminal sends it: to the whole group.
  const child = spawn('bash', ['-c', command], { cwd: ctx.clone, env: ctx.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const running: Running = { child, stdout: '', stderr: '', exited: new Promise((resolve) => child.on('exit', (code) => resolve(code))) };
  child.stdout!.on('data', (chunk: Buffer) => (running.stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (running.stderr += chunk.toString()));
  return running;
}

async function sh(command: string, ctx: Context, timeoutMs = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const running = spawnSh(command, ctx);
  const timer = setTimeout(() => process.kill(-running.child.pid!, 'SIGKILL'), timeoutMs);
  const code = await running.exited;
  clearTimeout(timer);
  return { code, stdout: running.stdout, stderr: running.stderr };
}

async function until(running: Running, condition: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (running.child.exitCode !== null) throw new Error(`exited (${running.child.exitCode}) before ${what}:\n${running.stderr.slice(-4000)}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${running.stderr.slice(-4000)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function events(running: Running): { type: string; object: { metadata: { name: string } } }[] {
  return running.stdout.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line));
}

/** `npm start`: events flow on stdout; one Ctrl-C (SIGINT to the process group) drains and exits 0. */
async function startAndInterrupt(command: string, ctx: Context): Promise<void> {
  const running = spawnSh(command, { ...ctx, env: { ...ctx.env, KUBECONFIG: '' } });
  await until(running, () => running.stdout.includes('"type":"ADDED"'), 'an ADDED event on stdout');
  process.kill(-running.child.pid!, 'SIGINT');
  await running.exited; // npm's own exit status on SIGINT is npm's; what meshsync did is in its log
  expect(running.stderr).to.contain('stopping: draining sinks').and.contain('meshsync stopped').and.not.contain('second signal');
}

describe('the documented commands, from a fresh clone', function () {
  this.timeout(15 * 60_000);
  let ctx: Context;

  before(async () => {
    const clone = freshClone('docs');
    const bin = join(clone, '.docs-bin');
    mkdirSync(bin);
    // `meshsync` below is `node bin/meshsync.js`, as getting-started says.
    writeFileSync(join(bin, 'meshsync'), `#!/bin/sh\nexec node ${join(clone, 'bin', 'meshsync.js')} "$@"\n`);
    chmodSync(join(bin, 'meshsync'), 0o755);
    const sim = await startSimulator();
    const kubeconfig = join(clone, '.docs-kubeconfig');
    await sim.writeKubeconfig(kubeconfig);
    ctx = { clone, sim, env: { PATH: `${bin}:${process.env.PATH ?? ''}`, HOME: join(clone, '.docs-home'), KUBECONFIG: kubeconfig, npm_config_update_notifier: 'false' } };
  });

  after(async () => {
    if (ctx?.running && ctx.running.child.exitCode === null) process.kill(-ctx.running.child.pid!, 'SIGKILL');
    await ctx?.sim.close();
  });

  it('knows how to check every command of the pages, and every command it knows is still on a page', () => {
    const onPages = new Set(PAGES.flatMap((page) => shellCommands(readFileSync(join(ROOT, page), 'utf8'))));
    expect([...onPages].filter((command) => !(command in COMMANDS)), 'commands with no line in COMMANDS').to.deep.equal([]);
    expect(Object.keys(COMMANDS).filter((command) => !onPages.has(command)), 'lines of COMMANDS no page has').to.deep.equal([]);
    // What is not run here names what runs it instead, and that exists.
    for (const [command, { instead }] of Object.entries(COMMANDS)) if (instead) expect(existsSync(join(ROOT, instead.by)), `${command}: ${instead.by}`).to.equal(true);
  });

  const seen = new Set<string>();
  for (const page of PAGES) {
    describe(page, () => {
      const markdown = readFileSync(join(ROOT, page), 'utf8');
      before(() => {
        // The config the page has you write (its first TypeScript block) before `meshsync validate`.
        const config = /^```ts\n(import \{ defineConfig \}[^]*?)^```$/m.exec(markdown)?.[1];
        if (page.endsWith('getting-started.md')) writeFileSync(join(ctx.clone, 'meshsync.config.ts'), config!);
      });
      for (const command of shellCommands(markdown)) {
        const how = COMMANDS[command];
        // A command is run once, on the first page that has it.
        if (how?.run && !seen.has(command)) it(`runs: ${command}`, () => how.run!(command, ctx));
        seen.add(command);
      }
    });
  }
});
