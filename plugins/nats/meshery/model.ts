/**
 * A Kubernetes object as MeshSync's `KubernetesResource` model (meshsync pkg/model), written as Go
 * MeshSync's `ParseList` + `json.Marshal` write it: the struct's field order and omitempty, labels
 * and annotations as key-sorted rows, spec/status/data as the raw text of a sorted-key encode.
 * The quirks Meshery Server depends on are kept; the choices are listed in
 * website/docs/meshery.md ("What differs from Go MeshSync").
 */
import type { EventType, KubeObject } from '../../../core/index.ts';
import { goJson, goRaw, goString, sortedKeys } from './gojson.ts';

/** The label Meshery puts on what a design deployed (meshkit orchestration.ResourceSourceDesignIdLabelKey). */
export const DESIGN_ID_LABEL = 'design.meshery.io/id';

const str = (value: unknown): string => (typeof value === 'string' ? value : '');
const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
const isInt = (value: unknown): value is number => typeof value === 'number' && Number.isInteger(value);

/** The `KubernetesResource` JSON of one object for one event type. */
export function kubernetesResource(object: KubeObject, type: EventType, clusterId: string): string {
  const out: string[] = [];
  out.push(`{"id":"","apiVersion":${goString(str(object.apiVersion))},"kind":${goString(str(object.kind))},"model":"","metadata":${objectMeta(object.metadata)}`);
  // Go MeshSync dereferences a spec/status that is not an object and panics; here it is left out.
  if (isRecord(object.spec)) out.push(`,"spec":${attributeOf(object.spec)}`);
  if (isRecord(object.status)) out.push(`,"status":${attributeOf(object.status)}`);
  out.push(`,"cluster_id":${goString(clusterId)},"pattern_resource":${patternResource(object.metadata?.labels)}`);
  out.push(`,"component_metadata":${object.kind === 'Service' && type !== 'DELETED' ? serviceMetadata(object) : 'null'}`);
  for (const key of ['immutable', 'data', 'binaryData', 'stringData', 'type'] as const) {
    if (!(key in object) || object[key] === undefined) continue;
    const raw = goRaw(object[key]);
    if (raw !== '') out.push(`,${goString(key)}:${goString(raw)}`);
  }
  out.push('}');
  return out.join('');
}

/**
 * `{id, attribute}`: the raw sorted-key text of the spec. Go decodes the spec into this struct
 * first, so a string `id` key of the spec itself (any case; the last in key order wins) becomes
 * the row's id: kept, since Meshery overwrites ids anyway.
 */
function attributeOf(value: Record<string, unknown>): string {
  let id = '';
  for (const key of sortedKeys(value)) if (key.toLowerCase() === 'id' && typeof value[key] === 'string') id = value[key];
  return `{"id":${goString(id)},"attribute":${goString(goJson(value))}}`;
}

function objectMeta(meta: KubeObject['metadata'] | undefined): string {
  const m = (meta ?? {}) as Record<string, unknown>;
  const out: string[] = ['{"id":""'];
  const optional = (key: string) => {
    const value = str(m[key]);
    if (value !== '') out.push(`,"${key}":${goString(value)}`);
  };
  optional('name');
  optional('generateName');
  optional('namespace');
  optional('selfLink');
  out.push(`,"uid":${goString(str(m.uid))}`);
  optional('resourceVersion');
  // int64 fields: Go skips a value that is not an integer (a type error it ignores).
  if (isInt(m.generation) && m.generation !== 0) out.push(`,"generation":${m.generation}`);
  optional('creationTimestamp');
  optional('deletionTimestamp');
  if (isInt(m.deletionGracePeriodSeconds)) out.push(`,"deletionGracePeriodSeconds":${m.deletionGracePeriodSeconds}`);
  const labels = keyValues(m.labels, 'label');
  if (labels) out.push(`,"labels":${labels}`);
  const annotations = keyValues(m.annotations, 'annotation');
  if (annotations) out.push(`,"annotations":${annotations}`);
  for (const key of ['ownerReferences', 'finalizers'] as const) {
    if (m[key] !== undefined) out.push(`,"${key}":${goString(goJson(m[key]))}`);
  }
  out.push(',"cluster_id":""}');
  return out.join('');
}

