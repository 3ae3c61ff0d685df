// The in-memory cluster state: objects, the global resourceVersion counter,
// per-resource event history and watch fan-out. Every mutation, HTTP or
// programmatic, goes through `Cluster` so both see identical semantics.
import { randomUUID } from 'node:crypto';
import { errors } from './errors.ts';
import type { Matcher } from './selectors.ts';
import type { Registry, ResourceInfo } from './registry.ts';

import type { KubeObject as PipelineObject } from '../../core/index.ts';

/** The core's KubeObject with every field open to any use: the simulator stores and hands out plain JSON. */
export type KubeObject = { [Field in keyof PipelineObject]: any };

/** One stored version of one object. Bodies are never mutated once stored (they are shared with history). */
export interface Entry {
  key: string;
  /** the object without kind/apiVersion; those depend on the version asked for */
  body: any;
  rv: number;
  createdRv: number;
  json?: string;
}

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';
export interface StoreEvent {
  type: EventType;
  rv: number;
  /** new state; for DELETED the last state stamped with the deletion rv */
  entry: Entry;
  prev?: Entry;
  /** prev stamped with this event's rv, for watches that see a MODIFIED as DELETED */
  prevAtRv?: Entry;
}

/** What a watch stream implements to receive events. */
export interface WatchSink {
  onEvent(ev: StoreEvent): void;
  /** the resource stopped being served (CRD deleted) or the server is closing */
  terminate(): void;
}

export const NAMESPACES = 'namespaces';
export const CRD_GR = 'customresourcedefinitions.apiextensions.k8s.io';
/** kube-system's uid is what tools (and meshsync) use as the cluster id, so it is stable. */
export const KUBE_SYSTEM_UID = '5f1b7c3e-2d4a-4c8e-9b6f-0a1d2e3f4c5b';

// metadata.generation exists only where a spec is tracked by a controller.
const GENERATION_GRS = new Set([
  'pods', 'replicationcontrollers', 'deployments.apps', 'replicasets.apps', 'statefulsets.apps', 'daemonsets.apps',
  'jobs.batch', 'cronjobs.batch', 'horizontalpodautoscalers.autoscaling', 'poddisruptionbudgets.policy',
  'ingresses.networking.k8s.io', 'networkpolicies.networking.k8s.io', CRD_GR,
]);
const hasGeneration = (info: ResourceInfo) => !!info.crd || GENERATION_GRS.has(info.gr);

export const entryJson = (e: Entry): string => (e.json ??= JSON.stringify(e.body));

/** The object as the real server renders it outside lists: kind and apiVersion first. */
export function fullJson(info: ResourceInfo, e: Entry): string {
  const rest = entryJson(e);
  return `{"kind":${JSON.stringify(info.kind)},"apiVersion":${JSON.stringify(info.apiVersion)},${rest.slice(1)}`;
}

/** A private copy for callers. JSON round-trips beat structuredClone for plain data and prime the cache. */
export function fullObject(info: ResourceInfo, e: Entry): KubeObject {
  return JSON.parse(fullJson(info, e));
}

export const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v));

const keyOf = (namespace: string | undefined, name: string) => (namespace ? `${namespace}/${name}` : name);
const now = () => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
const withRv = (e: Entry, rv: number): Entry => ({
  key: e.key,
  body: { ...e.body, metadata: { ...e.body.metadata, resourceVersion: String(rv) } },
  rv,
  createdRv: e.createdRv,
});

class Collection {
  readonly objects = new Map<string, Entry>();
  readonly watchers = new Set<WatchSink>();
  /** history[head..] are the retained events, in rv order */
  history: StoreEvent[] = [];
  head = 0;
  /** events at or below this rv are forgotten */
  compactedRv = 0;
  // Keys sorted lazily: bulk inserts (100k pods) must not cost O(n^2).
  private sorted: string[] = [];
  private pending: string[] = [];
  private stale = 0;

  add(key: string): void {
    this.pending.push(key);
  }
  removed(): void {
    this.stale++;
  }

  sortedKeys(): string[] {
    if (this.pending.length) {
      const p = this.pending.sort();
      this.pending = [];
      const merged =
        p.length > this.sorted.length / 8 ? [...this.sorted, ...p].sort() : mergeSorted(this.sorted, p);
      this.sorted = dedupeSorted(merged);
    }
    if (this.stale > 1024 && this.stale > this.sorted.length / 4) {
      this.sorted = this.sorted.filter((k) => this.objects.has(k));
      this.stale = 0;
    }
    return this.sorted;
  }
}

