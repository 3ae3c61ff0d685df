/**
 * bench/e2e at growing sizes, initial sync only, against the replay server (bench/e2e/backend.ts,
 * replayBackend: the simulator could not hold or feed a million pods): CPU per object and peak
 * RSS of each contender at each size, so a cost that grows with the number of objects shows.
 *
 *   npx tsx bench/e2e/scale.ts [--sizes 10000,100000,300000,1000000] [--contenders bare,meshsync,meshsync-metadata] [--rounds 1]
 *
 * Writes bench/results/scale.json (the website charts it). See bench/README.md, section "scale".
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const ROOT = join(import.meta.dirname, '../..');
const { values: args } = parseArgs({
  options: {
    sizes: { type: 'string', default: '10000,100000,300000,1000000' },
    contenders: { type: 'string', default: 'bare,meshsync,meshsync-metadata' },
    rounds: { type: 'string', default: '1' },
    build: { type: 'string', default: '/tmp/meshsync-bench-scale' },
    out: { type: 'string', default: join(ROOT, 'bench/results/scale.json') },
  },
});
const sizes = args.sizes!.split(',').map(Number);
const loadAtStart = loadavg();
const runs: Record<string, unknown>[] = [];
for (const [index, pods] of sizes.entries()) {
  const out = join(args.build!, `scale-${pods}.json`);
  const child = spawnSync(process.execPath, [
    '--import', 'tsx', join(ROOT, 'bench/e2e/run.ts'), '--server', 'replay', '--phases', 'initial', '--pods', String(pods),
    '--contenders', args.contenders!, '--rounds', args.rounds!, '--build', args.build!, '--out', out, ...(index > 0 ? ['--no-build'] : []),
  ], { stdio: 'inherit' });
  if (child.status !== 0) throw new Error(`bench/e2e/run.ts with --pods ${pods} failed (${child.status ?? child.signal})`);
  const result = JSON.parse(readFileSync(out, 'utf8'));
  runs.push({ pods, loadAverage: result.loadAverage, results: result.results, ratios: result.ratios });
}
const output = {
  benchmark: 'scale',
  date: new Date().toISOString(),
  node: process.version,
  cpus: cpus().length,
  loadAverage: { start: loadAtStart, end: loadavg() },
  method: 'bench/e2e/run.ts --server replay --phases initial per size: CPU µs per object from the first pods request to the last object received, peak RSS (VmHWM)',
  sizes,
  runs,
};
writeFileSync(args.out!, `${JSON.stringify(output, null, 2)}\n`);
console.log(`written: ${args.out}`);
