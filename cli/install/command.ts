// `meshsync install` and `meshsync rbac`: the manifests for the config in force, printed as YAML.
import { parse as parseYaml } from 'yaml';
import { parseFlags, UsageError, type FlagSpec } from '../args.ts';
import { DEFAULT_RESOURCES } from '../../plugins/kubernetes/defaults.ts';
import { installObjects, INSTALL_DEFAULTS } from './manifests.ts';
import type { InstallOptions } from './manifests.ts';
import { natsPermissions } from './nats.ts';
import { toYaml } from './objects.ts';
import { IN_CLUSTER_DEFAULT_PLUGINS, rbacFacts, rbacObjects } from './rbac.ts';
import type { RbacOptions } from './rbac.ts';

/** The flags of `meshsync install` (rbac takes --namespace, --name and --replicas); cli/main.ts adds --config and --log-level. */
export const INSTALL_FLAGS = {
  namespace: { type: 'string', value: '<ns>', help: `namespace to install into (default ${INSTALL_DEFAULTS.namespace})` },
  name: { type: 'string', value: '<name>', help: `name of the Deployment, ServiceAccount, RBAC objects (default ${INSTALL_DEFAULTS.name})` },
  'broker-url': { type: 'string', value: '<url>', help: 'BROKER_URL of the Deployment (default the Meshery broker in the namespace); one with credentials (nats://user:pass@host) goes into a Secret' },
  'cluster-id': { type: 'string', value: '<id>', help: 'CLUSTER_ID of the Deployment (default: kube-system\'s uid)' },
  image: { type: 'string', value: '<ref>', help: `image (default ${INSTALL_DEFAULTS.image}, what npm run image builds)` },
  replicas: { type: 'string', value: '<n>', help: 'replicas; more than one turns on the leases RBAC (default 1)' },
  'no-crd': { type: 'boolean', help: 'leave out the MeshSync CRD' },
  'metrics-from': { type: 'string', value: '<ns>', help: 'the namespace the NetworkPolicy lets reach the metrics port (default: --namespace)' },
  'nats-permissions': { type: 'boolean', help: 'print instead the nats-server users and permissions that lock the broker subjects down (meshsync publishes events, answers requests; see SECURITY.md)' },
} as const satisfies Record<string, FlagSpec>;

export const INSTALL_NOTES = 'Resources, namespaces and CRD discovery come from the config (--config), shipped in a ConfigMap (a Secret when it holds credentials).';

const FLAGS = { ...INSTALL_FLAGS, config: { type: 'string', short: 'c', help: '' }, 'log-level': { type: 'string', help: '' } } as const satisfies Record<string, FlagSpec>;

/** The parts of a resolved config the manifests depend on (config/schema.ts ResolvedConfig fits). */
export interface InstallCommandConfig {
  readonly clusterId?: string;
  readonly plugins: readonly { readonly name: string; readonly options?: unknown }[];
}

type KubernetesLike = {
  resources?: readonly (string | { id: string })[];
  namespaces?: { include?: readonly string[] };
  watchCustomResourceDefinitions?: boolean;
};
type WatchListLike = { include?: readonly RuleLike[]; whitelist?: readonly RuleLike[]; exclude?: readonly RuleLike[]; blacklist?: readonly RuleLike[] };
type RuleLike = string | { resource: string; events?: readonly string[] };

/**
 * What meshsync will list and watch under this config: the kubernetes plugin's resources,
 * narrowed by the watch-list plugin (include replaces the list; a fully excluded resource goes).
 */
export function rbacOptionsFromConfig(config: InstallCommandConfig | undefined): Pick<RbacOptions, 'resources' | 'namespaces' | 'crds' | 'ha' | 'leaseName' | 'meshSyncResource' | 'crStatus'> {
  const optionsOf = (name: string) => config?.plugins.find((p) => p.name === name)?.options;
  const kube = (optionsOf('meshsync:kubernetes') ?? {}) as KubernetesLike;
  let resources = (kube.resources ?? DEFAULT_RESOURCES).map((r) => (typeof r === 'string' ? r : r.id));
  const watchList = optionsOf('meshsync:watch-list') as WatchListLike | undefined;
  if (watchList) {
    const ruleIds = (rules: readonly RuleLike[] | undefined) => (rules ?? []).map((r) => (typeof r === 'string' ? r : r.resource));
    const include = watchList.include?.length ? watchList.include : watchList.whitelist;
    if (include?.length) resources = ruleIds(include);
    // Only a rule without `events` (all three) removes a resource from the watch.
    const excluded = new Set(ruleIds((watchList.exclude?.length ? watchList.exclude : watchList.blacklist ?? [])
      .filter((r) => typeof r === 'string' || r.events === undefined || r.events.length === 3)));
    resources = resources.filter((id) => !excluded.has(id));
  }
  const facts = rbacFacts(config?.plugins ?? []);
  return {
    resources: [...new Set(resources)],
    namespaces: kube.namespaces?.include?.length ? kube.namespaces.include : undefined,
    crds: Boolean(facts.crds),
    ha: Boolean(facts.ha),
    leaseName: facts.ha ? String(facts.leaseName) : undefined,
    meshSyncResource: facts.meshSyncResource
      ? { name: String(facts.crName), namespace: String(facts.resourceNamespace) || undefined, configMap: String(facts.configMap), watch: Boolean(facts.watchResource) }
      : false,
    crStatus: facts.meshSyncResource ? Boolean(facts.crStatus) : undefined,
  };
}

