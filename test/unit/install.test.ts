import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { expect } from 'chai';
import { parseAllDocuments } from 'yaml';
import { DEFAULT_RESOURCES } from '../../plugins/kubernetes/defaults.ts';
import { MeshSyncError } from '../../core/errors.ts';
import { installObjects, meshSyncCrd, rbacObjects, renderInstall, renderRbac, watchRules } from '../../cli/install/index.ts';
import type { KubeObject, PolicyRule, RbacOptions } from '../../cli/install/index.ts';
import { staleDeployFiles } from '../../scripts/deploy-generate.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const run = promisify(execFile);

// kubernetes-models: the Kubernetes OpenAPI schemas compiled to validators (types, required, formats).
const MODELS: Record<string, string> = {
  'apiextensions.k8s.io/v1/CustomResourceDefinition': 'kubernetes-models/apiextensions.k8s.io/v1/CustomResourceDefinition',
  'v1/Namespace': 'kubernetes-models/v1/Namespace',
  'v1/ServiceAccount': 'kubernetes-models/v1/ServiceAccount',
  'v1/ConfigMap': 'kubernetes-models/v1/ConfigMap',
  'v1/Secret': 'kubernetes-models/v1/Secret',
  'v1/Service': 'kubernetes-models/v1/Service',
  'networking.k8s.io/v1/NetworkPolicy': 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy',
  'apps/v1/Deployment': 'kubernetes-models/apps/v1/Deployment',
  'rbac.authorization.k8s.io/v1/ClusterRole': 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole',
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding',
  'rbac.authorization.k8s.io/v1/Role': 'kubernetes-models/rbac.authorization.k8s.io/v1/Role',
  'rbac.authorization.k8s.io/v1/RoleBinding': 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding',
};

async function validateSchema(obj: KubeObject): Promise<void> {
  const module = MODELS[`${obj.apiVersion}/${obj.kind}`];
  if (!module) throw new Error(`no schema for ${obj.apiVersion} ${obj.kind}`);
  const Model = (await import(module))[obj.kind];
  new Model(obj).validate();
}

type AttributeMap = { baseName: string; type: string }[];
const modelClasses = k8s as unknown as Record<string, { getAttributeTypeMap?: () => AttributeMap }>;

/** Paths of fields the Kubernetes API types do not have (the OpenAPI validators above allow unknown fields). */
function unknownFields(value: unknown, type: string, path: string): string[] {
  if (value === null || value === undefined) return [];
  const array = /^Array<(.+)>$/.exec(type);
  if (array) return (value as unknown[]).flatMap((v, i) => unknownFields(v, array[1], `${path}[${i}]`));
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) return Object.entries(value as object).flatMap(([k, v]) => unknownFields(v, map[1], `${path}.${k}`));
  const attributes = modelClasses[type]?.getAttributeTypeMap?.();
  if (!attributes) return []; // a scalar, IntOrString, or free-form JSON
  const byName = new Map(attributes.map((a) => [a.baseName, a.type]));
  return Object.entries(value as object).flatMap(([k, v]) =>
    byName.has(k) ? unknownFields(v, byName.get(k)!, `${path}.${k}`) : [`${path}.${k}`]);
}

function modelType(obj: KubeObject): string {
  const version = obj.apiVersion.split('/').pop()!;
  return `${version[0].toUpperCase()}${version.slice(1)}${obj.kind}`;
}

const key = (o: KubeObject) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
const rulesOf = (objects: KubeObject[], kind: string, namespace?: string) =>
  objects.filter((o) => o.kind === kind && o.metadata.namespace === namespace).flatMap((o) => o.rules as PolicyRule[]);
const BASE: RbacOptions = { resources: ['pods.v1.', 'deployments.v1.apps'], namespace: 'meshery', serviceAccount: 'meshsync' };

