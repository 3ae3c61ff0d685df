/**
 * What delivery, resyncs, requests and JetStream share: a message ready to publish, the lock that
 * keeps a resync frame whole, and the error a failed publish becomes.
 */
import type { MsgHdrs, NatsConnection } from '@nats-io/transport-node';
import { MeshSyncError } from '../../core/index.ts';

/** One message ready to go: JetStream mode also needs its id. A class: see `PipelineEvent` (core/event.ts). */
export class Outgoing {
  constructor(readonly subject: string, readonly payload: string | Uint8Array, readonly headers: MsgHdrs | undefined, readonly msgId: string) {}
}

/** Serialises the lane's batches and resyncs, so a resync frame is never interleaved. */
export class Mutex {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

/** A failed publish as the lane retries it: MESHSYNC_BROKER_UNREACHABLE, its text scrubbed of credentials. */
export function brokerError(scrub: (message: string) => string, message: string, cause: unknown): MeshSyncError {
  if (cause instanceof MeshSyncError) return cause;
  return new MeshSyncError('MESHSYNC_BROKER_UNREACHABLE', `${message}: ${scrub(errorMessage(cause))}`);
}

export function maxPayloadOf(nc: NatsConnection): number {
  return nc.info?.max_payload ?? 1024 * 1024;
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${message} (${ms} ms)`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