/**
 * Rows `{"id":"","unique_id":"","kind":K,"key":k,"value":v}` in key order. The value is the raw
 * JSON string body, escapes kept (a quirk: `a&b` is stored as `a\u0026b`), as Meshery has always
 * stored it; empty keys and values are omitted, as Go's omitempty does.
 */
function keyValues(map: unknown, kind: 'label' | 'annotation'): string | undefined {
  if (!isRecord(map)) return undefined;
  const rows: string[] = [];
  for (const key of sortedKeys(map)) {
    if (map[key] === undefined) continue;
    const value = goRaw(map[key]);
    rows.push(`{"id":"","unique_id":"","kind":"${kind}"${key === '' ? '' : `,"key":${goString(key)}`}${value === '' ? '' : `,"value":${goString(value)}`}}`);
  }
  return rows.length === 0 ? undefined : `[${rows.join(',')}]`;
}

/**
 * Go MeshSync reads the design label's raw bytes as a 16-byte UUID (uuid.FromBytes), so a normal
 * 36-character id becomes the nil UUID. Kept: Meshery filters on this column, and a changed value
 * would move resources between designs in its database.
 */
function patternResource(labels: unknown): string {
  if (!isRecord(labels) || !(DESIGN_ID_LABEL in labels) || labels[DESIGN_ID_LABEL] === undefined) return 'null';
  const bytes = Buffer.from(goRaw(labels[DESIGN_ID_LABEL]), 'utf8');
  if (bytes.length !== 16) return '"00000000-0000-0000-0000-000000000000"';
  const hex = bytes.toString('hex');
  return `"${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}"`;
}

/**
 * meshkit's GetEndpoint with empty options, as Go MeshSync's Service processor calls it: the last
 * port, the cluster IP inside, `localhost:<nodePort>` or the load balancer outside; Meshery turns
 * these URLs into Grafana/Prometheus connections. Unlike Go MeshSync, no TCP dial is made to a load
 * balancer address (an unreachable one left Go's field null); its URL is listed.
 */
export function serviceMetadata(object: KubeObject): string {
  const spec = isRecord(object.spec) ? object.spec : {};
  const ports = Array.isArray(spec.ports) ? spec.ports.filter(isRecord) : [];
  const last = ports[ports.length - 1];
  const port = isInt(last?.port) ? last.port : 0;
  const nodePort = isInt(last?.nodePort) ? last.nodePort : 0;
  const clusterIP = str(spec.clusterIP);
  let external = { address: 'localhost', port: nodePort };
  const status = isRecord(object.status) ? object.status : {};
  const loadBalancer = isRecord(status.loadBalancer) ? status.loadBalancer : {};
  const ingress = Array.isArray(loadBalancer.ingress) && isRecord(loadBalancer.ingress[0]) ? loadBalancer.ingress[0] : undefined;
  if (ingress && Object.keys(ingress).length > 0) {
    const ip = str(ingress.ip);
    if (ip === '') external = { address: str(ingress.hostname), port };
    else if (ip === clusterIP || ip === '<pending>') external = { address: clusterIP, port };
    else external = { address: ip, port };
  }
  const urls: string[] = [];
  for (const endpoint of external.port === 0 ? [{ address: clusterIP, port }] : [external, { address: clusterIP, port }]) {
    // A headless Service's cluster IP is "None".
    if (endpoint.address.toLowerCase().includes('none')) continue;
    urls.push(goString(`${endpoint.port === 443 ? 'https' : 'http'}://${endpoint.address}:${endpoint.port}`));
  }
  return `{"capabilities":{"connection":true,"urls":[${urls.join(',')}]}}`;
}
