import { Counter, Gauge, type Registry } from 'prom-client';

export interface NatsMetrics {
  readonly published: Counter<'type'>;
  readonly truncated: Counter;
  readonly resyncs: Counter<'reason'>;
  readonly requests: Counter<'command' | 'outcome'>;
  readonly mesheryRequests: Counter<'entity' | 'outcome'>;
}

/** Each registry's NATS sinks, by whether their connection is up. */
const connectionChecks = new WeakMap<Registry, (() => boolean)[]>();

/**
 * Registers the sink's metrics once per registry (a second nats sink shares them). The broker
 * gauge is 1 only while every NATS sink of the registry is connected: with two brokers, an alert
 * on 0 fires when either is down.
 */
export function natsMetrics(registry: Registry, isConnected: () => boolean): NatsMetrics {
  let checks = connectionChecks.get(registry);
  if (checks === undefined) connectionChecks.set(registry, (checks = []));
  checks.push(isConnected);
  const existing = registry.getSingleMetric('meshsync_events_published_total');
  if (existing === undefined) {
    const all = checks;
    new Gauge({
      name: 'meshsync_broker_connected',
      help: '1 while the connection of every NATS sink is up, else 0.',
      registers: [registry],
      collect() {
        this.set(all.every((connected) => connected()) ? 1 : 0);
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
    requests: (registry.getSingleMetric('meshsync_nats_requests_total') as Counter<'command' | 'outcome'> | undefined) ?? new Counter({
      name: 'meshsync_nats_requests_total',
      help: 'Requests on the request subject, by command and outcome (answered, joined: shared a resync or snapshot already asked for, rate-limited, not-allowed, too-large, failed).',
      labelNames: ['command', 'outcome'],
      registers: [registry],
    }),
    mesheryRequests: (registry.getSingleMetric('meshsync_meshery_requests_total') as Counter<'entity' | 'outcome'> | undefined) ?? new Counter({
      name: 'meshsync_meshery_requests_total',
      help: 'Meshery mode: requests from Meshery Server, by entity and outcome (answered, ignored, invalid, unsupported, failed).',
      labelNames: ['entity', 'outcome'],
      registers: [registry],
    }),
  };
}
