/** The in-cluster URL of a Service, as its DNS name resolves inside the cluster. */
export function serviceUrl(scheme: string, service: { readonly name: string; readonly namespace: string }, port: number): string {
  return `${scheme}://${service.name}.${service.namespace}.svc.cluster.local:${port}`;
}
