/**
 * The NATS sink: one broker connection, and the parts that use it, wired here. Delivery
 * (delivery.ts) publishes each batch and accepts it once the server confirmed it; resyncs
 * (resync.ts) republish the confirmed state, framed, after a reconnect or on request; requests
 * (requests.ts) answers the request subject; JetStream (jetstream.ts) replaces the flush with acks.
 * Each start, and each takeover by a new leader, opens a term (term.ts) that announces the state
 * against the ledger (ledger.ts) or in a frame.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { redactUrlCredentials, type Batch, type Core, type Logger } from '../../core/index.ts';
import { BrokerConnection, jitter } from './connection.ts';
import { Delivery } from './delivery.ts';
import { natsMetrics } from './metrics.ts';
import { MesheryRequests } from './meshery/requests.ts';
import { MESHERY } from './meshery/wire.ts';
import { namesBroker, PLUGIN_NAME, resolveProtocol, resolveServers, serverHosts, type NatsOptions, type Protocol } from './options.ts';
import { Requests } from './requests.ts';
import { Resyncs } from './resync.ts';
import type { Term } from './term.ts';
import { compileSubject } from './subject.ts';

/**
 * A term closes once the lanes delivered what the sources listed (so few objects arrive after it),
 * or after this long: a busy lane may never be empty, and a late object is still delivered.
 */
const TERM_CLOSE_WAIT_MS = 5000;

export class NatsSink {
  private brokerConnection: BrokerConnection;
  private started = false;
  private stopped = false;
  private clusterKnown = false;
  private readonly delivery: Delivery;
  private readonly resyncs: Resyncs;
  private readonly requests: Requests | MesheryRequests;
  /** The wire format in force (MESHSYNC_PROTOCOL wins over the option). */
  readonly protocol: Protocol;
  private markSynced: () => void = () => undefined;
  private readonly synced = new Promise<void>((resolve) => (this.markSynced = resolve));

  constructor(private readonly core: Core, private readonly options: NatsOptions, private readonly logger: Logger) {
    this.protocol = resolveProtocol(options);
    this.brokerConnection = this.connect(resolveServers(options));
    const metrics = natsMetrics(core.metrics, () => this.connection.connected);
    const connection = () => this.connection;
    this.delivery = new Delivery(core, options, this.protocol, connection, metrics, logger);
    this.resyncs = new Resyncs(core, options, this.protocol, this.delivery, connection, metrics, logger);
    this.requests = this.protocol === 'meshery'
      ? new MesheryRequests(core, options, this.delivery, connection, this.synced, (reason) => this.resyncs.request(reason), metrics, logger)
      : new Requests(core, options, connection, (reason) => this.resyncs.run(reason), metrics, logger);
  }

  /** Every source listed its initial state (the ready hook). */
  sourcesSynced(): void {
    this.markSynced();
  }

  get connection(): BrokerConnection {
    return this.brokerConnection;
  }

  async start(): Promise<void> {
    this.started = true;
    // A replica that starts as a standby opens its term when it becomes the leader.
    if (!this.core.state.deliveryHeld) this.openTerm('start');
    await this.connection.start();
  }

  /** The deliveryHeld hook: a new leader announces the state; one that stood down leaves it to the next. */
  deliveryHeld(held: boolean): void {
    if (held) this.delivery.abandonTerm();
    else if (this.started) this.openTerm('leader');
  }

  /** What /status tells of this sink: whether consumers that know no framing converge across restarts. */
  status(): Record<string, unknown> {
    const ledger = this.delivery.ledger;
    return {
      ledger: ledger.state,
      converge: ledger.available ? 'every consumer' : ledger.state === 'unknown' ? 'unknown until connected' : 'only consumers that apply resync framing',
    };
  }

  private openTerm(reason: Term['reason']): void {
    void this.closeWhenListed(this.delivery.openTerm(reason));
  }

  private async closeWhenListed(term: Term): Promise<void> {
    await this.synced;
    const deadline = Date.now() + TERM_CLOSE_WAIT_MS;
    const idle = () => this.core.state.lanes().every((lane) => lane.pending === 0 && lane.inFlight === 0);
    while (Date.now() < deadline && !idle()) await new Promise((resolve) => setTimeout(resolve, 50));
    const delivered = idle();
    let delay = this.options.reconnectInitialMs;
    while (!this.stopped && this.delivery.isCurrent(term)) {
      try {
        await this.connection.whenConnected();
        await this.delivery.closeTerm(term, delivered);
        return;
      } catch (error) {
        this.logger.warn({ err: this.connection.scrub(error instanceof Error ? error.message : String(error)) }, 'announcing the state failed; retrying');
        await new Promise((resolve) => setTimeout(resolve, jitter(delay)));
        delay = Math.min(delay * 2, this.options.reconnectMaxMs);
      }
    }
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
   * broker elsewhere (named by the MeshSync resource) is dialled without them, NATS_TOKEN included.
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
    }, !elsewhere);
  }

  /** The cluster id is final (the clusterId hook ran after start): subjects can be rendered. */
  clusterResolved(clusterId: string): void {
    // Meshery mode uses Go MeshSync's hard-coded subjects.
    this.delivery.subjectOf = this.protocol === 'meshery' ? () => MESHERY.eventSubject : compileSubject(this.options.subject, clusterId);
    this.delivery.ledger.clusterResolved(clusterId);
    this.clusterKnown = true;
    const nc = this.connection.current;
    if (nc) this.requests.subscribe(nc);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.delivery.abandonTerm();
    this.resyncs.stop();
    if (this.requests instanceof MesheryRequests) this.requests.stop();
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
