// A deliberately thin OpenAPI v3: paths with PATCH operations that declare the
// `fieldValidation` and `dryRun` parameters and no request body. kubectl then
// (a) trusts the server to validate instead of needing full schemas, and
// (b) builds apply patches from its compiled-in types instead of from schemas.
import { createHash } from 'node:crypto';
import type { Registry, ResourceInfo } from './registry.ts';

const gvPath = (group: string, version: string) => (group ? `apis/${group}/${version}` : `api/${version}`);

function byGroupVersion(registry: Registry): Map<string, ResourceInfo[]> {
  const out = new Map<string, ResourceInfo[]>();
  for (const r of registry.all()) {
    const k = gvPath(r.group, r.version);
    out.set(k, [...(out.get(k) ?? []), r]);
  }
  return out;
}

function gvDoc(resources: ResourceInfo[]): object {
  const paths: Record<string, object> = {};
  for (const r of resources) {
    const base = `/${gvPath(r.group, r.version)}${r.namespaced ? '/namespaces/{namespace}' : ''}/${r.plural}/{name}`;
    paths[base] = {
      patch: {
        operationId: `patch${r.kind}`,
        'x-kubernetes-action': 'patch',
        'x-kubernetes-group-version-kind': { group: r.group, version: r.version, kind: r.kind },
        parameters: ['dryRun', 'fieldManager', 'fieldValidation', 'force'].map((name) => ({ name, in: 'query', schema: { type: 'string' } })),
        responses: { '200': { description: 'OK' } },
      },
    };
  }
  return { openapi: '3.0.0', info: { title: 'Kubernetes', version: 'v1.32.4' }, paths, components: { schemas: {} } };
}

/** `/openapi/v3` (rest = '') or `/openapi/v3/<gv path>`; undefined when unknown. */
export function openapiV3(registry: Registry, rest: string): object | undefined {
  const groups = byGroupVersion(registry);
  if (!rest) {
    const paths: Record<string, object> = {};
    for (const [k, resources] of groups) {
      const hash = createHash('sha256').update(JSON.stringify(gvDoc(resources))).digest('hex').slice(0, 32).toUpperCase();
      paths[k] = { serverRelativeURL: `/openapi/v3/${k}?hash=${hash}` };
    }
    return { paths };
  }
  const resources = groups.get(rest);
  return resources ? gvDoc(resources) : undefined;
}
