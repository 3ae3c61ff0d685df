// Request routing for the kube-apiserver REST surface the project relies on.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parse as parseYaml } from 'yaml';
import { entryJson, fullJson } from './cluster.ts';
import type { Cluster, Entry } from './cluster.ts';
import { errors, KubeApiError } from './errors.ts';
import { negotiate, readBody, sendError, sendJson, streamList } from './http.ts';
import { applyPatch, PATCH_TYPES } from './patch.ts';
import type { PatchType } from './patch.ts';
import { openapiV3 } from './openapi.ts';
import { PROTOBUF_MEDIA_TYPE } from './protobuf.ts';
import type { ProtobufDecoder } from './protobuf.ts';
import type { Registry, ResourceInfo } from './registry.ts';
import { parseSelectors, unsupportedFieldLabel } from './selectors.ts';
import { WatchStream } from './watch.ts';

export const SIMULATED_USER = 'system:serviceaccount:meshsync:meshsync';
export const VERSION_INFO = {
  major: '1',
  minor: '32',
  gitVersion: 'v1.32.4',
  gitCommit: '59526cd4867447956156ae3a602fcbac10a2c335',
  gitTreeState: 'clean',
  buildDate: '2025-04-22T16:02:27Z',
  goVersion: 'go1.23.6',
  compiler: 'gc',
  platform: 'linux/amd64',
};

export interface RequestRecord {
  method: string;
  path: string;
  query: Record<string, string>;
  accept: string;
  contentType: string;
  /** list | watch | get | create | update | patch | delete | deletecollection | discovery */
  verb: string;
  /** resource id (`pods.v1.`) for resource requests */
  resource?: string;
  /** When the server received it (ms since the epoch). */
  at: number;
}

/** Requests answered with an error instead (see KubeSimulator.failRequests). */
export interface InjectedFailure {
  readonly resourceId?: string;
  readonly verbs?: readonly string[];
  readonly when?: (request: RequestRecord) => boolean;
  readonly status: number;
  readonly retryAfterSeconds?: number;
  remaining: number;
}

const REQUEST_LOG_CAP = 100_000;

interface Target {
  info: ResourceInfo;
  namespace?: string;
  name?: string;
  subresource?: string;
  watchPath: boolean;
}

export class ApiServer {
  readonly watches = new Set<WatchStream>();
  readonly log: RequestRecord[] = [];
  stalled = false;
  /** resource id → forbidden verbs */
  readonly forbidden = new Map<string, Set<string>>();
  readonly failures: InjectedFailure[] = [];
  /** malformed-line injections waiting for a watch to open (resource id or '*') */
  readonly pendingMalformed: string[] = [];

  constructor(
    private readonly cluster: Cluster,
    private readonly registry: Registry,
    private readonly protobuf: ProtobufDecoder,
    private readonly bookmarkIntervalMs: number,
    private readonly watchList: boolean,
  ) {}

  handle = (req: IncomingMessage, res: ServerResponse): void => {
    this.route(req, res).catch((e) => sendError(res, e));
  };

  private record(req: IncomingMessage, url: URL, verb: string, resource?: string): void {
    if (this.log.length >= REQUEST_LOG_CAP) this.log.splice(0, REQUEST_LOG_CAP / 10);
    this.log.push({
      method: req.method ?? 'GET',
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      accept: req.headers.accept ?? '',
      contentType: req.headers['content-type'] ?? '',
      verb,
      ...(resource ? { resource } : {}),
      at: Date.now(),
    });
  }

