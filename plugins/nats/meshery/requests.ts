/**
 * Meshery Server's requests on `meshery.meshsync.request` (queue group `meshsync-request-stream`,
 * so one MeshSync of a group answers each): `informer-store`, `resync-discovery`, `meshsync-meta`.
 * Handled one at a time, in order, as Go MeshSync's single loop does. A request that cannot be
 * understood is counted and logged, never fatal.
 */
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Core, Logger } from '../../../core/index.ts';
import type { BrokerConnection } from '../connection.ts';
import type { Delivery } from '../delivery.ts';
import type { NatsMetrics } from '../metrics.ts';
import { PLUGIN_NAME, type NatsOptions } from '../options.ts';
import { errorMessage, maxPayloadOf, withTimeout } from '../outgoing.ts';
import { packageVersion } from '../requests.ts';
import { kubernetesResource } from './model.ts';
import { envelope, fitsPayload, identityOf, MESHERY, textEnvelope } from './wire.ts';
import { metadataOnly, stripObject } from '../encode.ts';

/** Request entities Go MeshSync serves through Kubernetes sessions (logs, exec) that this port does not. */
const UNSUPPORTED = new Set(['log-stream', 'exec-request', 'active-exec']);

export type RequestOutcome = 'answered' | 'ignored' | 'invalid' | 'unsupported' | 'failed';

