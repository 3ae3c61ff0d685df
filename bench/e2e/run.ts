/**
 * End-to-end benchmark (not a test): Kubernetes API server -> contender -> nats-server -> a
 * subscriber, for a 100k-pod initial sync, steady churn at a fixed rate (latency), and max-rate
 * churn (throughput). The API server is the project's simulator, or with `--server real` a real
 * kube-apiserver, etcd and kube-controller-manager (test/cluster's, built or found cached), with
 * the pods created through its API (backend.ts). Contenders, each a child process of its own (its peak RSS is its own):
 *   bare      (a) the limit: paginated LIST + WATCH, parse, stringify, raw NATS publish
 *   informer  (b) what a user would write: client-node makeInformer + JSON.stringify + publish
 *   meshsync  the real CLI, built JS (`node <build>/dist/cli/main.js run --config <file>`):
 *             kubernetes source (pods only) + nats sink (resyncOnReconnect off), no metrics
 * The simulator (or the real control plane's launcher) and the churn driver run in this process;
 * nats-server and the subscriber in processes of their own. Everything is compiled with tsc into a temp dir first (no tsx in the
 * measured processes).
 *
 *   npx tsx bench/e2e/run.ts [--server simulator|real] [--pods 100000] [--rate 1000] [--seconds 20] [--burst 20000]
 *                            [--contenders bare,informer,meshsync] [--rounds 3] [--no-build]
 *                            [--profile meshsync [--node-args=--trace-gc]]   (CPU profile of one contender)
 *                            [--node-args-for meshsync --node-args=...]      (V8 flags without profiling)
 *
 * Each round runs every contender once, in an order rotated round by round; the ratios compare
 * the contenders' medians over the rounds (a shared machine's hiccup in one round moves a median
 * little), and each round's own ratios are reported beside them.
 *
 * Writes bench/results/e2e.json (e2e-real.json with --server real) and prints a table. See bench/README.md, section "e2e".
 */
import { spawn, fork, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { makePod } from '../../testing/simulator/demo.ts';
import { POD, realBackend, replayBackend, simulatorBackend, type Backend, type Credentials } from './backend.ts';
import { startNatsServer } from '../../test/support/nats-server.ts';
import type { EndCommand, PhaseCommand, SubscriberMessage } from './subscriber.ts';
import { median } from '../stats.ts';

const ROOT = join(import.meta.dirname, '../..');
const { values: args } = parseArgs({
  options: {
    server: { type: 'string', default: 'simulator' },
    // Defaults per server below: a real one is written through its API, so it holds fewer.
    pods: { type: 'string' },
    namespaces: { type: 'string', default: '20' },
    rate: { type: 'string' },
    seconds: { type: 'string', default: '20' },
    burst: { type: 'string' },
    contenders: { type: 'string', default: 'bare,informer,meshsync' },
    rounds: { type: 'string', default: '3' },
    profile: { type: 'string' },
    'node-args': { type: 'string', default: '' },
    /** Contenders (comma-separated) given --node-args; default: the profiled one. */
    'node-args-for': { type: 'string' },
    build: { type: 'string', default: '/tmp/meshsync-bench-e2e' },
    'no-build': { type: 'boolean', default: false },
    out: { type: 'string' },
    phases: { type: 'string', default: 'all' },
    /** JetStream on the server: meshsync keeps its ledger there (a KV write per delivered event). */
    jetstream: { type: 'boolean', default: false },
  },
});
if (!['simulator', 'real', 'replay'].includes(args.server!)) throw new Error(`--server is simulator, real or replay, not ${args.server}`);
if (!['all', 'initial'].includes(args.phases!)) throw new Error(`--phases is all or initial, not ${args.phases}`);
/** Only the initial sync: for the scale runs (bench/scale.ts). */
const INITIAL_ONLY = args.phases === 'initial';
const REAL = args.server === 'real';
const PODS = Number(args.pods ?? (REAL ? 20_000 : 100_000));
const NAMESPACES = Number(args.namespaces);
const RATE = Number(args.rate ?? (REAL ? 200 : 1000));
const SECONDS = Number(args.seconds);
const BURST = Number(args.burst ?? (REAL ? 5000 : 20_000));
const OUT = args.out ?? join(ROOT, `bench/results/${REAL ? 'e2e-real' : args.server === 'replay' ? 'e2e-replay' : 'e2e'}.json`);
const ROUNDS = Number(args.rounds);
const BUILD = args.build!;
/** Latency samples of the first second of steady churn are left out (warm-up). */
const WARMUP_US = 1_000_000;
const PHASE_TIMEOUT_MS = 240_000;

const nowUs = () => Number(process.hrtime.bigint() / 1000n);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const log = (text: string) => process.stderr.write(`[e2e ${new Date().toISOString().slice(11, 19)}] ${text}\n`);

// ---- build ----------------------------------------------------------------------------------

/** Compiles core, config, plugins and the bench's own children into BUILD (a package of its own). */
function build(): void {
  log(`building with tsc into ${BUILD}`);
  mkdirSync(BUILD, { recursive: true });
  const tsc = spawnSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'bench/e2e/tsconfig.json'), '--outDir', join(BUILD, 'dist')], { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  // Type errors elsewhere in the tree do not stop the emit; a missing output does.
  if (!existsSync(join(BUILD, 'dist/cli/main.js')) || !existsSync(join(BUILD, 'dist/bench/e2e/subscriber.js'))) {
    throw new Error(`tsc produced no output:\n${tsc.stdout}\n${tsc.stderr}`);
  }
  copyFileSync(join(ROOT, 'package.json'), join(BUILD, 'package.json'));
  if (!existsSync(join(BUILD, 'node_modules'))) symlinkSync(join(ROOT, 'node_modules'), join(BUILD, 'node_modules'));
}

