/**
 * meshsync-plugin-label-enricher: copies selected labels of every object into annotations, so a
 * consumer finds e.g. the owning team under one well-known key whatever label each team uses.
 */
import { definePlugin, type SyncEvent } from 'meshsync';
import { z } from 'zod';

// strictObject: a mistyped option is an error naming it, as with the built-ins, not silently dropped.
const options = z.strictObject({
  labels: z.record(z.string().min(1), z.string().min(1))
    .refine((map) => Object.keys(map).length > 0, 'map at least one label')
    .describe('Label to copy -> annotation to write, e.g. { "team": "meshsync.io/owner" }.'),
  overwrite: z.boolean().default(false)
    .describe('Replace an annotation the object already has; by default the object\'s own value wins.'),
});

export type LabelEnricherOptions = z.input<typeof options>;

export const labelEnricher = definePlugin({
  name: 'meshsync-plugin-label-enricher',
  description: 'Copies selected labels into annotations (e.g. label team -> annotation meshsync.io/owner).',
  options,
  setup: ({ labels, overwrite }) => {
    const pairs = Object.entries(labels);
    return (core) => {
      core.hooks.transform.tap('meshsync-plugin-label-enricher', (event) => enrich(event, pairs, overwrite));
    };
  },
});

export default labelEnricher;

/** The event with the mapped labels added as annotations; the same event when nothing changes (copy on write). */
export function enrich(event: SyncEvent, pairs: readonly [string, string][], overwrite: boolean): SyncEvent {
  const metadata = event.object.metadata;
  const objectLabels = metadata.labels;
  if (objectLabels === undefined) return event;
  let added: Record<string, string> | undefined;
  for (const [label, annotation] of pairs) {
    const value = objectLabels[label];
    if (value === undefined) continue;
    const current = metadata.annotations?.[annotation];
    if (current === value || (current !== undefined && !overwrite)) continue;
    (added ??= {})[annotation] = value;
  }
  if (added === undefined) return event;
  return {
    ...event,
    object: { ...event.object, metadata: { ...metadata, annotations: { ...metadata.annotations, ...added } } },
  };
}
