// The MeshSync custom resource: how Meshery's operator configures a meshsync instance and
// where meshsync reports its state (the status subresource).
import type { KubeObject } from './objects.ts';
import { MESHSYNC_RESOURCE } from '../../plugins/meshsync-resource/index.ts';
import { MESHSYNC_GROUP, labels } from './objects.ts';

const str = (description: string) => ({ type: 'string', description });

const condition = {
  type: 'object',
  required: ['type', 'status'],
  properties: {
    type: str('Kind of condition, e.g. Ready or Publishing.'),
    status: { type: 'string', enum: ['True', 'False', 'Unknown'], description: 'Status of the condition.' },
    reason: str('One-word CamelCase reason for the last transition.'),
    message: str('Human-readable detail of the last transition.'),
    observedGeneration: { type: 'integer', format: 'int64', minimum: 0, description: 'The .metadata.generation the condition was set for.' },
    lastProbeTime: { type: 'string', format: 'date-time', description: 'When the condition was last checked.' },
    lastTransitionTime: { type: 'string', format: 'date-time', description: 'When the condition last changed status.' },
  },
};

const schema = {
  type: 'object',
  description: 'MeshSync configures one meshsync instance: what it watches and where it publishes.',
  properties: {
    apiVersion: { type: 'string' },
    kind: { type: 'string' },
    metadata: { type: 'object' },
    spec: {
      type: 'object',
      properties: {
        size: { type: 'integer', format: 'int32', minimum: 0, description: 'Number of meshsync replicas.' },
        version: str('meshsync version (image tag) to run.'),
        broker: {
          type: 'object',
          description: 'Where meshsync publishes: a broker deployed by Meshery (native) or any NATS URL (custom).',
          properties: {
            native: {
              type: 'object',
              description: 'A Broker custom resource deployed by the Meshery operator.',
              properties: { name: str('Name of the Broker resource.'), namespace: str('Namespace of the Broker resource.') },
            },
            custom: {
              type: 'object',
              description: 'A broker outside Meshery\'s control.',
              properties: { url: str('NATS URL, e.g. nats://broker.example:4222.') },
            },
          },
        },
        'watch-list': {
          type: 'object',
          description: 'The legacy watch-list, shaped like a ConfigMap: data.whitelist / data.blacklist.',
          properties: {
            apiVersion: { type: 'string' },
            kind: { type: 'string' },
            metadata: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
            data: {
              type: 'object',
              properties: {
                whitelist: str('JSON list of {"Resource": "<plural>.<version>.<group>", "Events": [...]} to watch.'),
                blacklist: str('JSON list of resource ids never to watch.'),
              },
            },
          },
        },
      },
    },
    status: {
      type: 'object',
      properties: {
        'publishing-to': str('The broker endpoint meshsync publishes to.'),
        conditions: { type: 'array', items: condition, 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'] },
      },
    },
  },
};

/** The `meshsyncs.meshery.io` CustomResourceDefinition. */
export function meshSyncCrd(): KubeObject {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${MESHSYNC_RESOURCE.resource}.${MESHSYNC_GROUP}`, labels: labels() },
    spec: {
      group: MESHSYNC_GROUP,
      names: { kind: MESHSYNC_RESOURCE.kind, listKind: `${MESHSYNC_RESOURCE.kind}List`, plural: MESHSYNC_RESOURCE.resource, singular: 'meshsync' },
      scope: 'Namespaced',
      versions: [
        {
          name: MESHSYNC_RESOURCE.version,
          served: true,
          storage: true,
          subresources: { status: {} },
          // What `kubectl get meshsync` shows: the Ready condition the MeshSync resource plugin sets.
          additionalPrinterColumns: [
            { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
            { name: 'Publishing-To', type: 'string', jsonPath: '.status.publishing-to' },
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
          ],
          schema: { openAPIV3Schema: structuredClone(schema) },
        },
      ],
    },
  };
}
