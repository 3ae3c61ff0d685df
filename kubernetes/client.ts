/**
 * The HTTP side of the kubernetes source: `KubeConfig` from @kubernetes/client-node resolves the
 * server and the credentials; requests go out through node:http(s) with a keep-alive agent, and
 * watch responses are split into lines as they stream in.
 */
import { existsSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { homedir } from 'node:os';
import { join } from 'node:path';
// KubeConfig's own module, not the package root: the root loads the whole generated API client,
// which meshsync never calls. The image rewrites one import of this module so that it does not
// load it either (see scripts/slim-client-node.mjs for what that saves).
import { KubeConfig } from '@kubernetes/client-node/dist/config.js';
import { MeshSyncError, textOf, withoutJsonExcerpt } from '../core/index.ts';

const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

export interface KubeConfigChoice {
  /** Path of a kubeconfig file; otherwise KUBECONFIG, ~/.kube/config, then the in-cluster service account. */
  readonly kubeconfig?: string;
  readonly context?: string;
}

/**
 * Loads the Kubernetes configuration the way kubectl finds it. Unlike `loadFromDefault`, it never
 * falls back to http://localhost:8080: no configuration at all is a MESHSYNC_KUBE_CONFIG error.
 */
export function loadKubeConfig(choice: KubeConfigChoice = {}, env: NodeJS.ProcessEnv = process.env): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (choice.kubeconfig) kc.loadFromFile(choice.kubeconfig);
    else if (env.KUBECONFIG) kc.loadFromDefault();
    else if (existsSync(join(homedir(), '.kube', 'config'))) kc.loadFromFile(join(homedir(), '.kube', 'config'));
    else if (env.KUBERNETES_SERVICE_HOST && existsSync(SERVICE_ACCOUNT_TOKEN)) kc.loadFromCluster();
    else {
      throw new MeshSyncError('MESHSYNC_KUBE_CONFIG',
        'no Kubernetes configuration found: KUBECONFIG is unset, ~/.kube/config does not exist and no in-cluster service account is mounted');
    }
    if (choice.context) {
      if (!kc.getContextObject(choice.context)) {
        const known = kc.getContexts().map((c) => c.name).join(', ') || 'none';
        throw new MeshSyncError('MESHSYNC_KUBE_CONFIG', `kubeconfig has no context "${choice.context}" (contexts: ${known})`);
      }
      kc.setCurrentContext(choice.context);
    }
  } catch (error) {
    if (error instanceof MeshSyncError) throw error;
    const where = choice.kubeconfig ?? env.KUBECONFIG ?? '~/.kube/config';
    // The first line only: the YAML parser goes on to quote the file around the error, credentials and all.
    const reason = (error as Error).message.split('\n')[0];
    throw new MeshSyncError('MESHSYNC_KUBE_CONFIG', `cannot load the Kubernetes configuration from ${where}: ${reason}`);
  }
  const cluster = kc.getCurrentCluster();
  if (!cluster?.server) throw new MeshSyncError('MESHSYNC_KUBE_CONFIG', `the current context "${kc.getCurrentContext()}" names no cluster with a server address`);
  return kc;
}

/** Why a request failed, as the reflector acts on it. */
export type FailureReason = 'unreachable' | 'forbidden' | 'gone' | 'not-found' | 'http' | 'malformed' | 'stalled' | 'aborted';

/**
 * A failed request: the HTTP status (0 when the server was not reached), the server's Status
 * message, and how long the server asked us to wait before trying again (Retry-After: a 429 from
 * API Priority and Fairness, a 5xx of an overloaded server).
 */
export class KubeRequestError extends Error {
  readonly retryAfterMs?: number;
  constructor(readonly reason: FailureReason, readonly status: number, message: string, options?: { cause?: unknown; retryAfterMs?: number }) {
    super(message, options);
    this.name = 'KubeRequestError';
    if (options?.retryAfterMs !== undefined) this.retryAfterMs = options.retryAfterMs;
  }

  /** Worth retrying the same request: the server was unreachable, throttled us or failed on its side. */
  get transient(): boolean {
    return this.reason === 'unreachable' || this.reason === 'malformed' || (this.reason === 'http' && (this.status === 429 || this.status >= 500));
  }
}

export interface RequestOptions {
  readonly accept?: string;
  readonly signal?: AbortSignal;
}

export interface WatchHandlers {
  /**
   * Called once per complete line, as the bytes the server sent (a view of the chunk, valid only
   * during the call: copy what you keep); a throw ends the watch with that error.
   */
  line(bytes: Buffer): void;
  /** A line longer than maxLineBytes was skipped (never buffered whole). */
  oversized?(bytes: number): void;
  /**
   * Asked after each chunk: a promise stops reading until it settles (TCP then holds the server
   * back), so a burst the sinks cannot take yet waits in the socket, not in memory.
   */
  pause?(): Promise<unknown> | undefined;
}

