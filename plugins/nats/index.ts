/**
 * meshsync:nats — the broker sink that loses nothing. Publishes every event to NATS (core NATS,
 * or JetStream) in MeshSync's wire format, accepts a batch only once the server confirmed it,
 * announces the state at each start and takeover (against a durable ledger, or framed), and
 * republishes the whole state, framed, after a reconnect or on request.
 */
import { definePlugin } from '../../core/index.ts';
import { natsOptionsSchema, PLUGIN_NAME } from './options.ts';
import { NatsSink } from './sink.ts';

export { PLUGIN_NAME };

export const nats = definePlugin({
  name: PLUGIN_NAME,
  description: 'Publishes every change to a NATS broker (MeshSync wire format), with no loss across broker outages.',
  options: natsOptionsSchema,
  setup: (options) => (core) => {
    const sink = new NatsSink(core, options, core.logger.child({ plugin: PLUGIN_NAME }));
    core.addReadinessCheck('broker', () => sink.connection.connected);
    core.addStatus(PLUGIN_NAME, () => sink.status());
    // Meshery's model is built from spec and status; MeshSync's own format publishes the bytes.
    core.readsWholeObjects(PLUGIN_NAME, () => sink.protocol === 'meshery');
    core.hooks.start.tapPromise(PLUGIN_NAME, () => sink.start());
    // Last in the waterfall, so it sees the cluster id every other tap agreed on.
    core.hooks.clusterId.tap({ name: PLUGIN_NAME, stage: 1000 }, (clusterId) => {
      sink.clusterResolved(clusterId);
      return clusterId;
    });
    core.hooks.ready.tap(PLUGIN_NAME, () => sink.sourcesSynced());
    core.hooks.sink.tapPromise(PLUGIN_NAME, (batch) => sink.deliver(batch));
    // A new leader, or an operator's request through the core: republish the confirmed view, framed.
    core.hooks.resync.tap(PLUGIN_NAME, (reason) => sink.requestResync(reason));
    // Delivery opened (this replica leads now) or held (it stood down).
    core.hooks.deliveryHeld.tap(PLUGIN_NAME, (held) => sink.deliveryHeld(held));
    core.hooks.reconfigure.tap(PLUGIN_NAME, (settings) => {
      if (settings.broker !== undefined) sink.useBroker(settings.broker);
    });
    core.hooks.stop.tapPromise(PLUGIN_NAME, () => sink.stop());
  },
});

export default nats;
export { natsOptionsSchema, resolveProtocol, resolveServers, PROTOCOLS, type NatsOptions, type NatsOptionsInput, type Protocol } from './options.ts';
export { MESHERY } from './meshery/wire.ts';
export { FORMAT_VERSION, HEADER } from './encode.ts';
export { compileSubject, subjectToken } from './subject.ts';
