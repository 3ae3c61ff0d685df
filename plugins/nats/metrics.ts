import { Counter, Gauge, type Registry } from 'prom-client';

export interface NatsMetrics {
  readonly published: Counter<'type'>;
  readonly truncated: Counter;
  readonly resyncs: Counter<'reason'>;
}

/** Registers the sink's metrics once per registry (a second nats sink shares them). */
export function natsMetrics(registry: Registry, isConnected: () => boolean): NatsMetrics {
  const existing = registry.getSingleMetric('meshsync_events_published_total');
  if (existing === undefined) {
    new Gauge({
      name: 'meshsync_broker_connected',
      help: '1 while the NATS connection is up, else 0.',
      registers: [registry],
      collect() {
        this.set(isConnected() ? 1 : 0);
      },
    });
  }
  return {
    published: (existing as Counter<'type'> | undefined) ?? new Counter({
      name: 'meshsync_events_published_total',
      help: 'Events the NATS broker confirmed (flushed, or acknowledged by JetStream), by event type.',
      labelNames: ['type'],
      registers: [registry],
    }),
    truncated: (registry.getSingleMetric('meshsync_messages_truncated_total') as Counter | undefined) ?? new Counter({
      name: 'meshsync_messages_truncated_total',
      help: 'Messages cut down to fit the server\'s max_payload (stripped, or metadata only).',
      registers: [registry],
    }),
    resyncs: (registry.getSingleMetric('meshsync_resyncs_total') as Counter<'reason'> | undefined) ?? new Counter({
      name: 'meshsync_resyncs_total',
      help: 'Complete republications of the current state, by reason (reconnect, request).',
      labelNames: ['reason'],
      registers: [registry],
    }),
  };
}
