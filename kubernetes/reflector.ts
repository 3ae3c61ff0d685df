/**
 * One reflector keeps one resource (in one namespace, or all) in step with the API server, as
 * client-go's does: a streaming list (a WATCH with sendInitialEvents, where the server serves it)
 * or a paginated LIST, then a WATCH from the list's resourceVersion with bookmarks,
 * resumed from the last resourceVersion seen; a relist diffed against the store on 410 Gone;
 * backoff with jitter on any other failure, forever, never sooner than the server's Retry-After.
 * A list page that fails on the way (throttled, server error) is asked for again with the same
 * continue token: against a busy server, starting a 100k-object list over at each failure might
 * never finish it.
 */
import { setMaxListeners } from 'node:events';
import { ObjectView, resourceId, textOf, type EventType, type KubeObject, type ObjectMeta, type ResourceRef } from '../core/index.ts';
import { Backoff, sleep } from './backoff.ts';
import { KUBE_LIMITS, KubeRequestError, parseBody, type FailureReason, type KubeClient } from './client.ts';
import { cutWatchObject, listItemBytes, listItemSpans, listPageWithoutItems, type TypeMeta } from './json-text.ts';
import { internObject, MetadataOnlyObject, ObjectStore, storedMeta, StringPool, type Resident, type StoredObject } from './store.ts';

export interface ReflectorScope {
  /** Watch only this namespace (namespaced path). */
  readonly namespace?: string;
  readonly labelSelector?: string;
  readonly fieldSelector?: string;
  /** Ask for PartialObjectMetadata: the store keeps metadata only. */
  readonly metadataOnly?: boolean;
  /**
   * Emit full objects as views (`ObjectView`): their metadata parsed, the rest left in their JSON
   * bytes, which is what sinks publish. For resources no plugin reads whole.
   */
  readonly views?: boolean;
  /**
   * What the store keeps per object: `fingerprints` (uid and resourceVersion; `current()` lists
   * afresh), or the objects (`bytes` for full ones, parsed for metadata-only ones: the default).
   */
  readonly resident?: 'fingerprints' | 'objects';
}

export interface ReflectorTiming {
  /** Items per LIST page. */
  readonly pageSize: number;
  /** Each watch asks the server to end it after a random time in [min, 2*min) seconds. */
  readonly minWatchTimeoutSeconds: number;
  /** A watch that delivers nothing (no event, no bookmark) for this long is restarted; 0: its timeout + 30 s. */
  readonly watchSilenceTimeoutMs: number;
  /** Longest a watch is held back while the sinks are behind; 0: never held. */
  readonly watchHoldMaxMs: number;
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
  /**
   * List through a watch with sendInitialEvents (the WatchList feature), which the server streams
   * from its cache, object by object, instead of in pages; where the server refuses it, page.
   */
  readonly streamingList?: boolean;
}

/** What a reflector tells its owner; none of these may throw. */
export interface ReflectorListener {
  emit(type: EventType, object: KubeObject, observedAt: number): void;
  /** Each time a LIST completed (the first one ends the initial sync). */
  listed(initial: boolean): void;
  /** A failed request; the reflector retries it. `retries`: how many failed in a row before this one. */
  failed(error: KubeRequestError, retries: number): void;
  watchRestarted(): void;
  relisted(): void;
  malformedLine(line: string, error: unknown): void;
  /** A watch event larger than the client's maxLineBytes was skipped (counted, never buffered whole). */
  oversizedLine?(bytes: number): void;
  /** The server refused a streaming list: this reflector lists in pages from now on. */
  streamingListRefused?(error: KubeRequestError): void;
  /** Awaited between list pages: resolves once the sinks can take more (see SourceContext.sinksCaughtUp). */
  sinksCaughtUp?(): Promise<void>;
  /** Whether sinksCaughtUp would wait: the watch stops reading meanwhile. */
  sinksBehind?(): boolean;
}

/** A streaming list in progress: the stored objects its initial events confirmed. */
interface StreamingList {
  readonly seen: Set<StoredObject>;
  done: boolean;
}

/** The annotation on the BOOKMARK that ends a streaming list's initial events. */
const INITIAL_EVENTS_END = 'k8s.io/initial-events-end';

interface ListPage {
  metadata?: { resourceVersion?: string; continue?: string };
  items?: unknown[];
}

const PARTIAL_LIST = 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json';
const PARTIAL_WATCH = 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json';

