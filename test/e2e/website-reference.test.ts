import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';

const repo = resolve(import.meta.dirname, '..', '..');
const run = promisify(execFile);

/** A scratch repo: the real core/ and node_modules/, fixture config schema, plugins and bench results. */
function scratchRepo(): string {
  const root = mkdtempSync(join(tmpdir(), 'meshsync-website-reference-'));
  symlinkSync(join(repo, 'core'), join(root, 'core'));
  symlinkSync(join(repo, 'node_modules'), join(root, 'node_modules'));
  const file = (path: string, content: string) => {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), content);
  };
  file('config/schema.ts', `import { z } from 'zod';
export const configSchema = z.object({
  clusterId: z.string().optional().describe('The id stamped on every event.'),
  pipeline: z.object({ batchSize: z.int().positive().default(500).describe('Largest batch.') }).prefault({}).describe('Batching.'),
});`);
  file('cli/builtins.ts', `export const BUILTIN_PLUGINS = {
  'meshsync:echo': () => import('../plugins/echo/index.ts'),
  'meshsync:absent': () => import('../plugins/absent/index.ts'),
};`);
  file('plugins/echo/index.ts', `import { z } from 'zod';
import { definePlugin } from '../../core/plugin.ts';
export default definePlugin({
  name: 'meshsync:echo',
  description: 'Echoes events.',
  options: z.object({ prefix: z.string().default('>').describe('Printed before each event, e.g. \`>\`.') }),
  setup: () => () => {},
});`);
  file('plugins/echo/README.md', '# meshsync:echo\n\nEchoes events.\n\n## Metrics\n\n| Metric | Meaning |\n|---|---|\n| `meshsync_echoed_total` | Events echoed. |\n\nSee [the absent plugin](../absent/README.md) and [a file](./index.ts).\n');
  file('bench/results/burst.json', JSON.stringify({
    scenario: 'Burst', units: { eventsPerSecond: 'events/s' },
    results: [{ name: 'meshsync', metrics: { eventsPerSecond: 40000 } }, { name: 'naive', metrics: { eventsPerSecond: 8000 } }],
  }));
  file('bench/results/scale.json', JSON.stringify({
    benchmark: 'scale',
    results: { meshsync: { 'cpuUsPerObject at 10000': 40, 'cpuUsPerObject at 1000000': 34 }, bare: { 'cpuUsPerObject at 10000': 70, 'cpuUsPerObject at 1000000': 55 } },
    ratios: { 'meshsync cpu per object vs bare at 1000000': { value: 0.62, target: '<= 0.6', met: false } },
    curves: { cpuUsPerObject: { unit: 'µs', x: 'objects', points: { meshsync: [[1000000, 34], [10000, 40]], bare: [[10000, 70], [1000000, 55]] } } },
  }));
  return root;
}

async function generate(root: string, ...flags: string[]): Promise<{ code: number; stderr: string }> {
  try {
    const { stderr } = await run(process.execPath, ['--import', 'tsx', join(repo, 'scripts', 'website-reference.ts'), '--root', root, '--out', join(root, 'out'), ...flags], { cwd: repo });
    return { code: 0, stderr };
  } catch (error) {
    const failed = error as { code: number; stderr: string };
    return { code: failed.code, stderr: failed.stderr };
  }
}

describe('website reference generator', function () {
  this.timeout(60_000);
  let root: string;
  let lenient: { code: number; stderr: string };
  before(async () => {
    root = scratchRepo();
    lenient = await generate(root);
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('writes the config reference from the zod schema, with defaults and nested keys', async () => {
    expect(lenient.code).to.equal(0);
    const page = readFileSync(join(root, 'out', 'config.md'), 'utf8');
    expect(page).to.include('The id stamped on every event.');
    expect(page).to.include('pipeline.batchSize');
    expect(page).to.include('default <code v-pre>500</code>');
  });

  it('writes a plugin page from its options schema and README, with README links made safe', async () => {
    const page = readFileSync(join(root, 'out', 'plugins', 'echo.md'), 'utf8');
    expect(page).to.include('# meshsync:echo');
    expect(page).to.include('Printed before each event, e.g. <code v-pre>&gt;</code>.');
    expect(page).to.include('meshsync_echoed_total');
    expect(page).to.include('[the absent plugin](./absent)');
    expect(page).to.include('a file (`./index.ts`)');
  });

  it('keeps a placeholder page for a plugin that does not load, unless --strict', async () => {
    expect(lenient.code).to.equal(0);
    expect(lenient.stderr).to.match(/warning: plugin absent: could not be loaded/);
    expect(readFileSync(join(root, 'out', 'plugins', 'absent.md'), 'utf8')).to.include('missing-in-build');
    const strict = await generate(root, '--strict');
    expect(strict.code).to.equal(1);
    expect(strict.stderr).to.match(/--strict: failing on .*\n.*plugin absent/);
  });

  it('lists the plugins without a column that says "yes" on every row: only one missing from the build is marked', async () => {
    const index = readFileSync(join(root, 'out', 'plugins', 'index.md'), 'utf8');
    expect(index).to.not.include('In this build').and.not.match(/\| yes \|/);
    expect(index).to.match(/\| \[meshsync:echo\]\(\.\/echo\) \| Echoes events\. \|\n/);
    expect(index).to.match(/\[meshsync:absent\].* \(not in this build yet\) \|/);
  });

  it('draws a chart per metric from the benchmark results', async () => {
    const page = readFileSync(join(root, 'out', 'performance.md'), 'utf8');
    expect(page).to.include('<svg class="bench-chart"');
    expect(page).to.include('eventsPerSecond (events/s)');
    expect(page).to.include('40,000');
    expect(page).to.include('8,000');
  });

  it('draws curves as line charts on a log scale of sizes, and shows targets given in words with whether they were met', async () => {
    const page = readFileSync(join(root, 'out', 'performance.md'), 'utf8');
    const chart = /<svg[^>]*aria-label="cpuUsPerObject \(µs\) by objects".*?<\/svg>/s.exec(page)?.[0];
    expect(chart, 'the line chart').to.not.equal(undefined);
    const lines = [...chart!.matchAll(/<polyline[^>]*points="([^"]+)"/g)].map((m) => m[1].split(' ').map((point) => point.split(',').map(Number)));
    expect(lines).to.have.length(2);
    for (const line of lines) {
      expect(line).to.have.length(2);
      expect(line[0][0], 'sorted by size, left to right').to.be.lessThan(line[1][0]);
    }
    // meshsync (first) is below bare (second) at both sizes: a smaller value is drawn lower (larger y).
    expect(lines[0][0][1]).to.be.greaterThan(lines[1][0][1]);
    expect(chart).to.include('1,000,000').and.to.include('10,000').and.to.include('meshsync: 34 at 1,000,000');
    expect(page).to.include('| <code v-pre>meshsync cpu per object vs bare at 1000000</code> | 0.62 | &lt;= 0.6 | **no** |');
  });

  it('lists every error code with an anchor', async () => {
    const page = readFileSync(join(root, 'out', 'errors.md'), 'utf8');
    expect(page).to.include('## MESHSYNC_CONFIG_INVALID {#MESHSYNC_CONFIG_INVALID}');
  });
});