  private injectedFailure(request: RequestRecord): KubeApiError | undefined {
    const failure = this.failures.find((f) => f.remaining > 0 && (f.resourceId === undefined || f.resourceId === request.resource)
      && (f.verbs === undefined || f.verbs.includes(request.verb)) && (f.when === undefined || f.when(request)));
    if (failure === undefined) return undefined;
    failure.remaining--;
    if (failure.status === 429) return errors.tooManyRequests(failure.retryAfterSeconds);
    if (failure.status === 503) return errors.serviceUnavailable(failure.retryAfterSeconds);
    if (failure.status === 500) return errors.internal('injected failure', failure.retryAfterSeconds);
    return new KubeApiError(failure.status, 'InternalError', `injected failure (HTTP ${failure.status})`, failure.retryAfterSeconds === undefined ? undefined : { retryAfterSeconds: failure.retryAfterSeconds });
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    const segs = path.split('/').filter(Boolean);

    if (segs[0] === 'api' && segs.length <= 2) return this.discovery(req, res, url, segs.length === 1 ? 'api' : segs[1] === 'v1' ? 'core' : 'none');
    if (segs[0] === 'apis' && segs.length <= 3) return this.discovery(req, res, url, segs.length === 1 ? 'apis' : 'group', segs[1], segs[2]);
    if (segs[0] === 'api' && segs[1] === 'v1') return this.resource(req, res, url, '', 'v1', segs.slice(2));
    if (segs[0] === 'apis') return this.resource(req, res, url, segs[1], segs[2], segs.slice(3));

    this.record(req, url, 'nonresource');
    if (path === '/version') return sendJson(res, 200, VERSION_INFO);
    if (path === '/healthz' || path === '/livez' || path === '/readyz') {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      return void res.end('ok');
    }
    if (segs[0] === 'openapi' && segs[1] === 'v3') {
      const doc = openapiV3(this.registry, segs.slice(2).join('/'));
      if (doc) return sendJson(res, 200, doc);
    }
    // No /openapi/v2: kubectl only needs v3 (see openapi.ts).
    throw errors.pathNotFound();
  }

  // ---- discovery ----------------------------------------------------------

  private discovery(req: IncomingMessage, res: ServerResponse, url: URL, what: 'api' | 'core' | 'none' | 'apis' | 'group', group?: string, version?: string): void {
    this.record(req, url, 'discovery');
    if (req.method !== 'GET') throw errors.methodNotAllowed();
    const top = what === 'api' || what === 'apis';
    const n = negotiate(req.headers.accept, { aggregated: top });
    if (n.kind === 'aggregated') {
      const doc = this.registry.aggregatedDoc(what === 'api', `apidiscovery.k8s.io/${n.version}`);
      return sendJson(res, 200, doc, `application/json;g=apidiscovery.k8s.io;v=${n.version};as=APIGroupDiscoveryList`);
    }
    let doc: unknown;
    if (what === 'api') doc = this.registry.apiDoc();
    else if (what === 'core') doc = this.registry.coreDoc();
    else if (what === 'apis') doc = this.registry.groupsDoc();
    else if (what === 'group' && version) doc = this.registry.groupVersionDoc(group!, version);
    else if (what === 'group') doc = this.registry.groupDoc(group!);
    if (!doc) throw errors.pathNotFound();
    sendJson(res, 200, doc);
  }

  // ---- resources ----------------------------------------------------------

  private target(group: string, version: string, rest: string[]): Target {
    let watchPath = false;
    if (rest[0] === 'watch') {
      watchPath = true;
      rest = rest.slice(1);
    }
    const nsd = rest[0] === 'namespaces' && rest.length >= 3 ? this.registry.resolve(group, version, rest[2]) : undefined;
    if (nsd?.namespaced) {
      return { info: nsd, namespace: rest[1], name: rest[3], subresource: rest[4], watchPath };
    }
    const info = rest[0] ? this.registry.resolve(group, version, rest[0]) : undefined;
    if (!info || rest.length > 3) throw errors.pathNotFound();
    // a namespaced object can only be addressed under /namespaces/<ns>/
    if (info.namespaced && rest[1]) throw errors.pathNotFound();
    return { info, name: rest[1], subresource: rest[2], watchPath };
  }

  private verbOf(method: string, t: Target, url: URL): string {
    const watch = t.watchPath || url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1';
    switch (method) {
      case 'GET':
        return watch ? 'watch' : t.name ? 'get' : 'list';
      case 'POST':
        return 'create';
      case 'PUT':
        return 'update';
      case 'PATCH':
        return 'patch';
      case 'DELETE':
        return t.name ? 'delete' : 'deletecollection';
      default:
        throw errors.methodNotAllowed();
    }
  }

