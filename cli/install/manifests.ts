// Everything `kubectl apply` needs to run meshsync in a cluster, from one set of options.
import { createHash } from 'node:crypto';
import { stringify } from 'yaml';
import { DEFAULT_RESOURCES } from '../../plugins/kubernetes/defaults.ts';
import { OWN_IMAGE } from '../package-info.ts';
import { meshSyncCrd } from './crd.ts';
import type { KubeObject } from './objects.ts';
import { APP_NAME, labels, toYaml } from './objects.ts';
import { rbacObjects } from './rbac.ts';
import type { RbacOptions } from './rbac.ts';

export const INSTALL_DEFAULTS = Object.freeze({
  namespace: 'meshery',
  name: APP_NAME,
  /** What `npm run image` builds. */
  image: OWN_IMAGE,
  replicas: 1,
  /** The metrics plugin's default port (/metrics, /healthz, /readyz). */
  metricsPort: 11000,
  configFile: 'meshsync.config.yaml',
  /** uid/gid of `nonroot`, the user the image runs as. */
  uid: 65532,
});

/** Config written to the ConfigMap when none is given: the defaults, with broker and cluster id from the env. */
export const DEFAULT_INSTALL_CONFIG = Object.freeze({ logLevel: 'info' });

export interface InstallOptions extends Partial<Omit<RbacOptions, 'namespace' | 'serviceAccount' | 'name'>> {
  /** Namespace to install into (created): default `meshery`. */
  readonly namespace?: string;
  /** Name of the Deployment, ServiceAccount, ConfigMap (or Secret), Service and RBAC objects: default `meshsync`. */
  readonly name?: string;
  /** NATS URL (BROKER_URL): default the Meshery broker in the same namespace. */
  readonly brokerUrl?: string;
  /** CLUSTER_ID; left out, meshsync uses the kube-system namespace's uid. */
  readonly clusterId?: string;
  readonly image?: string;
  readonly replicas?: number;
  /** The meshsync config for the ConfigMap: an object (written as YAML) or the file's text. */
  readonly config?: object | string;
  /** The config's file name in the ConfigMap and under /config (its extension tells its format): default meshsync.config.yaml. */
  readonly configFile?: string;
  /** The config holds credentials: ship it in a Secret instead of a ConfigMap. */
  readonly configSecret?: boolean;
  readonly metricsPort?: number;
  /** Include the MeshSync CRD: default true. */
  readonly crd?: boolean;
  /** The namespace allowed to reach the metrics port (Prometheus): default the install namespace. */
  readonly metricsFrom?: string;
}

export function defaultBrokerUrl(namespace: string): string {
  return `nats://meshery-broker.${namespace}.svc:4222`;
}