export class MesheryRequests {
  /** The connection requests come on, and the queue group subscription while this replica is in the group. */
  private nc: NatsConnection | undefined;
  private subscription: Subscription | undefined;
  private queue: Promise<void> = Promise.resolve();
  private resyncTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly core: Core,
    private readonly options: NatsOptions,
    private readonly delivery: Delivery,
    private readonly connection: () => BrokerConnection,
    /** Resolves once every source listed its initial state. */
    private readonly synced: Promise<void>,
    private readonly resync: (reason: string) => void,
    private readonly metrics: NatsMetrics,
    private readonly logger: Logger,
  ) {
    core.hooks.deliveryHeld.tap(PLUGIN_NAME, (held) => (held ? this.leave() : this.join()));
  }

  /** Once per connection: the client subscribes again by itself after a reconnect. */
  subscribe(nc: NatsConnection): void {
    if (this.nc === nc) return;
    this.nc = nc;
    this.subscription = undefined;
    this.join();
  }

  /**
   * In the queue group only while this replica delivers: the group hands each request to one
   * member, and a standby would take requests it must drop (Meshery would wait for ever).
   */
  private join(): void {
    const nc = this.nc;
    if (nc === undefined || this.subscription !== undefined || this.stopped || this.core.state.deliveryHeld) return;
    const subscription = nc.subscribe(MESHERY.requestSubject, {
      queue: MESHERY.requestQueue,
      callback: (error, msg) => {
        if (error) return;
        this.queue = this.queue.then(() => this.handle(nc, msg));
      },
    });
    this.subscription = subscription;
    // Said once the server has the subscription (a flush round trip): requests from then on reach it.
    nc.flush().then(() => {
      if (this.subscription === subscription) this.logger.info({ subject: MESHERY.requestSubject, queue: MESHERY.requestQueue }, 'answering Meshery requests');
    }, () => undefined);
  }

  private leave(): void {
    if (this.subscription === undefined) return;
    this.subscription.unsubscribe();
    this.subscription = undefined;
    this.logger.info({ subject: MESHERY.requestSubject, queue: MESHERY.requestQueue }, 'standby: left the Meshery request queue group');
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.resyncTimer);
  }

  /** One request; never throws. */
  async handle(nc: NatsConnection, msg: Msg): Promise<void> {
    let entity = '';
    const outcome = await this.dispatch(nc, msg, (name) => (entity = name)).catch((error: unknown) => {
      this.logger.warn({ entity, err: this.connection().scrub(errorMessage(error)) }, 'Meshery request failed');
      return 'failed' as const;
    });
    this.metrics.mesheryRequests.inc({ entity: entity || 'none', outcome });
  }

  private async dispatch(nc: NatsConnection, msg: Msg, named: (entity: string) => void): Promise<RequestOutcome> {
    // A request taken just before this replica turned standby: a standby publishes nothing.
    if (this.core.state.deliveryHeld) {
      this.logger.info('Meshery request dropped: this replica is a standby');
      return 'ignored';
    }
    let message: unknown;
    try {
      message = JSON.parse(msg.string());
    } catch {
      this.logger.warn({ bytes: msg.data.length }, 'Meshery request is not JSON; dropped');
      return 'invalid';
    }
    // Go's decoder matches keys case-insensitively.
    const request = field(message, 'Request');
    const entity = field(request, 'Entity');
    if (!isRecord(request) || typeof entity !== 'string') {
      this.logger.warn('invalid Meshery request (Request is null or has no Entity); dropped');
      return 'invalid';
    }
    named(entity);
    const payload = field(request, 'Payload');
    switch (entity) {
      case 'informer-store': {
        const reply = field(payload, 'Reply');
        if (typeof reply !== 'string' || reply === '') {
          this.logger.warn({ entity }, 'informer-store request without a Reply subject; dropped');
          return 'invalid';
        }
        await this.replyStore(reply);
        return 'answered';
      }
      case 'resync-discovery':
        this.scheduleResync();
        return 'answered';
      case 'meshsync-meta':
        nc.publish(MESHERY.metaSubject, textEnvelope('', packageVersion()));
        return 'answered';
      default:
        if (UNSUPPORTED.has(entity)) {
          this.replyUnsupported(nc, entity, payload);
          return 'unsupported';
        }
        this.logger.debug({ entity }, 'unknown Meshery request entity; ignored');
        return 'ignored';
    }
  }

  /** Go MeshSync debounces rediscovery: each request restarts the timer. */
  private scheduleResync(): void {
    clearTimeout(this.resyncTimer);
    this.resyncTimer = setTimeout(() => {
      if (!this.stopped) this.resync('request');
    }, this.options.meshery.resyncDebounceMs);
  }

  /**
   * The confirmed state in messages of at most 5 objects (fewer when 5 would not fit max_payload),
   * `{"ObjectType":"","EventType":"","Request":null,"Object":[...]}`, on the Reply subject. It waits
   * for the initial sync (Go MeshSync sends nothing before it), and holds the lane meanwhile, so
   * no live batch lands between the state it reads and the replies.
   */
  private async replyStore(reply: string): Promise<void> {
    if (!this.core.state.ready) this.logger.info({ reply }, 'informer-store request before the initial sync: answered once it is complete');
    await this.synced;
    await this.delivery.lock.run(async () => {
      const nc = this.connection().require();
      const maxPayload = maxPayloadOf(nc);
      // Each object must fit a message on its own: `[` `]` and the envelope around it.
      const room = maxPayload - envelope('', '', '[]').length;
      let batch: string[] = [];
      let size = 0;
      let messages = 0;
      let objects = 0;
      let truncated = 0;
      const flush = () => {
        if (batch.length === 0) return;
        nc.publish(reply, envelope('', '', `[${batch.join(',')}]`));
        messages++;
        batch = [];
        size = 0;
      };
      for await (const [, event] of this.delivery.confirmedState(this.core, Date.now())) {
        // An object that cannot be encoded (too deep to serialise) is left out, not the whole reply.
        let item = this.delivery.encodeOrSkip(event, () => kubernetesResource(event.object, 'ADDED', event.clusterId));
        if (item === undefined) continue;
        if (!fitsPayload(item, room)) {
          truncated++;
          item = [stripObject(event.object), metadataOnly(event.object), identityOf(event)]
            .map((object) => kubernetesResource(object, 'ADDED', event.clusterId))
            .find((candidate) => fitsPayload(candidate, room)) ?? '';
          if (item === '') continue;
        }
        const itemSize = Buffer.byteLength(item) + 1;
        if (batch.length === MESHERY.storeBatch || size + itemSize > room) flush();
        batch.push(item);
        size += itemSize;
        objects++;
      }
      flush();
      await withTimeout(nc.flush(), this.options.flushTimeoutMs, 'the NATS server did not confirm the informer-store reply in time');
      if (truncated > 0) this.metrics.truncated.inc(truncated);
      this.logger.info({ reply, objects, messages }, 'informer-store answered');
    });
  }

  /**
   * Logs and exec sessions are not served (Meshery Server now talks to the Kubernetes API for
   * them itself). An `error` reply goes where Go MeshSync would answer, so a waiting client hears
   * it: the log subject, each exec session's subject, the active-sessions subject.
   */
  private replyUnsupported(nc: NatsConnection, entity: string, payload: unknown): void {
    const text = `${entity} is not supported by this meshsync (TypeScript port of MeshSync); use Meshery Server's terminal and log views, which call the Kubernetes API`;
    this.logger.warn({ entity }, `Meshery request ${entity} is not supported; answered with an error`);
    const subjects = new Set<string>();
    if (entity === 'log-stream') subjects.add(MESHERY.logSubject);
    if (entity === 'active-exec') subjects.add(MESHERY.activeExecSubject);
    if (entity === 'exec-request' && isRecord(payload)) {
      for (const session of Object.values(payload)) {
        const parts = ['namespace', 'name', 'container', 'id'].map((key) => field(session, key));
        if (parts.every((part) => typeof part === 'string' && /^[^\s.*>]+$/.test(part))) subjects.add(`exec.${parts.join('.')}`);
      }
    }
    for (const subject of subjects) nc.publish(subject, textEnvelope('error', text));
  }
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** A key as Go's decoder finds it: exact match, else case-insensitive (the last such key wins). */
function field(value: unknown, name: string): unknown {
  if (!isRecord(value)) return undefined;
  if (name in value) return value[name];
  let found: unknown;
  for (const key of Object.keys(value)) if (key.toLowerCase() === name.toLowerCase()) found = value[key];
  return found;
}
