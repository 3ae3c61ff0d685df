/**
 * Plain requests and watches against a Kubernetes API server, real (https, client certificate or
 * bearer token) or the simulator (http): what the cluster tests and the fidelity table send.
 */
import { request as httpRequest, type Agent as HttpAgent, type IncomingMessage } from 'node:http';
import { request as httpsRequest, type Agent as HttpsAgent } from 'node:https';

export interface KubeResponse {
  status: number;
  body: string;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  json: any;
  contentType: string;
}

export interface RequestOptions {
  method?: string;
  body?: unknown;
  /** Content-Type of a body (default application/json; patches need their own). */
  contentType?: string;
  accept?: string;
  /** Bearer token instead of the connection's own credential. */
  token?: string;
  /** Another of the cluster's API servers (startExtraApiserver) instead of the main one. */
  server?: string;
}

/** Where requests go: a base URL and how to connect (an https agent with the admin's certificate, or none). */
export interface Connection {
  server: string;
  agent?: HttpAgent | HttpsAgent;
  /** CA for https requests made with a token (they do not use the admin's agent). */
  ca?: Buffer;
}

/** Sends one request; `onResponse` gets the response as it starts. Returns a way to abort it. */
function send(connection: Connection, path: string, options: RequestOptions, onResponse: (res: IncomingMessage) => void, onError: (error: Error) => void): () => void {
  const url = new URL(path, options.server ?? connection.server);
  const body = options.body === undefined ? undefined : typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
  // A token request must not present the admin's client certificate too.
  const withToken = options.token !== undefined && url.protocol === 'https:';
  const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, {
    method: options.method ?? 'GET',
    agent: withToken ? undefined : connection.agent,
    ca: withToken ? connection.ca : undefined,
    headers: {
      accept: options.accept ?? 'application/json',
      ...(body !== undefined ? { 'content-type': options.contentType ?? 'application/json' } : {}),
      ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
    },
  }, onResponse);
  req.on('error', onError);
  req.end(body);
  return () => req.destroy();
}

/** One request, its whole body read. */
export function kubeRequest(connection: Connection, path: string, options: RequestOptions = {}): Promise<KubeResponse> {
  return new Promise((resolve, reject) => {
    send(connection, path, options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: any;
        try { json = JSON.parse(text); } catch { json = undefined; }
        resolve({ status: res.statusCode ?? 0, body: text, json, contentType: String(res.headers['content-type'] ?? '') });
      });
      res.on('error', reject);
    }, reject);
  });
}

/** An open watch: its HTTP status, the events parsed so far, and whether the server ended it. */
export interface KubeWatch {
  status: number;
  events: any[];
  readonly ended: boolean;
  /** Resolves once `check` holds for the events so far; rejects naming `what` after `timeoutMs` or when the stream ends first. */
  until(check: (events: any[]) => boolean, what: string, timeoutMs?: number): Promise<void>;
  close(): void;
}

/** Opens a watch (the path carries `watch=true` or `?watch=1`) and reads its lines as they come. */
export function kubeWatch(connection: Connection, path: string, options: RequestOptions = {}): Promise<KubeWatch> {
  return new Promise((resolve, reject) => {
    const close = send(connection, path, options, (res) => {
      const watch: KubeWatch & { ended: boolean } = {
        status: res.statusCode ?? 0,
        events: [],
        ended: false,
        async until(check, what, timeoutMs = 20_000) {
          const deadline = Date.now() + timeoutMs;
          while (!check(watch.events)) {
            if (watch.ended) throw new Error(`the watch ended before ${what}: ${JSON.stringify(watch.events).slice(0, 2000)}`);
            if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(watch.events).slice(0, 2000)}`);
            await new Promise((r) => setTimeout(r, 25));
          }
        },
        close: () => close(),
      };
      let partial = '';
      res.on('data', (chunk: Buffer) => {
        const lines = (partial + chunk.toString('utf8')).split('\n');
        partial = lines.pop()!;
        for (const line of lines) if (line.trim()) watch.events.push(JSON.parse(line));
      });
      const end = () => (watch.ended = true);
      res.on('end', end);
      res.on('close', end);
      res.on('error', end);
      resolve(watch);
    }, reject);
  });
}
