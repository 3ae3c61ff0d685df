// Decoder for Kubernetes protobuf request bodies (what kubectl's typed commands
// send), driven by the field-number table in the shared fixtures. Only decoding:
// responses are always JSON, which every client accepts.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { errors } from './errors.ts';

/** [number, name, type, 0 = singular | 1 = repeated | 2 = map<string, type>] */
type FieldSpec = [number, string, string, 0 | 1 | 2];
type Table = Record<string, FieldSpec[]>;

export const PROTOBUF_MEDIA_TYPE = 'application/vnd.kubernetes.protobuf';
const MAGIC = [0x6b, 0x38, 0x73, 0x00]; // "k8s\0"

const META = 'k8s.io.apimachinery.pkg.apis.meta.v1.';
const TIME = `${META}Time`;
const MICRO_TIME = `${META}MicroTime`;
const QUANTITY = 'k8s.io.apimachinery.pkg.api.resource.Quantity';
const INT_OR_STRING = 'k8s.io.apimachinery.pkg.util.intstr.IntOrString';
const RAW_EXTENSION = 'k8s.io.apimachinery.pkg.runtime.RawExtension';
const FIELDS_V1 = `${META}FieldsV1`;

// Go's gogo-proto writes non-pointer zero values; JSON omits them (omitempty).
// Without pointer information we drop zero scalars except on fields that are
// pointers in the Go types and where 0/false means something.
const KEEP_ZERO = new Set([
  'DeploymentSpec.replicas', 'ReplicaSetSpec.replicas', 'StatefulSetSpec.replicas', 'ReplicationControllerSpec.replicas',
  '*.runAsUser', '*.runAsGroup', '*.fsGroup', '*.runAsNonRoot', '*.readOnlyRootFilesystem', '*.privileged',
  '*.allowPrivilegeEscalation', '*.automountServiceAccountToken', '*.terminationGracePeriodSeconds', '*.activeDeadlineSeconds',
  'JobSpec.parallelism', 'JobSpec.completions', 'JobSpec.backoffLimit', '*.suspend', '*.immutable', '*.optional',
  '*.revisionHistoryLimit', '*.progressDeadlineSeconds',
]);

class Reader {
  pos = 0;
  constructor(readonly buf: Buffer, start = 0, readonly end = buf.length) {
    this.pos = start;
  }
  done(): boolean {
    return this.pos >= this.end;
  }
  varint(): bigint {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (this.pos >= this.end) throw errors.badRequest('truncated protobuf varint');
      const b = this.buf[this.pos++];
      result |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return result;
      shift += 7n;
    }
  }
  bytes(): Buffer {
    const len = Number(this.varint());
    if (this.pos + len > this.end) throw errors.badRequest('truncated protobuf field');
    const out = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }
  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) this.bytes();
    else if (wire === 5) this.pos += 4;
    else throw errors.badRequest(`unsupported protobuf wire type ${wire}`);
  }
}

export class ProtobufDecoder {
  private readonly table: Table;
  private readonly byKind = new Map<string, string>();

  constructor(fixturesDir: string) {
    this.table = JSON.parse(readFileSync(join(fixturesDir, 'protobuf', 'field-numbers.json'), 'utf8'));
    // `k8s.io.api.<pkg>.<version>.<Kind>` indexed by `<version>/<Kind>` lists; the group picks among them.
    for (const name of Object.keys(this.table)) {
      const m = /^k8s\.io\.api\.([^.]+)\.([^.]+)\.([^.]+)$/.exec(name);
      if (m) this.byKind.set(`${m[1]}/${m[2]}/${m[3]}`, name);
    }
  }

  /** Decodes a `k8s\0` + runtime.Unknown body into a JSON object with kind/apiVersion. */
  decode(body: Buffer): any {
    if (body.length < 4 || MAGIC.some((b, i) => body[i] !== b)) throw errors.badRequest('protobuf body without the k8s magic prefix');
    const r = new Reader(body, 4);
    let apiVersion = '';
    let kind = '';
    let raw: Buffer | undefined;
    while (!r.done()) {
      const tag = Number(r.varint());
      const field = tag >> 3;
      if (field === 1 && (tag & 7) === 2) {
        const t = new Reader(r.bytes());
        while (!t.done()) {
          const ttag = Number(t.varint());
          if (ttag >> 3 === 1) apiVersion = t.bytes().toString('utf8');
          else if (ttag >> 3 === 2) kind = t.bytes().toString('utf8');
          else t.skip(ttag & 7);
        }
      } else if (field === 2 && (tag & 7) === 2) raw = r.bytes();
      else r.skip(tag & 7);
    }
    if (!raw) throw errors.badRequest('protobuf body without raw object');
    const message = this.messageFor(apiVersion, kind);
    const obj = this.message(raw, message);
    return { kind, apiVersion, ...obj };
  }