/** The objects of a complete install, in the order they can be applied. */
export function installObjects(options: InstallOptions = {}): KubeObject[] {
  const d = INSTALL_DEFAULTS;
  const namespace = options.namespace ?? d.namespace;
  const name = options.name ?? d.name;
  const port = options.metricsPort ?? d.metricsPort;
  const replicas = options.replicas ?? d.replicas;
  const configText = typeof options.config === 'string' ? options.config : stringify(options.config ?? DEFAULT_INSTALL_CONFIG);
  const configFile = typeof options.config === 'string' ? options.configFile ?? d.configFile : d.configFile;
  const selector = { 'app.kubernetes.io/name': APP_NAME, 'app.kubernetes.io/instance': name };
  const meta = (extra: object = {}) => ({ name, namespace, labels: labels({ 'app.kubernetes.io/instance': name }), ...extra });

  const brokerUrl = options.brokerUrl ?? defaultBrokerUrl(namespace);
  // A URL with credentials never sits in the Deployment in clear: it is a Secret's, referenced.
  const brokerSecret = hasUserinfo(brokerUrl) ? `${name}-broker` : undefined;
  const env = [
    // Plugins default their own namespace (leases, the MeshSync resource) to the pod's.
    { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
    brokerSecret === undefined
      ? { name: 'BROKER_URL', value: brokerUrl }
      : { name: 'BROKER_URL', valueFrom: { secretKeyRef: { name: brokerSecret, key: 'BROKER_URL' } } },
    ...(options.clusterId ? [{ name: 'CLUSTER_ID', value: options.clusterId }] : []),
  ];
  const securityContext = {
    runAsNonRoot: true,
    runAsUser: d.uid,
    runAsGroup: d.uid,
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  };
  const probe = (path: string, periodSeconds: number) => ({
    httpGet: { path, port: 'metrics' }, periodSeconds, timeoutSeconds: 2, failureThreshold: 3,
  });

  const deployment: KubeObject = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: meta(),
    spec: {
      replicas,
      selector: { matchLabels: selector },
      template: {
        metadata: {
          labels: { ...labels(), ...selector },
          // A changed config rolls the pods (a mounted ConfigMap alone would not restart the process).
          // Not for a config in a Secret: a plain hash of it would let whoever reads the Deployment
          // test guesses of the credentials it holds (after editing that Secret: kubectl rollout restart).
          ...(options.configSecret ? {} : { annotations: { 'meshery.io/config-sha256': createHash('sha256').update(configText).digest('hex') } }),
        },
        spec: {
          serviceAccountName: name,
          securityContext: { runAsNonRoot: true, runAsUser: d.uid, runAsGroup: d.uid, seccompProfile: { type: 'RuntimeDefault' } },
          terminationGracePeriodSeconds: 30,
          containers: [
            {
              name: APP_NAME,
              image: options.image ?? d.image,
              imagePullPolicy: 'IfNotPresent',
              args: ['run', '--config', `/config/${configFile}`],
              env,
              ports: [{ name: 'metrics', containerPort: port, protocol: 'TCP' }],
              livenessProbe: probe('/healthz', 10),
              readinessProbe: probe('/readyz', 5),
              resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '1', memory: '512Mi' } },
              securityContext,
              volumeMounts: [
                { name: 'config', mountPath: '/config', readOnly: true },
                { name: 'tmp', mountPath: '/tmp' },
              ],
            },
          ],
          volumes: [
            options.configSecret ? { name: 'config', secret: { secretName: name } } : { name: 'config', configMap: { name } },
            { name: 'tmp', emptyDir: { sizeLimit: '64Mi' } },
          ],
        },
      },
    },
  };

  return [
    ...(options.crd === false ? [] : [meshSyncCrd()]),
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace, labels: labels() } },
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta() },
    ...rbacObjects({
      resources: options.resources ?? DEFAULT_RESOURCES,
      namespaces: options.namespaces,
      crds: options.crds,
      // With no config, meshsync in a cluster also elects a leader (config/load.ts defaults).
      ha: options.ha ?? (options.config === undefined || replicas > 1),
      leaseName: options.leaseName ?? (options.config === undefined ? 'meshsync-leader' : undefined),
      // With no config, meshsync in a cluster runs the MeshSync resource plugin with its defaults.
      meshSyncResource: options.meshSyncResource,
      crStatus: options.crStatus ?? options.meshSyncResource !== false,
      clusterScoped: options.clusterScoped,
      namespace,
      serviceAccount: name,
      name,
    }),
    options.configSecret
      ? { apiVersion: 'v1', kind: 'Secret', metadata: meta(), type: 'Opaque', stringData: { [configFile]: configText } }
      : { apiVersion: 'v1', kind: 'ConfigMap', metadata: meta(), data: { [configFile]: configText } },
    deployment,
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: meta(),
      spec: { type: 'ClusterIP', selector, ports: [{ name: 'metrics', port, targetPort: 'metrics', protocol: 'TCP' }] },
    },
    ...(brokerSecret === undefined ? [] : [{ apiVersion: 'v1', kind: 'Secret', metadata: { ...meta(), name: brokerSecret }, type: 'Opaque', stringData: { BROKER_URL: brokerUrl } }]),
    networkPolicy(meta(), selector, port, options.metricsFrom ?? namespace, brokerPort(brokerUrl)),
  ];
}

/**
 * The metrics port has no authentication: only the given namespace may reach it (kubelet probes
 * come from the node, which NetworkPolicies do not govern). Out: DNS, the API server (its address
 * is not known here: any host on 443 and 6443) and the broker's port.
 */
function networkPolicy(metadata: KubeObject["metadata"], selector: Record<string, string>, port: number, from: string, broker: number): KubeObject {
  const tcp = (value: number) => ({ protocol: 'TCP', port: value });
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata,
    spec: {
      podSelector: { matchLabels: selector },
      policyTypes: ['Ingress', 'Egress'],
      ingress: [{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': from } } }], ports: [tcp(port)] }],
      egress: [
        { ports: [{ protocol: 'UDP', port: 53 }, tcp(53)] },
        { ports: [tcp(443), tcp(6443)] },
        { ports: [tcp(broker)] },
      ],
    },
  };
}

function hasUserinfo(url: string): boolean {
  return url.split(',').some((server) => /^[a-z]+:\/\/[^/@]*@/i.test(server.trim()));
}

/** The broker's port (the first server's), 4222 unless the URL says otherwise. */
function brokerPort(url: string): number {
  try {
    return Number(new URL(url.split(',')[0].trim()).port) || 4222;
  } catch {
    return 4222;
  }
}

/** A complete install as multi-document YAML. */
export function renderInstall(options: InstallOptions = {}): string {
  return toYaml(installObjects(options));
}
