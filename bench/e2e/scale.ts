/**
 * bench/e2e at growing sizes, initial sync only, against the replay server (bench/e2e/backend.ts,
 * replayBackend: the simulator could not hold or feed a million pods): CPU per object and peak
 * RSS of each contender at each size, so a cost that grows with the number of objects shows.
 *
 *   npx tsx bench/e2e/scale.ts [--sizes 10000,100000,300000,1000000] [--contenders bare,meshsync,meshsync-metadata] [--rounds 1] [--reuse]
 *
 * `--reuse`: a size whose results are already in the build directory (`scale-<size>.json`, from an
 * earlier run) is not run again.
 *
 * Writes bench/results/scale.json (the website charts it). See bench/README.md, section "scale".
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
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
    reuse: { type: 'boolean', default: false },
  },
});
const sizes = args.sizes!.split(',').map(Number);
const loadAtStart = loadavg();
const runs: Record<string, unknown>[] = [];
for (const [index, pods] of sizes.entries()) {
  const out = join(args.build!, `scale-${pods}.json`);
  const child = args.reuse && existsSync(out) ? { status: 0, signal: null } : spawnSync(process.execPath, [
    '--import', 'tsx', join(ROOT, 'bench/e2e/run.ts'), '--server', 'replay', '--phases', 'initial', '--pods', String(pods),
    '--contenders', args.contenders!, '--rounds', args.rounds!, '--build', args.build!, '--out', out, ...(index > 0 && existsSync(join(args.build!, 'dist/cli/main.js')) ? ['--no-build'] : []),
  ], { stdio: 'inherit' });
  if (child.status !== 0) throw new Error(`bench/e2e/run.ts with --pods ${pods} failed (${child.status ?? child.signal})`);
  const result = JSON.parse(readFileSync(out, 'utf8'));
  runs.push({ pods, loadAverage: result.loadAverage, results: result.results, ratios: result.ratios });
}
type Figures = { initialSync: { cpuUsPerEvent: number; eventsPerSecond: number }; peakRssMb: number };
const contenders = args.contenders!.split(',');
const figures = (pods: number, name: string) => (runs.find((run) => run.pods === pods)?.results as Record<string, Figures> | undefined)?.[name];
const curve = (unit: string, read: (f: Figures) => number) => ({
  unit, x: 'objects',
  points: Object.fromEntries(contenders.map((name) => [name, sizes.flatMap((pods) => {
    const f = figures(pods, name);
    return f ? [[pods, read(f)]] : [];
  })])),
});
const results = Object.fromEntries(contenders.map((name) => [name, Object.fromEntries(sizes.flatMap((pods) => {
  const f = figures(pods, name);
  return f ? [[`cpuUsPerObject at ${pods}`, f.initialSync.cpuUsPerEvent], [`peakRssMb at ${pods}`, f.peakRssMb]] : [];
}))]));
// Flat: the CPU per object at the largest size against the smallest; and the RSS at the largest.
const ratios: Record<string, { value: number; target: string; met: boolean }> = {};
const [smallest, largest] = [Math.min(...sizes), Math.max(...sizes)];
for (const name of contenders) {
  const [small, large] = [figures(smallest, name), figures(largest, name)];
  if (!small || !large) continue;
  const flat = Math.round((large.initialSync.cpuUsPerEvent / small.initialSync.cpuUsPerEvent) * 100) / 100;
  ratios[`${name} cpu per object, ${largest} vs ${smallest}`] = { value: flat, target: '0.8 to 1.2', met: flat >= 0.8 && flat <= 1.2 };
  // The smallest size carries the JIT's warm-up: the same from the next size up.
  const second = Math.min(...sizes.filter((size) => size > smallest));
  const next = figures(second, name);
  if (next && sizes.length > 2) {
    const fromNext = Math.round((large.initialSync.cpuUsPerEvent / next.initialSync.cpuUsPerEvent) * 100) / 100;
    ratios[`${name} cpu per object, ${largest} vs ${second}`] = { value: fromNext, target: '0.8 to 1.2', met: fromNext >= 0.8 && fromNext <= 1.2 };
  }
  if (name.startsWith('meshsync')) ratios[`${name} peak RSS MB at ${largest}`] = { value: large.peakRssMb, target: '<= 1024', met: large.peakRssMb <= 1024 };
  const bare = figures(largest, 'bare');
  if (name.startsWith('meshsync') && bare) {
    const vsBare = Math.round((large.initialSync.cpuUsPerEvent / bare.initialSync.cpuUsPerEvent) * 100) / 100;
    ratios[`${name} cpu per object vs bare at ${largest}`] = { value: vsBare, target: '<= 0.6', met: vsBare <= 0.6 };
  }
}
const output = {
  benchmark: 'scale',
  date: new Date().toISOString(),
  node: process.version,
  cpus: cpus().length,
  loadAverage: { start: loadAtStart, end: loadavg() },
  method: 'bench/e2e/run.ts --server replay --phases initial per size: CPU µs per object from the first pods request to the last object received, peak RSS (VmHWM)',
  sizes,
  results,
  ratios,
  curves: { cpuUsPerObject: curve('µs', (f) => f.initialSync.cpuUsPerEvent), peakRssMb: curve('MB', (f) => f.peakRssMb) },
  perSize: runs,
};
writeFileSync(args.out!, `${JSON.stringify(output, null, 2)}\n`);
console.log(`written: ${args.out}`);
