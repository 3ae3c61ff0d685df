// Patch semantics. JSON merge patch is exact (RFC 7386). Strategic merge patch is
// approximated: maps merge like merge-patch, lists of objects that all carry a
// `name` merge by name (containers, volumes, env...), other lists are replaced,
// and `$`-directives other than `$patch: delete` are dropped. That is enough for
// `kubectl label/annotate/apply/scale`.
import { parse as parseYaml } from 'yaml';
import { errors } from './errors.ts';

const isObj = (v: unknown): v is Record<string, any> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function mergePatch(target: any, patch: any): any {
  if (!isObj(patch)) return structuredClone(patch);
  const out: Record<string, any> = isObj(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

export function strategicMergePatch(target: any, patch: any): any {
  if (!isObj(patch)) return structuredClone(patch);
  const out: Record<string, any> = isObj(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (k.startsWith('$')) continue;
    if (v === null) delete out[k];
    else if (Array.isArray(v) && Array.isArray(out[k]) && mergeableByName(v) && mergeableByName(out[k])) {
      out[k] = mergeListByName(out[k], v);
    } else out[k] = strategicMergePatch(out[k], v);
  }
  return out;
}

const mergeableByName = (list: any[]) => list.length > 0 && list.every((e) => isObj(e) && typeof e.name === 'string');

function mergeListByName(current: any[], patch: any[]): any[] {
  const out = current.map((e) => e);
  for (const p of patch) {
    const i = out.findIndex((e) => e.name === p.name);
    if (p.$patch === 'delete') {
      if (i >= 0) out.splice(i, 1);
    } else if (i >= 0) out[i] = strategicMergePatch(out[i], p);
    else out.push(strategicMergePatch({}, p));
  }
  return out;
}

export const PATCH_TYPES = [
  'application/merge-patch+json',
  'application/strategic-merge-patch+json',
  'application/apply-patch+yaml',
  'application/json-patch+json',
] as const;
export type PatchType = (typeof PATCH_TYPES)[number];

/** RFC 6902 JSON patch, the operations kubectl's `patch --type=json` uses. */
export function jsonPatch(target: any, ops: any[]): any {
  let doc = structuredClone(target);
  const split = (p: string) => p.split('/').slice(1).map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  const parentOf = (parts: string[]) => {
    let cur = doc;
    for (const part of parts.slice(0, -1)) {
      cur = cur?.[part];
      if (cur == null) throw errors.invalid('Object', '', '', parts.join('.'), 'path not found');
    }
    return cur;
  };
  for (const op of ops) {
    const parts = split(op.path);
    if (parts.length === 0) {
      if (op.op === 'add' || op.op === 'replace') doc = structuredClone(op.value);
      continue;
    }
    const parent = parentOf(parts);
    const last = parts[parts.length - 1];
    if (op.op === 'add') {
      if (Array.isArray(parent)) parent.splice(last === '-' ? parent.length : Number(last), 0, op.value);
      else parent[last] = op.value;
    } else if (op.op === 'replace') {
      parent[last] = op.value;
    } else if (op.op === 'remove') {
      if (Array.isArray(parent)) parent.splice(Number(last), 1);
      else delete parent[last];
    } else if (op.op === 'test') {
      if (JSON.stringify(parent[last]) !== JSON.stringify(op.value)) throw errors.invalid('Object', '', '', op.path, 'test failed');
    } else throw errors.badRequest(`unsupported JSON patch op ${op.op}`);
  }
  return doc;
}

/** Applies a patch body of the given content type; `current` is undefined only for apply-creates. */
export function applyPatch(type: PatchType, current: any, body: string): any {
  try {
    switch (type) {
      case 'application/merge-patch+json':
        return mergePatch(current, JSON.parse(body));
      case 'application/strategic-merge-patch+json':
        return strategicMergePatch(current, JSON.parse(body));
      case 'application/apply-patch+yaml':
        // server-side apply without field ownership: the applied config wins
        return mergePatch(current ?? {}, parseYaml(body));
      case 'application/json-patch+json':
        return jsonPatch(current, JSON.parse(body));
    }
  } catch (e) {
    if (e instanceof SyntaxError) throw errors.badRequest(`error decoding patch: ${e.message}`);
    throw e;
  }
}