  private messageFor(apiVersion: string, kind: string): string {
    const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
    const pkg = group === '' ? 'core' : group.split('.')[0];
    const name = this.byKind.get(`${pkg}/${version}/${kind}`);
    if (!name) throw errors.unsupportedMediaType(`${PROTOBUF_MEDIA_TYPE} for ${apiVersion} ${kind}`);
    return name;
  }

  private message(buf: Buffer, type: string): any {
    switch (type) {
      case TIME:
      case MICRO_TIME:
        return this.time(buf, type === MICRO_TIME);
      case QUANTITY:
        return this.plain(buf, type).string ?? '0';
      case INT_OR_STRING: {
        const v = this.plain(buf, type);
        return Number(v.type ?? 0) === 1 ? (v.strVal ?? '') : (v.intVal ?? 0);
      }
      case RAW_EXTENSION:
      case FIELDS_V1: {
        const b = this.rawBytes(buf);
        try {
          return JSON.parse(b.toString('utf8'));
        } catch {
          return b.toString('base64');
        }
      }
    }
    return prune(this.plain(buf, type), type.slice(type.lastIndexOf('.') + 1));
  }

  private rawBytes(buf: Buffer): Buffer {
    const r = new Reader(buf);
    while (!r.done()) {
      const tag = Number(r.varint());
      if (tag >> 3 === 1 && (tag & 7) === 2) return r.bytes();
      r.skip(tag & 7);
    }
    return Buffer.alloc(0);
  }

  private time(buf: Buffer, micro: boolean): string | null {
    const v = this.plain(buf, TIME);
    if (v.seconds === undefined && v.nanos === undefined) return null;
    const d = new Date(Number(v.seconds ?? 0) * 1000 + Math.floor(Number(v.nanos ?? 0) / 1e6));
    const iso = d.toISOString();
    return micro ? iso.replace(/\.(\d{3})Z$/, (_, ms) => `.${ms}${String(Math.floor(Number(v.nanos ?? 0) / 1000) % 1000).padStart(3, '0')}Z`) : iso.replace(/\.\d{3}Z$/, 'Z');
  }

  /** Field-by-field decode, no post-processing. */
  private plain(buf: Buffer, type: string): Record<string, any> {
    const fields = this.table[type];
    if (!fields) throw errors.badRequest(`unknown protobuf message ${type}`);
    const byNumber = new Map(fields.map((f) => [f[0], f]));
    const out: Record<string, any> = {};
    const r = new Reader(buf);
    while (!r.done()) {
      const tag = Number(r.varint());
      const wire = tag & 7;
      const spec = byNumber.get(tag >> 3);
      if (!spec) {
        r.skip(wire);
        continue;
      }
      const [, name, ftype, mode] = spec;
      if (mode === 2) {
        const [k, v] = this.mapEntry(r.bytes(), ftype);
        (out[name] ??= {})[k] = v;
      } else if (mode === 1) {
        const list = (out[name] ??= []);
        if (wire === 2 && isPackable(ftype)) {
          const packed = new Reader(r.bytes());
          while (!packed.done()) list.push(this.scalar(packed, 0, ftype));
        } else list.push(this.value(r, wire, ftype));
      } else out[name] = this.value(r, wire, ftype);
    }
    return out;
  }

  private mapEntry(buf: Buffer, valueType: string): [string, any] {
    const r = new Reader(buf);
    let key = '';
    let value: any = valueType === 'string' ? '' : undefined;
    while (!r.done()) {
      const tag = Number(r.varint());
      if (tag >> 3 === 1) key = r.bytes().toString('utf8');
      else if (tag >> 3 === 2) value = this.value(r, tag & 7, valueType);
      else r.skip(tag & 7);
    }
    return [key, value];
  }

  private value(r: Reader, wire: number, type: string): any {
    if (isScalar(type)) return this.scalar(r, wire, type);
    return this.message(r.bytes(), type);
  }

  private scalar(r: Reader, wire: number, type: string): any {
    switch (type) {
      case 'string':
        return r.bytes().toString('utf8');
      case 'bytes':
        return r.bytes().toString('base64');
      case 'bool':
        return r.varint() !== 0n;
      case 'int32':
        return Number(BigInt.asIntN(32, r.varint()));
      case 'int64':
        return Number(BigInt.asIntN(64, r.varint()));
      default:
        r.skip(wire);
        return undefined;
    }
  }
}

const isScalar = (t: string) => t === 'string' || t === 'bytes' || t === 'bool' || t === 'int32' || t === 'int64';
const isPackable = (t: string) => t === 'bool' || t === 'int32' || t === 'int64';

/** Drop what Go's JSON encoding would omit (see KEEP_ZERO). */
function prune(obj: Record<string, any>, message: string): Record<string, any> {
  for (const [k, v] of Object.entries(obj)) {
    const empty =
      v === null ||
      v === undefined ||
      v === '' ||
      (Array.isArray(v) && v.length === 0) ||
      (typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0 && k !== 'emptyDir') ||
      ((v === 0 || v === false) && !KEEP_ZERO.has(`${message}.${k}`) && !KEEP_ZERO.has(`*.${k}`));
    if (empty) delete obj[k];
  }
  return obj;
}