const NEWLINE = 10;

/**
 * Splits a byte stream into lines. Split as bytes (a newline byte is never part of a UTF-8
 * character), each line is decoded once, by whoever reads it, and its bytes can be kept as they came.
 */
export class LineSplitter {
  /** The start of an unfinished line: copies of chunk tails, joined once the line ends (joining per chunk would copy a long line over and over). */
  private rest: Buffer[] = [];
  private restBytes = 0;
  /** Bytes of a line past maxLineBytes, counted but not kept, until its newline. */
  private skipped = 0;

  constructor(
    private readonly maxLineBytes = Infinity,
    /** A line longer than maxLineBytes ended, and was skipped (its bytes were never held). */
    private readonly oversized: (bytes: number) => void = () => undefined,
  ) {}

  /** Calls `line` for each line `chunk` completes (a view, valid during the call), while it returns true. */
  push(chunk: Buffer, line: (bytes: Buffer) => boolean): void {
    let end = chunk.indexOf(NEWLINE);
    if (end < 0) {
      this.keep(chunk);
      return;
    }
    let start = 0;
    let bytes = this.finish(chunk.subarray(0, end));
    for (;;) {
      if (bytes !== undefined && bytes.length > 0 && !line(bytes)) return;
      start = end + 1;
      end = chunk.indexOf(NEWLINE, start);
      if (end < 0) break;
      bytes = this.finish(chunk.subarray(start, end));
    }
    if (start < chunk.length) this.keep(chunk.subarray(start));
  }

  /** The last line when the stream ended without a newline. */
  end(): Buffer | undefined {
    const last = this.finish(Buffer.alloc(0));
    return last === undefined || last.length === 0 ? undefined : last;
  }

  /** Holds the start of an unfinished line, or only counts it once it is past the cap. */
  private keep(part: Buffer): void {
    if (this.skipped > 0 || this.restBytes + part.length > this.maxLineBytes) {
      this.skipped += this.restBytes + part.length;
      this.rest = [];
      this.restBytes = 0;
      return;
    }
    // A copy: a view would keep the whole chunk alive until the line is complete.
    this.rest.push(Buffer.from(part));
    this.restBytes += part.length;
  }

  /** The line that `tail` completes; undefined when it was too long (reported, skipped). */
  private finish(tail: Buffer): Buffer | undefined {
    const length = this.skipped + this.restBytes + tail.length;
    if (this.skipped > 0 || length > this.maxLineBytes) {
      this.rest = [];
      this.restBytes = 0;
      this.skipped = 0;
      this.oversized(length);
      return undefined;
    }
    if (this.rest.length === 0) return tail;
    const bytes = Buffer.concat([...this.rest, tail]);
    this.rest = [];
    this.restBytes = 0;
    return bytes;
  }
}

/**
 * Caps on what the API server (or whatever answers in its place) may send: nothing is buffered
 * without bound. A watch line past its cap is skipped and reported; a larger list page or error
 * body fails the request (retried with backoff), or is cut.
 */
export interface KubeLimits {
  /** One watch event (one object): default 16 MiB (etcd stores objects up to 1.5 MiB). */
  readonly maxLineBytes: number;
  /** One response body (a list page, discovery): default 512 MiB. */
  readonly maxBodyBytes: number;
  /** The text kept of an error answer: default 64 KiB. */
  readonly maxErrorBodyBytes: number;
  /** Items in one list page (a server that ignores `limit` may send them all): default 1,000,000. */
  readonly maxListItems: number;
}

export const KUBE_LIMITS: KubeLimits = Object.freeze({ maxLineBytes: 16 * 1024 * 1024, maxBodyBytes: 512 * 1024 * 1024, maxErrorBodyBytes: 64 * 1024, maxListItems: 1_000_000 });

/** Collects an answer's text up to `max` bytes; the rest is read and dropped. */
function errorText(res: import('node:http').IncomingMessage, max: number, done: (text: string) => void): void {
  const chunks: Buffer[] = [];
  let kept = 0;
  res.on('data', (chunk: Buffer) => {
    if (kept >= max) return;
    chunks.push(chunk.subarray(0, max - kept));
    kept += Math.min(chunk.length, max - kept);
  });
  res.on('end', () => done(Buffer.concat(chunks).toString('utf8')));
}

/** A 200 answer's body as JSON; one that is not JSON is a malformed answer (retried like a 5xx). */
export function parseBody<T>(body: Uint8Array | string, request: string): T {
  try {
    return JSON.parse(typeof body === 'string' ? body : textOf(body)) as T;
  } catch (error) {
    // The parser's message without the text it quotes (it may be a Secret's), and not the parser's error itself.
    throw new KubeRequestError('malformed', 200, `${request}: the server sent a body that is not JSON (${withoutJsonExcerpt((error as Error).message)})`);
  }
}

