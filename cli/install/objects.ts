// Shared pieces of the install manifests: labels, YAML output.
import { stringify } from 'yaml';
import type { KubeObject as AnyKubeObject } from '../../core/index.ts';
import { MESHSYNC_RESOURCE } from '../../plugins/meshsync-resource/index.ts';

/** An object to apply: the core's KubeObject, with the kind and apiVersion a manifest must have. */
export type KubeObject = AnyKubeObject & { apiVersion: string; kind: string };

/** The MeshSync custom resource's API group, as its plugin defines it. */
export const MESHSYNC_GROUP = MESHSYNC_RESOURCE.group;
export const APP_NAME = 'meshsync';

/** The recommended labels on every object meshsync installs. */
export function labels(extra: Record<string, string> = {}): Record<string, string> {
  return { 'app.kubernetes.io/name': APP_NAME, 'app.kubernetes.io/part-of': 'meshery', ...extra };
}

/** Multi-document YAML, one object per document, in the order given (kubectl applies in order). */
export function toYaml(objects: readonly object[]): string {
  return objects.map((o) => stringify(o, { lineWidth: 0, aliasDuplicateObjects: false })).join('---\n');
}
