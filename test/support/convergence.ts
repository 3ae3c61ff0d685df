/**
 * Did a consumer converge to the cluster? A *plain* consumer (applies ADDED / MODIFIED / DELETED in
 * the order they arrive and knows nothing of resync framing, as the seed's and Meshery's do), a
 * tracker of resourceVersion regressions per object, and a checker that compares a consumer's
 * view with the cluster's truth (what KubeCluster.listAll reads from the real API server).
 */
import type { KubeObject } from '../../core/index.ts';
import { wireKey, type WireEvent } from '../../testing/consumer.ts';

/** An object whose resourceVersion went backwards at the consumer: `to` arrived after `from`. */
export interface Regression {
  readonly key: string;
  readonly from: string;
  readonly to: string;
}

/** -1, 0, 1 as etcd revisions compare; undefined when either is not a revision (resourceVersion is opaque to clients). */
export function compareResourceVersions(a: string | undefined, b: string | undefined): number | undefined {
  if (a === undefined || b === undefined || !/^\d+$/.test(a) || !/^\d+$/.test(b)) return undefined;
  const x = BigInt(a);
  const y = BigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/**
 * Remembers the highest resourceVersion seen per object, DELETED included (an object re-announced
 * with an older version after its deletion is a ghost brought back), and every time one went back.
 */
export class RegressionTracker {
  readonly regressions: Regression[] = [];
  private readonly highest = new Map<string, string>();

  observe(object: KubeObject): void {
    const key = wireKey(object);
    const rv = object.metadata.resourceVersion;
    if (rv === undefined) return;
    const before = this.highest.get(key);
    const order = compareResourceVersions(rv, before);
    if (before === undefined || order === 1) this.highest.set(key, rv);
    else if (order === -1) this.regressions.push({ key, from: before, to: rv });
  }
}

/** A consumer that applies events in order and ignores every resync marker (it knows no framing). */
export class PlainConsumer {
  /** object key (uid) -> latest object. */
  readonly view = new Map<string, KubeObject>();
  readonly tracker = new RegressionTracker();
  /** Messages that were not events (resync markers, Meshery requests): ignored, counted. */
  ignored = 0;

  /** Applies one message payload of the default wire format (a JSON string or bytes). */
  apply(payload: string | Uint8Array): void {
    const message = JSON.parse(typeof payload === 'string' ? payload : new TextDecoder().decode(payload)) as Partial<WireEvent>;
    if ((message.type !== 'ADDED' && message.type !== 'MODIFIED' && message.type !== 'DELETED') || message.object?.metadata === undefined) {
      this.ignored++;
      return;
    }
    this.applyEvent(message.type, message.object);
  }

  applyEvent(type: WireEvent['type'], object: KubeObject): void {
    this.tracker.observe(object);
    const key = wireKey(object);
    if (type === 'DELETED') this.view.delete(key);
    else this.view.set(key, object);
  }

  get regressions(): readonly Regression[] {
    return this.tracker.regressions;
  }
}

/** What a consumer's view lacks, holds too much of, or holds older than the cluster; each a list of `kind namespace/name (uid)`. */
export interface ConvergenceReport {
  readonly missing: string[];
  readonly extra: string[];
  /** In both, but the consumer's resourceVersion is older than the cluster's (or differs, when not comparable). */
  readonly stale: string[];
  readonly regressions: readonly Regression[];
  /** True when all four are empty. */
  readonly converged: boolean;
}

export interface CompareOptions {
  /** Only objects this accepts count, on both sides (say, the resources meshsync watches). Default: all. */
  readonly include?: (object: KubeObject) => boolean;
  /** Regressions the consumer saw on the way (PlainConsumer.regressions, RegressionTracker.regressions). */
  readonly regressions?: readonly Regression[];
}

/**
 * Compares a consumer's view with the cluster's truth, by uid. Items of a list carry no `kind`, so
 * objects are told apart by uid, and named by kind when they have one.
 */
export function compareWithCluster(view: Iterable<KubeObject>, truth: Iterable<KubeObject>, options: CompareOptions = {}): ConvergenceReport {
  const include = options.include ?? (() => true);
  const byKey = (objects: Iterable<KubeObject>) => {
    const map = new Map<string, KubeObject>();
    for (const object of objects) if (include(object)) map.set(wireKey(object), object);
    return map;
  };
  const seen = byKey(view);
  const real = byKey(truth);
  const missing: string[] = [];
  const stale: string[] = [];
  for (const [key, object] of real) {
    const held = seen.get(key);
    if (held === undefined) missing.push(describe(object));
    else {
      const order = compareResourceVersions(held.metadata.resourceVersion, object.metadata.resourceVersion);
      if (order === -1 || (order === undefined && held.metadata.resourceVersion !== object.metadata.resourceVersion)) {
        stale.push(`${describe(object)}: rv ${held.metadata.resourceVersion} < ${object.metadata.resourceVersion}`);
      }
    }
  }
  const extra = [...seen].filter(([key]) => !real.has(key)).map(([, object]) => describe(object));
  const regressions = options.regressions ?? [];
  return { missing, extra, stale, regressions, converged: missing.length + extra.length + stale.length + regressions.length === 0 };
}

/** The cluster's truth: every object of these collections (`/api/v1/pods`, `/apis/apps/v1/deployments`), as the API server lists them now. */
export async function clusterTruth(cluster: { listAll(collection: string): Promise<KubeObject[]> }, collections: readonly string[]): Promise<KubeObject[]> {
  return (await Promise.all(collections.map((collection) => cluster.listAll(collection)))).flat();
}

/** One line for an assertion message: the counts, and the first few of each. */
export function summarize(report: ConvergenceReport, first = 5): string {
  const part = (name: string, items: readonly unknown[]) => `${items.length} ${name}${items.length ? ` (${items.slice(0, first).map((item) => (typeof item === 'string' ? item : JSON.stringify(item))).join(', ')}${items.length > first ? ', …' : ''})` : ''}`;
  return [part('missing', report.missing), part('extra', report.extra), part('stale', report.stale), part('regressions', report.regressions)].join('; ');
}

function describe(object: KubeObject): string {
  const meta = object.metadata;
  return `${object.kind ?? 'object'} ${meta.namespace ? `${meta.namespace}/` : ''}${meta.name} (${meta.uid ?? 'no uid'})`;
}