// ---- /proc ----------------------------------------------------------------------------------

const TICK_US = 1_000_000 / 100; // USER_HZ is 100 on Linux

/** The VM's steal time so far in ms (the `cpu` line of /proc/stat, in clock ticks); undefined off Linux. */
function stealMs(): number | undefined {
  try {
    const fields = readFileSync('/proc/stat', 'latin1').slice(0, 200).split('\n')[0].trim().split(/\s+/);
    const ticks = Number(fields[8]);
    return Number.isFinite(ticks) ? (ticks * TICK_US) / 1000 : undefined;
  } catch {
    return undefined;
  }
}

/** utime + stime of a process, in µs. */
function cpuUs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * TICK_US;
}

/** Peak resident set size (VmHWM) in MB. */
function peakRssMb(pid: number): number {
  const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) / 1024 : NaN;
}

// ---- subscriber -----------------------------------------------------------------------------

class Subscriber {
  private readonly waiting: ((message: SubscriberMessage) => boolean)[] = [];
  private constructor(private readonly child: ChildProcess) {
    child.on('message', (message: SubscriberMessage) => {
      const index = this.waiting.findIndex((accept) => accept(message));
      if (index >= 0) this.waiting.splice(index, 1);
    });
  }

  static async start(natsUrl: string): Promise<Subscriber> {
    const child = fork(join(BUILD, 'dist/bench/e2e/subscriber.js'), [natsUrl], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const subscriber = new Subscriber(child);
    await subscriber.next((m) => m.type === 'ready', 30_000);
    return subscriber;
  }

  next<T extends SubscriberMessage>(accept: (m: SubscriberMessage) => boolean, timeoutMs = PHASE_TIMEOUT_MS): Promise<T> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('subscriber: timed out')), timeoutMs);
      this.waiting.push((m) => {
        if (!accept(m)) return false;
        clearTimeout(timer);
        resolve(m as T);
        return true;
      });
    });
  }

  /** Starts counting on `subject`; the returned promise resolves with the µs stamp of the expect-th message. */
  async phase(subject: string, expect: number, latency: boolean): Promise<{ done: Promise<number> }> {
    const done = this.next<Extract<SubscriberMessage, { type: 'done' }>>((m) => m.type === 'done' && m.subject === subject).then((m) => m.at);
    done.catch(() => undefined);
    const ack = this.next((m) => m.type === 'ack', 10_000);
    this.child.send({ cmd: 'phase', subject, expect, latency } satisfies PhaseCommand);
    await ack;
    return { done };
  }

  async end(subject: string): Promise<Extract<SubscriberMessage, { type: 'stats' }>> {
    const stats = this.next<Extract<SubscriberMessage, { type: 'stats' }>>((m) => m.type === 'stats' && m.subject === subject, 30_000);
    this.child.send({ cmd: 'end', subject } satisfies EndCommand);
    return stats;
  }

  stop(): void {
    this.child.disconnect();
  }
}

