/**
 * The test kit (`meshsync/testing`) for plugin authors and meshsync's own tests: a core with an
 * in-memory source to inject events and an in-memory sink to read what came out, the reference
 * consumer of the NATS wire format, and the Kubernetes API simulator. Never part of the image.
 */
import { createCore, type CoreOptions, type KubeObject, type MeshSyncCore, type ResourceRef, type StopReport } from '../core/index.ts';
import { memorySink, memorySource, type MemorySinkHandle, type MemorySourceHandle } from './memory.ts';

export { memorySink, memorySource, type MemorySinkHandle, type MemorySourceHandle } from './memory.ts';
export { ReferenceConsumer, wireKey, type WireEvent, type WireMarker } from './consumer.ts';
export { startSimulator, KUBE_SYSTEM_UID, type KubeSimulator, type SimulatorOptions } from './simulator/index.ts';

export interface TestCore {
  readonly core: MeshSyncCore;
  readonly source: MemorySourceHandle;
  readonly sink: MemorySinkHandle;
  /** Starts the core (and waits for the in-memory source to be ready). */
  start(): Promise<void>;
  /** Waits until every sink has accepted everything emitted so far. */
  drain(): Promise<void>;
  /** Stops the core; resolves with what it could not deliver by the deadline. */
  stop(): Promise<StopReport>;
}

/**
 * A core running `plugins` between an in-memory source and an in-memory sink. Batching is quick
 * (batchMaxWaitMs 5) and retries are fast, so tests run in milliseconds.
 */
export function createTestCore(options: Partial<CoreOptions> & { plugins?: CoreOptions['plugins']; source?: Parameters<typeof memorySource>[1]; sink?: Parameters<typeof memorySink>[1] } = {}): TestCore {
  const { source: sourceOptions, sink: sinkOptions, ...coreOptions } = options;
  const source = memorySource(undefined, sourceOptions);
  const sink = memorySink(undefined, sinkOptions);
  const core = createCore({
    clusterId: 'test-cluster',
    batchMaxWaitMs: 5,
    retryInitialMs: 5,
    retryMaxMs: 50,
    ...coreOptions,
    plugins: [source.plugin, ...(coreOptions.plugins ?? []), sink.plugin],
  });
  return {
    core,
    source: source.handle,
    sink: sink.handle,
    start: () => core.start(),
    drain: () => core.drain(),
    stop: () => core.stop(),
  };
}

export const POD: ResourceRef = Object.freeze({ group: '', version: 'v1', resource: 'pods', kind: 'Pod', namespaced: true });
export const SECRET: ResourceRef = Object.freeze({ group: '', version: 'v1', resource: 'secrets', kind: 'Secret', namespaced: true });
export const DEPLOYMENT: ResourceRef = Object.freeze({ group: 'apps', version: 'v1', resource: 'deployments', kind: 'Deployment', namespaced: true });

/** A small object of a resource, for tests: `makeObject(POD, 'web-1', { namespace: 'shop' })`. */
export function makeObject(resource: ResourceRef, name: string, meta: Partial<KubeObject['metadata']> & Record<string, unknown> = {}, body: Record<string, unknown> = {}): KubeObject {
  return {
    apiVersion: resource.group ? `${resource.group}/${resource.version}` : resource.version,
    kind: resource.kind,
    metadata: { name, namespace: resource.namespaced ? 'default' : undefined, uid: `uid-${resource.resource}-${name}`, resourceVersion: '1', ...meta },
    ...body,
  };
}

/** Everything an iterable gives, awaited (Array.fromAsync is Node 22's): `await collect(core.snapshot())`. */
export async function collect<T>(items: Iterable<T> | AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}