function mergeSorted(a: string[], b: string[]): string[] {
  const out = new Array<string>(a.length + b.length);
  let i = 0;
  let j = 0;
  let k = 0;
  while (i < a.length && j < b.length) out[k++] = a[i] <= b[j] ? a[i++] : b[j++];
  while (i < a.length) out[k++] = a[i++];
  while (j < b.length) out[k++] = b[j++];
  return out;
}

function dedupeSorted(a: string[]): string[] {
  let w = 0;
  for (let r = 0; r < a.length; r++) if (r === 0 || a[r] !== a[w - 1]) a[w++] = a[r];
  a.length = w;
  return a;
}

/** First index i in sorted `a` with a[i] > x (or >= x when `inclusive`). */
function bound(a: string[], x: string, inclusive: boolean): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (inclusive ? a[mid] < x : a[mid] <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export function deepEqual(a: any, b: any): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && deepEqual(a[k], b[k]));
}

function specChanged(a: any, b: any): boolean {
  const { metadata: _m1, status: _s1, ...ra } = a;
  const { metadata: _m2, status: _s2, ...rb } = b;
  return !deepEqual(ra, rb);
}

const GENERATE_CHARS = 'bcdfghjklmnpqrstvwxz2456789';
const randomSuffix = () => Array.from({ length: 5 }, () => GENERATE_CHARS[Math.floor(Math.random() * GENERATE_CHARS.length)]).join('');

export interface ListOptions {
  namespace?: string;
  matcher?: Matcher;
  limit?: number;
  continueToken?: string;
}
export interface ListResult {
  items: Entry[];
  rv: number;
  continueToken?: string;
}

interface ContinueToken {
  v: 'meta.k8s.io/v1';
  rv: number;
  start: string;
}

export class Cluster {
  rv = 0;
  /** continue tokens older than this are expired, like after an etcd compaction */
  private compactRv = 0;
  private readonly collections = new Map<string, Collection>();
  /** called after CRD changes so the server can reconcile (e.g. end watches) */
  onResourcesRemoved: (removed: ResourceInfo[]) => void = () => {};

  constructor(
    readonly registry: Registry,
    private readonly historyLimit: number,
  ) {}

  private coll(info: ResourceInfo): Collection {
    let c = this.collections.get(info.gr);
    if (!c) this.collections.set(info.gr, (c = new Collection()));
    return c;
  }

  // ---- reads --------------------------------------------------------------

  get(info: ResourceInfo, namespace: string | undefined, name: string): Entry | undefined {
    return this.coll(info).objects.get(keyOf(info.namespaced ? namespace : undefined, name));
  }

  mustGet(info: ResourceInfo, namespace: string | undefined, name: string): Entry {
    const e = this.get(info, namespace, name);
    if (!e) throw errors.notFound(info.plural, info.group, name);
    return e;
  }

  namespaceExists(ns: string): boolean {
    return this.collections.get(NAMESPACES)?.objects.has(ns) ?? false;
  }

  list(info: ResourceInfo, opts: ListOptions = {}): ListResult {
    const c = this.coll(info);
    let snapshotRv = this.rv;
    let startAfter: string | undefined;
    if (opts.continueToken) {
      const tok = decodeContinue(opts.continueToken);
      if (tok.rv < this.compactRv) {
        throw errors.expired(
          'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.',
        );
      }
      snapshotRv = tok.rv;
      startAfter = tok.start;
    }
    const keys = c.sortedKeys();
    const ns = info.namespaced ? opts.namespace : undefined;
    let i = ns ? bound(keys, `${ns}/`, true) : 0;
    const end = ns ? bound(keys, `${ns}0`, true) : keys.length; // '0' sorts right after '/'
    if (startAfter !== undefined) i = Math.max(i, bound(keys, startAfter, false));
    const limit = opts.limit && opts.limit > 0 ? opts.limit : Infinity;
    const items: Entry[] = [];
    let lastKey = '';
    for (; i < end && items.length < limit; i++) {
      const e = c.objects.get(keys[i]);
      // objects created after the first page's snapshot stay out of later pages
      if (!e || e.createdRv > snapshotRv) continue;
      if (opts.matcher && !opts.matcher(e.body)) continue;
      items.push(e);
      lastKey = keys[i];
    }
    const more = items.length >= limit && i < end;
    return { items, rv: snapshotRv, ...(more ? { continueToken: encodeContinue({ v: 'meta.k8s.io/v1', rv: snapshotRv, start: lastKey }) } : {}) };
  }