// ---- contenders -----------------------------------------------------------------------------

interface Env {
  backend: Backend;
  natsUrl: string;
  dir: string;
}

interface Contender {
  name: string;
  label: string;
  command(env: Env, subject: string, credentials: Credentials): string[];
}

const CONTENDERS: Record<string, Contender> = {
  bare: {
    name: 'bare',
    label: '(a) bare LIST+WATCH -> parse -> publish',
    command: (env, subject, c) => [join(BUILD, 'dist/bench/e2e/contenders/bare.js'), c.url, c.token, env.natsUrl, subject, c.caFile ?? ''],
  },
  informer: {
    name: 'informer',
    label: '(b) client-node makeInformer + JSON.stringify',
    command: (env, subject, c) => [join(BUILD, 'dist/bench/e2e/contenders/informer.js'), c.kubeconfig, env.natsUrl, subject],
  },
  meshsync: {
    name: 'meshsync',
    label: 'meshsync CLI (kubernetes -> nats), defaults',
    command: (env, subject, c) => meshsyncCommand(env, subject, c, {}),
  },
  'meshsync-paged': {
    name: 'meshsync-paged',
    label: 'meshsync CLI, streamingList off (LIST in pages of 500)',
    command: (env, subject, c) => meshsyncCommand(env, subject, c, { streamingList: 'off' }),
  },
  'meshsync-metadata': {
    name: 'meshsync-metadata',
    label: 'meshsync CLI, metadataOnly (PartialObjectMetadata)',
    command: (env, subject, c) => meshsyncCommand(env, subject, c, { metadataOnly: true }),
  },
};

function meshsyncCommand(env: Env, subject: string, c: Credentials, kubernetes: Record<string, unknown>): string[] {
  const file = join(env.dir, `meshsync-${subject}.json`);
  writeFileSync(file, JSON.stringify({
    clusterId: 'bench',
    logLevel: 'warn',
    plugins: [
      ['meshsync:kubernetes', { kubeconfig: c.kubeconfig, resources: [POD], watchCustomResourceDefinitions: false, ...kubernetes }],
      ['meshsync:nats', { url: env.natsUrl, subject, resyncOnReconnect: false }],
    ],
  }, null, 2));
  // As the image runs it (Dockerfile, ENTRYPOINT).
  return ['--max-semi-space-size=4', join(BUILD, 'dist/cli/main.js'), 'run', '--config', file];
}

interface PhaseResult {
  events: number;
  seconds: number;
  eventsPerSecond: number;
  /** CPU time of the contender (user + system) per event: robust to a loaded machine. */
  cpuUsPerEvent: number;
  p50Ms?: number;
  p99Ms?: number;
  maxMs?: number;
  worstPerSecondMs?: number[];
  cpuMsPerSecond?: number[];
  driverPauseMsPerSecond?: number[];
  /** Linux guests only: CPU time the hypervisor gave to others (steal), summed over CPUs. */
  stealMsPerSecond?: number[];
}

interface ContenderResult {
  label: string;
  initialSync: PhaseResult & { secondsFromSpawn: number };
  /** Absent with --phases initial. */
  steadyChurn?: PhaseResult;
  maxChurn?: PhaseResult;
  peakRssMb: number;
  peakRssAfterInitialSyncMb: number;
}

