// One HTTP watch stream. Lines are queued and written with backpressure, so a
// 100k-object initial replay or a slow client never builds one giant buffer and
// fault controls (stall, malformed line) act at a single choke point.
import type { ServerResponse } from 'node:http';
import { fullJson, viewEvent } from './cluster.ts';
import type { Entry, EventType, StoreEvent, WatchSink } from './cluster.ts';
import type { Status } from './errors.ts';
import type { ResourceInfo } from './registry.ts';
import type { Matcher } from './selectors.ts';

export interface WatchOptions {
  info: ResourceInfo;
  namespace?: string;
  matcher?: Matcher;
  metadataOnly: boolean;
  bookmarks: boolean;
  bookmarkIntervalMs: number;
  timeoutSeconds?: number;
}

export interface WatchControls {
  stalled(): boolean;
  currentRv(): number;
  onClose(w: WatchStream): void;
}

type Item = string | { type: EventType; entry: Entry };
const BATCH_BYTES = 256 * 1024;

export class WatchStream implements WatchSink {
  private queue: Item[] = [];
  private head = 0;
  private waitingDrain = false;
  private closed = false;
  private malformedNext = false;
  private timers: NodeJS.Timeout[] = [];

  constructor(
    private readonly res: ServerResponse,
    readonly opts: WatchOptions,
    private readonly controls: WatchControls,
  ) {
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private' });
    res.flushHeaders();
    res.on('close', () => this.cleanup());
    if (opts.bookmarks) {
      this.timers.push(setInterval(() => this.bookmark(), opts.bookmarkIntervalMs));
    }
    if (opts.timeoutSeconds && opts.timeoutSeconds > 0) {
      this.timers.push(setTimeout(() => this.end(), opts.timeoutSeconds * 1000));
    }
  }

  get resourceId(): string {
    return this.opts.info.id;
  }

  /** Replay: entries as synthetic ADDED (initial list) or stored events since an rv. */
  replayEntries(entries: Entry[]): void {
    for (const entry of entries) this.queue.push({ type: 'ADDED', entry });
    this.pump();
  }

  replayEvents(events: StoreEvent[]): void {
    for (const ev of events) this.onEvent(ev, false);
    this.pump();
  }

  onEvent(ev: StoreEvent, pump = true): void {
    const v = viewEvent(ev, this.opts.namespace, this.opts.matcher);
    if (!v) return;
    this.queue.push(v);
    if (pump) this.pump();
  }

  /** `k8s.io/initial-events-end` marks the end of the initial events (sendInitialEvents=true). */
  bookmark(initialEventsEnd = false): void {
    if (this.controls.stalled() || this.closed) return;
    const { info } = this.opts;
    const object = {
      kind: this.opts.metadataOnly ? 'PartialObjectMetadata' : info.kind,
      apiVersion: this.opts.metadataOnly ? 'meta.k8s.io/v1' : info.apiVersion,
      metadata: {
        resourceVersion: String(this.controls.currentRv()),
        ...(initialEventsEnd ? { annotations: { 'k8s.io/initial-events-end': 'true' } } : {}),
      },
    };
    this.queue.push(`{"type":"BOOKMARK","object":${JSON.stringify(object)}}\n`);
    this.pump();
  }

  /** The real server reports a too-old rv as an ERROR event on a 200 stream, then ends it. */
  error(status: Status): void {
    this.queue.push(`{"type":"ERROR","object":${JSON.stringify(status)}}\n`);
    this.pump();
    this.end();
  }

  injectMalformed(): void {
    this.malformedNext = true;
  }

  /** Graceful end, after whatever is queued and writable. */
  end(): void {
    if (this.closed) return;
    this.pump();
    this.cleanup();
    this.res.end();
  }

  terminate(): void {
    this.end();
  }

  /** Abrupt end: the connection is cut mid-stream, like a dying apiserver or LB. */
  drop(): void {
    this.cleanup();
    this.res.destroy();
  }

  pump(): void {
    if (this.closed || this.waitingDrain || this.controls.stalled()) return;
    while (this.head < this.queue.length) {
      let batch = '';
      if (this.malformedNext) {
        this.malformedNext = false;
        batch += '{"type":"MODIFIED","object":{"kind":"Pod","metadata":{"name":\n';
      }
      while (this.head < this.queue.length && batch.length < BATCH_BYTES) batch += this.render(this.queue[this.head++]);
      if (this.head === this.queue.length) {
        this.queue = [];
        this.head = 0;
      }
      if (!this.res.write(batch)) {
        this.waitingDrain = true;
        this.res.once('drain', () => {
          this.waitingDrain = false;
          this.pump();
        });
        return;
      }
    }
  }

  private render(item: Item): string {
    if (typeof item === 'string') return item;
    const object = this.opts.metadataOnly
      ? `{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":${JSON.stringify(item.entry.body.metadata)}}`
      : fullJson(this.opts.info, item.entry);
    return `{"type":"${item.type}","object":${object}}\n`;
  }

  private cleanup(): void {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.queue = [];
    this.controls.onClose(this);
  }
}
