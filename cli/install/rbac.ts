// Least-privilege RBAC for one meshsync instance, derived from what it is configured to watch.
import { MeshSyncError } from '../../core/errors.ts';
import { parseResourceId } from '../../core/resource.ts';
import { defaultPluginEntries } from '../../config/load.ts';
import type { KubeObject } from './objects.ts';
import { kubernetesOptions } from '../../plugins/kubernetes/index.ts';
import { leaderElectionOptions, PLUGIN_NAME as LEADER_ELECTION } from '../../plugins/leader-election/index.ts';
import { MESHSYNC_RESOURCE, meshsyncResourceOptions, PLUGIN_NAME as MESHSYNC_RESOURCE_PLUGIN } from '../../plugins/meshsync-resource/index.ts';
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
export const CLUSTER_SCOPED: ReadonlySet<string> = new Set([
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

export const WATCH_VERBS: readonly string[] = ['list', 'watch'];

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

/**
 * What the RBAC grants and when, as data: `rbacObjects` (meshsync rbac, meshsync install) applies
 * it, and scripts/deploy-generate.ts writes it into the Helm chart, whose templates apply the same
 * table to the chart's values. A rule for a plugin is written here once, for both.
 */
export interface RbacFact {
  readonly fact: string;
  readonly plugin: string;
  /** The option it reads; none: the fact is whether the plugin is listed. */
  readonly option?: string;
  /** Its value when the plugin is listed without the option. */
  readonly listed: string | boolean;
  /** Its value when the plugin is not listed. */
  readonly absent: string | boolean;
}

export interface RbacGrant {
  /** cluster: the ClusterRole; resource: a Role where the MeshSync resource lives; own: a Role in meshsync's namespace. */
  readonly scope: 'cluster' | 'resource' | 'own';
  /** Facts that must all hold (`!fact`: must not). */
  readonly when: readonly string[];
  readonly why: string;
  /** A `$fact` in a list stands for the fact's value. */
  readonly rule: PolicyRule;
}

const KUBERNETES = 'meshsync:kubernetes';

/** The plugins meshsync runs in a cluster when its config lists none (BROKER_URL is set there). */
export const IN_CLUSTER_DEFAULT_PLUGINS: readonly (string | [string, object])[] = defaultPluginEntries({ KUBERNETES_SERVICE_HOST: 'in-cluster', BROKER_URL: 'nats://broker' });
const RESOURCE_DEFAULTS = meshsyncResourceOptions.parse({});
const LEASE_DEFAULT = leaderElectionOptions.parse({}).leaseName;
const CRDS_DEFAULT = kubernetesOptions.parse({}).watchCustomResourceDefinitions;

export const RBAC_FACTS: readonly RbacFact[] = [
  { fact: 'crds', plugin: KUBERNETES, option: 'watchCustomResourceDefinitions', listed: CRDS_DEFAULT, absent: CRDS_DEFAULT },
  { fact: 'ha', plugin: LEADER_ELECTION, listed: true, absent: false },
  { fact: 'leaseName', plugin: LEADER_ELECTION, option: 'leaseName', listed: LEASE_DEFAULT, absent: '' },
  { fact: 'meshSyncResource', plugin: MESHSYNC_RESOURCE_PLUGIN, listed: true, absent: false },
  { fact: 'crName', plugin: MESHSYNC_RESOURCE_PLUGIN, option: 'name', listed: RESOURCE_DEFAULTS.name, absent: RESOURCE_DEFAULTS.name },
  // '': meshsync's own namespace (the plugin's default is the pod's).
  { fact: 'resourceNamespace', plugin: MESHSYNC_RESOURCE_PLUGIN, option: 'namespace', listed: '', absent: '' },
  { fact: 'configMap', plugin: MESHSYNC_RESOURCE_PLUGIN, option: 'configMap', listed: RESOURCE_DEFAULTS.configMap, absent: RESOURCE_DEFAULTS.configMap },
  { fact: 'watchResource', plugin: MESHSYNC_RESOURCE_PLUGIN, option: 'watch', listed: RESOURCE_DEFAULTS.watch, absent: RESOURCE_DEFAULTS.watch },
  { fact: 'crStatus', plugin: MESHSYNC_RESOURCE_PLUGIN, option: 'writeStatus', listed: RESOURCE_DEFAULTS.writeStatus, absent: false },
];

const WATCHED = ['get', ...WATCH_VERBS];
export const RBAC_GRANTS: readonly RbacGrant[] = [
  { scope: 'cluster', when: [], why: 'The cluster id is kube-system\'s uid.', rule: { apiGroups: [''], resources: ['namespaces'], verbs: ['get'], resourceNames: ['kube-system'] } },
  { scope: 'cluster', when: ['crds'], why: 'CRD discovery: resources installed or removed at runtime.', rule: { apiGroups: ['apiextensions.k8s.io'], resources: ['customresourcedefinitions'], verbs: [...WATCH_VERBS] } },
  // Reading one object by name (a list/watch with a metadata.name field selector) is authorised by resourceNames.
  { scope: 'resource', when: ['meshSyncResource', 'watchResource'], why: 'The MeshSync resource plugin reads and watches its CR by name (watch: live edits).', rule: { apiGroups: [MESHSYNC_GROUP], resources: [MESHSYNC_RESOURCE.resource], verbs: WATCHED, resourceNames: ['$crName'] } },
  { scope: 'resource', when: ['meshSyncResource', '!watchResource'], why: 'The MeshSync resource plugin reads its CR by name.', rule: { apiGroups: [MESHSYNC_GROUP], resources: [MESHSYNC_RESOURCE.resource], verbs: ['get'], resourceNames: ['$crName'] } },
  { scope: 'resource', when: ['meshSyncResource', 'watchResource'], why: 'The MeshSync resource plugin reads its watch-list ConfigMap by name.', rule: { apiGroups: [''], resources: ['configmaps'], verbs: WATCHED, resourceNames: ['$configMap'] } },
  { scope: 'resource', when: ['meshSyncResource', '!watchResource'], why: 'The MeshSync resource plugin reads its watch-list ConfigMap by name.', rule: { apiGroups: [''], resources: ['configmaps'], verbs: ['get'], resourceNames: ['$configMap'] } },
  { scope: 'resource', when: ['meshSyncResource', 'crStatus'], why: 'It reports on the CR\'s status.', rule: { apiGroups: [MESHSYNC_GROUP], resources: [`${MESHSYNC_RESOURCE.resource}/status`], verbs: ['get', 'update', 'patch'], resourceNames: ['$crName'] } },
  { scope: 'own', when: ['ha', 'leaseName'], why: 'Leader election, its Lease by name.', rule: { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'update'], resourceNames: ['$leaseName'] } },
  { scope: 'own', when: ['ha', 'leaseName'], why: 'create cannot be limited by name; the Role keeps leases to meshsync\'s namespace.', rule: { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] } },
  { scope: 'own', when: ['ha', '!leaseName'], why: 'Leader election under a Lease not named here.', rule: { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] } },
];

