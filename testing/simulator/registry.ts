// The set of served resources and the discovery documents describing them.
// Built-ins come from the recorded discovery fixtures (served verbatim where a
// recorded document exists); CRDs registered at runtime are merged in.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface ResourceInfo {
  /** `<plural>.<version>.<group>`, empty group for core: `pods.v1.` */
  id: string;
  group: string;
  version: string;
  plural: string;
  singular: string;
  kind: string;
  listKind: string;
  namespaced: boolean;
  verbs: string[];
  shortNames?: string[];
  categories?: string[];
  /** group-resource: storage is shared by all versions of one resource. */
  gr: string;
  /** Name of the CRD that defines it; CR list items keep kind/apiVersion. */
  crd?: string;
  apiVersion: string;
}

type Json = any; // discovery documents are passed through untouched

interface AggResource {
  resource: string;
  responseKind: { group: string; kind: string; version: string };
  scope: 'Namespaced' | 'Cluster';
  singularResource: string;
  verbs: string[];
  shortNames?: string[];
  categories?: string[];
  subresources?: { subresource: string; responseKind: Json; verbs: string[] }[];
}

interface CrdEntry {
  name: string;
  group: string;
  versions: string[];
  storageVersion: string;
  resources: Map<string, { agg: AggResource; info: ResourceInfo }>; // by version
}

/** The recorded Kubernetes fixtures (discovery/, objects/, protobuf/), shipped with the simulator (copied into dist/ by the build). */
export const DEFAULT_FIXTURES_DIR = fileURLToPath(new URL('./fixtures/', import.meta.url));

export function resourceId(plural: string, version: string, group: string): string {
  return `${plural}.${version}.${group}`;
}

export class Registry {
  private readonly coreList: Json;
  private readonly apiVersions: Json;
  private readonly groupList: Json;
  private readonly aggregated: Json;
  /** recorded `/apis/<g>/<v>` documents, by `g/v` */
  private readonly recorded = new Map<string, Json>();
  private readonly byId = new Map<string, ResourceInfo>();
  private readonly crds = new Map<string, CrdEntry>();

  constructor(fixturesDir: string = DEFAULT_FIXTURES_DIR) {
    const dir = join(fixturesDir, 'discovery');
    const read = (f: string) => JSON.parse(readFileSync(join(dir, f), 'utf8'));
    this.apiVersions = read('api.json');
    this.coreList = read('api__v1.json');
    this.groupList = read('apis.json');
    this.aggregated = read('aggregated_v2.json');
    for (const f of readdirSync(dir)) {
      const m = /^apis__(.+)__([^_]+)\.json$/.exec(f);
      if (m) this.recorded.set(`${m[1]}/${m[2]}`, read(f));
    }
    for (const r of this.coreList.resources as Json[]) {
      if (!r.name.includes('/')) this.add(fromLegacy(r, '', 'v1'));
    }
    for (const g of this.aggregated.items as Json[]) {
      for (const v of g.versions as Json[]) {
        for (const r of v.resources as AggResource[]) this.add(fromAggregated(r, g.metadata.name, v.version));
      }
    }
  }

  private add(info: ResourceInfo): void {
    this.byId.set(info.id, info);
  }

  get(id: string): ResourceInfo | undefined {
    return this.byId.get(id);
  }

  resolve(group: string, version: string, plural: string): ResourceInfo | undefined {
    return this.byId.get(resourceId(plural, version, group));
  }

  /** Every served resource, one entry per version. */
  all(): ResourceInfo[] {
    return [...this.byId.values()];
  }

  // ---- CRDs -------------------------------------------------------------