describe('install manifests', () => {
  it('deploy this project\'s image by default: the name and tag npm run image builds', async () => {
    const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
    const manifest = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { version: string; config: { image: string }; scripts: Record<string, string> };
    const deployment = installObjects().find((o) => o.kind === 'Deployment') as any;
    expect(deployment.spec.template.spec.containers[0].image).to.equal(`${manifest.config.image}:${manifest.version}`).and.not.match(/^meshery\//);
    // npm run image names its image the same way (IMAGE unset): asked of the script itself.
    expect(manifest.scripts.image).to.equal('bash scripts/image-build.sh');
    const script = await readFile(join(root, 'scripts', 'image-build.sh'), 'utf8');
    const line = /^IMAGE=\$\{IMAGE:-\$\((.*)\)\}$/m.exec(script)?.[1];
    expect(line, 'the IMAGE default in image-build.sh').to.be.a('string');
    const { stdout } = await promisify(execFile)('bash', ['-c', line!.replace('"$repo"', JSON.stringify(root))]);
    expect(stdout.trim()).to.equal(`${manifest.config.image}:${manifest.version}`);
  });

  const variants: Record<string, Parameters<typeof installObjects>[0]> = {
    defaults: {},
    'every option': {
      namespace: 'ops', name: 'sync', brokerUrl: 'nats://nats.ops:4222', clusterId: 'c1', image: 'registry.local/meshsync:1.2.3',
      replicas: 2, config: { logLevel: 'debug' }, namespaces: ['a', 'b'], crds: true, ha: true, crStatus: true, metricsPort: 9000,
      resources: [...DEFAULT_RESOURCES, 'customresourcedefinitions.v1.apiextensions.k8s.io'],
    },
    'config in a Secret': { config: 'plugins:\n  - [meshsync:nats, { auth: { token: t } }]\n', configSecret: true },
  };

  for (const [name, options] of Object.entries(variants)) {
    it(`validates every object against the Kubernetes schemas (${name})`, async () => {
      for (const obj of installObjects(options)) await validateSchema(obj);
    });

    it(`uses only fields the Kubernetes API types define (${name})`, () => {
      for (const obj of installObjects(options)) {
        // The CRD's openAPIV3Schema is JSONSchemaProps, which the walk also covers.
        expect(unknownFields(obj, modelType(obj), key(obj)), key(obj)).to.deep.equal([]);
      }
    });
  }

  it('finds unknown fields, so the check above can fail', () => {
    const [deployment] = installObjects().filter((o) => o.kind === 'Deployment');
    (deployment as any).spec.template.spec.containers[0].imagee = 'typo';
    expect(unknownFields(deployment, 'V1Deployment', 'd')).to.deep.equal(['d.spec.template.spec.containers[0].imagee']);
  });

  it('prints the objects as multi-document YAML that parses back to the same objects', () => {
    const options = { clusterId: 'k8s-cluster-01', config: 'logLevel: warn\n' };
    const docs = parseAllDocuments(renderInstall(options)).map((d) => d.toJS());
    expect(docs).to.deep.equal(JSON.parse(JSON.stringify(installObjects(options))));
  });

  it('runs the pod locked down: non-root uid 65532, read-only root, no capabilities, RuntimeDefault seccomp', () => {
    const [deployment] = installObjects().filter((o) => o.kind === 'Deployment') as any[];
    const pod = deployment.spec.template.spec;
    const container = pod.containers[0];
    expect(pod.securityContext).to.deep.include({ runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: 'RuntimeDefault' } });
    expect(container.securityContext).to.deep.include({
      runAsNonRoot: true, runAsUser: 65532, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(container.livenessProbe.httpGet.path).to.equal('/healthz');
    expect(container.readinessProbe.httpGet.path).to.equal('/readyz');
    expect(container.resources.requests).to.have.keys('cpu', 'memory');
    expect(container.resources.limits).to.have.keys('cpu', 'memory');
    expect(container.volumeMounts).to.deep.equal([
      { name: 'config', mountPath: '/config', readOnly: true },
      { name: 'tmp', mountPath: '/tmp' },
    ]);
    expect(pod.volumes[0]).to.deep.equal({ name: 'config', configMap: { name: 'meshsync' } });
    expect(pod.volumes[1].emptyDir).to.be.an('object');
  });

  it('passes broker URL and cluster id through the environment and the config through the ConfigMap', () => {
    const objects = installObjects({ namespace: 'x', brokerUrl: 'nats://b:4222', clusterId: 'c-9', config: { logLevel: 'warn' } });
    const deployment = objects.find((o) => o.kind === 'Deployment') as any;
    const configMap = objects.find((o) => o.kind === 'ConfigMap') as any;
    const container = deployment.spec.template.spec.containers[0];
    expect(container.env).to.deep.equal([
      { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
      { name: 'BROKER_URL', value: 'nats://b:4222' },
      { name: 'CLUSTER_ID', value: 'c-9' },
    ]);
    expect(container.args).to.deep.equal(['run', '--config', '/config/meshsync.config.yaml']);
    expect(configMap.data).to.deep.equal({ 'meshsync.config.yaml': 'logLevel: warn\n' });
    expect(objects.every((o) => ['CustomResourceDefinition', 'Namespace', 'ClusterRole', 'ClusterRoleBinding'].includes(o.kind) || o.metadata.namespace === 'x')).to.equal(true);
  });

  it('rolls the pods when the config changes', () => {
    const hash = (config: object) => (installObjects({ config }).find((o) => o.kind === 'Deployment') as any).spec.template.metadata.annotations;
    expect(hash({ logLevel: 'info' })).to.not.deep.equal(hash({ logLevel: 'debug' }));
  });

  it('finding 7 (LOW): emits a NetworkPolicy: ingress only to the metrics port from the configured namespace, egress only to DNS, the API server and the broker', () => {
    const objects = installObjects({ namespace: 'x', brokerUrl: 'nats://b:4333', metricsFrom: 'monitoring' });
    const policy = objects.find((o) => o.kind === 'NetworkPolicy') as any;
    expect(policy.metadata.namespace).to.equal('x');
    expect(policy.spec.podSelector.matchLabels).to.deep.equal((objects.find((o) => o.kind === 'Deployment') as any).spec.selector.matchLabels);
    expect(policy.spec.policyTypes).to.deep.equal(['Ingress', 'Egress']);
    expect(policy.spec.ingress).to.deep.equal([{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }], ports: [{ protocol: 'TCP', port: 11000 }] }]);
    expect(policy.spec.egress.flatMap((rule: any) => rule.ports.map((p: any) => `${p.protocol}/${p.port}`))).to.deep.equal(['UDP/53', 'TCP/53', 'TCP/443', 'TCP/6443', 'TCP/4333']);
  });

  it('finding 8 (LOW): a config shipped in a Secret gets no plain hash of itself on the Deployment (a ConfigMap config still rolls the pods)', () => {
    const annotations = (configSecret: boolean) => (installObjects({ config: 'auth:\n  password: guessable\n', configSecret }).find((o) => o.kind === 'Deployment') as any).spec.template.metadata.annotations;
    expect(annotations(true)).to.equal(undefined);
    expect(annotations(false)).to.have.key('meshery.io/config-sha256');
  });

  it('finding 9 (LOW): a broker URL with credentials goes into a Secret, referenced by secretKeyRef, never into the Deployment in clear', () => {
    const url = 'nats://meshsync:hunter2@b:4222';
    const objects = installObjects({ namespace: 'x', brokerUrl: url });
    const deployment = objects.find((o) => o.kind === 'Deployment') as any;
    expect(JSON.stringify(deployment)).to.not.contain('hunter2');
    const env = deployment.spec.template.spec.containers[0].env.find((e: any) => e.name === 'BROKER_URL');
    expect(env).to.deep.equal({ name: 'BROKER_URL', valueFrom: { secretKeyRef: { name: 'meshsync-broker', key: 'BROKER_URL' } } });
    const secret = objects.find((o) => o.kind === 'Secret' && o.metadata.name === 'meshsync-broker') as any;
    expect(secret.stringData).to.deep.equal({ BROKER_URL: url });
  });

  it('defines the MeshSync CRD with a status subresource and a schema for broker, watch-list and status', () => {
    const crd = meshSyncCrd() as any;
    const version = crd.spec.versions[0];
    expect(crd.metadata.name).to.equal('meshsyncs.meshery.io');
    expect(version.name).to.equal('v1alpha1');
    expect(version.subresources).to.deep.equal({ status: {} });
    const spec = version.schema.openAPIV3Schema.properties.spec.properties;
    expect(spec.broker.properties.native.properties).to.have.keys('name', 'namespace');
    expect(spec.broker.properties.custom.properties.url.type).to.equal('string');
    expect(spec['watch-list'].properties.data.properties.whitelist.type).to.equal('string');
    expect(spec['watch-list'].properties.data.properties.blacklist.type).to.equal('string');
    const status = version.schema.openAPIV3Schema.properties.status.properties;
    expect(status['publishing-to'].type).to.equal('string');
    expect(status.conditions.items.required).to.deep.equal(['type', 'status']);
    expect(version.additionalPrinterColumns.map((c: { name: string }) => c.name)).to.deep.equal(['Ready', 'Publishing-To', 'Age']);
  });
});

describe('install RBAC', () => {
  it('grants list and watch on exactly the configured resources, one rule per API group', () => {
    const rules = rulesOf(rbacObjects({ ...BASE, resources: DEFAULT_RESOURCES }), 'ClusterRole');
    const granted = rules.filter((r) => r.verbs.join() === 'list,watch').flatMap((r) => r.resources.map((res) => `${res}.${r.apiGroups[0]}`));
    const configured = DEFAULT_RESOURCES.map((id) => id.replace(/\.v1\./, '.'));
    expect(granted.sort()).to.deep.equal(configured.sort());
    expect(rules.filter((r) => r.verbs.join() === 'list,watch').map((r) => r.apiGroups)).to.deep.equal([[''], ['apps'], ['networking.k8s.io'], ['storage.k8s.io']]);
  });

  it('grants nothing more than the watch rules, the cluster id lookup and the MeshSync resource by name', () => {
    const objects = rbacObjects(BASE);
    expect(rulesOf(objects, 'ClusterRole')).to.deep.equal([
      { apiGroups: [''], resources: ['pods'], verbs: ['list', 'watch'] },
      { apiGroups: ['apps'], resources: ['deployments'], verbs: ['list', 'watch'] },
      { apiGroups: [''], resources: ['namespaces'], verbs: ['get'], resourceNames: ['kube-system'] },
    ]);
    expect(rulesOf(objects, 'Role', 'meshery')).to.deep.equal([
      { apiGroups: ['meshery.io'], resources: ['meshsyncs'], verbs: ['get', 'list', 'watch'], resourceNames: ['meshery-meshsync'] },
      { apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch'], resourceNames: ['meshery-meshsync-config'] },
    ]);
    expect(objects.map(key)).to.deep.equal(['ClusterRole//meshsync', 'ClusterRoleBinding//meshsync', 'Role/meshery/meshsync', 'RoleBinding/meshery/meshsync']);
    expect(rbacObjects({ ...BASE, meshSyncResource: false }).map(key)).to.deep.equal(['ClusterRole//meshsync', 'ClusterRoleBinding//meshsync']);
  });

  it('puts the MeshSync resource access in the namespace the resource lives in', () => {
    const objects = rbacObjects({ ...BASE, meshSyncResource: { namespace: 'meshery-cr', watch: false } });
    expect(rulesOf(objects, 'Role', 'meshery-cr')).to.deep.equal([
      { apiGroups: ['meshery.io'], resources: ['meshsyncs'], verbs: ['get'], resourceNames: ['meshery-meshsync'] },
      { apiGroups: [''], resources: ['configmaps'], verbs: ['get'], resourceNames: ['meshery-meshsync-config'] },
    ]);
    expect(rulesOf(objects, 'Role', 'meshery')).to.deep.equal([]);
  });

  it('adds CRD discovery, CR status and leases only when those features are on', () => {
    const objects = rbacObjects({ ...BASE, crds: true, crStatus: true, ha: true });
    expect(rulesOf(objects, 'ClusterRole')).to.deep.include({ apiGroups: ['apiextensions.k8s.io'], resources: ['customresourcedefinitions'], verbs: ['list', 'watch'] });
    expect(rulesOf(objects, 'Role', 'meshery')).to.deep.include.members([
      { apiGroups: ['meshery.io'], resources: ['meshsyncs/status'], verbs: ['get', 'update', 'patch'], resourceNames: ['meshery-meshsync'] },
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] },
    ]);
    const all = [...rulesOf(rbacObjects(BASE), 'ClusterRole'), ...rulesOf(rbacObjects(BASE), 'Role', 'meshery')];
    expect(all.flatMap((r) => r.resources)).to.not.include.members(['customresourcedefinitions', 'meshsyncs/status', 'leases']);
  });

  it('uses a Role per watched namespace, keeping cluster-scoped resources in the ClusterRole', () => {
    const objects = rbacObjects({ ...BASE, resources: ['pods.v1.', 'nodes.v1.', 'deployments.v1.apps'], namespaces: ['team-b', 'team-a'] });
    expect(rulesOf(objects, 'ClusterRole').filter((r) => r.verbs.includes('watch'))).to.deep.equal([{ apiGroups: [''], resources: ['nodes'], verbs: ['list', 'watch'] }]);
    for (const ns of ['team-a', 'team-b']) {
      expect(rulesOf(objects, 'Role', ns)).to.deep.equal([
        { apiGroups: [''], resources: ['pods'], verbs: ['list', 'watch'] },
        { apiGroups: ['apps'], resources: ['deployments'], verbs: ['list', 'watch'] },
      ]);
      const binding = objects.find((o) => o.kind === 'RoleBinding' && o.metadata.namespace === ns) as any;
      expect(binding.subjects).to.deep.equal([{ kind: 'ServiceAccount', name: 'meshsync', namespace: 'meshery' }]);
    }
  });

  it('merges versions of one resource, since RBAC has no versions', () => {
    expect(watchRules(['horizontalpodautoscalers.v2.autoscaling', 'horizontalpodautoscalers.v1.autoscaling'])).to.deep.equal([
      { apiGroups: ['autoscaling'], resources: ['horizontalpodautoscalers'], verbs: ['list', 'watch'] },
    ]);
  });

  it('turns configured patterns into the same wildcard, and nothing broader', () => {
    expect(watchRules(['*.v1.apps', 'deployments.v1.apps', 'pods.v1.', '*.*.example.com'])).to.deep.equal([
      { apiGroups: [''], resources: ['pods'], verbs: ['list', 'watch'] },
      { apiGroups: ['apps'], resources: ['*'], verbs: ['list', 'watch'] },
      { apiGroups: ['example.com'], resources: ['*'], verbs: ['list', 'watch'] },
    ]);
  });

  it('rejects what is not a resource id', () => {
    for (const bad of ['pods', 'pods.v1', '.v1.', 'pods/log.v1.', 'Pods.v1.', 'pods.v1.apps/x', 'pods.v1.*x']) {
      expect(() => rbacObjects({ ...BASE, resources: [bad] }), bad).to.throw(MeshSyncError, /not a resource id/);
    }
  });

  it('prints the same objects as YAML', () => {
    const docs = parseAllDocuments(renderRbac(BASE)).map((d) => d.toJS());
    expect(docs).to.deep.equal(rbacObjects(BASE));
  });
});

describe('deploy/', () => {
  it('holds what scripts/deploy-generate.ts generates', async () => {
    expect(await staleDeployFiles(root)).to.deep.equal([]);
  });

  it('kustomize base renders exactly what renderInstall prints with defaults', async function () {
    this.timeout(30_000);
    const { stdout } = await run('kubectl', ['kustomize', join(root, 'deploy/kustomize/base')], { maxBuffer: 16 << 20 });
    const kustomized = parseAllDocuments(stdout).map((d) => d.toJS());
    expect(kustomized).to.deep.equal(parseAllDocuments(renderInstall()).map((d) => d.toJS()));
  });
});
