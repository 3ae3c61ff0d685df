import type { SyncEvent } from '../../core/index.ts';

export const SUBJECT_PLACEHOLDERS = ['cluster', 'resource', 'type', 'namespace', 'kind', 'group', 'version'] as const;
export type SubjectPlaceholder = (typeof SUBJECT_PLACEHOLDERS)[number];

/** What a placeholder becomes when the event has no value for it (cluster-scoped namespace, core group). */
const EMPTY_TOKEN = '_';
const CORE_GROUP_TOKEN = 'core';
const PLACEHOLDER = /\{([a-z]+)\}/g;

/**
 * Makes a value one NATS subject token: `.` (the token separator), the wildcards `*` and `>`,
 * whitespace and control characters become `_`; an empty value becomes `_`. So the group
 * `networking.k8s.io` is the single token `networking_k8s_io`.
 */
export function subjectToken(value: string): string {
  if (value === '') return EMPTY_TOKEN;
  return value.replace(/[.*>\s\x00-\x1f\x7f]/g, '_');
}

/** Undefined when the template is a usable subject; otherwise what is wrong with it. */
export function validateSubjectTemplate(template: string, allowed: readonly string[] = SUBJECT_PLACEHOLDERS): string | undefined {
  for (const match of template.matchAll(PLACEHOLDER)) {
    if (!allowed.includes(match[1])) return `unknown placeholder {${match[1]}}; allowed: ${allowed.map((p) => `{${p}}`).join(' ')}`;
  }
  const sample = template.replace(PLACEHOLDER, 'x');
  if (/[{}]/.test(sample)) return 'unbalanced { } in subject';
  if (/[\s*>]/.test(sample)) return 'a subject has no spaces or wildcards (* >)';
  if (sample.split('.').some((token) => token === '')) return 'a subject has no empty tokens (leading, trailing or double dots)';
  return undefined;
}

export type SubjectValues = Partial<Record<SubjectPlaceholder, string>>;

/** Renders a validated template with raw values; each value is sanitised into one token. */
export function renderSubject(template: string, values: SubjectValues): string {
  return template.replace(PLACEHOLDER, (_, name: SubjectPlaceholder) => subjectToken(values[name] ?? ''));
}

/** The subject for each event; a template without placeholders costs nothing per event. */
export function compileSubject(template: string, clusterId: string): (event: SyncEvent) => string {
  const cluster = subjectToken(clusterId);
  const fixed = template.replace(/\{cluster\}/g, cluster);
  if (!PLACEHOLDER.test(fixed)) return () => fixed;
  PLACEHOLDER.lastIndex = 0;
  return (event) => fixed.replace(PLACEHOLDER, (_, name: SubjectPlaceholder) => {
    switch (name) {
      case 'resource': return subjectToken(event.resource.resource);
      case 'type': return event.type;
      case 'namespace': return subjectToken(event.object.metadata.namespace ?? '');
      case 'kind': return subjectToken(event.resource.kind);
      case 'group': return event.resource.group === '' ? CORE_GROUP_TOKEN : subjectToken(event.resource.group);
      case 'version': return subjectToken(event.resource.version);
      default: return EMPTY_TOKEN;
    }
  });
}

/**
 * The subject of the resync markers: the template with {type} set to the marker type and every
 * other per-object placeholder set to `_` (so `meshsync.{cluster}.{resource}.{type}` gives
 * `meshsync.<cluster>._.RESYNC_BEGIN`). A consumer subscribed to `meshsync.<cluster>.>` sees them.
 */
export function markerSubject(template: string, clusterId: string, type: string): string {
  return renderSubject(template, { cluster: clusterId, type });
}

/** Subjects a created JetStream stream binds: each token holding a placeholder becomes `*`. */
export function streamSubjects(template: string): string[] {
  return [template.split('.').map((token) => (/\{[a-z]+\}/.test(token) ? '*' : token)).join('.')];
}
