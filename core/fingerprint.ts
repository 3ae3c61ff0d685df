/**
 * Content fingerprints: a short digest of bytes, to tell whether an object changed without keeping
 * it (the NATS sink's durable ledger compares them across restarts).
 */
import { createHash } from 'node:crypto';

/** A digest of the bytes (or the UTF-8 of the text): SHA-1, 27 characters of base64url. */
export function contentHash(bytes: Uint8Array | string): string {
  return createHash('sha1').update(bytes).digest('base64url');
}
