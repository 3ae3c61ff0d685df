/**
 * The per-event pipeline: an emitted change is checked, made an event, filtered, transformed and
 * queued in every sink's lane. Synchronous, no Promise per event; taps are named only when one throws.
 */
import { MeshSyncError, pluginError } from './errors.ts';
import { PipelineEvent } from './event.ts';
import type { Lane } from './lane/lane.ts';
import type { Reread, SourceRecord } from './lane/queue.ts';
import type { Logger } from './log.ts';
import { resourceId } from './resource.ts';
import type { TapInfo } from './taps.ts';
import type { CoreCounters, CoreHooks, ErrorReport, EventType, KubeObject, ResourceRef, SyncEvent } from './types.ts';

export class Pipeline {
  /** Every sink's lane, made at start. */
  lanes: readonly Lane[] = [];

  constructor(
    private readonly hooks: Pick<CoreHooks, 'filter' | 'transform'>,
    private readonly counters: CoreCounters,
    private readonly reportError: (report: ErrorReport) => void,
    private readonly logger: Logger,
    private readonly clusterId: () => string,
  ) {}

  /** Filter then transform one event. `undefined` when dropped (filtered, or a plugin threw). */
  run(event: SyncEvent, source: string): SyncEvent | undefined {
    try {
      if (this.hooks.filter.call(event) === false) {
        this.counters.filtered++;
        return undefined;
      }
      return this.hooks.transform.call(event);
    } catch (error) {
      this.counters.dropped['plugin-error']++;
      const culprit = this.findFailingTap(event) ?? { plugin: source, hook: 'pipeline', error };
      this.reportError({ plugin: culprit.plugin, hook: culprit.hook, error: pluginError(culprit.plugin, culprit.hook, culprit.error), event });
      return undefined;
    }
  }

  /**
   * Names the filter or transform tap that throws on an event by replaying it tap by tap. Taps on
   * the per-event hooks are not wrapped (that would cost a closure per tap per event), so the
   * name is found only when something has gone wrong.
   */
  private findFailingTap(event: SyncEvent): { plugin: string; hook: string; error: unknown } | undefined {
    for (const tap of this.hooks.filter.taps as TapInfo[]) {
      try {
        if (tap.fn(event) === false) return undefined;
      } catch (error) {
        return { plugin: tap.name, hook: 'filter', error };
      }
    }
    let current = event;
    for (const tap of this.hooks.transform.taps as TapInfo[]) {
      try {
        current = tap.fn(current);
      } catch (error) {
        return { plugin: tap.name, hook: 'transform', error };
      }
    }
    return undefined;
  }

  /** One change from a source: checked, filtered, transformed, queued in every lane. */
  emit(source: string, type: EventType, resource: ResourceRef, object: KubeObject, observedAt: number): void {
    this.counters.received++;
    if (typeof object !== 'object' || object === null || !validIdentity(object.metadata)) {
      this.counters.dropped.invalid++;
      this.reportError({
        plugin: source,
        hook: 'source',
        error: new MeshSyncError('MESHSYNC_EVENT_INVALID', `${source} emitted a ${type} for ${resource?.resource ?? '?'} without a string metadata.name (or with a uid that is not a string); skipped`),
      });
      return;
    }
    const emitted = new PipelineEvent(type, resource, object, this.clusterId(), observedAt);
    const event = this.run(emitted, source);
    if (event === undefined) return;
    // A lane that holds the event by reference reads the object again as the source emitted it.
    for (const lane of this.lanes) lane.push(event, emitted);
  }

  /** An event a lane held by reference, made whole: the object's latest state, through the pipeline again. */
  reread(event: SyncEvent, held: SourceRecord, sink: string): SyncEvent | undefined {
    let object: KubeObject;
    try {
      object = held.record.parse() as KubeObject;
    } catch (error) {
      this.counters.dropped.invalid++;
      this.reportError({ plugin: sink, hook: 'sink', error: new MeshSyncError('MESHSYNC_EVENT_INVALID', `a held ${event.type} for ${held.resource.resource} could not be read again; skipped`, { cause: error }) });
      return undefined;
    }
    if (object.metadata?.uid !== held.uid) {
      // The record was rewritten for another object of that name (deleted and created again,
      // the DELETED filtered out): what this event said is no longer there to say.
      this.logger.debug({ sink, resource: resourceId(held.resource), uid: held.uid }, 'a held event\'s object was replaced meanwhile; skipped');
      return undefined;
    }
    return this.run(new PipelineEvent(event.type, held.resource, object, event.clusterId, event.observedAt), sink);
  }

  /** How a sink's lane reads again the events it held by reference. */
  rereadFor(sink: string): Reread {
    return (event, held) => this.reread(event, held, sink);
  }
}

/**
 * A string name, and a string uid when there is one. Both are read in one expression, so the two
 * loads overlap and the uid (the lanes' key) is in cache by the time it is hashed.
 */
function validIdentity(meta: KubeObject['metadata'] | undefined): boolean {
  if (typeof meta !== 'object' || meta === null) return false;
  const uid = meta.uid;
  return typeof meta.name === 'string' && (uid === undefined || typeof uid === 'string');
}
