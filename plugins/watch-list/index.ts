/**
 * meshsync:watch-list — which resources are watched and which of their events pass, with the
 * MeshSync whitelist/blacklist semantics (see README.md for what MeshSync does and where we differ).
 */
import { z } from 'zod';
import { Counter } from 'prom-client';
import {
  ConfigError, definePlugin, EVENT_TYPES, oneOf, resourceId, resourceIdProblem, zodProblems, type EventType, type ResourceRef, type SyncEvent,
} from '../../core/index.ts';

/** One bit per event type; a resource's rule is the mask of the events that pass. */
export const EVENT_BITS: Readonly<Record<EventType, number>> = Object.freeze({ ADDED: 1, MODIFIED: 2, DELETED: 4 });
const ALL_EVENTS = 7;

const eventName = oneOf(EVENT_TYPES as [EventType, ...EventType[]]);

const rule = z.object({
  resource: z.string().superRefine((id, ctx) => {
    const problem = resourceIdProblem(id);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
  }).describe('Resource id `<plural>.<version>.<group>`; the core group leaves a trailing dot (`pods.v1.`).'),
  events: z.array(eventName).min(1, 'list at least one event, or leave `events` out for all three')
    .optional().describe('Event types this rule covers; all three when left out.'),
}).strict();

export type WatchRule = z.output<typeof rule>;

/**
 * The legacy form is the JSON string MeshSync reads from its CR/ConfigMap: whitelist entries are
 * `{"Resource","Events"}` (Go's decoder matches keys case-insensitively, so we do too), blacklist
 * entries are plain id strings. Both forms become `{ resource, events? }` here, before validation,
 * so every problem is reported with its path.
 */
function normaliseList(value: unknown, ctx: z.RefinementCtx): unknown {
  let list = value;
  let fromString = false;
  if (typeof value === 'string') {
    if (value.trim() === '') return undefined; // MeshSync treats an empty string as "not set"
    try {
      list = JSON.parse(value);
      // Encoded twice, as Meshery's Helm values quote it ("\"[{...}]\""): the JSON holds the JSON text.
      if (typeof list === 'string') list = list.trim() === '' ? undefined : JSON.parse(list);
      if (list === undefined) return undefined;
      fromString = true;
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: `not valid JSON (${(error as Error).message}); expected e.g. [{"Resource":"pods.v1.","Events":["ADDED"]}] or ["pods.v1."]`, input: value });
      return z.NEVER;
    }
  }
  if (!Array.isArray(list)) return list;
  return list.map((entry) => {
    if (typeof entry === 'string') return { resource: entry };
    if (!fromString || typeof entry !== 'object' || entry === null) return entry;
    const out: Record<string, unknown> = {};
    for (const [key, field] of Object.entries(entry)) {
      const lower = key.toLowerCase();
      out[lower === 'resource' || lower === 'events' ? lower : key] = field;
    }
    return out;
  });
}

const ruleList = (what: string) => z.preprocess(
  normaliseList,
  z.array(rule).optional(),
).describe(`${what} Either an array of \`{ resource, events? }\` (or plain resource ids), or the legacy MeshSync JSON string \`[{"Resource":"pods.v1.","Events":["ADDED","MODIFIED","DELETED"]}]\` / \`["pods.v1."]\`.`);

export const watchListOptions = z.object({
  include: ruleList('Only these resources are watched, and only these events of them pass. Empty or left out: every resource.'),
  exclude: ruleList('These events of these resources are dropped; a resource whose every event is excluded is not watched at all.'),
  whitelist: ruleList('Legacy name of `include` (MeshSync CR/ConfigMap).'),
  blacklist: ruleList('Legacy name of `exclude` (MeshSync CR/ConfigMap).'),
  allowedResources: z.array(z.string().superRefine((id, ctx) => {
    const problem = resourceIdProblem(id);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
  })).optional().describe('The ceiling live rules (the MeshSync custom resource) cannot exceed: a live include naming a resource outside it is rejected, the rules in force stay, and the resource\'s status says why. Default: the resources this config\'s own rules select (the sources\' resources, or this include).'),
}).strict().superRefine((options, ctx) => {
  for (const [name, legacy] of [['include', 'whitelist'], ['exclude', 'blacklist']] as const) {
    if (options[name]?.length && options[legacy]?.length) {
      ctx.addIssue({ code: 'custom', path: [legacy], message: `\`${legacy}\` is the legacy name of \`${name}\`; set one of them, not both` });
    }
  }
});

