/**
 * A delivery term: from the moment this sink may publish (its start, or this replica became the
 * leader) until it has announced the whole state once. Consumers may hold objects a previous
 * instance published that are gone now; the term tells them, in one of two ways:
 *
 * - `ledger` (the broker has JetStream): the ledger says what consumers were told. An ADDED of an
 *   object told at the same resourceVersion and hash is not published, one told otherwise goes out
 *   as MODIFIED, and at the close a DELETED goes out for each object told that is gone now. Every
 *   consumer converges, and a restart resends only what changed.
 * - `frame` (no ledger): every event of the term carries a resync id between RESYNC_BEGIN and
 *   RESYNC_END, so a consumer that applies framing drops what the term did not mention.
 *   (Meshery mode has no frame markers: `none`, and only the ledger helps Meshery.)
 */
import { nuid } from '@nats-io/transport-node';
import type { LedgerEntry } from './ledger.ts';

export type TermMode = 'ledger' | 'frame' | 'none';

export class Term {
  mode: TermMode | undefined;
  /** Frame mode: the id every event of the term carries. */
  resyncId: string | undefined;
  /** Ledger mode: what consumers were told before the term, by object key. */
  told: Map<string, LedgerEntry> | undefined;
  /** Objects the term published or found unchanged, by key. */
  readonly mentioned = new Set<string>();
  /** Counted for the log when the term closes. */
  readonly counts = { unchanged: 0, changed: 0, added: 0, gone: 0 };
  readonly openedAt = Date.now();
  closed = false;

  constructor(readonly reason: 'start' | 'leader') {}

  get begun(): boolean {
    return this.mode !== undefined;
  }

  beginFramed(): string {
    this.mode = 'frame';
    return (this.resyncId = nuid.next());
  }

  beginWithLedger(told: Map<string, LedgerEntry>): void {
    this.mode = 'ledger';
    this.told = told;
  }

  beginUnframed(): void {
    this.mode = 'none';
  }
}