  /** Events after `sinceRv`, or 'expired' when some of them were already forgotten. */
  eventsSince(info: ResourceInfo, sinceRv: number): StoreEvent[] | 'expired' {
    const c = this.coll(info);
    if (sinceRv < c.compactedRv) return 'expired';
    let lo = c.head;
    let hi = c.history.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (c.history[mid].rv <= sinceRv) lo = mid + 1;
      else hi = mid;
    }
    return c.history.slice(lo);
  }

  oldestRetainedRv(info: ResourceInfo): number {
    return this.coll(info).compactedRv;
  }

  addWatcher(info: ResourceInfo, sink: WatchSink): () => void {
    const c = this.coll(info);
    c.watchers.add(sink);
    return () => c.watchers.delete(sink);
  }

  allWatchers(): WatchSink[] {
    return [...this.collections.values()].flatMap((c) => [...c.watchers]);
  }

  /** Forget all history: older resourceVersions now get 410 Expired. */
  compact(): void {
    this.compactRv = this.rv;
    for (const c of this.collections.values()) {
      c.history = [];
      c.head = 0;
      c.compactedRv = this.rv;
    }
  }

  // ---- writes -------------------------------------------------------------

  private commit(info: ResourceInfo, type: EventType, entry: Entry, prev?: Entry): void {
    const c = this.coll(info);
    if (type === 'DELETED') {
      c.objects.delete(entry.key);
      c.removed();
    } else {
      if (!c.objects.has(entry.key)) c.add(entry.key);
      c.objects.set(entry.key, entry);
    }
    const ev: StoreEvent = { type, rv: entry.rv, entry, prev };
    c.history.push(ev);
    if (c.history.length - c.head > this.historyLimit) {
      c.compactedRv = c.history[c.head].rv;
      c.history[c.head++] = undefined as unknown as StoreEvent;
      if (c.head > 1024 && c.head > c.history.length / 2) {
        c.history = c.history.slice(c.head);
        c.head = 0;
      }
    }
    for (const w of c.watchers) w.onEvent(ev);
  }

  create(info: ResourceInfo, input: KubeObject, opts: { namespace?: string; keepUid?: boolean } = {}): Entry {
    const { kind: _k, apiVersion: _a, ...body } = input;
    const meta: Record<string, any> = { ...(body.metadata ?? {}) };
    if (!meta.name && meta.generateName) meta.name = `${meta.generateName}${randomSuffix()}`;
    const name: string = meta.name;
    if (!name) throw errors.invalid(info.kind, info.group, '', 'metadata.name', 'Required value: name or generateName is required');
    validateName(info, name);
    let namespace: string | undefined;
    if (info.namespaced) {
      namespace = opts.namespace ?? meta.namespace ?? 'default';
      if (meta.namespace && opts.namespace && meta.namespace !== opts.namespace) {
        throw errors.badRequest('the namespace of the provided object does not match the namespace sent on the request');
      }
      if (!this.namespaceExists(namespace!)) throw errors.notFound(NAMESPACES, '', namespace!);
      meta.namespace = namespace;
    } else delete meta.namespace;
    const key = keyOf(namespace, name);
    if (this.coll(info).objects.has(key)) throw errors.alreadyExists(info.plural, info.group, name);
    const rv = ++this.rv;
    const fresh: Record<string, any> = {
      name,
      ...meta,
      uid: opts.keepUid && meta.uid ? meta.uid : randomUUID(),
      resourceVersion: String(rv),
      creationTimestamp: now(),
    };
    if (hasGeneration(info)) fresh.generation = 1;
    else delete fresh.generation;
    delete fresh.deletionTimestamp;
    delete fresh.deletionGracePeriodSeconds;
    delete fresh.selfLink;
    body.metadata = fresh;
    this.applyDefaults(info, body);
    if (info.gr === CRD_GR) this.registerCrd(body);
    const entry: Entry = { key, body, rv, createdRv: rv };
    this.commit(info, 'ADDED', entry);
    return entry;
  }

  private applyDefaults(info: ResourceInfo, body: any): void {
    if (info.gr === NAMESPACES) {
      body.metadata.labels = { ...(body.metadata.labels ?? {}), 'kubernetes.io/metadata.name': body.metadata.name };
      body.spec = { finalizers: ['kubernetes'], ...(body.spec ?? {}) };
      body.status = { phase: 'Active', ...(body.status ?? {}) };
    }
  }

  private registerCrd(body: any): void {
    const spec = body.spec ?? {};
    const names = spec.names ?? {};
    if (!spec.group || !names.plural || !names.kind || !Array.isArray(spec.versions) || !spec.versions.length) {
      throw errors.invalid('CustomResourceDefinition', 'apiextensions.k8s.io', body.metadata.name, 'spec', 'Required value: group, names.plural, names.kind and versions are required');
    }
    if (body.metadata.name !== `${names.plural}.${spec.group}`) {
      throw errors.invalid('CustomResourceDefinition', 'apiextensions.k8s.io', body.metadata.name, 'metadata.name', `Invalid value: "${body.metadata.name}": must be spec.names.plural+"."+spec.group`);
    }
    const t = now();
    body.status = {
      acceptedNames: { ...names, singular: names.singular ?? names.kind.toLowerCase(), listKind: names.listKind ?? `${names.kind}List` },
      conditions: [
        { type: 'NamesAccepted', status: 'True', lastTransitionTime: t, reason: 'NoConflicts', message: 'no conflicts found' },
        { type: 'Established', status: 'True', lastTransitionTime: t, reason: 'InitialNamesAccepted', message: 'the initial names have been accepted' },
      ],
      storedVersions: [spec.versions.find((v: any) => v.storage)?.name ?? spec.versions[0].name],
    };
    const { removed } = this.registry.applyCrd(body);
    if (removed.length) this.onResourcesRemoved(removed);
  }

  /**
   * Replace an object. `force` skips the resourceVersion precondition (patches
   * already read the latest version). A change-free update returns the stored
   * entry untouched: no new resourceVersion, no event, as the real server does.
   */
  update(info: ResourceInfo, input: KubeObject, opts: { namespace?: string; name?: string; statusOnly?: boolean } = {}): Entry {
    const { kind: _k, apiVersion: _a, ...body } = input;
    const meta = body.metadata ?? {};
    const name: string = opts.name ?? meta.name;
    if (opts.name && meta.name && meta.name !== opts.name) {
      throw errors.badRequest(`the name of the object (${meta.name}) does not match the name on the URL (${opts.name})`);
    }
    const namespace = info.namespaced ? (opts.namespace ?? meta.namespace ?? 'default') : undefined;
    const old = this.mustGet(info, namespace, name);
    if (meta.resourceVersion && meta.resourceVersion !== String(old.rv)) throw errors.conflict(info.plural, info.group, name);
    let next: any;
    if (opts.statusOnly) next = { ...old.body, status: body.status };
    else {
      next = {
        ...body,
        metadata: {
          ...meta,
          name,
          ...(namespace ? { namespace } : {}),
          uid: old.body.metadata.uid,
          creationTimestamp: old.body.metadata.creationTimestamp,
          ...(old.body.metadata.generation !== undefined ? { generation: old.body.metadata.generation } : {}),
          resourceVersion: String(old.rv),
          ...(old.body.metadata.deletionTimestamp
            ? { deletionTimestamp: old.body.metadata.deletionTimestamp, deletionGracePeriodSeconds: old.body.metadata.deletionGracePeriodSeconds ?? 0 }
            : {}),
        },
      };
      if (old.body.metadata.generation === undefined) delete next.metadata.generation;
      if (!next.metadata.deletionTimestamp) delete next.metadata.deletionTimestamp;
      if (next.metadata.deletionGracePeriodSeconds === undefined) delete next.metadata.deletionGracePeriodSeconds;
      delete next.metadata.selfLink;
    }
    if (deepEqual(next, old.body)) return old;
    if (hasGeneration(info) && specChanged(next, old.body)) next.metadata.generation = (old.body.metadata.generation ?? 1) + 1;
    if (info.gr === CRD_GR) this.registerCrd(next);
    // the last finalizer removed from an object being deleted completes the deletion
    if (next.metadata.deletionTimestamp && !(next.metadata.finalizers?.length)) {
      return this.remove(info, { ...old, body: next });
    }
    const rv = ++this.rv;
    next.metadata.resourceVersion = String(rv);
    const entry: Entry = { key: old.key, body: next, rv, createdRv: old.createdRv };
    this.commit(info, 'MODIFIED', entry, old);
    return entry;
  }

  delete(info: ResourceInfo, namespace: string | undefined, name: string, opts: { preconditionRv?: string; preconditionUid?: string } = {}): Entry {
    const old = this.mustGet(info, namespace, name);
    if (opts.preconditionRv && opts.preconditionRv !== String(old.rv)) throw errors.conflict(info.plural, info.group, name);
    if (opts.preconditionUid && opts.preconditionUid !== old.body.metadata.uid) throw errors.conflict(info.plural, info.group, name);
    if (old.body.metadata.finalizers?.length) {
      if (old.body.metadata.deletionTimestamp) return old;
      const rv = ++this.rv;
      const body = {
        ...old.body,
        metadata: { ...old.body.metadata, deletionTimestamp: now(), deletionGracePeriodSeconds: 0, resourceVersion: String(rv) },
      };
      const entry: Entry = { key: old.key, body, rv, createdRv: old.createdRv };
      this.commit(info, 'MODIFIED', entry, old);
      return entry;
    }
    return this.remove(info, old);
  }

  private remove(info: ResourceInfo, old: Entry): Entry {
    if (info.gr === NAMESPACES) this.deleteNamespaceContents(old.body.metadata.name);
    const gone = withRv(old, ++this.rv);
    this.commit(info, 'DELETED', gone, old);
    if (info.gr === CRD_GR) this.dropCrd(old.body.metadata.name);
    return gone;
  }

  /** Simplification: a namespace's contents go at once, not through a Terminating phase. */
  private deleteNamespaceContents(ns: string): void {
    for (const info of this.representatives()) {
      if (!info.namespaced) continue;
      const c = this.collections.get(info.gr);
      if (!c) continue;
      for (const e of [...c.objects.values()]) {
        if (e.body.metadata.namespace === ns) this.commit(info, 'DELETED', withRv(e, ++this.rv), e);
      }
    }
  }

  private dropCrd(crdName: string): void {
    const { removed } = this.registry.removeCrd(crdName);
    const gr = removed[0]?.gr;
    const c = gr ? this.collections.get(gr) : undefined;
    if (c) {
      for (const e of [...c.objects.values()]) this.commit(removed[0], 'DELETED', withRv(e, ++this.rv), e);
      for (const w of [...c.watchers]) w.terminate();
      this.collections.delete(gr);
    }
    if (removed.length) this.onResourcesRemoved(removed);
  }

  /** One served ResourceInfo per storage collection. */
  private representatives(): ResourceInfo[] {
    const seen = new Map<string, ResourceInfo>();
    for (const r of this.registry.all()) if (!seen.has(r.gr)) seen.set(r.gr, r);
    return [...seen.values()];
  }
}