const percentile = (sorted: number[], p: number) => sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((sorted.length - 1) * p))] : NaN;
const round = (value: number, digits = 1) => Math.round(value * 10 ** digits) / 10 ** digits;

/** Pods touched by churn: each write in a phase hits a different pod, so nothing can coalesce. */
let churnCursor = 0;
const nextPod = (pods: [string, string][]) => () => pods[churnCursor++ % pods.length];
/** Writes to the real server that failed (each is a change the subscriber will not see). */
let failedWrites = 0;

/** A process's CPU time sampled every few ms, to read it as of a moment known only afterwards. */
function sampleCpu(pid: () => number): { at(us: number): number; stop(): void } {
  const samples: [number, number][] = [];
  const timer = setInterval(() => {
    if (pid()) samples.push([nowUs(), cpuUs(pid())]);
  }, 5);
  return {
    at(us) {
      let i = samples.length - 1;
      while (i > 0 && samples[i][0] > us) i--;
      return samples[i]?.[1] ?? 0;
    },
    stop: () => clearInterval(timer),
  };
}

async function runContender(contender: Contender, env: Env, subscriber: Subscriber, pods: [string, string][]): Promise<ContenderResult> {
  const next = nextPod(pods);
  const subject = `bench.${contender.name}`;
  log(`${contender.name}: initial sync of ${PODS} pods (load ${loadavg().map((l) => l.toFixed(2)).join(' ')})`);
  const initial = await subscriber.phase(subject, PODS, false);

  const credentials = await env.backend.credentials(contender.name);
  let pid = 0;
  // Start-up (module loading, discovery, NATS connect) is left out of the CPU per event: it is
  // counted from the contender's first pods request.
  const firstPodsRequest = env.backend.observeFirstPodsRequest(contender.name);
  const cpu = sampleCpu(() => pid);

  const profiling = args.profile === contender.name;
  const nodeArgsFor = (args['node-args-for'] ?? args.profile ?? '').split(',');
  const execArgv = [
    ...(profiling ? ['--cpu-prof', '--cpu-prof-dir', join(BUILD, 'profiles')] : []),
    ...(nodeArgsFor.includes(contender.name) ? args['node-args']!.split(' ').filter(Boolean) : []),
  ];
  const spawnedUs = nowUs();
  const child = spawn(process.execPath, [...execArgv, ...contender.command(env, subject, credentials)], { stdio: ['ignore', 'inherit', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  pid = child.pid!;
  let failed = false;
  child.once('exit', (code, signal) => {
    if (!stopping) {
      failed = true;
      log(`${contender.name} exited early (code ${code}, signal ${signal})`);
    }
  });
  let stopping = false;
  const died = exited.then((): never => {
    throw new Error(`${contender.name} exited`);
  });
  died.catch(() => undefined);
  const guard = <T>(promise: Promise<T>) => Promise.race([promise, died]);

  try {
    // ---- initial sync
    const doneAt = await guard(initial.done);
    const cpu1 = cpuUs(pid);
    const peakAfterInitial = peakRssMb(pid);
    const firstPodsRequestUs = await firstPodsRequest.first();
    const cpu0 = cpu.at(firstPodsRequestUs);
    cpu.stop();
    const initialSeconds = (doneAt - firstPodsRequestUs) / 1e6;
    const initialSync = {
      events: PODS,
      seconds: round(initialSeconds, 2),
      secondsFromSpawn: round((doneAt - spawnedUs) / 1e6, 2),
      eventsPerSecond: Math.round(PODS / initialSeconds),
      cpuUsPerEvent: round((cpu1 - cpu0) / PODS),
    };
    await subscriber.end(subject);
    log(`${contender.name}: initial sync ${initialSync.eventsPerSecond}/s (${initialSync.seconds} s), peak RSS ${peakAfterInitial.toFixed(0)} MB`);
    if (INITIAL_ONLY) return { label: contender.label, initialSync, peakRssMb: round(peakAfterInitial, 0), peakRssAfterInitialSyncMb: round(peakAfterInitial, 0) };
    await sleep(1000);

    // ---- steady churn at RATE events/s: latency
    const steadyEvents = RATE * SECONDS;
    const steady = await subscriber.phase(subject, steadyEvents, true);
    const cpu2 = cpuUs(pid);
    const startUs = nowUs();
    let written = 0;
    // Per second of writing: the contender's CPU time, the longest pause of this process's
    // driver loop (the simulator lives here), and the CPU time the hypervisor took from this VM.
    // A stall in the latencies with the contender's CPU high is the contender's own work; with
    // this loop's pause long, it is the bench's; with steal time high, the host's.
    const cpuMsPerSecond: number[] = [];
    const driverPauseMsPerSecond: number[] = [];
    const stealMsPerSecond: number[] = [];
    let lastLoopAt = startUs;
    let longestPause = 0;
    let lastCpu = cpu2;
    let lastSteal = stealMs();
    while (written < steadyEvents) {
      const due = Math.min(steadyEvents, Math.floor(((nowUs() - startUs) / 1e6) * RATE));
      while (written < due) {
        const [namespace, name] = next();
        void Promise.resolve(env.backend.stamp(namespace, name)).catch(() => failedWrites++);
        written++;
      }
      await sleep(2);
      const now = nowUs();
      longestPause = Math.max(longestPause, now - lastLoopAt);
      lastLoopAt = now;
      if (now - startUs >= (cpuMsPerSecond.length + 1) * 1e6) {
        const cpu = cpuUs(pid);
        cpuMsPerSecond.push(Math.round((cpu - lastCpu) / 1000));
        driverPauseMsPerSecond.push(Math.round(longestPause / 1000));
        const steal = stealMs();
        if (steal !== undefined && lastSteal !== undefined) stealMsPerSecond.push(steal - lastSteal);
        lastSteal = steal;
        lastCpu = cpu;
        longestPause = 0;
      }
    }
    const steadyDoneAt = await guard(Promise.race([steady.done, sleep(30_000).then(() => NaN)]));
    const cpu3 = cpuUs(pid);
    const steadyStats = await subscriber.end(subject);
    // Worst latency per second of churn (in receipt order): shows whether p99 comes from one stall.
    const worstPerSecond: number[] = [];
    for (let i = 0; i < steadyStats.latenciesUs.length; i += RATE) worstPerSecond.push(Math.round(Math.max(...steadyStats.latenciesUs.slice(i, i + RATE)) / 1000));
    log(`${contender.name}: worst latency per second of churn (ms): ${worstPerSecond.join(' ')}`);
    log(`${contender.name}: its CPU per second of churn (ms): ${cpuMsPerSecond.join(' ')}`);
    log(`${contender.name}: the bench driver's longest pause per second (ms): ${driverPauseMsPerSecond.join(' ')}`);
    if (stealMsPerSecond.length > 0) log(`${contender.name}: CPU time stolen from this VM per second, all CPUs (ms): ${stealMsPerSecond.join(' ')}`);
    const latencies = steadyStats.latenciesUs.slice(Math.min(steadyStats.latenciesUs.length, RATE * (WARMUP_US / 1e6))).sort((x, y) => x - y);
    const steadySeconds = ((Number.isNaN(steadyDoneAt) ? steadyStats.lastAt : steadyDoneAt) - startUs) / 1e6;
    const steadyChurn: PhaseResult = {
      events: steadyStats.count,
      seconds: round(steadySeconds, 2),
      eventsPerSecond: Math.round(steadyStats.count / steadySeconds),
      cpuUsPerEvent: round((cpu3 - cpu2) / Math.max(1, steadyStats.count)),
      p50Ms: round(percentile(latencies, 0.5) / 1000, 2),
      p99Ms: round(percentile(latencies, 0.99) / 1000, 2),
      maxMs: round(latencies[latencies.length - 1] / 1000, 2),
      worstPerSecondMs: worstPerSecond,
      cpuMsPerSecond,
      driverPauseMsPerSecond,
      ...(stealMsPerSecond.length > 0 ? { stealMsPerSecond } : {}),
    };
    if (steadyStats.count < steadyEvents) log(`${contender.name}: steady churn delivered ${steadyStats.count} of ${steadyEvents}`);
    log(`${contender.name}: steady churn p50 ${steadyChurn.p50Ms} ms, p99 ${steadyChurn.p99Ms} ms`);
    await sleep(1000);

    // ---- max-rate churn: BURST changes written while the watch is stalled, then released at once
    const burst = await subscriber.phase(subject, BURST, false);
    const cpu4 = cpuUs(pid);
    const releasedUs = await env.backend.burst(BURST, next);
    const burstDoneAt = await guard(burst.done);
    const cpu5 = cpuUs(pid);
    await subscriber.end(subject);
    const burstSeconds = (burstDoneAt - releasedUs) / 1e6;
    const maxChurn: PhaseResult = {
      events: BURST,
      seconds: round(burstSeconds, 2),
      eventsPerSecond: Math.round(BURST / burstSeconds),
      cpuUsPerEvent: round((cpu5 - cpu4) / BURST),
    };
    log(`${contender.name}: max-rate churn ${maxChurn.eventsPerSecond}/s`);
    const peak = peakRssMb(pid);
    return { label: contender.label, initialSync, steadyChurn, maxChurn, peakRssMb: round(peak, 0), peakRssAfterInitialSyncMb: round(peakAfterInitial, 0) };
  } finally {
    firstPodsRequest.stop();
    cpu.stop();
    stopping = true;
    if (!failed) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(killer);
    }
  }
}

// ---- report ---------------------------------------------------------------------------------

/** Every number in the results, the median over the rounds (each field on its own); lists are left out. */
function medianOf<T>(rounds: T[]): T {
  const first = rounds[0] as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(first)) {
    if (typeof value === 'number') out[key] = round(median(rounds.map((r) => (r as Record<string, number>)[key])), 2);
    else if (typeof value === 'object' && value !== null && !Array.isArray(value)) out[key] = medianOf(rounds.map((r) => (r as Record<string, unknown>)[key]));
    else if (!Array.isArray(value)) out[key] = value;
  }
  return out as T;
}

const ratio = (x: number, y: number) => round(x / y, 2);

function compare(results: Record<string, ContenderResult>) {
  const m = results.meshsync;
  const a = results.bare;
  const b = results.informer;
  if (!m || !a) return undefined;
  const check = (value: number, target: string, ok: boolean) => ({ value, target, met: ok });
  const out: Record<string, unknown> = {};
  const initialVsA = ratio(m.initialSync.eventsPerSecond, a.initialSync.eventsPerSecond);
  out.initialSyncThroughputVsBare = check(initialVsA, '>= 0.6', initialVsA >= 0.6);
  const cpuInitial = ratio(m.initialSync.cpuUsPerEvent, a.initialSync.cpuUsPerEvent);
  out.cpuPerEventInitialSyncVsBare = check(cpuInitial, '<= 0.6', cpuInitial <= 0.6);
  const rssVsA = ratio(m.peakRssMb, a.peakRssMb);
  out.peakRssVsBare = check(rssVsA, '<= 1.5', rssVsA <= 1.5);
  if (m.maxChurn && a.maxChurn) {
    const churnVsA = ratio(m.maxChurn.eventsPerSecond, a.maxChurn.eventsPerSecond);
    out.churnThroughputVsBare = check(churnVsA, '>= 0.6', churnVsA >= 0.6);
    const cpuBurst = ratio(m.maxChurn.cpuUsPerEvent, a.maxChurn.cpuUsPerEvent);
    out.cpuPerEventMaxChurnVsBare = check(cpuBurst, '<= 0.6', cpuBurst <= 0.6);
  }
  if (m.steadyChurn && a.steadyChurn) {
    const p99VsA = ratio(m.steadyChurn.p99Ms!, a.steadyChurn.p99Ms!);
    out.p99LatencyVsBare = check(p99VsA, '<= 1', p99VsA <= 1);
  }
  if (b) {
    const initialVsB = ratio(m.initialSync.eventsPerSecond, b.initialSync.eventsPerSecond);
    out.initialSyncThroughputVsInformer = check(initialVsB, '>= 2', initialVsB >= 2);
    if (m.maxChurn && b.maxChurn) {
      const churnVsB = ratio(m.maxChurn.eventsPerSecond, b.maxChurn.eventsPerSecond);
      out.churnThroughputVsInformer = check(churnVsB, '>= 2', churnVsB >= 2);
    }
    const rssVsB = ratio(m.peakRssMb, b.peakRssMb);
    out.peakRssVsInformer = check(rssVsB, '<= 0.3', rssVsB <= 0.3);
  }
  return out as Record<string, { value: number; target: string; met: boolean }>;
}

function printTable(results: Record<string, ContenderResult>, ratios: ReturnType<typeof compare>): void {
  const rows = [['contender', 'init ev/s', 'init cpu µs/ev', 'burst ev/s', 'burst cpu µs/ev', `p50 @${RATE}/s`, `p99 @${RATE}/s`, 'peak RSS MB']];
  for (const [name, r] of Object.entries(results)) {
    rows.push([name, String(r.initialSync.eventsPerSecond), String(r.initialSync.cpuUsPerEvent), String(r.maxChurn?.eventsPerSecond ?? '-'), String(r.maxChurn?.cpuUsPerEvent ?? '-'),
      r.steadyChurn ? `${r.steadyChurn.p50Ms} ms` : '-', r.steadyChurn ? `${r.steadyChurn.p99Ms} ms` : '-', String(r.peakRssMb)]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  for (const row of rows) console.log(row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  '));
  if (ratios) {
    console.log('');
    for (const [name, value] of Object.entries(ratios)) {
      console.log(typeof value === 'number' ? `${name.padEnd(34)} ${value}` : `${name.padEnd(34)} ${String(value.value).padStart(6)}  target ${value.target.padEnd(7)} ${value.met ? 'met' : 'MISSED'}`);
    }
  }
}

// ---- main -----------------------------------------------------------------------------------

async function main(): Promise<void> {
  const loadAtStart = loadavg();
  log(`load average ${loadAtStart.map((l) => l.toFixed(2)).join(' ')}`);
  if (!args['no-build']) build();
  const names = args.contenders!.split(',').map((s) => s.trim()).filter(Boolean);
  for (const name of names) if (!CONTENDERS[name]) throw new Error(`unknown contender ${name} (${Object.keys(CONTENDERS).join(', ')})`);

  const nats = await startNatsServer({
    // A subscriber that falls behind for a moment must not be cut off as a slow consumer.
    config: 'max_pending: 1GB\nwrite_deadline: "30s"',
    jetstream: args.jetstream,
  });
  const dir = nats.dir;
  if (REAL) log('starting a real control plane (test/cluster; built first if not cached)');
  const backend = REAL ? await realBackend() : args.server === 'replay' ? await replayBackend(dir) : await simulatorBackend(dir);
  const subscriber = await Subscriber.start(nats.url);

  log(`creating ${PODS} pods in ${NAMESPACES} namespaces${REAL ? ' through the API' : ''}`);
  const namespaces = Array.from({ length: NAMESPACES }, (_, n) => `ns-${n}`);
  const seeded = await backend.seed(namespaces, {
    count: PODS,
    make(i) {
      const pod = makePod(i, namespaces[i % NAMESPACES]);
      pod.metadata.annotations['bench/stamp'] = '0';
      return pod;
    },
  });
  const pods = seeded.names;
  const creationSeconds = round(seeded.seconds, 1);
  const podBytes = Buffer.byteLength(JSON.stringify(await backend.get(pods[0][0], pods[0][1])));
  log(`pods created in ${creationSeconds} s (${Math.round(PODS / creationSeconds)}/s; ${podBytes} bytes each as JSON)`);

  const rounds: Record<string, ContenderResult>[] = [];
  try {
    for (let r = 0; r < ROUNDS; r++) {
      const order = names.map((_, i) => names[(i + r) % names.length]);
      log(`round ${r + 1}/${ROUNDS}: ${order.join(', ')}`);
      const results: Record<string, ContenderResult> = {};
      for (const name of order) {
        results[name] = await runContender(CONTENDERS[name], { backend, natsUrl: nats.url, dir }, subscriber, pods);
        await sleep(2000);
      }
      rounds.push(results);
      if (ROUNDS > 1) printTable(results, compare(results));
    }
  } finally {
    subscriber.stop();
    await backend.close();
    await nats.dispose();
  }

  const results = Object.fromEntries(names.map((name) => [name, medianOf(rounds.map((r) => r[name]))]));
  const ratios = compare(results);
  const loadAtEnd = loadavg();
  const output = {
    benchmark: REAL ? 'e2e-real' : args.server === 'replay' ? 'e2e-replay' : 'e2e',
    date: new Date().toISOString(),
    node: process.version,
    cpus: cpus().length,
    loadAverage: { start: loadAtStart.map((l) => round(l, 2)), end: loadAtEnd.map((l) => round(l, 2)) },
    broker: { jetstream: args.jetstream, ledger: args.jetstream ? 'on (meshsync writes its KV ledger per delivered event)' : 'off (no JetStream on the server)' },
    server: REAL ? { kind: 'real', what: 'kube-apiserver + etcd + kube-controller-manager from test/cluster (versions in test/cluster/README.md); TLS, RBAC, a ServiceAccount token per contender', podsCreatedThroughTheApiSeconds: creationSeconds, failedWrites } : args.server === 'replay' ? { kind: 'replay', what: 'pods served from 1,000 recorded from the simulator, each under a name, uid and resourceVersion of its own; the simulator for the rest' } : { kind: 'simulator' },
    workload: {
      pods: PODS,
      namespaces: NAMESPACES,
      podJsonBytes: podBytes,
      initialSync: 'LIST (meshsync and bare: pages of 500; informer: one unpaginated LIST, as listPodForAllNamespaces() does), then WATCH from the list resourceVersion',
      steadyChurn: { eventsPerSecond: RATE, seconds: SECONDS, latency: `${REAL ? 'start of the PATCH' : 'simulator write'} (annotation bench/stamp, monotonic µs) to subscriber receipt; first second left out` },
      maxChurn: { events: BURST, method: backend.describeBurst },
      eachChangeTouchesADifferentPod: true,
      meshsync: 'built JS (tsc), node dist/cli/main.js run; plugins kubernetes (pods.v1. only, no CRD watch), nats (resyncOnReconnect off, headers on), redact-secrets (added by default); no metrics',
    },
    rounds: ROUNDS,
    phases: args.phases,
    /** Per contender, the median of each figure over the rounds. */
    results,
    /** Targets checked on the medians. */
    ratios: ratios ?? null,
    perRound: rounds.map((results) => ({ results, ratios: compare(results) ?? null })),
  };
  mkdirSync(dirname(OUT), { recursive: true });
  writeFileSync(OUT, `${JSON.stringify(output, null, 2)}\n`);
  console.log(`\nE2E (${args.server}): ${PODS} pods of ${podBytes} B, churn ${RATE}/s for ${SECONDS} s, burst ${BURST}; load ${loadAtStart.map((l) => l.toFixed(2)).join(' ')} -> ${loadAtEnd.map((l) => l.toFixed(2)).join(' ')}${ROUNDS > 1 ? `; medians of ${ROUNDS} rounds` : ''}`);
  printTable(results, ratios);
  if (failedWrites > 0) log(`${failedWrites} writes to the API server failed`);
  console.log(`\nwritten: ${OUT}`);
  if (args.profile) log(`CPU profile in ${join(BUILD, 'profiles')}`);
}

await main();
process.exit(0);
