// Status objects shaped exactly like kube-apiserver's error bodies, so clients
// exercise their real error-handling paths (reason/code/details).

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  uid?: string;
  causes?: { reason?: string; message?: string; field?: string }[];
  retryAfterSeconds?: number;
}

export interface Status {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, unknown>;
  status: 'Success' | 'Failure';
  message?: string;
  reason?: string;
  details?: StatusDetails;
  code: number;
}

/** Thrown by the programmatic API and turned into an HTTP Status by the server. */
export class KubeApiError extends Error {
  readonly status: Status;
  constructor(code: number, reason: string, message: string, details?: StatusDetails) {
    super(message);
    this.name = 'KubeApiError';
    this.status = {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message,
      reason,
      ...(details ? { details: withoutEmptyGroup(details) } : {}),
      code,
    };
  }
  get code(): number {
    return this.status.code;
  }
  get reason(): string {
    return this.status.reason ?? '';
  }
}

/** The core group is `""`, which Go's omitempty leaves out of a Status's details. */
function withoutEmptyGroup({ group, ...rest }: StatusDetails): StatusDetails {
  return group ? { group, ...rest } : rest;
}

/** `pods "x"` or `pods.apps "x"`: how the real server names a resource in messages. */
function qualified(plural: string, group: string): string {
  return group ? `${plural}.${group}` : plural;
}

export const errors = {
  notFound: (plural: string, group: string, name: string) =>
    new KubeApiError(404, 'NotFound', `${qualified(plural, group)} "${name}" not found`, { name, group, kind: plural }),
  alreadyExists: (plural: string, group: string, name: string) =>
    new KubeApiError(409, 'AlreadyExists', `${qualified(plural, group)} "${name}" already exists`, { name, group, kind: plural }),
  conflict: (plural: string, group: string, name: string) =>
    new KubeApiError(
      409,
      'Conflict',
      `Operation cannot be fulfilled on ${qualified(plural, group)} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
      { name, group, kind: plural },
    ),
  badRequest: (message: string) => new KubeApiError(400, 'BadRequest', message),
  invalid: (kind: string, group: string, name: string, field: string, detail: string) =>
    new KubeApiError(422, 'Invalid', `${kind} "${name}" is invalid: ${field}: ${detail}`, {
      name,
      group,
      kind,
      causes: [{ reason: 'FieldValueRequired', message: detail, field }],
    }),
  /** What the server answers to sendInitialEvents without resourceVersionMatch=NotOlderThan. */
  watchListNeedsMatch: () => {
    const detail = 'sendInitialEvents requires setting resourceVersionMatch to NotOlderThan';
    return new KubeApiError(422, 'Invalid', `ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: ${detail}`, {
      group: 'meta.k8s.io',
      kind: 'ListOptions',
      causes: [{ reason: 'FieldValueForbidden', message: `Forbidden: ${detail}`, field: 'resourceVersionMatch' }],
    });
  },
  /** A field selector on a field the resource does not index. */
  fieldLabelNotSupported: (resource: string, labelSelector: string, fieldSelector: string, label: string) =>
    new KubeApiError(400, 'BadRequest', `Unable to find "${resource}" that match label selector "${labelSelector}", field selector "${fieldSelector}": field label not supported: ${label}`),
  /** What a server without the WatchList feature answers to a watch with sendInitialEvents. */
  watchListForbidden: () => {
    const detail = 'sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled';
    return new KubeApiError(422, 'Invalid', `ListOptions.meta.k8s.io "" is invalid: sendInitialEvents: Forbidden: ${detail}`, {
      group: 'meta.k8s.io',
      kind: 'ListOptions',
      causes: [{ reason: 'FieldValueForbidden', message: `Forbidden: ${detail}`, field: 'sendInitialEvents' }],
    });
  },
  expired: (message: string) => new KubeApiError(410, 'Expired', message),
  methodNotAllowed: () => new KubeApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource'),
  notAcceptable: (accept: string) =>
    new KubeApiError(406, 'NotAcceptable', `only the following media types are accepted: application/json (got ${accept})`),
  unsupportedMediaType: (type: string) =>
    new KubeApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml (got ${type})`),
  pathNotFound: () => new KubeApiError(404, 'NotFound', 'the server could not find the requested resource'),
  forbidden: (user: string, verb: string, plural: string, group: string, namespace: string | undefined) =>
    new KubeApiError(
      403,
      'Forbidden',
      `${qualified(plural, group)} is forbidden: User "${user}" cannot ${verb} resource "${plural}" in API group "${group}" ${
        namespace ? `in the namespace "${namespace}"` : 'at the cluster scope'
      }`,
      { group, kind: plural },
    ),
  internal: (message: string, retryAfterSeconds?: number) =>
    new KubeApiError(500, 'InternalError', `Internal error occurred: ${message}`, retryAfterSeconds === undefined ? undefined : { retryAfterSeconds }),
  /** What API Priority and Fairness answers when a request is rejected: 429 with Retry-After. */
  tooManyRequests: (retryAfterSeconds = 1) =>
    new KubeApiError(429, 'TooManyRequests', 'Too many requests, please try again later.', { retryAfterSeconds }),
  serviceUnavailable: (retryAfterSeconds?: number) =>
    new KubeApiError(503, 'ServiceUnavailable', 'the server is currently unable to handle the request', retryAfterSeconds === undefined ? undefined : { retryAfterSeconds }),
};