/** The path of a resource's collection, in a namespace or across all. */
export function collectionPath(resource: Pick<ResourceRef, 'group' | 'version' | 'resource'>, namespace?: string): string {
  const root = resource.group ? `/apis/${resource.group}/${resource.version}` : `/api/${resource.version}`;
  return namespace ? `${root}/namespaces/${encodeURIComponent(namespace)}/${resource.resource}` : `${root}/${resource.resource}`;
}

/** `apiVersion` of a resource: `v1` for the core group, `<group>/<version>` otherwise. */
export const apiVersionOf = (resource: Pick<ResourceRef, 'group' | 'version'>) => (resource.group ? `${resource.group}/${resource.version}` : resource.version);

export class Reflector {
  /** The current state, keyed by namespace/name; objects without managedFields, with kind and apiVersion. */
  readonly store: ObjectStore;
  /** The last resourceVersion seen (list, event or bookmark); watches resume from it. */
  resourceVersion = '';
  private listedOnce = false;
  private readonly abort = new AbortController();
  private readonly backoff: Backoff;
  private readonly apiVersion: string;
  private running?: Promise<void>;
  private readonly strings: StringPool;
  /** What `normalize` adds to a list item without kind and apiVersion, as JSON after its last member. */
  private kindTail?: Buffer;
  /** With `scope.views`: the kind and apiVersion (as JSON) an object needs to be emitted as a view. */
  private readonly viewType?: TypeMeta;

  constructor(
    private readonly client: KubeClient,
    readonly resource: ResourceRef,
    readonly scope: ReflectorScope,
    private readonly timing: ReflectorTiming,
    private readonly listener: ReflectorListener,
    /** Shared by the reflectors of one source, so values repeated across resources are kept once. */
    strings?: StringPool,
  ) {
    this.strings = strings ?? new StringPool();
    const resident: Resident = scope.resident === 'fingerprints' ? 'fingerprints' : scope.metadataOnly ? 'objects' : 'bytes';
    this.store = new ObjectStore(resident, (metadata) => ({ apiVersion: this.apiVersion, kind: this.resource.kind, metadata }));
    this.backoff = new Backoff(timing.backoffInitialMs, timing.backoffMaxMs);
    setMaxListeners(0, this.abort.signal);
    this.apiVersion = apiVersionOf(resource);
    if (scope.views && !scope.metadataOnly) this.viewType = { kind: Buffer.from(JSON.stringify(resource.kind)), apiVersion: Buffer.from(JSON.stringify(this.apiVersion)) };
  }

  /** An object as a view: `bytes` (its JSON, without managedFields) with only `[start, end)`, its metadata, parsed. */
  private view(bytes: Uint8Array, start: number, end: number): ObjectView {
    return new ObjectView(this.apiVersion, this.resource.kind, JSON.parse(textOf(bytes.subarray(start, end))) as ObjectMeta, bytes);
  }

  get synced(): boolean {
    return this.listedOnce;
  }

  /** Starts the list/watch loop; it runs until `stop()` or `signal` aborts. */
  start(signal: AbortSignal): void {
    if (this.running) return;
    if (signal.aborted) this.abort.abort();
    else signal.addEventListener('abort', () => this.abort.abort(), { once: true });
    this.running = this.loop();
  }

