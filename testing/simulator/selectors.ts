// Label and field selectors with the grammar and semantics of apimachinery's
// labels.Parse / fields.ParseSelector (as far as clients actually use them).
import { errors } from './errors.ts';

type LabelOp = 'eq' | 'ne' | 'in' | 'notin' | 'exists' | '!exists' | 'gt' | 'lt';
interface LabelReq {
  key: string;
  op: LabelOp;
  values: string[];
}
export type Matcher = (obj: any) => boolean;

const MATCH_ALL: Matcher = () => true;

/** Split on commas that are not inside `( )`. */
function splitTopLevel(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out.map((x) => x.trim()).filter((x) => x !== '');
}

function parseLabelReq(raw: string): LabelReq {
  let m: RegExpExecArray | null;
  if ((m = /^!\s*([^\s!=<>(),]+)$/.exec(raw))) return { key: m[1], op: '!exists', values: [] };
  if ((m = /^([^\s!=<>(),]+)\s+(in|notin)\s*\(([^)]*)\)$/.exec(raw))) {
    return { key: m[1], op: m[2] as LabelOp, values: m[3].split(',').map((v) => v.trim()) };
  }
  if ((m = /^([^\s!=<>(),]+)\s*(==|=|!=|>|<)\s*([^\s!=<>(),]*)$/.exec(raw))) {
    const op = ({ '=': 'eq', '==': 'eq', '!=': 'ne', '>': 'gt', '<': 'lt' } as const)[m[2] as '=' | '==' | '!=' | '>' | '<'];
    return { key: m[1], op, values: [m[3]] };
  }
  if ((m = /^([^\s!=<>(),]+)$/.exec(raw))) return { key: m[1], op: 'exists', values: [] };
  throw errors.badRequest(`unable to parse requirement: found '${raw}', expected: in, notin, =, ==, !=, gt, lt`);
}

function labelReqMatches(r: LabelReq, labels: Record<string, string>): boolean {
  const has = Object.prototype.hasOwnProperty.call(labels, r.key);
  const v = labels[r.key];
  switch (r.op) {
    case 'eq':
      return has && v === r.values[0];
    case 'ne':
      return !has || v !== r.values[0];
    case 'in':
      return has && r.values.includes(v);
    case 'notin':
      return !has || !r.values.includes(v);
    case 'exists':
      return has;
    case '!exists':
      return !has;
    case 'gt':
      return has && Number(v) > Number(r.values[0]);
    case 'lt':
      return has && Number(v) < Number(r.values[0]);
  }
}

export function parseLabelSelector(s: string | null | undefined): Matcher {
  if (!s || !s.trim()) return MATCH_ALL;
  const reqs = splitTopLevel(s).map(parseLabelReq);
  return (obj) => {
    const labels = obj?.metadata?.labels ?? {};
    return reqs.every((r) => labelReqMatches(r, labels));
  };
}

/** Field value the way the server's field sets render it: a string, '' when absent. */
function fieldValue(obj: any, path: string): string {
  let cur = obj;
  for (const part of path.split('.')) {
    if (cur == null || typeof cur !== 'object') return '';
    cur = cur[part];
  }
  return cur == null || typeof cur === 'object' ? '' : String(cur);
}

export function parseFieldSelector(s: string | null | undefined): Matcher {
  if (!s || !s.trim()) return MATCH_ALL;
  const reqs = splitTopLevel(s).map((raw) => {
    const m = /^([^=!]+?)\s*(==|=|!=)\s*(.*)$/.exec(raw);
    if (!m) throw errors.badRequest(`invalid selector: '${s}'; can't understand '${raw}'`);
    return { path: m[1].trim(), neg: m[2] === '!=', value: m[3].trim() };
  });
  return (obj) => reqs.every((r) => (fieldValue(obj, r.path) === r.value) !== r.neg);
}

/** Fields each resource indexes for field selectors beyond metadata.name and metadata.namespace (kube-apiserver's field label conversions), by group-resource. */
const FIELD_LABELS: Record<string, readonly string[]> = {
  pods: ['spec.nodeName', 'spec.restartPolicy', 'spec.schedulerName', 'spec.serviceAccountName', 'spec.hostNetwork', 'status.phase', 'status.podIP', 'status.podIPs', 'status.nominatedNodeName'],
  secrets: ['type'],
  nodes: ['spec.unschedulable'],
  namespaces: ['status.phase'],
  events: ['involvedObject.kind', 'involvedObject.namespace', 'involvedObject.name', 'involvedObject.uid', 'involvedObject.apiVersion', 'involvedObject.resourceVersion', 'involvedObject.fieldPath', 'reason', 'reportingComponent', 'source', 'type'],
  replicationcontrollers: ['status.replicas'],
  'jobs.batch': ['status.successful'],
  'certificatesigningrequests.certificates.k8s.io': ['spec.signerName'],
};

/** The first field of a field selector that the resource does not index, if any (the server answers 400 to it). */
export function unsupportedFieldLabel(resource: { gr: string }, fieldSelector: string | null | undefined): string | undefined {
  if (!fieldSelector || !fieldSelector.trim()) return undefined;
  const supported = FIELD_LABELS[resource.gr] ?? [];
  for (const raw of splitTopLevel(fieldSelector)) {
    const label = /^([^=!]+?)\s*(==|=|!=)/.exec(raw)?.[1].trim();
    if (label && label !== 'metadata.name' && label !== 'metadata.namespace' && !supported.includes(label)) return label;
  }
  return undefined;
}

/** A matcher for both selectors; `undefined` when neither filters anything (lets callers skip work). */
export function parseSelectors(labelSelector?: string | null, fieldSelector?: string | null): Matcher | undefined {
  const l = parseLabelSelector(labelSelector);
  const f = parseFieldSelector(fieldSelector);
  if (l === MATCH_ALL && f === MATCH_ALL) return undefined;
  if (l === MATCH_ALL) return f;
  if (f === MATCH_ALL) return l;
  return (obj) => l(obj) && f(obj);
}