/** The config file as the pods get it under /config. */
export interface ShippedConfig {
  readonly text: string;
  /** Its name under /config (the extension tells the format): default meshsync.config.yaml. */
  readonly file?: string;
  /** It holds credentials: it goes into a Secret, not a ConfigMap. */
  readonly holdsSecrets?: boolean;
}

/**
 * Runs `install` or `rbac`: `argv` is what follows the command name; `shipped` is the config file
 * the pods read. Returns the YAML to print; throws an Error with a usage message on bad arguments.
 */
export function runInstallCommand(command: 'install' | 'rbac', argv: readonly string[], config?: InstallCommandConfig, shipped?: ShippedConfig): string {
  const { values, positionals } = parseFlags(command, argv, command === 'rbac' ? { namespace: FLAGS.namespace, name: FLAGS.name, replicas: FLAGS.replicas, config: FLAGS.config, 'log-level': FLAGS['log-level'] } : FLAGS);
  if (positionals.length) throw new UsageError(`unexpected arguments: ${positionals.join(' ')}`, command);
  const flag = (name: keyof typeof FLAGS) => values[name] as string | undefined;
  const replicas = flag('replicas') === undefined ? undefined : Number(flag('replicas'));
  if (replicas !== undefined && (!Number.isInteger(replicas) || replicas < 0)) throw new Error('--replicas must be a whole number');
  const namespace = flag('namespace') ?? INSTALL_DEFAULTS.namespace;
  const name = flag('name') ?? INSTALL_DEFAULTS.name;
  // A config that lists no plugins runs the defaults, which in a cluster include the MeshSync
  // resource (in the pod's namespace, not the one this machine resolved) and leader-election
  // plugins (config/load.ts) even where this command runs outside one.
  const defaults = config === undefined || (shipped !== undefined && !listsPlugins(shipped.text));
  const fromConfig = rbacOptionsFromConfig(defaults ? inClusterDefaults(config) : config);
  if (values['nats-permissions']) {
    const nats = config?.plugins.find((p) => p.name === 'meshsync:nats')?.options as { subject?: string; requestSubject?: string; jetstream?: unknown; ledger?: { enabled?: boolean; bucket?: string } } | undefined;
    const ledger = nats?.ledger?.enabled === false ? { bucket: '' } : { bucket: nats?.ledger?.bucket ?? 'meshsync-ledger-{cluster}', clusterId: flag('cluster-id') ?? config?.clusterId };
    return natsPermissions({ subject: nats?.subject, requestSubject: nats?.requestSubject, jetstream: nats?.jetstream !== undefined, ledger });
  }
  if (command === 'rbac') {
    return toYaml(rbacObjects({ ...fromConfig, ha: fromConfig.ha || (replicas ?? 1) > 1, namespace, serviceAccount: name, name }));
  }
  const options: InstallOptions = {
    ...fromConfig,
    ha: fromConfig.ha || (replicas ?? 1) > 1,
    namespace,
    name,
    brokerUrl: flag('broker-url'),
    clusterId: flag('cluster-id'),
    image: flag('image'),
    replicas,
    crd: !values['no-crd'],
    metricsFrom: flag('metrics-from'),
    config: shipped?.text,
    configFile: shipped?.file,
    configSecret: shipped?.holdsSecrets,
  };
  return toYaml(installObjects(options));
}

/** The config as the pod runs it when it lists no plugins: the in-cluster defaults, with their own defaults. */
function inClusterDefaults(config: InstallCommandConfig | undefined): InstallCommandConfig {
  return { ...config, plugins: IN_CLUSTER_DEFAULT_PLUGINS.map((entry) => (typeof entry === 'string' ? { name: entry } : { name: entry[0], options: entry[1] })) };
}

function listsPlugins(configText: string): boolean {
  try {
    const data = parseYaml(configText) as { plugins?: unknown } | null;
    return Array.isArray(data?.plugins);
  } catch {
    return true; // not YAML/JSON (a .ts config): trust the resolved plugins
  }
}
