/**
 * The Kubernetes client library (`meshsync/kubernetes`) the built-in plugins share, and a
 * third-party plugin may use: configuration loading, requests and watches against one API
 * server, and client-go's reflector (list, watch, resume, relist) with its store and backoff.
 */
export {
  KubeClient, KubeRequestError, KUBE_LIMITS, LineSplitter, loadKubeConfig, parseBody,
  type FailureReason, type KubeLimits, type KubeConfigChoice, type RequestOptions, type WatchHandlers,
} from './client.ts';
export { apiVersionOf, collectionPath, Reflector, type ReflectorListener, type ReflectorScope, type ReflectorTiming } from './reflector.ts';
export { internObject, ObjectStore, StringPool } from './store.ts';
export { Backoff, sleep } from './backoff.ts';
export { serviceUrl } from './service.ts';
