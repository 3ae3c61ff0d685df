// The Helm chart against `meshsync install` / `meshsync rbac`, with the real helm (built from the
// Go module proxy into the tools cache on first use, as the cluster suite builds Kubernetes).
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parse as parseYaml, parseAllDocuments, stringify } from 'yaml';
import { buildHelm } from '../cluster/build/helm.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CHART = join(ROOT, 'deploy', 'helm', 'meshery-meshsync');
const UMBRELLA = join(ROOT, 'test', 'fixtures', 'helm', 'umbrella');
const run = promisify(execFile);

type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; [key: string]: unknown };

// Helm's own bookkeeping labels, which `meshsync install` has no reason to set.
const HELM_LABELS = ['helm.sh/chart', 'app.kubernetes.io/managed-by'];
const RBAC_KINDS = new Set(['ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding']);

let helmBin: string;
let work: string;

function parse(yaml: string): Obj[] {
  return parseAllDocuments(yaml).map((d) => d.toJS() as Obj | null).filter((o): o is Obj => o !== null);
}

async function helm(args: string[]): Promise<string> {
  // Helm's own cache and config stay in the test's folder.
  const env = { ...process.env, HELM_CACHE_HOME: join(work, 'helm-cache'), HELM_CONFIG_HOME: join(work, 'helm-config'), HELM_DATA_HOME: join(work, 'helm-data') };
  return (await run(helmBin, args, { maxBuffer: 16 << 20, env })).stdout;
}