  private async resource(req: IncomingMessage, res: ServerResponse, url: URL, group: string, version: string, rest: string[]): Promise<void> {
    let t: Target;
    try {
      t = this.target(group, version, rest);
    } catch (e) {
      this.record(req, url, 'unknown');
      throw e;
    }
    const verb = this.verbOf(req.method ?? 'GET', t, url);
    this.record(req, url, verb, t.info.id);
    const injected = this.injectedFailure(this.log.at(-1)!);
    if (injected) throw injected;
    const { info } = t;
    if (this.forbidden.get(info.id)?.has(verb)) {
      throw errors.forbidden(SIMULATED_USER, verb, info.plural, info.group, t.namespace);
    }
    if (t.subresource === 'scale' && SCALABLE.has(info.gr) && t.name) return this.scale(req, res, t, verb);
    if (t.subresource && t.subresource !== 'status') throw errors.pathNotFound();
    if ((verb === 'create' && t.name) || ((verb === 'update' || verb === 'patch') && !t.name)) throw errors.methodNotAllowed();
    if (!info.verbs.includes(verb)) throw errors.methodNotAllowed();

    const q = url.searchParams;
    const unsupported = unsupportedFieldLabel(info, q.get('fieldSelector'));
    if (unsupported) throw errors.fieldLabelNotSupported(`${info.group ? `${info.group}/` : '/'}${info.version}, Resource=${info.plural}`, q.get('labelSelector') ?? '', q.get('fieldSelector') ?? '', unsupported);
    const matcher = parseSelectors(q.get('labelSelector'), t.name && verb === 'watch' ? joinSelectors(`metadata.name=${t.name}`, q.get('fieldSelector')) : q.get('fieldSelector'));
    switch (verb) {
      case 'get': {
        const n = negotiate(req.headers.accept, { partial: true });
        const e = this.cluster.mustGet(info, t.namespace, t.name!);
        return sendJson(res, 200, n.kind === 'partial' ? partialJson(e) : fullJson(info, e));
      }
      case 'list': {
        const n = negotiate(req.headers.accept, { partial: true });
        const rv = q.get('resourceVersion');
        if (rv && q.get('resourceVersionMatch') === 'Exact' && Number(rv) < this.cluster.oldestRetainedRv(info)) {
          throw errors.expired(`too old resource version: ${rv} (${this.cluster.oldestRetainedRv(info)})`);
        }
        const limit = Number(q.get('limit') ?? 0);
        const r = this.cluster.list(info, { namespace: t.namespace, matcher, limit, continueToken: q.get('continue') ?? undefined });
        const partial = n.kind === 'partial';
        const meta = JSON.stringify({ resourceVersion: String(r.rv), ...(r.continueToken ? { continue: r.continueToken } : {}) });
        const head = partial
          ? `{"kind":"PartialObjectMetadataList","apiVersion":"meta.k8s.io/v1","metadata":${meta},"items":[`
          : `{"kind":${JSON.stringify(info.listKind)},"apiVersion":${JSON.stringify(info.apiVersion)},"metadata":${meta},"items":[`;
        // Built-in list items carry no kind/apiVersion; custom resources (unstructured) do.
        const render = partial ? partialJson : info.crd ? (e: Entry) => fullJson(info, e) : entryJson;
        return streamList(res, head, r.items, render, ']}');
      }
      case 'watch':
        return this.watch(req, res, url, t, matcher);
      case 'create': {
        const obj = await this.readObject(req);
        if (obj.kind && obj.kind !== info.kind) throw errors.badRequest(`the kind in the data (${obj.kind}) does not match the expected kind (${info.kind})`);
        const e = this.cluster.create(info, obj, { namespace: t.namespace });
        return sendJson(res, 201, fullJson(info, e));
      }
      case 'update': {
        const obj = await this.readObject(req);
        const e = this.cluster.update(info, obj, { namespace: t.namespace, name: t.name, statusOnly: t.subresource === 'status' });
        return sendJson(res, 200, fullJson(info, e));
      }
      case 'patch':
        return this.patch(req, res, t);
      case 'delete': {
        const opts = await this.readDeleteOptions(req);
        const e = this.cluster.delete(info, t.namespace, t.name!, {
          preconditionRv: opts?.preconditions?.resourceVersion,
          preconditionUid: opts?.preconditions?.uid,
        });
        // Most kinds answer a Status once the object is gone; a few (and anything that stays, with
        // finalizers or a grace period) answer with the object.
        const gone = !this.cluster.get(info, t.namespace, t.name!);
        if (gone && !RETURNS_DELETED_OBJECT.has(info.gr)) {
          return sendJson(res, 200, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details: { name: t.name, ...(info.group ? { group: info.group } : {}), kind: info.plural, uid: e.body.metadata.uid } });
        }
        return sendJson(res, 200, fullJson(info, e));
      }
      case 'deletecollection': {
        await this.readDeleteOptions(req);
        for (const e of this.cluster.list(info, { namespace: t.namespace, matcher }).items) {
          this.cluster.delete(info, e.body.metadata.namespace, e.body.metadata.name);
        }
        return sendJson(res, 200, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success' });
      }
    }
    throw errors.methodNotAllowed();
  }