export type WatchListOptions = z.input<typeof watchListOptions>;

/** The compiled watch-list: per resource id, the mask of the events that pass. */
export interface CompiledWatchList {
  /** Resource ids named by include, in config order; undefined when include is not set. */
  readonly included: readonly string[] | undefined;
  /** Explicit masks; ids not listed get `defaultMask`. */
  readonly masks: ReadonlyMap<string, number>;
  readonly defaultMask: number;
  maskOf(id: string): number;
  /** Narrows the resource ids a source is about to watch. */
  select(candidates: readonly string[]): string[];
}

function maskOfEvents(events: readonly EventType[] | undefined): number {
  if (events === undefined) return ALL_EVENTS;
  let mask = 0;
  for (const type of events) mask |= EVENT_BITS[type];
  return mask;
}

/** Builds the per-resource masks from validated options (include, then exclude subtracted). */
export function compileWatchList(options: z.output<typeof watchListOptions>): CompiledWatchList {
  const include = options.include?.length ? options.include : options.whitelist?.length ? options.whitelist : undefined;
  const exclude = options.exclude?.length ? options.exclude : options.blacklist ?? [];
  const masks = new Map<string, number>();
  const included: string[] = [];
  if (include) {
    for (const { resource, events } of include) {
      if (!masks.has(resource)) included.push(resource);
      masks.set(resource, (masks.get(resource) ?? 0) | maskOfEvents(events));
    }
  }
  const defaultMask = include ? 0 : ALL_EVENTS;
  for (const { resource, events } of exclude) {
    masks.set(resource, (masks.get(resource) ?? defaultMask) & ~maskOfEvents(events));
  }
  const maskOf = (id: string) => masks.get(id) ?? defaultMask;
  return {
    included: include ? included : undefined,
    masks,
    defaultMask,
    maskOf,
    select: (candidates) => (include ? included : candidates).filter((id) => maskOf(id) !== 0),
  };
}

interface ResourceRule {
  readonly id: string;
  /** Replaced in place by a reconfigure, so the filter's cached rule follows it. */
  mask: number;
  /** Events dropped, by event bit (1, 2, 4); plain numbers, read when metrics are collected. */
  readonly dropped: number[];
}