async function template(values: object, { chart = CHART, namespace = 'meshery', set = [] as string[] } = {}): Promise<Obj[]> {
  const file = join(work, `values-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, stringify(values));
  const objects = parse(await helm(['template', 'meshsync', chart, '--namespace', namespace, '--include-crds', '-f', file, ...set.flatMap((s) => ['--set', s])]));
  for (const o of objects) {
    for (const label of HELM_LABELS) delete o.metadata.labels?.[label];
  }
  return objects;
}

/** The CLI, as a user runs it; POD_NAMESPACE as in the pod, where the MeshSync resource plugin takes its namespace from it. */
async function meshsync(args: string[], namespace: string): Promise<Obj[]> {
  const { stdout } = await run(process.execPath, ['--conditions=source', '--import', 'tsx', join(ROOT, 'cli', 'main.ts'), ...args], {
    cwd: ROOT, env: { ...process.env, POD_NAMESPACE: namespace }, maxBuffer: 16 << 20,
  });
  return parse(stdout);
}

function writeConfig(name: string, config: object): string {
  mkdirSync(join(work, name));
  const file = join(work, name, 'meshsync.config.yaml');
  writeFileSync(file, stringify(config));
  return file;
}

const byKey = (objects: Obj[]) => new Map(objects.map((o) => [`${o.kind} ${o.metadata.namespace ?? ''}/${o.metadata.name}`, o]));

type PluginEntry = string | [string, Record<string, unknown>?];
const pluginName = (p: PluginEntry) => (typeof p === 'string' ? p : p[0]);
const pluginOptions = (p: PluginEntry) => (typeof p === 'string' ? {} : p[1] ?? {});

// What meshsync runs in a cluster when its config lists no plugins (config/load.ts), written out.
const IN_CLUSTER_PLUGINS = ['meshsync:kubernetes', 'meshsync:watch-list', 'meshsync:meshsync-resource', 'meshsync:leader-election', 'meshsync:redact-secrets', 'meshsync:nats', 'meshsync:metrics'];

/**
 * What the chart must render for these values: `meshsync install` for the chart's config file and
 * flags, with the RBAC `meshsync rbac` computes for the config's plugins (the in-cluster defaults
 * when it lists none) under the watch-list in force: the seed's meshery-meshsync-config ConfigMap
 * when the MeshSync resource plugin reads it, else the watch-list plugin's options.
 */
async function expected(name: string, c: Case): Promise<Obj[]> {
  const namespace = c.namespace ?? 'meshery';
  // Helm merges values.config into the chart's default, logLevel: info.
  const shipped = c.shipped ?? { logLevel: 'info', ...c.values.config };
  const config = writeConfig(`${name}-config`, shipped);
  const watchList = Object.fromEntries(Object.entries(c.values.watchConfig ?? {}).filter(([, v]) => v !== ''));
  const plugins: PluginEntry[] = (shipped as { plugins?: PluginEntry[] }).plugins ?? IN_CLUSTER_PLUGINS;
  const readsConfigMap = plugins.some((p) => pluginName(p) === 'meshsync:meshsync-resource' && !('configMap' in pluginOptions(p)) && !('namespace' in pluginOptions(p)));
  const inForce = plugins.map((p): PluginEntry => (pluginName(p) === 'meshsync:watch-list' && readsConfigMap && Object.keys(watchList).length ? ['meshsync:watch-list', watchList] : p));
  const watchSet = writeConfig(`${name}-watch`, { plugins: inForce });
  const flags = ['--namespace', namespace, ...(c.flags ?? [])];
  const replicas = c.values.replicas === undefined ? [] : ['--replicas', String(c.values.replicas)];
  const [install, rbac] = await Promise.all([
    meshsync(['install', '--config', config, ...flags], namespace),
    meshsync(['rbac', '--config', watchSet, '--namespace', namespace, ...replicas], namespace),
  ]);
  const seedConfigMap: Obj = {
    apiVersion: 'v1', kind: 'ConfigMap',
    metadata: { name: 'meshery-meshsync-config', namespace, labels: { 'app.kubernetes.io/name': 'meshsync', 'app.kubernetes.io/part-of': 'meshery', 'app.kubernetes.io/instance': 'meshsync' } },
    data: { whitelist: c.values.watchConfig?.whitelist ?? '', blacklist: c.values.watchConfig?.blacklist ?? '' },
  };
  // The MeshSync resource meshsync reports on, which `meshsync install` leaves to whoever installs
  // Meshery: the chart makes it, for the NOTES' kubectl get meshsync, spec empty (a watch-list there would outrank the ConfigMap).
  const resourcePlugin = plugins.find((p) => pluginName(p) === 'meshsync:meshsync-resource');
  const resource = resourcePlugin === undefined || (c.values.customResource as { create?: boolean } | undefined)?.create === false ? [] : [{
    apiVersion: 'meshery.io/v1alpha1', kind: 'MeshSync',
    metadata: {
      name: (pluginOptions(resourcePlugin).name as string | undefined) ?? 'meshery-meshsync',
      namespace: (pluginOptions(resourcePlugin).namespace as string | undefined) ?? namespace,
      labels: { 'app.kubernetes.io/name': 'meshsync', 'app.kubernetes.io/part-of': 'meshery', 'app.kubernetes.io/instance': 'meshsync' },
    },
    spec: {},
  }];
  return [
    ...resource,
    // Helm creates the release namespace (--create-namespace) and does not own it: a chart's
    // Namespace would be deleted, with everything in it, by helm uninstall.
    ...install.filter((o) => o.kind !== 'Namespace' && !RBAC_KINDS.has(o.kind))
      // broker.existingSecret: the Secret is the user's; the chart refers to it and renders none.
      .filter((o) => !(o.kind === 'Secret' && o.metadata.name === c.usersSecret)),
    ...rbac,
    seedConfigMap,
  ];
}

/**
 * The config file as the data it holds: Go's YAML and this project's quote some strings
 * differently ("*.v1.apps" or '*.v1.apps'). The pods' config hash is checked against the text it
 * was taken from, then left out.
 */
function configAsData(objects: Obj[]): Obj[] {
  const copy = structuredClone(objects) as any[];
  const text = copy.find((o) => o.kind === 'ConfigMap' && o.data?.[CONFIG_FILE] !== undefined)?.data[CONFIG_FILE] as string;
  for (const o of copy) {
    if (o.kind === 'ConfigMap' && o.data?.[CONFIG_FILE] !== undefined) o.data[CONFIG_FILE] = parseYaml(o.data[CONFIG_FILE]);
    if (o.kind === 'Deployment') {
      const annotations = o.spec.template.metadata.annotations;
      expect(annotations['meshery.io/config-sha256'], 'the config hash').to.equal(createHash('sha256').update(text).digest('hex'));
      delete annotations['meshery.io/config-sha256'];
    }
  }
  return copy;
}
const CONFIG_FILE = 'meshsync.config.yaml';

interface Case {
  values: { watchConfig?: { whitelist?: string; blacklist?: string }; config?: object; replicas?: number; [key: string]: unknown };
  /** The config file the chart ships, when it is not values.config. */
  shipped?: object;
  flags?: string[];
  namespace?: string;
  /** The Secret `meshsync install` makes for a broker URL with credentials, which these values take as the user's. */
  usersSecret?: string;
}

// Meshery's values quote the watch-list twice: a YAML string holding the JSON text as a JSON string.
const MESHERY_WHITELIST = JSON.stringify(JSON.stringify([
  { Resource: 'pods.v1.', Events: ['ADDED', 'MODIFIED', 'DELETED'] },
  { Resource: 'deployments.v1.apps', Events: ['ADDED'] },
  { resource: 'gateways.v1.gateway.networking.k8s.io' },
  { Resource: 'pods.v1.' },
]));

const CASES: Record<string, Case> = {
  'the defaults': { values: {} },
  'a whitelist, encoded twice as Meshery quotes it': { values: { watchConfig: { whitelist: MESHERY_WHITELIST } } },
  'a blacklist of ids and of some events': {
    values: { watchConfig: { blacklist: JSON.stringify(['secrets.v1.', { Resource: 'pods.v1.', Events: ['DELETED'] }, { Resource: 'nodes.v1.', Events: ['ADDED', 'MODIFIED', 'DELETED'] }]) } },
  },
  'both: the blacklist removes from the whitelist': {
    values: { watchConfig: { whitelist: JSON.stringify([{ Resource: 'services.v1.' }, { Resource: 'pods.v1.' }, { Resource: 'httproutes.v1.gateway.networking.k8s.io' }]), blacklist: '["services.v1."]' } },
  },
  'a custom broker with credentials, cluster id, image, replicas, config, in another namespace': {
    namespace: 'mesh',
    values: {
      broker: { custom: { url: 'nats://meshsync:hunter2@nats.messaging:4223,nats://nats-2.messaging:4223' } },
      clusterId: 'prod-eu', image: { repository: 'registry.example/meshsync', tag: '1.2.3' }, replicas: 3,
      metricsFrom: 'monitoring', config: { logLevel: 'debug' },
    },
    flags: ['--broker-url', 'nats://meshsync:hunter2@nats.messaging:4223,nats://nats-2.messaging:4223', '--cluster-id', 'prod-eu',
      '--image', 'registry.example/meshsync:1.2.3', '--replicas', '3', '--metrics-from', 'monitoring'],
  },
  'the broker URL from an existing Secret, as meshsync install refers to the one it makes': {
    values: { broker: { existingSecret: { name: 'meshsync-broker', port: 4223 } } },
    flags: ['--broker-url', 'nats://meshsync:hunter2@nats.messaging:4223'],
    usersSecret: 'meshsync-broker',
  },
  'metadataOnly: the in-cluster default plugins written out, the kubernetes one for metadata only (the same list/watch RBAC)': {
    values: { metadataOnly: true, watchConfig: { blacklist: '["secrets.v1."]' } },
    shipped: { logLevel: 'info', plugins: [['meshsync:kubernetes', { metadataOnly: true }], ...IN_CLUSTER_PLUGINS.slice(1)] },
  },
  'config.plugins without the MeshSync resource or leader election: no Role; the watch-list plugin\'s options narrow, the ConfigMap is not read': {
    values: {
      watchConfig: { whitelist: '[{"Resource":"services.v1."}]' },
      config: {
        logLevel: 'info',
        plugins: [
          ['meshsync:kubernetes', { resources: ['pods.v1.', 'nodes.v1.', { id: 'deployments.v1.apps', metadataOnly: true }], watchCustomResourceDefinitions: false }],
          ['meshsync:watch-list', { exclude: ['nodes.v1.', { resource: 'pods.v1.', events: ['DELETED'] }] }],
          'meshsync:nats', 'meshsync:metrics',
        ],
      },
    },
  },
  'config.plugins with the MeshSync resource: the ConfigMap\'s whitelist wins over the watch-list options; 3 replicas without leader election': {
    values: {
      replicas: 3,
      watchConfig: { whitelist: JSON.stringify([{ Resource: 'services.v1.' }, { Resource: 'configmaps.v1.', Events: ['ADDED'] }]) },
      config: { plugins: ['meshsync:kubernetes', ['meshsync:watch-list', { include: ['pods.v1.'] }], 'meshsync:meshsync-resource', 'meshsync:nats'] },
    },
    flags: ['--replicas', '3'],
  },
  'config.plugins watching two namespaces, the MeshSync resource elsewhere read once, a lease of its own, 2 replicas': {
    namespace: 'mesh',
    values: {
      replicas: 2,
      watchConfig: { whitelist: '["secrets.v1."]' },
      config: {
        logLevel: 'warn',
        plugins: [
          ['meshsync:kubernetes', { resources: ['pods.v1.', 'nodes.v1.', '*.v1.apps', 'deployments.v1.apps'], namespaces: { include: ['shop', 'billing', 'shop'] } }],
          ['meshsync:watch-list', { blacklist: '["deployments.v1.apps"]' }],
          ['meshsync:meshsync-resource', { namespace: 'meshery', name: 'shop-sync', configMap: 'shop-list', watch: false, writeStatus: false }],
          ['meshsync:leader-election', { leaseName: 'shop-sync' }],
          'meshsync:nats', 'meshsync:metrics',
        ],
      },
    },
    flags: ['--replicas', '2'],
  },
  'customResource.create=false, where Meshery\'s operator makes the MeshSync resource': { values: { customResource: { create: false } } },
  'a native broker elsewhere': {
    values: { broker: { native: { name: 'nats', namespace: 'messaging' } } },
    flags: ['--broker-url', 'nats://nats.messaging.svc:4222'],
  },
};

describe('the Helm chart (deploy/helm/meshery-meshsync)', function () {
  before(function () {
    this.timeout(15 * 60_000); // a first build of helm takes minutes; later runs find it cached
    helmBin = buildHelm();
    work = mkdtempSync(join(tmpdir(), 'meshsync-helm-'));
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  it('passes helm lint --strict', async function () {
    this.timeout(30_000);
    const out = await helm(['lint', '--strict', CHART]);
    expect(out).to.contain('0 chart(s) failed');
  });

  for (const [name, c] of Object.entries(CASES)) {
    it(`renders what meshsync install and meshsync rbac print, object by object: ${name}`, async function () {
      this.timeout(60_000);
      const [chart, want] = await Promise.all([template(c.values, { namespace: c.namespace }), expected(name.replace(/\W+/g, '-'), c)]);
      const got = byKey(configAsData(chart));
      const wanted = byKey(configAsData(want));
      expect([...got.keys()].sort()).to.deep.equal([...wanted.keys()].sort());
      for (const [key, object] of wanted) expect(got.get(key), key).to.deep.equal(object);
    });
  }

  it('renders the RBAC for the watch set: a whitelist grants only what it lists', async function () {
    this.timeout(30_000);
    const chart = await template(CASES['a whitelist, encoded twice as Meshery quotes it'].values);
    const role = chart.find((o) => o.kind === 'ClusterRole') as Obj & { rules: { apiGroups: string[]; resources: string[] }[] };
    expect(role.rules.slice(0, 3).map((r) => [r.apiGroups[0], r.resources])).to.deep.equal([
      ['', ['pods']], ['apps', ['deployments']], ['gateway.networking.k8s.io', ['gateways']],
    ]);
  });

  it('prints NOTES with the kubectl get meshsync check where the MeshSync resource plugin runs, and without it where it does not', async function () {
    this.timeout(30_000);
    const notes = async (values: object) => {
      const file = join(work, `notes-${Math.random().toString(36).slice(2)}.yaml`);
      writeFileSync(file, stringify(values));
      const out = await helm(['install', 'meshsync', CHART, '--dry-run=client', '--namespace', 'mesh', '-f', file]);
      return out.slice(out.indexOf('NOTES:'));
    };
    const defaults = await notes({});
    expect(defaults).to.contain('kubectl get meshsync --namespace mesh').and.contain('kubectl rollout status deployment/meshsync --namespace mesh');
    const elsewhere = await notes({ config: { plugins: ['meshsync:kubernetes', ['meshsync:meshsync-resource', { namespace: 'meshery' }], 'meshsync:nats'] } });
    expect(elsewhere).to.contain('kubectl get meshsync --namespace meshery');
    const without = await notes({ config: { plugins: ['meshsync:kubernetes', 'meshsync:nats'] } });
    expect(without).to.not.contain('kubectl get meshsync').and.not.contain('meshery-meshsync-config');
    expect(without).to.contain('kubectl rollout status deployment/meshsync --namespace mesh');
  });

  it('sets the container resources from values', async function () {
    this.timeout(30_000);
    const resources = { requests: { cpu: '50m', memory: '64Mi' }, limits: { cpu: '500m', memory: '256Mi' } };
    const deployment = (await template({ resources })).find((o) => o.kind === 'Deployment') as any;
    expect(deployment.spec.template.spec.containers[0].resources).to.deep.equal(resources);
  });

  // Off by default: the defaults case above renders exactly what meshsync install does, nothing more.
  describe('observability (monitoring.*)', () => {
    const file = (name: string) => readFileSync(join(CHART, 'files', name), 'utf8');

    it('renders a ServiceMonitor that selects the metrics Service by its labels and port name', async function () {
      this.timeout(30_000);
      const chart = await template({ monitoring: { serviceMonitor: { enabled: true, interval: '15s', labels: { release: 'kube-prometheus' } } } }, { namespace: 'mesh' });
      const monitor = chart.find((o) => o.kind === 'ServiceMonitor') as any;
      const service = chart.find((o) => o.kind === 'Service') as any;
      expect(monitor.apiVersion).to.equal('monitoring.coreos.com/v1');
      expect(monitor.metadata).to.deep.include({ name: 'meshsync', namespace: 'mesh' });
      expect(monitor.metadata.labels).to.include({ release: 'kube-prometheus', 'app.kubernetes.io/name': 'meshsync' });
      expect(service.metadata.labels).to.include(monitor.spec.selector.matchLabels);
      expect(monitor.spec.namespaceSelector).to.deep.equal({ matchNames: ['mesh'] });
      expect(monitor.spec.endpoints).to.deep.equal([{ port: 'metrics', path: '/metrics', interval: '15s' }]);
      expect(service.spec.ports.map((p: { name: string }) => p.name)).to.include('metrics');
      expect(chart.filter((o) => o.kind === 'PrometheusRule' || o.metadata.name.endsWith('-dashboard'))).to.deep.equal([]);
    });

    it('renders a PrometheusRule whose spec is files/alerts.rules.yaml, the file promtool tests', async function () {
      this.timeout(30_000);
      const rule = (await template({ monitoring: { prometheusRule: { enabled: true } } })).find((o) => o.kind === 'PrometheusRule') as any;
      expect(rule.apiVersion).to.equal('monitoring.coreos.com/v1');
      expect(rule.spec).to.deep.equal(parseYaml(file('alerts.rules.yaml')));
    });

    it('renders the dashboard of files/dashboard.json in a ConfigMap Grafana\'s sidecar picks up', async function () {
      this.timeout(30_000);
      const chart = await template({ monitoring: { dashboard: { enabled: true, namespace: 'grafana' } } });
      const map = chart.find((o) => o.metadata.name === 'meshsync-dashboard') as any;
      expect(map.kind).to.equal('ConfigMap');
      expect(map.metadata.namespace).to.equal('grafana');
      expect(map.metadata.labels).to.include({ grafana_dashboard: '1' });
      expect(JSON.parse(map.data['meshsync.json'])).to.deep.equal(JSON.parse(file('dashboard.json')));
    });
  });

  describe('as the meshery-meshsync subchart of an umbrella chart', () => {
    let umbrella: string;
    before(() => {
      umbrella = join(work, 'umbrella');
      cpSync(UMBRELLA, umbrella, { recursive: true });
      cpSync(CHART, join(umbrella, 'charts', 'meshery-meshsync'), { recursive: true });
    });

    it('renders nothing until meshery-meshsync.enabled=true', async function () {
      this.timeout(30_000);
      expect(await template({}, { chart: umbrella })).to.deep.equal([]);
    });

    it('renders what the chart alone renders, with the seed\'s --set flags', async function () {
      this.timeout(30_000);
      const url = 'nats://meshery-broker.meshery:4222';
      const sub = await template({}, { chart: umbrella, set: ['meshery-meshsync.enabled=true', `meshery-meshsync.broker.custom.url=${url}`] });
      const alone = await template({ broker: { custom: { url } } });
      expect(sub.length).to.be.greaterThan(5);
      expect(byKey(sub)).to.deep.equal(byKey(alone));
    });

    it('renders what the chart alone renders, with the seed\'s values.yaml (meshery-meshsync.watchConfig, Meshery\'s quoting) and project options', async function () {
      this.timeout(30_000);
      const values = { watchConfig: { whitelist: MESHERY_WHITELIST, blacklist: '["secrets.v1."]' }, metadataOnly: true, replicas: 2 };
      const sub = await template({ 'meshery-meshsync': { enabled: true, ...values } }, { chart: umbrella });
      const alone = await template(values);
      expect(sub.find((o) => o.metadata.name === 'meshery-meshsync-config')).to.have.nested.property('data.whitelist', MESHERY_WHITELIST);
      expect(byKey(sub)).to.deep.equal(byKey(alone));
    });
  });

  describe('refuses bad values with a message naming them', () => {
    const refusal = async (values: object) => {
      try {
        await template(values);
      } catch (error) {
        return (error as { stderr: string }).stderr;
      }
      throw new Error('helm template accepted the values');
    };

    it('by the values schema: a replica count that is not a whole number', async function () {
      this.timeout(30_000);
      expect(await refusal({ replicas: 'two' })).to.match(/values don't meet the specifications of the schema/).and.match(/replicas/);
    });


    it('by the values schema: a config meshsync would refuse (its own schema, config/schema.ts)', async function () {
      this.timeout(30_000);
      expect(await refusal({ config: { logLevel: 'loud' } })).to.match(/at '\/config\/logLevel'/);
      expect(await refusal({ config: { pipeline: { batchSize: 0 } } })).to.match(/at '\/config\/pipeline\/batchSize'/);
    });

    it('by the values schema: a plugin entry that is neither a name nor a [name, options] pair', async function () {
      this.timeout(30_000);
      expect(await refusal({ config: { plugins: ['meshsync:kubernetes', { name: 'meshsync:stdout' }] } })).to.match(/at '\/config\/plugins\/1'/);
    });

    it('by the values schema: a built-in plugin\'s options that its own schema refuses, at their path', async function () {
      this.timeout(30_000);
      const stderr = await refusal({ config: { plugins: [['meshsync:kubernetes', { metadataOnly: 'always', resourcez: [] }], ['meshsync:leader-election', { leaseName: '' }], 'meshsync:nats'] } });
      expect(stderr).to.match(/at '\/config\/plugins\/0\/1\/metadataOnly': got string, want boolean/)
        .and.match(/at '\/config\/plugins\/0\/1': additional properties 'resourcez' not allowed/)
        .and.match(/at '\/config\/plugins\/1\/1\/leaseName': minLength/);
      expect(await refusal({ metadataOnly: 'always' })).to.match(/at '\/metadataOnly': got string, want boolean/);
    });

    it('in the template: metadataOnly beside config.plugins, where the kubernetes entry says it', async function () {
      this.timeout(30_000);
      expect(await refusal({ metadataOnly: true, config: { plugins: ['meshsync:kubernetes'] } })).to.match(/metadataOnly: with config.plugins, set metadataOnly: true in the options of its meshsync:kubernetes entry/);
    });

    it('in the template: a config holding credentials (as config/mask.ts finds them), which a ConfigMap would show in clear', async function () {
      this.timeout(30_000);
      const stderr = await refusal({ config: { plugins: [['meshsync:nats', { servers: ['nats://a:4222', 'nats://sync:hunter2@b:4222'] }], ['meshsync:nats', { auth: { token: 's3cret' } }]] } });
      expect(stderr).to.match(/config holds credentials \(config\.plugins\[0\]\[1\]\.servers\[1\], config\.plugins\[1\]\[1\]\.auth\.token\)/).and.match(/broker\.existingSecret/);
      expect(stderr).to.not.contain('hunter2').and.not.contain('s3cret');
    });

    it('in the template: a watch-list plugin\'s rule or a kubernetes resource that is no resource id', async function () {
      this.timeout(30_000);
      expect(await refusal({ config: { plugins: [['meshsync:watch-list', { include: ['pods.v1.', { resource: 'pods' }] }]] } }))
        .to.match(/config\.plugins\[0\] \(meshsync:watch-list\) include\[1\]: not a resource id/);
      expect(await refusal({ config: { plugins: [['meshsync:kubernetes', { resources: ['pods'] }]] } }))
        .to.match(/config\.plugins\[0\] \(meshsync:kubernetes\) resources\[0\]: not a resource id: "pods"/);
    });

    it('by the values schema: a misspelt key', async function () {
      this.timeout(30_000);
      expect(await refusal({ watchconfig: { whitelist: '[]' } })).to.match(/watchconfig/);
    });

    it('by the values schema: a scrape interval that is no Prometheus duration', async function () {
      this.timeout(30_000);
      expect(await refusal({ monitoring: { serviceMonitor: { enabled: true, interval: 'often' } } })).to.match(/monitoring\/serviceMonitor\/interval/);
    });

    it('in the template: a broker URL both given and taken from a Secret', async function () {
      this.timeout(30_000);
      expect(await refusal({ broker: { custom: { url: 'nats://a:4222' }, existingSecret: { name: 'creds' } } })).to.match(/broker: set existingSecret or custom.url, not both/);
    });

    it('in the template: a whitelist that is not JSON, or names no resource id', async function () {
      this.timeout(30_000);
      expect(await refusal({ watchConfig: { whitelist: '[{Resource: pods}' } })).to.match(/watchConfig\.whitelist: not valid JSON/);
      expect(await refusal({ watchConfig: { blacklist: '["pods.v1.", {"Resource":"pods"}]' } })).to.match(/watchConfig\.blacklist\[1\]: not a resource id/);
      // The watch-list plugin refuses patterns in the ConfigMap: RBAC must not grant them either.
      expect(await refusal({ watchConfig: { whitelist: '[{"Resource":"*.v1.apps"}]' } })).to.match(/watchConfig\.whitelist\[0\]: not a resource id/);
    });


  });
});
