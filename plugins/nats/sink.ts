/**
 * The NATS sink: one broker connection, and the parts that use it, wired here. Delivery
 * (delivery.ts) publishes each batch and accepts it once the server confirmed it; resyncs
 * (resync.ts) republish the confirmed state, framed, after a reconnect or on request; requests
 * (requests.ts) answers the request subject; JetStream (jetstream.ts) replaces the flush with acks.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { redactUrlCredentials, type Batch, type Core, type Logger } from '../../core/index.ts';
import { BrokerConnection } from './connection.ts';
import { Delivery } from './delivery.ts';
import { natsMetrics } from './metrics.ts';
import { namesBroker, PLUGIN_NAME, resolveServers, serverHosts, type NatsOptions } from './options.ts';
import { Requests } from './requests.ts';
import { Resyncs } from './resync.ts';
import { compileSubject } from './subject.ts';

export class NatsSink {
  private brokerConnection: BrokerConnection;
  private started = false;
  private clusterKnown = false;
  private readonly delivery: Delivery;
  private readonly resyncs: Resyncs;
  private readonly requests: Requests;

  constructor(private readonly core: Core, private readonly options: NatsOptions, private readonly logger: Logger) {
    this.brokerConnection = this.connect(resolveServers(options));
    const metrics = natsMetrics(core.metrics, () => this.connection.connected);
    const connection = () => this.connection;
    this.delivery = new Delivery(options, connection, metrics, logger);
    this.resyncs = new Resyncs(core, options, this.delivery, connection, metrics, logger);
    this.requests = new Requests(core, options, connection, (reason) => this.resyncs.run(reason), metrics, logger);
  }

  get connection(): BrokerConnection {
    return this.brokerConnection;
  }

  async start(): Promise<void> {
    this.started = true;
    await this.connection.start();
  }

  /**
   * Live settings name a broker (the MeshSync custom resource). BROKER_URL wins, as everywhere;
   * before start the sink simply connects there, after start it would need a restart.
   */
  useBroker(url: string): void {
    if (process.env.BROKER_URL?.trim()) return;
    // Whoever may edit the resource must not redirect a broker the config chose (and its data).
    if (namesBroker(this.options) && !this.options.brokerFromResource) {
      this.logger.warn({ broker: redactUrlCredentials(url), configured: this.connection.describeServers() }, 'the MeshSync resource names a broker, but the config names one: kept (set brokerFromResource: true to let the resource choose)');
      return;
    }
    const servers = [url];
    if (this.connection.describeServers() === servers.map(redactUrlCredentials).join(',')) return;
    if (this.started) {
      this.logger.warn({ broker: redactUrlCredentials(url) }, 'the broker changed; restart meshsync to publish there (the connection in use is kept)');
      return;
    }
    this.brokerConnection = this.connect(servers);
  }

  /**
   * A connection to `servers`. Credentials configured for one broker go to its hosts only: a
   * broker elsewhere (named by the MeshSync resource) is dialled without them.
   */
  private connect(servers: string[]): BrokerConnection {
    const configured = serverHosts(resolveServers(this.options));
    const elsewhere = [...serverHosts(servers)].some((host) => !configured.has(host));
    let options = this.options;
    if (elsewhere && options.auth !== undefined) {
      this.logger.warn({ broker: servers.map(redactUrlCredentials).join(','), configured: [...configured].join(',') }, 'the configured NATS credentials are not sent to this broker: they belong to the configured one');
      options = { ...options, auth: undefined };
    }
    return new BrokerConnection(options, servers, this.logger, {
      connected: (nc, reconnect) => this.onConnected(nc, reconnect),
    });
  }

  /** The cluster id is final (the clusterId hook ran after start): subjects can be rendered. */
  clusterResolved(clusterId: string): void {
    this.delivery.subjectOf = compileSubject(this.options.subject, clusterId);
    this.clusterKnown = true;
    const nc = this.connection.current;
    if (nc) this.requests.subscribe(nc);
  }

  async stop(): Promise<void> {
    this.resyncs.stop();
    await this.connection.stop();
  }

  /** The sink tap: resolves once the broker confirmed every event of the batch. */
  deliver(batch: Batch): Promise<void> {
    return this.delivery.deliver(batch);
  }

  /** Asks for a resync (the resync hook, a reconnect); one runs at a time, retried until it went through. */
  requestResync(reason: string): void {
    this.resyncs.request(reason);
  }

  private onConnected(nc: NatsConnection, reconnect: boolean): void {
    // A batch that failed while the broker was away is sent now, not when its backoff ends.
    this.core.retryDelivery(PLUGIN_NAME);
    if (this.clusterKnown) this.requests.subscribe(nc);
    if (reconnect && this.options.resyncOnReconnect) this.requestResync('reconnect');
  }
}
