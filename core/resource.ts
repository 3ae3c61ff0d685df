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

const PLURAL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const VERSION = /^v[1-9][0-9]*((alpha|beta)[1-9][0-9]*)?$/;
const GROUP = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/**
 * Why a resource id is malformed, or undefined when it is well formed. With `patterns`, a part
 * holding `*` (`*.v1.apps`, `*.*.example.com`) matches any value and is not checked.
 */
export function resourceIdProblem(id: string, patterns = false): string | undefined {
  const hint = 'expected <plural>.<version>.<group>, e.g. "pods.v1." (core group: trailing dot) or "deployments.v1.apps"';
  const first = id.indexOf('.');
  const second = first < 0 ? -1 : id.indexOf('.', first + 1);
  if (first < 0) return `"${id}" is not a resource id: ${hint}`;
  if (second < 0) {
    return VERSION.test(id.slice(first + 1)) || (patterns && id.slice(first + 1) === '*') ? `"${id}" lacks the group: core-group ids end with a dot ("${id}.")` : `"${id}" is not a resource id: ${hint}`;
  }
  const [plural, version, group] = [id.slice(0, first), id.slice(first + 1, second), id.slice(second + 1)];
  const checked = (part: string, pattern: RegExp) => (patterns && part.includes('*')) || pattern.test(part);
  if (!checked(plural, PLURAL)) return `"${id}": "${plural}" is not a lowercase plural resource name; ${hint}`;
  if (!checked(version, VERSION)) return `"${id}": "${version}" is not an API version (v1, v1beta1, v2alpha1); ${hint}`;
  if (group !== '' && !checked(group, GROUP)) return `"${id}": "${group}" is not an API group; ${hint}`;
  return undefined;
}
