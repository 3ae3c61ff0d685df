/** The resources MeshSync watches by default (its docs list these fifteen). */
export const DEFAULT_RESOURCES: readonly string[] = Object.freeze([
  'namespaces.v1.',
  'pods.v1.',
  'services.v1.',
  'deployments.v1.apps',
  'statefulsets.v1.apps',
  'daemonsets.v1.apps',
  'replicasets.v1.apps',
  'configmaps.v1.',
  'secrets.v1.',
  'ingresses.v1.networking.k8s.io',
  'endpoints.v1.',
  'persistentvolumes.v1.',
  'persistentvolumeclaims.v1.',
  'storageclasses.v1.storage.k8s.io',
  'nodes.v1.',
]);
