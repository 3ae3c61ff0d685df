// Low-level HTTP helpers: content negotiation, bodies, streamed JSON.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { errors, KubeApiError } from './errors.ts';

export const JSON_TYPE = 'application/json';

export interface MediaType {
  type: string;
  params: Record<string, string>;
}

export function parseAccept(header: string | undefined): MediaType[] {
  if (!header) return [];
  return header.split(',').map((part) => {
    const [type, ...rest] = part.split(';').map((s) => s.trim());
    const params: Record<string, string> = {};
    for (const p of rest) {
      const i = p.indexOf('=');
      if (i > 0) params[p.slice(0, i).trim()] = p.slice(i + 1).trim();
    }
    return { type: type.toLowerCase(), params };
  });
}

/** What to answer with. `aggregated` carries the discovery version asked for. */
export type Negotiated = { kind: 'json' } | { kind: 'partial' } | { kind: 'aggregated'; version: 'v2' | 'v2beta1' };

/**
 * Picks the first acceptable media type. JSON is always an option: we never
 * encode protobuf, and clients that ask for it also accept JSON. A request that
 * only lists `as=` forms we cannot produce (e.g. only Table) gets 406.
 */
export function negotiate(header: string | undefined, allow: { partial?: boolean; aggregated?: boolean }): Negotiated {
  const types = parseAccept(header);
  if (!types.length) return { kind: 'json' };
  let onlyTransforms = true;
  for (const { type, params } of types) {
    const jsonish = type === JSON_TYPE || type === '*/*' || type === 'application/*';
    if (!params.as) {
      onlyTransforms = false;
      if (jsonish) return { kind: 'json' };
      continue;
    }
    if (!jsonish) continue;
    if (allow.partial && (params.as === 'PartialObjectMetadata' || params.as === 'PartialObjectMetadataList') && params.g === 'meta.k8s.io' && params.v === 'v1') {
      return { kind: 'partial' };
    }
    if (allow.aggregated && params.as === 'APIGroupDiscoveryList' && params.g === 'apidiscovery.k8s.io' && (params.v === 'v2' || params.v === 'v2beta1')) {
      return { kind: 'aggregated', version: params.v };
    }
  }
  if (onlyTransforms) throw errors.notAcceptable(header!);
  return { kind: 'json' };
}

export function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

export function sendJson(res: ServerResponse, code: number, body: unknown, contentType = JSON_TYPE, headers: Record<string, string> = {}): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(code, { ...headers, 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

export function sendError(res: ServerResponse, e: unknown): void {
  const err = e instanceof KubeApiError ? e : errors.internal(e instanceof Error ? e.message : String(e));
  if (res.headersSent) {
    res.destroy();
    return;
  }
  // As kube-apiserver does: the delay in the Status details is also a Retry-After header.
  const retryAfter = err.status.details?.retryAfterSeconds;
  sendJson(res, err.code, err.status, JSON_TYPE, retryAfter === undefined ? {} : { 'Retry-After': String(retryAfter) });
}

const BATCH_BYTES = 256 * 1024;

function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/** Streams `head + items.join(',') + tail` with backpressure, rendering items lazily. */
export async function streamList<T>(res: ServerResponse, head: string, items: T[], render: (t: T) => string, tail: string): Promise<void> {
  res.writeHead(200, { 'Content-Type': JSON_TYPE });
  let buf = head;
  for (let i = 0; i < items.length; i++) {
    buf += (i ? ',' : '') + render(items[i]);
    if (buf.length >= BATCH_BYTES) {
      const ok = res.write(buf);
      buf = '';
      if (!ok) await drained(res);
      if (res.destroyed) return;
    }
  }
  res.end(buf + tail);
}
