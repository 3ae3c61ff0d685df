/**
 * Contender (b), what a user would write instead: @kubernetes/client-node's makeInformer on pods
 * (its list function is the plain listPodForAllNamespaces(), one unpaginated LIST, as the
 * client-node examples do), JSON.stringify of each object, published with the raw NATS client.
 *
 *   node informer.js <kubeconfig> <nats-url> <subject>
 */
import { CoreV1Api, KubeConfig, makeInformer, type V1Pod } from '@kubernetes/client-node';
import { connect } from '@nats-io/transport-node';

const [kubeconfig, natsUrl, subject] = process.argv.slice(2);
const nc = await connect({ servers: natsUrl, name: 'bench-informer' });
process.on('SIGTERM', () => process.exit(0));

const kc = new KubeConfig();
kc.loadFromFile(kubeconfig);
const api = kc.makeApiClient(CoreV1Api);
const informer = makeInformer<V1Pod>(kc, '/api/v1/pods', () => api.listPodForAllNamespaces());
const publish = (type: string) => (object: V1Pod) => nc.publish(subject, JSON.stringify({ object, type, cluster_id: 'bench' }));
informer.on('add', publish('ADDED'));
informer.on('update', publish('MODIFIED'));
informer.on('delete', publish('DELETED'));
informer.on('error', (error) => {
  console.error('informer error, restarting:', error);
  setTimeout(() => void informer.start(), 1000);
});
await informer.start();