  /** Stops the loop and aborts the request in flight; resolves once the loop has ended. */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.running;
  }

  /** A watch line other than ERROR arrived since the last 410: relisting at once is not a loop. */
  private progressed = true;
  /** A watch hold ran out while the sinks were behind: read on until they catch up. */
  private readingOn = false;
  /** The server refused a streaming list once: page from then on (a relist would only be refused again). */
  private streamingRefused = false;

  private async loop(): Promise<void> {
    const signal = this.abort.signal;
    let needList = true;
    // Set while relisting because a watch was refused: the backoff keeps growing across such relists.
    let refused = false;
    while (!signal.aborted) {
      let watching = false;
      let streaming: StreamingList | undefined;
      try {
        if (needList && this.timing.streamingList && !this.streamingRefused) streaming = { seen: new Set(), done: false };
        else if (needList) {
          await this.list(signal);
          needList = false;
          if (!refused) this.backoff.reset();
        }
        watching = true;
        const delivered = await this.watch(signal, streaming);
        // A streaming list whose watch ended before its last initial event starts over.
        if (streaming?.done) needList = false;
        refused = false;
        if (signal.aborted) break;
        this.listener.watchRestarted();
        // A server that closes watches at once, again and again, must not make us spin.
        if (!delivered) await sleep(this.backoff.next(), signal);
      } catch (error) {
        if (signal.aborted) break;
        const failure = error instanceof KubeRequestError ? error : new KubeRequestError('http', 0, String((error as Error)?.message ?? error), { cause: error });
        if (streaming?.done) needList = false;
        // A server without the WatchList feature answers 422 (older ones 400): list in pages, now.
        if (streaming !== undefined && !streaming.done && failure.reason === 'http' && (failure.status === 400 || failure.status === 422)) {
          this.streamingRefused = true;
          this.listener.streamingListRefused?.(failure);
          continue;
        }
        this.listener.failed(failure, this.backoff.failures);
        // 410: our resourceVersion is too old. Any other refusal of a watch that retrying cannot
        // cure (400 "invalid resource version", 422): resuming from that resourceVersion would
        // fail forever. Either way, relist and diff, so deletions in the gap are not lost.
        const uncurable = watching && failure.reason === 'http' && (failure.status === 400 || failure.status === 422);
        if (failure.reason === 'gone' || uncurable) {
          // A server answering every watch with an error must not make us relist in a tight loop.
          if (uncurable) refused = true;
          this.listener.relisted();
          needList = true;
          if (!this.progressed) await sleep(this.backoff.next(), signal);
          this.progressed = false;
          continue;
        }
        if (watching) this.listener.watchRestarted();
        if (failure.reason === 'stalled') continue;
        await sleep(this.backoff.next(failure.retryAfterMs), signal);
      }
    }
  }

  private query(params: Record<string, string | number | undefined>): string {
    const search = new URLSearchParams();
    for (const [key, value] of Object.entries(params)) if (value !== undefined && value !== '') search.set(key, String(value));
    if (this.scope.labelSelector) search.set('labelSelector', this.scope.labelSelector);
    if (this.scope.fieldSelector) search.set('fieldSelector', this.scope.fieldSelector);
    return `${collectionPath(this.resource, this.scope.namespace)}?${search}`;
  }

  /**
   * Lists page by page, emitting each page's changes as it arrives; objects absent from the
   * complete list are then deleted from the store (DELETED). On a first list everything is ADDED.
   */
  private async list(signal: AbortSignal): Promise<void> {
    // The stored objects the list confirmed; what is left over was deleted meanwhile.
    const seen = new Set<StoredObject>();
    let continueToken: string | undefined;
    let resourceVersion = '';
    // A page asked for again backs off on its own: a page that comes makes progress (its next
    // failure starts small), while the loop's backoff keeps growing across lists that fail.
    const pageBackoff = new Backoff(this.timing.backoffInitialMs, this.timing.backoffMaxMs);
    // Not a do-while: there `continue` would test the condition, and with the token reset that
    // ends the list and diffs a partial one (everything unseen would look deleted).
    for (;;) {
      let page: ListPage;
      let items: unknown[] | undefined;
      let json: Uint8Array[] | undefined;
      try {
        ({ page, items, json } = await this.listPage(continueToken, signal));
      } catch (error) {
        if (!continueToken || !(error instanceof KubeRequestError) || signal.aborted) throw error;
        if (error.reason === 'gone') {
          // The continue token expired mid-list: start the list over (what was seen stays valid).
          continueToken = undefined;
          seen.clear();
          continue;
        }
        if (!error.transient) throw error;
        this.listener.failed(error, pageBackoff.failures);
        await sleep(pageBackoff.next(error.retryAfterMs), signal);
        if (signal.aborted) return;
        continue;
      }
      pageBackoff.reset();
      const observedAt = Date.now();
      items ??= page.items ?? [];
      for (let index = 0; index < items.length; index++) {
        const item = items[index] as any;
        // Before normalize changes it: whether the item's cut bytes are the stored object's JSON.
        const itemJson = json?.[index];
        const asCut = itemJson !== undefined && item?.kind === this.resource.kind && item?.apiVersion === this.apiVersion;
        const object = this.normalize(item);
        if (object === undefined) {
          this.listener.malformedLine(JSON.stringify(item)?.slice(0, 200) ?? '', new Error('list item without metadata.name'));
          continue;
        }
        seen.add(this.upsert(object, observedAt, asCut ? () => itemJson : undefined));
      }
      continueToken = page.metadata?.continue || undefined;
      resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
      if (continueToken) {
        await this.listener.sinksCaughtUp?.();
        // Stopped while waiting: a partial list must not be diffed (everything unseen would look deleted).
        if (signal.aborted) return;
      }
      if (!continueToken) break;
    }
    this.resourceVersion = resourceVersion;
    this.listCompleted(seen);
  }

  /**
   * One page of the list, its items parsed as `parseListPage` does (or the page whole); its
   * objects are not yet normalised.
   */
  private async listPage(continueToken: string | undefined, signal: AbortSignal): Promise<{ page: ListPage; items?: unknown[]; json?: Uint8Array[] }> {
    const accept = this.scope.metadataOnly ? PARTIAL_LIST : 'application/json';
    const query = this.query({ limit: this.timing.pageSize, continue: continueToken });
    let result: { page: ListPage; items?: unknown[]; json?: Uint8Array[] };
    if (this.scope.metadataOnly) result = { page: await this.client.get<ListPage>(query, { accept, signal }) };
    else {
      // Full objects are kept as JSON: each item's is cut from the page, not serialised again.
      const bytes = await this.client.getBytes(query, { accept, signal });
      result = this.parseListPage(bytes) ?? { page: parseBody<ListPage>(bytes, `GET ${query}`) };
    }
    const { page, items } = result;
    // Taken as an empty page, items that are not a list would make everything look deleted.
    if (page.items != null && !Array.isArray(page.items)) throw new KubeRequestError('malformed', 200, `GET ${query}: the list's items are not an array`);
    const count = items?.length ?? page.items?.length ?? 0;
    const { maxListItems } = this.client.limits ?? KUBE_LIMITS;
    if (count > maxListItems) throw new KubeRequestError('malformed', 200, `GET ${query}: the page holds ${count} items, more than maxListItems (${maxListItems})`);
    return result;
  }

  /**
   * The resource's current objects, as the watch would emit them: the store's own where it keeps
   * them, else a fresh list, page by page (a consistent read of the latest state; nothing of it is
   * kept). A page that fails fails the whole read: the caller (a resync) is asked for again.
   */
  async *current(signal: AbortSignal): AsyncGenerator<KubeObject> {
    if (this.store.keepsObjects) {
      yield* this.store.values();
      return;
    }
    let continueToken: string | undefined;
    do {
      const { page, items = page.items ?? [] } = await this.listPage(continueToken, AbortSignal.any([signal, this.abort.signal]));
      for (const item of items) {
        const object = this.normalize(item);
        if (object !== undefined) yield object;
      }
      continueToken = page.metadata?.continue || undefined;
    } while (continueToken);
  }

  /** A complete list arrived: what it did not confirm was deleted meanwhile (DELETED). On a first list everything is ADDED. */
  private listCompleted(seen: ReadonlySet<StoredObject>): void {
    const observedAt = Date.now();
    for (const object of this.store.removeExcept(seen)) this.listener.emit('DELETED', object, observedAt);
    const initial = !this.listedOnce;
    this.listedOnce = true;
    this.listener.listed(initial);
  }

  /**
   * A page's items parsed one by one from their own JSON, cut from the page's bytes less
   * managedFields, with kind and apiVersion added at the end where an item has neither (as
   * `normalize` would add them; built-in resources' list items have neither): less to parse than
   * the whole page, and the store and the sinks get the very bytes parsed. Undefined when the page
   * is not shaped for that; it is then parsed whole.
   */
  private parseListPage(bytes: Buffer): { page: ListPage; items: unknown[]; json: Uint8Array[] } | undefined {
    const spans = listItemSpans(bytes, this.viewType);
    if (spans === undefined) return undefined;
    this.kindTail ??= Buffer.from(`,"kind":${JSON.stringify(this.resource.kind)},"apiVersion":${JSON.stringify(this.apiVersion)}`);
    const items: unknown[] = new Array(spans.count);
    const json: Uint8Array[] = new Array(spans.count);
    try {
      const page = JSON.parse(textOf(listPageWithoutItems(bytes, spans))) as ListPage;
      for (let index = 0; index < spans.count; index++) {
        const item = listItemBytes(bytes, spans, index, this.kindTail);
        if (item === undefined) return undefined;
        json[index] = item;
        const metadataStart = spans.metadata[2 * index];
        items[index] = metadataStart >= 0 ? this.view(item, metadataStart, spans.metadata[2 * index + 1]) : JSON.parse(textOf(item));
      }
      return { page, items, json };
    } catch {
      return undefined;
    }
  }

  /**
   * Watches from the last resourceVersion until the server ends the watch. Resolves true when
   * something arrived. With `streaming`, it is a streaming list: the watch starts with the
   * current state (an ADDED per object, emitted as upserts are), and the bookmark that ends those
   * initial events completes the list, as the last page does; the same watch then goes on.
   */
  private async watch(signal: AbortSignal, streaming?: StreamingList): Promise<boolean> {
    const timeoutSeconds = Math.floor(this.timing.minWatchTimeoutSeconds * (1 + Math.random())) || 1;
    const silenceMs = this.timing.watchSilenceTimeoutMs > 0 ? this.timing.watchSilenceTimeoutMs : (timeoutSeconds + 30) * 1000;
    const stall = new AbortController();
    let lastLineAt = Date.now();
    let delivered = false;
    // Silence while we hold the stream back (sinks behind) is ours, not the server's.
    let holding = false;
    const watchdog = setInterval(() => {
      if (!holding && Date.now() - lastLineAt > silenceMs) stall.abort();
    }, Math.max(10, Math.min(1000, silenceMs / 4)));
    // A streaming list asks for the current state: no resourceVersion, NotOlderThan it (a consistent read).
    const path = streaming
      ? this.query({ watch: 1, sendInitialEvents: 'true', resourceVersionMatch: 'NotOlderThan', allowWatchBookmarks: 'true', timeoutSeconds })
      : this.query({ watch: 1, resourceVersion: this.resourceVersion, allowWatchBookmarks: 'true', timeoutSeconds });
    try {
      await this.client.watch(path, {
        line: (bytes) => {
          lastLineAt = Date.now();
          delivered = true;
          this.onLine(bytes, lastLineAt, streaming);
          // After onLine: an ERROR event (which throws) is no progress.
          this.backoff.reset();
          this.progressed = true;
        },
        oversized: (bytes) => this.listener.oversizedLine?.(bytes),
        pause: () => {
          const hold = this.holdWatch();
          if (hold === undefined) return undefined;
          holding = true;
          return hold.finally(() => {
            holding = false;
            lastLineAt = Date.now();
          });
        },
      }, { accept: this.scope.metadataOnly ? PARTIAL_WATCH : 'application/json', signal: AbortSignal.any([signal, stall.signal]) });
    } catch (error) {
      if (stall.signal.aborted && !signal.aborted) {
        throw new KubeRequestError('stalled', 0, `watch of ${this.describe()} was silent for ${silenceMs} ms (no event, no bookmark); restarted`);
      }
      throw error;
    } finally {
      clearInterval(watchdog);
    }
    return delivered;
  }

  /**
   * While every sink is behind: a promise that settles once one catches up or the hold runs out
   * (`watchHoldMaxMs`). A hold rides on TCP buffers; the store lags the cluster meanwhile, and a
   * real API server closes a watcher whose buffer stays full (the watch is then resumed from its
   * resourceVersion, or relisted on 410). So holds are short, and after one that ran out the watch
   * reads on, the sinks' queues coalescing by object, until they have caught up.
   */
  private holdWatch(): Promise<void> | undefined {
    if (this.timing.watchHoldMaxMs === 0 || !this.listener.sinksBehind?.()) {
      this.readingOn = false;
      return undefined;
    }
    const caughtUp = this.readingOn ? undefined : this.listener.sinksCaughtUp?.();
    if (caughtUp === undefined) return undefined;
    let timer: NodeJS.Timeout | undefined;
    const ranOut = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), this.timing.watchHoldMaxMs).unref()));
    return Promise.race([caughtUp.then(() => false), ranOut]).then((expired) => {
      clearTimeout(timer);
      this.readingOn = expired;
    });
  }

  private onLine(bytes: Buffer, observedAt: number, streaming?: StreamingList): void {
    // A full object is cut from the line, less managedFields, and only that is parsed: less to
    // parse, nothing to drop afterwards, and the store and the sinks get the very bytes parsed.
    // Where no plugin reads the object whole, only its metadata is parsed (see ObjectView).
    const cut = this.scope.metadataOnly ? undefined : cutWatchObject(bytes, this.viewType);
    let type: unknown;
    let raw: any;
    let json: Uint8Array | undefined;
    if (cut !== undefined) {
      try {
        raw = cut.metadataStart >= 0 ? this.view(cut.object, cut.metadataStart, cut.metadataEnd) : JSON.parse(textOf(cut.object));
        type = cut.type;
        json = cut.object;
      } catch {
        // Not JSON after all: the whole line is read below, and reported as it came.
      }
    }
    if (json === undefined) {
      const text = textOf(bytes);
      let event: { type?: unknown; object?: any };
      try {
        event = JSON.parse(text);
      } catch (error) {
        this.listener.malformedLine(text, error);
        return;
      }
      type = event?.type;
      raw = event?.object;
    }
    if (typeof raw !== 'object' || raw === null) {
      this.listener.malformedLine(textOf(bytes), new Error('watch event without an object'));
      return;
    }
    switch (type) {
      case 'BOOKMARK': {
        const rv = raw.metadata?.resourceVersion;
        if (typeof rv === 'string' && rv) this.resourceVersion = rv;
        if (streaming !== undefined && !streaming.done && raw.metadata?.annotations?.[INITIAL_EVENTS_END] === 'true') {
          streaming.done = true;
          this.listCompleted(streaming.seen);
        }
        return;
      }
      case 'ERROR': {
        const code = typeof raw.code === 'number' ? raw.code : 0;
        const message = `watch of ${this.describe()}: ${raw.message ?? 'ERROR event'}`;
        if (code === 410) throw new KubeRequestError('gone', 410, message);
        throw new KubeRequestError(code === 403 ? 'forbidden' : 'http', code, message);
      }
      case 'ADDED':
      case 'MODIFIED':
      case 'DELETED': {
        // Before normalize changes it: whether the cut bytes are the stored object's JSON.
        const asSent = json !== undefined && raw.kind === this.resource.kind && raw.apiVersion === this.apiVersion;
        const object = this.normalize(raw);
        if (object === undefined) {
          this.listener.malformedLine(textOf(bytes), new Error('watch event object without metadata.name'));
          return;
        }
        const rv = object.metadata.resourceVersion;
        if (rv) this.resourceVersion = rv;
        if (type === 'DELETED') {
          this.store.delete(object);
          this.listener.emit('DELETED', object, observedAt);
        } else {
          const stored = this.upsert(object, observedAt, asSent ? () => json : undefined);
          if (streaming !== undefined && !streaming.done) streaming.seen.add(stored);
        }
        return;
      }
      default:
        this.listener.malformedLine(textOf(bytes), new Error(`unknown watch event type ${String(type)}`));
    }
  }

  /**
   * Stores and emits an object unless the stored one has the same resourceVersion (nothing
   * changed); returns the stored one. `json` gives the object's JSON bytes when the source has them.
   */
  private upsert(object: KubeObject, observedAt: number, json?: () => Uint8Array | undefined): StoredObject {
    const previous = this.store.get(object);
    if (previous !== undefined && storedMeta(previous).resourceVersion === object.metadata.resourceVersion) return previous;
    // Same name, another uid: deleted and re-created while we were not watching (a relist). The
    // old object's DELETED must still reach consumers, who key objects by uid. Read before the
    // store rewrites it in place.
    const replaced = previous !== undefined && storedMeta(previous).uid !== object.metadata.uid ? this.store.objectFor(previous, object) : undefined;
    const stored = this.store.set(object, json?.());
    if (replaced !== undefined) {
      this.listener.emit('DELETED', replaced, observedAt);
      this.listener.emit('ADDED', object, observedAt);
      return stored;
    }
    this.listener.emit(previous === undefined ? 'ADDED' : 'MODIFIED', object, observedAt);
    return stored;
  }

  /**
   * Makes a received object what we store and emit: managedFields dropped (rebuilt rather than
   * deleted, which would turn the object slow and large), kind and apiVersion set to the resource's.
   */
  private normalize(raw: any): KubeObject | undefined {
    const meta = raw?.metadata;
    if (typeof meta !== 'object' || meta === null || typeof meta.name !== 'string') return undefined;
    if (this.scope.metadataOnly) {
      const { managedFields: _dropped, ...metadata } = meta;
      const object = new MetadataOnlyObject(this.apiVersion, this.resource.kind, metadata as KubeObject['metadata']);
      internObject(this.strings, object);
      return object;
    }
    if (meta.managedFields !== undefined) {
      const { managedFields: _dropped, ...metadata } = meta;
      raw.metadata = metadata;
    }
    if (raw.kind !== this.resource.kind) raw.kind = this.resource.kind;
    if (raw.apiVersion !== this.apiVersion) raw.apiVersion = this.apiVersion;
    // Not interned: the store keeps full objects as bytes, so this one is not kept.
    return raw as KubeObject;
  }

  describe(): string {
    return `${resourceId(this.resource)}${this.scope.namespace ? ` in namespace ${this.scope.namespace}` : ''}`;
  }
}

export type { FailureReason };
