// Least-privilege RBAC for one meshsync instance, derived from what it is configured to watch.
import { MeshSyncError } from '../../core/errors.ts';
import { parseResourceId } from '../../core/resource.ts';
import type { KubeObject } from './objects.ts';
import { MESHSYNC_RESOURCE } from '../../plugins/meshsync-resource/index.ts';
import { MESHSYNC_GROUP, labels, toYaml } from './objects.ts';

export interface RbacOptions {
  /** Resource ids meshsync lists and watches (`pods.v1.`, `deployments.v1.apps`). */
  readonly resources: readonly string[];
  /** Watch only these namespaces: namespaced resources then get a Role in each instead of cluster-wide access. */
  readonly namespaces?: readonly string[];
  /** Dynamic CRD discovery is on: list/watch customresourcedefinitions. */
  readonly crds?: boolean;
  /** Leader election is on: get/create/update leases in meshsync's namespace. */
  readonly ha?: boolean;
  /** The Lease's name, to limit get/update to it (create cannot be limited by name). */
  readonly leaseName?: string;
  /**
   * The MeshSync custom resource plugin reads its CR and ConfigMap by name (and watches them);
   * `false` when that plugin is off. Default: the plugin's defaults, in `namespace`.
   */
  readonly meshSyncResource?: false | MeshSyncResourceAccess;
  /** meshsync reports its state on the MeshSync CR's status subresource. */
  readonly crStatus?: boolean;
  /** Namespace meshsync runs in (its CR, ConfigMap and leases live there). */
  readonly namespace: string;
  readonly serviceAccount: string;
  /** Name of the RBAC objects (default `meshsync`). */
  readonly name?: string;
  /** Resource ids to treat as cluster-scoped on top of the built-in ones (cluster-scoped CRDs). */
  readonly clusterScoped?: readonly string[];
}

export interface MeshSyncResourceAccess {
  /** Default `meshery-meshsync`. */
  readonly name?: string;
  /** Default: the namespace meshsync runs in. */
  readonly namespace?: string;
  /** Default `meshery-meshsync-config`. */
  readonly configMap?: string;
  /** Watches them for live edits (list/watch limited to the name): default true. */
  readonly watch?: boolean;
}

export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

/** Built-in cluster-scoped resources by `<plural>.<group>`: a Role cannot grant them. */
const CLUSTER_SCOPED = new Set([
  'namespaces.', 'nodes.', 'persistentvolumes.', 'componentstatuses.',
  'storageclasses.storage.k8s.io', 'csidrivers.storage.k8s.io', 'csinodes.storage.k8s.io',
  'volumeattachments.storage.k8s.io', 'volumeattributesclasses.storage.k8s.io',
  'customresourcedefinitions.apiextensions.k8s.io', 'apiservices.apiregistration.k8s.io',
  'clusterroles.rbac.authorization.k8s.io', 'clusterrolebindings.rbac.authorization.k8s.io',
  'ingressclasses.networking.k8s.io', 'ipaddresses.networking.k8s.io', 'servicecidrs.networking.k8s.io',
  'priorityclasses.scheduling.k8s.io', 'runtimeclasses.node.k8s.io',
  'certificatesigningrequests.certificates.k8s.io',
  'mutatingwebhookconfigurations.admissionregistration.k8s.io',
  'validatingwebhookconfigurations.admissionregistration.k8s.io',
  'validatingadmissionpolicies.admissionregistration.k8s.io',
  'validatingadmissionpolicybindings.admissionregistration.k8s.io',
  'flowschemas.flowcontrol.apiserver.k8s.io', 'prioritylevelconfigurations.flowcontrol.apiserver.k8s.io',
]);

const WATCH_VERBS = ['list', 'watch'];

/**
 * One rule per API group, resources sorted and deduplicated (RBAC ignores versions). A configured
 * pattern (`*.v1.apps`, `*.*.example.com`) becomes the same wildcard in RBAC: it is what was asked for.
 */
export function watchRules(resourceIds: Iterable<string>): PolicyRule[] {
  const byGroup = new Map<string, Set<string>>();
  for (const id of resourceIds) {
    const ref = parse(id);
    let set = byGroup.get(ref.group);
    if (!set) byGroup.set(ref.group, (set = new Set()));
    set.add(ref.resource);
  }
  return [...byGroup.keys()].sort().map((group) => {
    const resources = byGroup.get(group)!;
    return { apiGroups: [group], resources: resources.has('*') ? ['*'] : [...resources].sort(), verbs: [...WATCH_VERBS] };
  });
}

const NAME = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?|\*)$/;
const GROUP = /^(|\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)$/;

