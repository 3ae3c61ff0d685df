/**
 * The broker a MeshSync custom resource names, resolved as the Meshery operator resolves it
 * (meshery-operator pkg/broker: GetEndpoint, DeriveEndpoint): `spec.broker.native` wins over
 * `spec.broker.custom.url`; a native broker is the client port of the Service `meshery-nats` in
 * the Broker's namespace, at its ClusterIP inside the cluster, at its load balancer (or node port)
 * outside it.
 */
import type { KubeObject } from '../../core/index.ts';
import { KubeRequestError, type KubeClient } from '../../kubernetes/index.ts';

/** The Service the Meshery operator runs NATS behind, whatever the Broker is named. */
export const NATS_SERVICE = 'meshery-nats';
const NATS_CLIENT_PORT = 4222;

export type BrokerSpec = { readonly native: { readonly name: string; readonly namespace: string } } | { readonly custom: string };

function nonEmpty(value: unknown): string | undefined {
  return typeof value === 'string' && value.trim() !== '' ? value.trim() : undefined;
}

/** `spec.broker` of the CR; native first, as the operator reads it. */
export function brokerSpecOf(cr: KubeObject | undefined): BrokerSpec | undefined {
  const broker = (cr?.spec as { broker?: { native?: { name?: unknown; namespace?: unknown }; custom?: { url?: unknown } } } | undefined)?.broker;
  const name = nonEmpty(broker?.native?.name);
  const namespace = nonEmpty(broker?.native?.namespace);
  if (name !== undefined && namespace !== undefined) return { native: { name, namespace } };
  const custom = nonEmpty(broker?.custom?.url);
  return custom === undefined ? undefined : { custom };
}

interface ServicePort { name?: string; port?: number; nodePort?: number }
interface ServiceShape {
  metadata: { name: string; namespace?: string };
  spec?: { type?: string; clusterIP?: string; ports?: ServicePort[] };
  status?: { loadBalancer?: { ingress?: { ip?: string; hostname?: string }[] } };
}

/** The NATS client port: named `client` or `nats`, or 4222, else the first (the operator's clientServicePort). */
function clientPort(service: ServiceShape): ServicePort | undefined {
  const ports = service.spec?.ports ?? [];
  return ports.find((port) => port.name === 'client' || port.name === 'nats' || port.port === NATS_CLIENT_PORT) ?? ports[0];
}

/** host:port as the operator derives them from the Service: `internal` always, `external` once the Service exposes one. */
export function serviceEndpoints(service: ServiceShape, apiServer: string | undefined): { internal?: string; external?: string } {
  const port = clientPort(service);
  if (port?.port === undefined) return {};
  const clusterIP = service.spec?.clusterIP;
  const internalHost = clusterIP && clusterIP !== 'None' ? clusterIP : `${service.metadata.name}.${service.metadata.namespace}.svc.cluster.local`;
  const out: { internal?: string; external?: string } = { internal: joinHostPort(internalHost, port.port) };
  if (service.spec?.type === 'LoadBalancer') {
    const ingress = service.status?.loadBalancer?.ingress?.find((entry) => entry.ip || entry.hostname);
    const host = ingress?.ip || ingress?.hostname;
    if (host) out.external = joinHostPort(host, port.port);
  } else if (service.spec?.type === 'NodePort' && port.nodePort && apiServer) {
    out.external = joinHostPort(new URL(apiServer).hostname, port.nodePort);
  }
  return out;
}

function joinHostPort(host: string, port: number): string {
  return `${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${port}`;
}

export interface ResolveContext {
  readonly client: KubeClient;
  /** True in a pod (ClusterIPs are reachable): the internal endpoint is used, else the external one. */
  readonly inPod: boolean;
  /** The API server URL (a NodePort Service is reached at its host). */
  readonly apiServer?: string;
  readonly signal?: AbortSignal;
}

export type Resolution = { readonly url: string; readonly via: string } | { readonly url?: undefined; readonly problem: string };

/** The URL of the broker a CR names, or why there is none to use. Never throws. */
export async function resolveBroker(spec: BrokerSpec, context: ResolveContext): Promise<Resolution> {
  if ('custom' in spec) return { url: spec.custom, via: 'spec.broker.custom.url' };
  const { namespace, name } = spec.native;
  const dnsName = `nats://${NATS_SERVICE}.${namespace}.svc.cluster.local:${NATS_CLIENT_PORT}`;
  let service: ServiceShape | undefined;
  try {
    // A list narrowed to one name: the list permission meshsync has to watch Services covers it, a get would need its own.
    const list = await context.client.get<{ items: ServiceShape[] }>(`/api/v1/namespaces/${encodeURIComponent(namespace)}/services?fieldSelector=${encodeURIComponent(`metadata.name=${NATS_SERVICE}`)}`, { signal: context.signal });
    service = list.items[0];
  } catch (error) {
    const reason = error instanceof KubeRequestError ? error.reason : 'error';
    if (context.inPod) return { url: dnsName, via: `the Service's DNS name (cannot read Service ${namespace}/${NATS_SERVICE}: ${reason})` };
    return { problem: `cannot read Service ${namespace}/${NATS_SERVICE} of the native broker ${namespace}/${name}: ${(error as Error).message}` };
  }
  if (service === undefined) {
    if (context.inPod) return { url: dnsName, via: `the Service's DNS name (no Service ${namespace}/${NATS_SERVICE} yet)` };
    return { problem: `the native broker ${namespace}/${name} has no Service ${namespace}/${NATS_SERVICE}` };
  }
  const endpoints = serviceEndpoints(service, context.apiServer);
  const hostPort = context.inPod ? endpoints.internal : endpoints.external ?? endpoints.internal;
  if (hostPort === undefined) return { problem: `Service ${namespace}/${NATS_SERVICE} of the native broker ${namespace}/${name} has no port` };
  const via = context.inPod || endpoints.external === undefined ? `Service ${namespace}/${NATS_SERVICE}, internal endpoint` : `Service ${namespace}/${NATS_SERVICE}, external endpoint`;
  return { url: `nats://${hostPort}`, via };
}
