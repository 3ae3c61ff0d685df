/**
 * Discovery: what the API server serves, read from /api and /apis (aggregated v2 when offered,
 * the per group-version documents otherwise), and the resolution of resource ids and wildcards
 * (`pods.v1.`, `*.v1.apps`, `*.*.example.com`) against it.
 */
import { editDistance, parseResourceId, resourceId, type ResourceRef } from '../../core/index.ts';
import type { KubeClient } from '../../kubernetes/index.ts';

/** A served resource: its ref, its verbs, and whether its version is the group's preferred one. */
export interface ServedResource extends ResourceRef {
  readonly id: string;
  readonly verbs: readonly string[];
  readonly preferred: boolean;
}

/** Every listable and watchable resource the server serves, by id. */
export type Catalog = Map<string, ServedResource>;

interface APIResource { name: string; kind: string; namespaced: boolean; verbs?: string[] }
interface APIResourceList { groupVersion: string; resources: APIResource[] }
interface APIGroup { name: string; versions: { version: string }[]; preferredVersion?: { version: string } }
interface APIGroupList { groups: APIGroup[] }
interface DiscoveryResource { resource: string; scope: string; verbs?: string[]; responseKind?: { kind?: string } }
interface APIGroupDiscovery { metadata: { name?: string }; versions: { version: string; resources: DiscoveryResource[] }[] }
interface APIGroupDiscoveryList { kind?: string; items: APIGroupDiscovery[] }

const AGGREGATED_ACCEPT = 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json';

const watchable = (verbs: readonly string[] | undefined) => verbs !== undefined && verbs.includes('list') && verbs.includes('watch');

/** Adds the resources of one APIResourceList (a `/api/v1` or `/apis/<g>/<v>` body); subresources are left out. */
export function addResourceList(catalog: Catalog, list: APIResourceList, preferred: boolean): void {
  const slash = list.groupVersion.indexOf('/');
  const group = slash < 0 ? '' : list.groupVersion.slice(0, slash);
  const version = slash < 0 ? list.groupVersion : list.groupVersion.slice(slash + 1);
  for (const r of list.resources ?? []) {
    if (r.name.includes('/') || !watchable(r.verbs)) continue;
    add(catalog, { group, version, resource: r.name, kind: r.kind, namespaced: r.namespaced, verbs: r.verbs!, preferred });
  }
}

/** Adds every group of an aggregated discovery document (`APIGroupDiscoveryList`); the first version of a group is its preferred one. */
export function addAggregated(catalog: Catalog, list: APIGroupDiscoveryList): void {
  for (const group of list.items ?? []) {
    group.versions.forEach((v, index) => {
      for (const r of v.resources ?? []) {
        if (!watchable(r.verbs) || !r.responseKind?.kind) continue;
        add(catalog, {
          group: group.metadata.name ?? '', version: v.version, resource: r.resource, kind: r.responseKind.kind,
          namespaced: r.scope === 'Namespaced', verbs: r.verbs!, preferred: index === 0,
        });
      }
    });
  }
}

function add(catalog: Catalog, r: Omit<ServedResource, 'id'>): void {
  const id = resourceId(r);
  catalog.set(id, Object.freeze({ ...r, id }));
}

/** Reads the whole catalog: the core group from /api, named groups from /apis (aggregated when offered). */
export async function discover(client: KubeClient, signal?: AbortSignal): Promise<Catalog> {
  const catalog: Catalog = new Map();
  const core = await client.get<{ versions: string[] }>('/api', { signal });
  await Promise.all(core.versions.map(async (v, index) => {
    addResourceList(catalog, await client.get<APIResourceList>(`/api/${v}`, { signal }), index === 0);
  }));
  const apis = await client.get<APIGroupDiscoveryList | APIGroupList>('/apis', { accept: AGGREGATED_ACCEPT, signal });
  if ((apis as APIGroupDiscoveryList).kind === 'APIGroupDiscoveryList') addAggregated(catalog, apis as APIGroupDiscoveryList);
  else await Promise.all((apis as APIGroupList).groups.map((group) => addGroup(client, catalog, group, signal)));
  return catalog;
}