export const watchList = definePlugin({
  name: 'meshsync:watch-list',
  description: 'Selects the resources to watch and the events to pass (MeshSync whitelist/blacklist, as include/exclude).',
  options: watchListOptions,
  setup: (options) => (core) => {
    let compiled = compileWatchList(options);
    // What live rules may select at most: set by the operator (this config), never by the live rules.
    const own = compiled;
    const offered = new Set<string>();
    const ceiling = (id: string): boolean => (options.allowedResources ? options.allowedResources.includes(id) : own.included ? own.included.includes(id) : offered.has(id));
    /** Whether the ceiling is known yet: the sources offer their resources only once they start. */
    const ceilingKnown = () => options.allowedResources !== undefined || own.included !== undefined || offered.size > 0;
    const beyond = (rules: CompiledWatchList) => (rules.included ?? []).filter((id) => !ceiling(id));
    // Sources hand out one ResourceRef object per resource type, so the rule is found by identity
    // (a WeakMap hit) and the id string is built once per resource, not once per event.
    const rules = new WeakMap<ResourceRef, ResourceRule>();
    const byId = new Map<string, ResourceRule>();
    const ruleFor = (ref: ResourceRef): ResourceRule => {
      const id = resourceId(ref);
      let found = byId.get(id);
      if (found === undefined) {
        found = { id, mask: compiled.maskOf(id), dropped: [0, 0, 0, 0, 0] };
        byId.set(id, found);
      }
      rules.set(ref, found);
      return found;
    };

    // A second watch-list instance shares the first one's counter name; only the first reports.
    if (core.metrics.getSingleMetric('meshsync_watch_list_dropped_events_total') === undefined) new Counter({
      name: 'meshsync_watch_list_dropped_events_total',
      help: 'Events dropped by the watch-list, by resource id and event type.',
      labelNames: ['resource', 'type'],
      registers: [core.metrics],
      collect() {
        this.reset();
        for (const found of byId.values()) {
          for (const type of EVENT_TYPES) {
            const count = found.dropped[EVENT_BITS[type]];
            if (count > 0) this.inc({ resource: found.id, type }, count);
          }
        }
      },
    });

    core.hooks.selectResources.tap('meshsync:watch-list', (candidates) => {
      for (const id of candidates) offered.add(id);
      const wanted = compiled.select(candidates);
      const selected = wanted.filter(ceiling);
      if (selected.length < wanted.length) {
        core.logger.warn({ plugin: 'meshsync:watch-list', refused: wanted.filter((id) => !ceiling(id)) }, 'the live watch-list names resources beyond the allowed ones (allowedResources, or this config\'s own rules): not watched');
      }
      core.logger.debug({ plugin: 'meshsync:watch-list', candidates: candidates.length, selected }, 'watch-list narrowed the resources to watch');
      return selected;
    });

    // Rules are per resource and event type: no object field is read.
    core.readsWholeObjects('meshsync:watch-list', () => false);
    core.hooks.filter.tap('meshsync:watch-list', (event: SyncEvent) => {
      const found = rules.get(event.resource) ?? ruleFor(event.resource);
      const bit = EVENT_BITS[event.type];
      if ((found.mask & bit) !== 0) return undefined;
      found.dropped[bit]++;
      return false;
    });

    // Live rules (the MeshSync custom resource was edited): validated with the same schema as the
    // options, then swapped in one step; a bad change throws and the rules in force stay.
    core.hooks.reconfigure.tap('meshsync:watch-list', (settings) => {
      if (settings.watchList === undefined) return;
      const parsed = watchListOptions.safeParse(settings.watchList);
      if (!parsed.success) throw new ConfigError(zodProblems(parsed.error, 'watchList'));
      if (parsed.data.allowedResources !== undefined) throw new ConfigError([{ path: 'watchList.allowedResources', message: 'the ceiling is the operator\'s (the config), not the live rules\'' }]);
      const next = compileWatchList(parsed.data);
      const outside = ceilingKnown() ? beyond(next) : [];
      if (outside.length > 0) {
        throw new ConfigError([{ path: 'watchList.include', message: `names resources beyond the allowed ones (${options.allowedResources ? 'allowedResources' : 'this config\'s own rules'}): ${outside.join(', ')}` }]);
      }
      compiled = next;
      for (const found of byId.values()) found.mask = compiled.maskOf(found.id);
      core.logger.info({ plugin: 'meshsync:watch-list', include: compiled.included ?? 'all', rules: Object.fromEntries([...compiled.masks].map(([id, mask]) => [id, eventsOf(mask)])) }, 'watch-list reconfigured');
    });

    core.hooks.start.tap('meshsync:watch-list', () => {
      const logger = core.logger.child({ plugin: 'meshsync:watch-list' });
      logger.info({ include: compiled.included ?? 'all', rules: Object.fromEntries([...compiled.masks].map(([id, mask]) => [id, eventsOf(mask)])) }, 'watch-list in force');
      const noDeletes = [...compiled.masks].filter(([, mask]) => mask !== 0 && (mask & EVENT_BITS.DELETED) === 0).map(([id]) => id);
      if (noDeletes.length > 0) {
        logger.warn({ resources: noDeletes }, 'DELETED events of these resources are dropped: consumers keep deleted objects until the next resync');
      }
    });
  },
});

function eventsOf(mask: number): EventType[] {
  return EVENT_TYPES.filter((type) => (mask & EVENT_BITS[type]) !== 0);
}

export default watchList;