  private async readObject(req: IncomingMessage): Promise<any> {
    const body = await readBody(req);
    const type = (req.headers['content-type'] ?? 'application/json').split(';')[0].trim();
    try {
      if (type === PROTOBUF_MEDIA_TYPE) return this.protobuf.decode(body);
      if (type === 'application/yaml') return parseYaml(body.toString('utf8'));
      if (type === 'application/json' || type === '*/*') return JSON.parse(body.toString('utf8'));
    } catch (e) {
      if (e instanceof KubeApiError) throw e;
      throw errors.badRequest(`error decoding request body: ${(e as Error).message}`);
    }
    throw errors.unsupportedMediaType(type);
  }

  /** DeleteOptions are optional and may come as protobuf; only preconditions matter here. */
  private async readDeleteOptions(req: IncomingMessage): Promise<any> {
    const body = await readBody(req);
    if (!body.length) return undefined;
    try {
      return JSON.parse(body.toString('utf8'));
    } catch {
      return undefined;
    }
  }

  private async patch(req: IncomingMessage, res: ServerResponse, t: Target): Promise<void> {
    const { info } = t;
    const type = (req.headers['content-type'] ?? '').split(';')[0].trim() as PatchType;
    if (!PATCH_TYPES.includes(type)) throw errors.unsupportedMediaType(type);
    const body = (await readBody(req)).toString('utf8');
    const current = this.cluster.get(info, t.namespace, t.name!);
    if (!current) {
      if (type !== 'application/apply-patch+yaml') throw errors.notFound(info.plural, info.group, t.name!);
      const obj = applyPatch(type, undefined, body);
      const e = this.cluster.create(info, { ...obj, metadata: { ...obj.metadata, name: t.name } }, { namespace: t.namespace });
      return sendJson(res, 201, fullJson(info, e));
    }
    const patched = applyPatch(type, JSON.parse(fullJson(info, current)), body);
    // a resourceVersion in the patch is a precondition; otherwise patches apply to the latest
    const wanted = patched?.metadata?.resourceVersion;
    if (wanted && wanted !== String(current.rv)) throw errors.conflict(info.plural, info.group, t.name!);
    const e = this.cluster.update(
      info,
      { ...patched, metadata: { ...patched.metadata, resourceVersion: undefined } },
      { namespace: t.namespace, name: t.name, statusOnly: t.subresource === 'status' },
    );
    sendJson(res, 200, fullJson(info, e));
  }

  /** The `scale` subresource (what `kubectl scale` and HPAs use), as an autoscaling/v1 Scale. */
  private async scale(req: IncomingMessage, res: ServerResponse, t: Target, verb: string): Promise<void> {
    const { info } = t;
    const current = this.cluster.mustGet(info, t.namespace, t.name!);
    if (verb === 'get') return sendJson(res, 200, scaleOf(current));
    if (verb !== 'update' && verb !== 'patch') throw errors.methodNotAllowed();
    let wanted: any;
    if (verb === 'update') wanted = await this.readObject(req);
    else {
      const type = (req.headers['content-type'] ?? '').split(';')[0].trim() as PatchType;
      if (!PATCH_TYPES.includes(type)) throw errors.unsupportedMediaType(type);
      wanted = applyPatch(type, scaleOf(current), (await readBody(req)).toString('utf8'));
    }
    const rv = wanted?.metadata?.resourceVersion;
    if (rv && rv !== String(current.rv)) throw errors.conflict(info.plural, info.group, t.name!);
    const replicas = Number(wanted?.spec?.replicas ?? 0);
    const e = this.cluster.update(info, { ...current.body, spec: { ...current.body.spec, replicas }, metadata: { ...current.body.metadata, resourceVersion: undefined } }, { namespace: t.namespace, name: t.name });
    sendJson(res, 200, scaleOf(e));
  }