/** Requests against one API server with the credentials of one KubeConfig context. */
export class KubeClient {
  readonly server: URL;
  private readonly agent: http.Agent;
  private readonly transport: typeof http | typeof https;
  private readonly proxied: boolean;

  constructor(private readonly kc: KubeConfig, readonly limits: KubeLimits = KUBE_LIMITS) {
    const cluster = kc.getCurrentCluster()!;
    this.server = new URL(cluster.server);
    this.transport = this.server.protocol === 'http:' ? http : https;
    this.proxied = Boolean(cluster.proxyUrl);
    this.agent = new this.transport.Agent({ keepAlive: true, maxSockets: Infinity, scheduling: 'lifo' });
  }

  /** Resolves the request options (TLS material, auth headers) afresh, so rotating tokens keep working. */
  private async requestOptions(path: string, accept: string, signal?: AbortSignal): Promise<https.RequestOptions> {
    const opts: https.RequestOptions = {};
    try {
      await this.kc.applyToHTTPSOptions(opts);
    } catch (error) {
      throw new MeshSyncError('MESHSYNC_KUBE_CONFIG', `cannot use the Kubernetes configuration for ${this.server.origin}: ${(error as Error).message}`, { cause: error });
    }
    const base = this.server.pathname.replace(/\/$/, '');
    const headers: http.OutgoingHttpHeaders = { ...(opts.headers as http.OutgoingHttpHeaders), Accept: accept, 'User-Agent': 'meshsync' };
    if (opts.auth) headers.Authorization = `Basic ${Buffer.from(opts.auth).toString('base64')}`;
    const agent = this.proxied ? opts.agent : this.agentFor(opts);
    return {
      protocol: this.server.protocol,
      hostname: this.server.hostname.replace(/^\[|\]$/g, ''),
      port: this.server.port || undefined,
      path: base + path,
      method: 'GET',
      headers,
      agent,
      signal,
    };
  }

  private tlsAgent?: https.Agent;
  /** One keep-alive agent, built from the TLS material of the first request. */
  private agentFor(opts: https.RequestOptions): http.Agent {
    if (this.transport === http) return this.agent;
    this.tlsAgent ??= new https.Agent({
      keepAlive: true,
      maxSockets: Infinity,
      scheduling: 'lifo',
      ca: opts.ca, cert: opts.cert, key: opts.key, pfx: opts.pfx, passphrase: opts.passphrase,
      servername: opts.servername, rejectUnauthorized: opts.rejectUnauthorized,
    });
    return this.tlsAgent;
  }

  /** GET a JSON document (discovery, one list page). */
  async get<T>(path: string, options: RequestOptions = {}): Promise<T> {
    return parseBody<T>(await this.getBytes(path, options), `GET ${path}`);
  }