function parse(id: string): { resource: string; group: string } {
  const ref = parseResourceId(id);
  if (!ref || !NAME.test(ref.resource) || !NAME.test(ref.version) || !GROUP.test(ref.group)) {
    throw new MeshSyncError('MESHSYNC_CONFIG_INVALID', `not a resource id: "${id}" (expected <plural>.<version>.<group>, core group empty: pods.v1.)`);
  }
  return ref;
}

const isPattern = (id: string) => id.split('.').includes('*');

/** Patterns count as cluster-scoped: they may match cluster-scoped resources, which a Role cannot grant. */
function isClusterScoped(id: string, extra: ReadonlySet<string>): boolean {
  if (isPattern(id)) return true;
  const { resource, group } = parse(id);
  return CLUSTER_SCOPED.has(`${resource}.${group}`) || extra.has(id);
}

/** The RBAC objects (ClusterRole, Roles and their bindings) that let meshsync do exactly what it is configured to. */
export function rbacObjects(options: RbacOptions): KubeObject[] {
  const name = options.name ?? 'meshsync';
  const ns = options.namespace;
  const extraClusterScoped = new Set(options.clusterScoped ?? []);
  const watched = options.namespaces?.length ? [...new Set(options.namespaces)].sort() : undefined;
  const resources = [...new Set(options.resources)];
  const clusterWide = watched ? resources.filter((id) => isClusterScoped(id, extraClusterScoped)) : resources;
  const perNamespace = watched ? resources.filter((id) => !isClusterScoped(id, extraClusterScoped)) : [];

  const clusterRules: PolicyRule[] = [
    ...watchRules(clusterWide),
    // The cluster id is kube-system's uid.
    { apiGroups: [''], resources: ['namespaces'], verbs: ['get'], resourceNames: ['kube-system'] },
  ];
  if (options.crds) clusterRules.push({ apiGroups: ['apiextensions.k8s.io'], resources: ['customresourcedefinitions'], verbs: [...WATCH_VERBS] });

  const ownRules: PolicyRule[] = [];
  // create cannot be limited by resourceNames; the Role keeps leases to meshsync's own namespace.
  if (options.ha) {
    ownRules.push(options.leaseName
      ? { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'update'], resourceNames: [options.leaseName] }
      : { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] });
    if (options.leaseName) ownRules.push({ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] });
  }
  // Reading one object by name (a list/watch with a metadata.name field selector) is authorised by resourceNames.
  const resource = options.meshSyncResource === false ? undefined : options.meshSyncResource ?? {};
  const resourceRules: PolicyRule[] = [];
  if (resource) {
    const verbs = resource.watch === false ? ['get'] : ['get', 'list', 'watch'];
    const crName = resource.name ?? 'meshery-meshsync';
    resourceRules.push(
      { apiGroups: [MESHSYNC_GROUP], resources: [MESHSYNC_RESOURCE.resource], verbs, resourceNames: [crName] },
      { apiGroups: [''], resources: ['configmaps'], verbs: [...verbs], resourceNames: [resource.configMap ?? 'meshery-meshsync-config'] },
    );
    if (options.crStatus) resourceRules.push({ apiGroups: [MESHSYNC_GROUP], resources: [`${MESHSYNC_RESOURCE.resource}/status`], verbs: ['get', 'update', 'patch'], resourceNames: [crName] });
  }
  const resourceNs = resource?.namespace ?? ns;
  if (resourceNs === ns) ownRules.unshift(...resourceRules);

  const subject = { kind: 'ServiceAccount', name: options.serviceAccount, namespace: ns };
  const objects: KubeObject[] = [
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name, labels: labels() }, rules: clusterRules },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name, labels: labels() },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name }, subjects: [subject],
    },
    ...(ownRules.length ? roleWithBinding(name, ns, ownRules, subject) : []),
    ...(resourceNs !== ns && resourceRules.length ? roleWithBinding(name, resourceNs, resourceRules, subject) : []),
  ];
  if (watched && perNamespace.length) {
    const rules = watchRules(perNamespace);
    for (const watchedNs of watched) objects.push(...roleWithBinding(`${name}-watch`, watchedNs, rules, subject));
  }
  return objects;
}

function roleWithBinding(name: string, namespace: string, rules: PolicyRule[], subject: object): KubeObject[] {
  return [
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name, namespace, labels: labels() }, rules: structuredClone(rules) },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name, namespace, labels: labels() },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name }, subjects: [{ ...subject }],
    },
  ];
}

/** The RBAC objects as multi-document YAML. */
export function renderRbac(options: RbacOptions): string {
  return toYaml(rbacObjects(options));
}
