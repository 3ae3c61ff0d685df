import type { ResourceRef } from './types.ts';

/** `<resource>.<version>.<group>`, as in the MeshSync watch-list; the core group leaves a trailing dot (`pods.v1.`). */
export function resourceId(ref: Pick<ResourceRef, 'resource' | 'version' | 'group'>): string {
  return `${ref.resource}.${ref.version}.${ref.group}`;
}

/** Splits a resource id; the group may itself contain dots (`ingresses.v1.networking.k8s.io`). */
export function parseResourceId(id: string): { resource: string; version: string; group: string } | undefined {
  const first = id.indexOf('.');
  const second = first < 0 ? -1 : id.indexOf('.', first + 1);
  if (first <= 0 || second <= first + 1) return undefined;
  return { resource: id.slice(0, first), version: id.slice(first + 1, second), group: id.slice(second + 1) };
}
