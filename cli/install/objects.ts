// Shared pieces of the install manifests: the object type, labels, YAML output.
import { stringify } from 'yaml';

/** A Kubernetes object as plain data, ready to serialise. */
export type KubeObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; [k: string]: unknown };
  [k: string]: unknown;
};

export const MESHSYNC_GROUP = 'meshery.io';
export const APP_NAME = 'meshsync';

/** The recommended labels on every object meshsync installs. */
export function labels(extra: Record<string, string> = {}): Record<string, string> {
  return { 'app.kubernetes.io/name': APP_NAME, 'app.kubernetes.io/part-of': 'meshery', ...extra };
}

/** Multi-document YAML, one object per document, in the order given (kubectl applies in order). */
export function toYaml(objects: readonly object[]): string {
  return objects.map((o) => stringify(o, { lineWidth: 0, aliasDuplicateObjects: false })).join('---\n');
}