  /** Register or refresh a CRD. Returns group-resource ids that stopped being served. */
  applyCrd(crd: Json): { removed: ResourceInfo[] } {
    const removed = this.removeCrd(crd.metadata.name).removed;
    const spec = crd.spec ?? {};
    const names = spec.names ?? {};
    const group: string = spec.group;
    const served = (spec.versions ?? []).filter((v: Json) => v.served !== false);
    const entry: CrdEntry = {
      name: crd.metadata.name,
      group,
      versions: served.map((v: Json) => v.name),
      storageVersion: (spec.versions ?? []).find((v: Json) => v.storage)?.name ?? served[0]?.name,
      resources: new Map(),
    };
    for (const v of served) {
      const agg: AggResource = {
        resource: names.plural,
        responseKind: { group, kind: names.kind, version: v.name },
        scope: spec.scope === 'Cluster' ? 'Cluster' : 'Namespaced',
        singularResource: names.singular ?? names.kind.toLowerCase(),
        verbs: ['delete', 'deletecollection', 'get', 'list', 'patch', 'create', 'update', 'watch'],
        ...(names.shortNames ? { shortNames: names.shortNames } : {}),
        ...(names.categories ? { categories: names.categories } : {}),
        ...(v.subresources?.status
          ? { subresources: [{ subresource: 'status', responseKind: { group, kind: names.kind, version: v.name }, verbs: ['get', 'patch', 'update'] }] }
          : {}),
      };
      const info = { ...fromAggregated(agg, group, v.name), crd: entry.name, listKind: names.listKind ?? `${names.kind}List` };
      entry.resources.set(v.name, { agg, info });
      this.add(info);
    }
    this.crds.set(entry.name, entry);
    // A re-registration that keeps a resource served must not count as removal.
    return { removed: removed.filter((r) => !this.byId.has(r.id)) };
  }

  removeCrd(name: string): { removed: ResourceInfo[] } {
    const entry = this.crds.get(name);
    if (!entry) return { removed: [] };
    this.crds.delete(name);
    const removed = [...entry.resources.values()].map((r) => r.info);
    for (const r of removed) this.byId.delete(r.id);
    return { removed };
  }

  // ---- discovery documents ---------------------------------------------

  /** GET /api */
  apiDoc(): Json {
    return this.apiVersions;
  }

  /** GET /api/v1 */
  coreDoc(): Json {
    return this.coreList;
  }

  private crdGroups(): Map<string, CrdEntry[]> {
    const out = new Map<string, CrdEntry[]>();
    for (const c of this.crds.values()) out.set(c.group, [...(out.get(c.group) ?? []), c]);
    return out;
  }

  /** GET /apis */
  groupsDoc(): Json {
    const groups: Json[] = structuredClone(this.groupList.groups);
    for (const [group, entries] of this.crdGroups()) {
      let g = groups.find((x) => x.name === group);
      if (!g) {
        const preferred = entries[0].storageVersion;
        g = { name: group, preferredVersion: { groupVersion: `${group}/${preferred}`, version: preferred }, versions: [] };
        groups.push(g);
      }
      for (const e of entries) {
        for (const v of e.versions) {
          if (!g.versions.some((x: Json) => x.version === v)) g.versions.push({ groupVersion: `${group}/${v}`, version: v });
        }
      }
    }
    return { ...this.groupList, groups };
  }

  /** GET /apis/<g> */
  groupDoc(group: string): Json | undefined {
    const g = this.groupsDoc().groups.find((x: Json) => x.name === group);
    return g ? { kind: 'APIGroup', apiVersion: 'v1', ...g } : undefined;
  }

  /** GET /apis/<g>/<v>: the recorded document when there is one, else built from aggregated discovery. */
  groupVersionDoc(group: string, version: string): Json | undefined {
    const crdResources = [...this.crds.values()]
      .filter((c) => c.group === group)
      .flatMap((c) => {
        const r = c.resources.get(version);
        return r ? legacyFromAggregated(r.agg) : [];
      });
    const recorded = this.recorded.get(`${group}/${version}`);
    if (recorded) {
      return crdResources.length ? { ...recorded, resources: [...recorded.resources, ...crdResources] } : recorded;
    }
    const agg = this.aggregatedVersion(group, version);
    if (!agg && !crdResources.length) return undefined;
    return {
      apiVersion: 'v1',
      groupVersion: `${group}/${version}`,
      kind: 'APIResourceList',
      resources: [...(agg?.resources ?? []).flatMap((r: AggResource) => legacyFromAggregated(r)), ...crdResources],
    };
  }