  private watch(req: IncomingMessage, res: ServerResponse, url: URL, t: Target, matcher: ReturnType<typeof parseSelectors>): void {
    const q = url.searchParams;
    const n = negotiate(req.headers.accept, { partial: true });
    const { info } = t;
    const rvParam = q.get('resourceVersion');
    const sendInitial = q.get('sendInitialEvents') === 'true';
    if (q.has('sendInitialEvents') && !this.watchList) throw errors.watchListForbidden();
    if (sendInitial && q.get('resourceVersionMatch') !== 'NotOlderThan') throw errors.watchListNeedsMatch();
    const fromNow = !rvParam || rvParam === '0' || sendInitial;
    const since = Number(rvParam);
    if (!fromNow && !Number.isFinite(since)) throw errors.badRequest(`invalid resource version: ${rvParam}`);
    const bookmarks = q.get('allowWatchBookmarks') === 'true' || q.get('allowWatchBookmarks') === '1';
    const w: WatchStream = new WatchStream(
      res,
      {
        info,
        namespace: t.namespace,
        matcher,
        metadataOnly: n.kind === 'partial',
        bookmarks,
        bookmarkIntervalMs: this.bookmarkIntervalMs,
        timeoutSeconds: q.has('timeoutSeconds') ? Number(q.get('timeoutSeconds')) : undefined,
      },
      {
        stalled: () => this.stalled,
        currentRv: () => this.cluster.rv,
        onClose: (x) => {
          this.watches.delete(x);
          unregister();
        },
      },
    );
    const unregister = this.cluster.addWatcher(info, w);
    this.watches.add(w);
    const pending = this.pendingMalformed.findIndex((id) => id === '*' || id === info.id);
    if (pending >= 0) {
      this.pendingMalformed.splice(pending, 1);
      w.injectMalformed();
    }
    // Registration and replay happen in the same tick, so no event falls between them.
    if (fromNow) {
      w.replayEntries(this.cluster.list(info, { namespace: t.namespace, matcher }).items);
      if (sendInitial && bookmarks) w.bookmark(true);
      return;
    }
    const events = this.cluster.eventsSince(info, since);
    if (events === 'expired') {
      w.error(errors.expired(`too old resource version: ${since} (${this.cluster.oldestRetainedRv(info) + 1})`).status);
      return;
    }
    w.replayEvents(events);
  }
}

/** Kinds whose DELETE answers with the deleted object rather than a Status, as measured against kube-apiserver (test/cluster/fidelity.test.ts). */
const RETURNS_DELETED_OBJECT = new Set(['pods', 'services', 'serviceaccounts', 'namespaces']);
const SCALABLE = new Set(['deployments.apps', 'replicasets.apps', 'statefulsets.apps', 'replicationcontrollers']);

function scaleOf(e: Entry): object {
  const m = e.body.metadata;
  const sel = e.body.spec?.selector ?? {};
  const matchLabels: Record<string, string> = sel.matchLabels ?? (sel.matchExpressions ? {} : sel);
  return {
    kind: 'Scale',
    apiVersion: 'autoscaling/v1',
    metadata: { name: m.name, namespace: m.namespace, uid: m.uid, resourceVersion: m.resourceVersion, creationTimestamp: m.creationTimestamp },
    spec: { replicas: e.body.spec?.replicas ?? 0 },
    status: { replicas: e.body.status?.replicas ?? 0, selector: Object.entries(matchLabels).map(([k, v]) => `${k}=${v}`).join(',') },
  };
}

function joinSelectors(a: string, b: string | null): string {
  return b ? `${a},${b}` : a;
}

function partialJson(e: Entry): string {
  return `{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":${JSON.stringify(e.body.metadata)}}`;
}