export type RbacFacts = Record<string, string | boolean>;

/** The facts of a config's plugins (each `{ name, options }`, options as resolved or as written). */
export function rbacFacts(plugins: readonly { readonly name: string; readonly options?: unknown }[]): RbacFacts {
  const facts: RbacFacts = {};
  for (const { fact, plugin, option, listed, absent } of RBAC_FACTS) {
    const entry = plugins.find((p) => p.name === plugin);
    const value = entry && option ? (entry.options as Record<string, unknown> | undefined)?.[option] : undefined;
    facts[fact] = entry === undefined ? absent : option === undefined ? listed : (value as string | boolean | undefined) ?? listed;
  }
  return facts;
}

/** The rules of `scope` these facts grant, `$fact`s replaced. */
export function grantedRules(scope: RbacGrant['scope'], facts: RbacFacts): PolicyRule[] {
  const holds = (when: string) => (when.startsWith('!') ? !facts[when.slice(1)] : Boolean(facts[when]));
  const fill = (list: readonly string[]) => list.map((s) => (s.startsWith('$') ? String(facts[s.slice(1)]) : s));
  return RBAC_GRANTS.filter((g) => g.scope === scope && g.when.every(holds)).map(({ rule }) => ({
    apiGroups: fill(rule.apiGroups), resources: fill(rule.resources), verbs: fill(rule.verbs),
    ...(rule.resourceNames ? { resourceNames: fill(rule.resourceNames) } : {}),
  }));
}

function factsOf(options: RbacOptions): RbacFacts {
  const resource = options.meshSyncResource === false ? undefined : options.meshSyncResource ?? {};
  return {
    crds: Boolean(options.crds),
    ha: Boolean(options.ha),
    leaseName: options.ha ? options.leaseName ?? '' : '',
    meshSyncResource: resource !== undefined,
    crName: resource?.name ?? RESOURCE_DEFAULTS.name,
    resourceNamespace: resource?.namespace ?? '',
    configMap: resource?.configMap ?? RESOURCE_DEFAULTS.configMap,
    watchResource: resource?.watch ?? RESOURCE_DEFAULTS.watch,
    crStatus: Boolean(options.crStatus),
  };
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

  const facts = factsOf(options);
  const clusterRules = [...watchRules(clusterWide), ...grantedRules('cluster', facts)];
  const resourceRules = grantedRules('resource', facts);
  const resourceNs = String(facts.resourceNamespace) || ns;
  const ownRules = [...(resourceNs === ns ? resourceRules : []), ...grantedRules('own', facts)];

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