  private aggregatedVersion(group: string, version: string): Json | undefined {
    const g = this.aggregated.items.find((x: Json) => x.metadata.name === group);
    return g?.versions.find((v: Json) => v.version === version);
  }

  /** Aggregated discovery (`as=APIGroupDiscoveryList`) for `/apis`, or for `/api` when `core`. */
  aggregatedDoc(core: boolean, apiVersion: string): Json {
    if (core) {
      const resources = (this.coreList.resources as Json[])
        .filter((r) => !r.name.includes('/'))
        .map((r) => aggregatedFromLegacy(r, this.coreList.resources));
      return {
        kind: 'APIGroupDiscoveryList',
        apiVersion,
        metadata: {},
        items: [{ metadata: { creationTimestamp: null }, versions: [{ version: 'v1', resources, freshness: 'Current' }] }],
      };
    }
    const items: Json[] = structuredClone(this.aggregated.items);
    for (const [group, entries] of this.crdGroups()) {
      let g = items.find((x) => x.metadata.name === group);
      if (!g) {
        g = { metadata: { name: group, creationTimestamp: null }, versions: [] };
        items.push(g);
      }
      for (const e of entries) {
        for (const [version, r] of e.resources) {
          let v = g.versions.find((x: Json) => x.version === version);
          if (!v) {
            v = { version, resources: [], freshness: 'Current' };
            // the storage version is preferred, so it goes first
            if (version === e.storageVersion) g.versions.unshift(v);
            else g.versions.push(v);
          }
          v.resources.push(r.agg);
        }
      }
    }
    return { ...this.aggregated, apiVersion, items };
  }
}

function fromLegacy(r: Json, group: string, version: string): ResourceInfo {
  return {
    id: resourceId(r.name, version, group),
    group,
    version,
    plural: r.name,
    singular: r.singularName || r.kind.toLowerCase(),
    kind: r.kind,
    listKind: `${r.kind}List`,
    namespaced: r.namespaced,
    verbs: r.verbs,
    shortNames: r.shortNames,
    categories: r.categories,
    gr: group ? `${r.name}.${group}` : r.name,
    apiVersion: group ? `${group}/${version}` : version,
  };
}

function fromAggregated(r: AggResource, group: string, version: string): ResourceInfo {
  return {
    id: resourceId(r.resource, version, group),
    group,
    version,
    plural: r.resource,
    singular: r.singularResource,
    kind: r.responseKind.kind,
    listKind: `${r.responseKind.kind}List`,
    namespaced: r.scope === 'Namespaced',
    verbs: r.verbs,
    shortNames: r.shortNames,
    categories: r.categories,
    gr: group ? `${r.resource}.${group}` : r.resource,
    apiVersion: group ? `${group}/${version}` : version,
  };
}

function legacyFromAggregated(r: AggResource): Json[] {
  const namespaced = r.scope === 'Namespaced';
  const main = {
    ...(r.categories ? { categories: r.categories } : {}),
    kind: r.responseKind.kind,
    name: r.resource,
    namespaced,
    ...(r.shortNames ? { shortNames: r.shortNames } : {}),
    singularName: r.singularResource,
    verbs: r.verbs,
  };
  const subs = (r.subresources ?? []).map((s) => ({
    kind: s.responseKind.kind,
    name: `${r.resource}/${s.subresource}`,
    namespaced,
    singularName: '',
    verbs: s.verbs,
  }));
  return [main, ...subs];
}

function aggregatedFromLegacy(r: Json, all: Json[]): Json {
  const subresources = all
    .filter((s) => s.name.startsWith(`${r.name}/`))
    .map((s) => ({
      subresource: s.name.slice(r.name.length + 1),
      responseKind: { group: s.group ?? '', kind: s.kind, version: s.version ?? '' },
      verbs: s.verbs,
    }));
  return {
    ...(r.categories ? { categories: r.categories } : {}),
    resource: r.name,
    responseKind: { group: '', kind: r.kind, version: '' },
    scope: r.namespaced ? 'Namespaced' : 'Cluster',
    ...(r.shortNames ? { shortNames: r.shortNames } : {}),
    singularResource: r.singularName,
    ...(subresources.length ? { subresources } : {}),
    verbs: r.verbs,
  };
}