/**
 * Re-reads one named group (after a CRD changed) and replaces its entries in the catalog.
 * A group the server no longer serves (404) is removed.
 */
export async function rediscoverGroup(client: KubeClient, catalog: Catalog, group: string, signal?: AbortSignal): Promise<void> {
  const fresh: Catalog = new Map();
  try {
    const body = await client.get<APIGroup>(`/apis/${group}`, { signal });
    await addGroup(client, fresh, { ...body, name: group }, signal);
  } catch (error) {
    if ((error as { reason?: string }).reason !== 'not-found') throw error;
  }
  for (const [id, r] of catalog) if (r.group === group) catalog.delete(id);
  for (const [id, r] of fresh) catalog.set(id, r);
}

async function addGroup(client: KubeClient, catalog: Catalog, group: APIGroup, signal?: AbortSignal): Promise<void> {
  const preferred = group.preferredVersion?.version ?? group.versions[0]?.version;
  await Promise.all(group.versions.map(async ({ version }) => {
    try {
      addResourceList(catalog, await client.get<APIResourceList>(`/apis/${group.name}/${version}`, { signal }), version === preferred);
    } catch (error) {
      // A group-version that vanished between /apis and its own document (CRD being removed) is skipped.
      if ((error as { reason?: string }).reason !== 'not-found') throw error;
    }
  }));
}

/** True when the id has a `*` in any of its parts. */
export const isPattern = (id: string) => id.includes('*');

/** The resources a pattern names; `*` as the version means each group's preferred version. */
export function matchPattern(catalog: Catalog, pattern: string): ServedResource[] {
  const parts = parseResourceId(pattern);
  if (!parts) return [];
  if (!isPattern(pattern)) {
    const hit = catalog.get(pattern);
    return hit ? [hit] : [];
  }
  const resource = glob(parts.resource);
  const version = parts.version === '*' ? undefined : glob(parts.version);
  const group = glob(parts.group);
  const out: ServedResource[] = [];
  for (const r of catalog.values()) {
    if (!resource.test(r.resource) || !group.test(r.group)) continue;
    if (version ? !version.test(r.version) : !r.preferred) continue;
    out.push(r);
  }
  return out;
}

function glob(part: string): RegExp {
  return new RegExp(`^${part.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
}

export interface Resolution {
  readonly resources: ServedResource[];
  /** Ids (not patterns) the server does not serve, with the closest served ids. */
  readonly unknown: { id: string; suggestions: string[] }[];
}

/** Resolves ids and patterns against the catalog, in order and without duplicates. */
export function resolveResources(catalog: Catalog, ids: readonly string[]): Resolution {
  const seen = new Set<string>();
  const resources: ServedResource[] = [];
  const unknown: Resolution['unknown'] = [];
  for (const id of ids) {
    const hits = matchPattern(catalog, id);
    if (hits.length === 0 && !isPattern(id)) unknown.push({ id, suggestions: closeMatches(id, catalog.keys()) });
    for (const hit of hits) {
      if (seen.has(hit.id)) continue;
      seen.add(hit.id);
      resources.push(hit);
    }
  }
  return { resources, unknown };
}

/** Up to three candidates within a small edit distance of `id` (a typo, a wrong version or group). */
export function closeMatches(id: string, candidates: Iterable<string>, max = 3): string[] {
  const limit = Math.max(2, Math.floor(id.length / 3));
  const parts = parseResourceId(id);
  const scored: { candidate: string; distance: number }[] = [];
  for (const candidate of candidates) {
    let distance = editDistance(id, candidate);
    // Same plural in another version or group is the likeliest intent (`deployments.v1beta1.apps`).
    if (parts && candidate.startsWith(`${parts.resource}.`)) distance = Math.min(distance, 1);
    if (distance <= limit) scored.push({ candidate, distance });
  }
  return scored.sort((a, b) => a.distance - b.distance || a.candidate.localeCompare(b.candidate)).slice(0, max).map((s) => s.candidate);
}