  /** GET a document as the bytes it came in (a list page's items are cut from them). */
  async getBytes(path: string, options: RequestOptions = {}): Promise<Buffer> {
    const request = await this.requestOptions(path, options.accept ?? 'application/json', options.signal);
    return new Promise<Buffer>((resolve, reject) => {
      const req = this.transport.request(request, (res) => {
        if (res.statusCode !== 200) {
          errorText(res, this.limits.maxErrorBodyBytes, (text) => reject(statusError(res.statusCode ?? 0, text, path, 'GET', res.headers['retry-after'])));
          res.on('error', (error) => reject(networkError(error, this.server, path)));
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size <= this.limits.maxBodyBytes) chunks.push(chunk);
          else {
            chunks.length = 0;
            req.destroy();
            reject(new KubeRequestError('malformed', 200, `GET ${path}: the answer is larger than maxBodyBytes (${this.limits.maxBodyBytes} bytes); not read`));
          }
        });
        res.on('end', () => resolve(Buffer.concat(chunks)));
        res.on('error', (error) => reject(networkError(error, this.server, path)));
      });
      req.on('error', (error) => reject(networkError(error, this.server, path)));
      req.end();
    });
  }

  /**
   * Sends a write (PUT, POST, PATCH, DELETE) with a JSON body and returns the server's JSON answer;
   * a non-2xx answer rejects with its Status (409 Conflict: reason 'http', status 409).
   */
  async send<T>(method: 'PUT' | 'POST' | 'PATCH' | 'DELETE', path: string, body: unknown, options: RequestOptions & { contentType?: string } = {}): Promise<T> {
    const request = await this.requestOptions(path, options.accept ?? 'application/json', options.signal);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    request.method = method;
    if (payload !== undefined) request.headers = { ...request.headers, 'Content-Type': options.contentType ?? 'application/json', 'Content-Length': Buffer.byteLength(payload) };
    const text = await new Promise<string>((resolve, reject) => {
      const req = this.transport.request(request, (res) => {
        const status = res.statusCode ?? 0;
        const ok = status >= 200 && status < 300;
        errorText(res, ok ? this.limits.maxBodyBytes : this.limits.maxErrorBodyBytes, (answer) => {
          if (ok) resolve(answer);
          else reject(statusError(status, answer, path, method, res.headers['retry-after']));
        });
        res.on('error', (error) => reject(networkError(error, this.server, path)));
      });
      req.on('error', (error) => reject(networkError(error, this.server, path)));
      req.end(payload);
    });
    return parseBody<T>(text, `${method} ${path}`);
  }

  /**
   * Opens a watch and hands each line to `handlers.line` as it arrives. Resolves when the server
   * ends the stream, rejects on a failure (or with the error `line` threw).
   */
  async watch(path: string, handlers: WatchHandlers, options: RequestOptions = {}): Promise<void> {
    const request = await this.requestOptions(path, options.accept ?? 'application/json', options.signal);
    await new Promise<void>((resolve, reject) => {
      let settled = false;
      const fail = (error: unknown) => {
        if (settled) return;
        settled = true;
        req.destroy();
        reject(error);
      };
      const req = this.transport.request(request, (res) => {
        if (res.statusCode !== 200) {
          errorText(res, this.limits.maxErrorBodyBytes, (text) => fail(statusError(res.statusCode ?? 0, text, path, 'GET', res.headers['retry-after'])));
          return;
        }
        const lines = new LineSplitter(this.limits.maxLineBytes, (bytes) => handlers.oversized?.(bytes));
        res.on('data', (chunk: Buffer) => {
          if (settled) return;
          try {
            lines.push(chunk, (line) => {
              handlers.line(line);
              return !settled;
            });
          } catch (error) {
            fail(error);
            return;
          }
          const wait = handlers.pause?.();
          if (wait === undefined) return;
          res.pause();
          const resume = () => {
            if (!settled) res.resume();
          };
          wait.then(resume, resume);
        });
        res.on('end', () => {
          if (settled) return;
          try {
            const last = lines.end();
            if (last !== undefined && last.toString('utf8').trim().length > 0) handlers.line(last);
          } catch (error) {
            fail(error);
            return;
          }
          settled = true;
          resolve();
        });
        res.on('error', (error) => fail(networkError(error, this.server, path)));
        res.on('aborted', () => fail(new KubeRequestError('unreachable', 0, `watch ${path}: the connection was cut`)));
      });
      req.on('error', (error) => fail(networkError(error, this.server, path)));
      req.end();
    });
  }

  close(): void {
    this.agent.destroy();
    this.tlsAgent?.destroy();
  }
}

/** The message of a Kubernetes Status body, or the raw text. */
function statusError(status: number, text: string, path: string, method: string, retryAfter: string | undefined): KubeRequestError {
  let message = text.slice(0, 300);
  let code = status;
  let retryAfterSeconds = retryAfterHeaderSeconds(retryAfter);
  try {
    const body = JSON.parse(text) as { message?: string; code?: number; details?: { retryAfterSeconds?: unknown } };
    if (body.message) message = body.message;
    if (typeof body.code === 'number') code = body.code;
    if (retryAfterSeconds === undefined && typeof body.details?.retryAfterSeconds === 'number') retryAfterSeconds = body.details.retryAfterSeconds;
  } catch {
    // not a Status: keep the text
  }
  const reason: FailureReason = code === 403 ? 'forbidden' : code === 410 ? 'gone' : code === 404 ? 'not-found' : 'http';
  const retryAfterMs = retryAfterSeconds !== undefined && retryAfterSeconds >= 0 ? retryAfterSeconds * 1000 : undefined;
  return new KubeRequestError(reason, code, `${method} ${path}: HTTP ${status}: ${message}`, { retryAfterMs });
}

/** Retry-After as seconds: a number of seconds or an HTTP date (RFC 9110); undefined when absent or unreadable. */
function retryAfterHeaderSeconds(value: string | undefined): number | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  if (/^\s*\d+\s*$/.test(value)) return Number(value);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, (at - Date.now()) / 1000);
}

function networkError(error: Error, server: URL, path: string): KubeRequestError {
  if (error.name === 'AbortError') return new KubeRequestError('aborted', 0, `GET ${path}: aborted`, { cause: error });
  return new KubeRequestError('unreachable', 0, `cannot reach the Kubernetes API server at ${server.origin} (GET ${path}): ${error.message}`, { cause: error });
}