function validateName(info: ResourceInfo, name: string): void {
  const bad =
    name === '.' || name === '..' || /[/%]/.test(name)
      ? 'may not contain "/" or "%" and may not be "." or ".."'
      : info.gr === NAMESPACES && !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(name)
        ? "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"
        : undefined;
  if (bad) throw errors.invalid(info.kind, info.group, name, 'metadata.name', `Invalid value: "${name}": ${bad}`);
}

function encodeContinue(t: ContinueToken): string {
  return Buffer.from(JSON.stringify(t)).toString('base64url');
}

function decodeContinue(s: string): ContinueToken {
  try {
    const t = JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));
    if (typeof t.rv === 'number' && typeof t.start === 'string') return t;
  } catch {
    // fall through
  }
  throw errors.badRequest(`invalid continue token: ${s}`);
}

/** How one watch sees a store event, given its namespace and selector (cacher semantics). */
export function viewEvent(ev: StoreEvent, namespace: string | undefined, matcher: Matcher | undefined): { type: EventType; entry: Entry } | undefined {
  const inNs = (e: Entry | undefined) => !!e && (!namespace || e.body.metadata.namespace === namespace);
  const passes = (e: Entry | undefined) => inNs(e) && (!matcher || matcher(e!.body));
  const cur = ev.type !== 'DELETED' && passes(ev.entry);
  const old = ev.type === 'DELETED' ? passes(ev.entry) : passes(ev.prev);
  if (ev.type === 'DELETED') return old ? { type: 'DELETED', entry: ev.entry } : undefined;
  if (cur && old) return { type: 'MODIFIED', entry: ev.entry };
  if (cur) return { type: 'ADDED', entry: ev.entry };
  if (old) return { type: 'DELETED', entry: (ev.prevAtRv ??= withRv(ev.prev!, ev.rv)) };
  return undefined;
}
