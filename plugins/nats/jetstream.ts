/**
 * JetStream publishing: each message acknowledged by the stream, retried with its id (so the
 * stream drops what it already stored), and the stream created with bounded limits when asked.
 */
import { errors as natsErrors, nanos, RequestError, type NatsConnection } from '@nats-io/transport-node';
import {
  DiscardPolicy, JetStreamApiCodes, JetStreamApiError, jetstream, jetstreamManager, RetentionPolicy, StorageType, type JetStreamClient,
} from '@nats-io/jetstream';
import type { Logger } from '../../core/index.ts';
import { brokerError, type Outgoing } from './outgoing.ts';
import type { NatsOptions } from './options.ts';
import { streamSubjects } from './subject.ts';

export class JetStreamPublisher {
  private js: { nc: NatsConnection; client: JetStreamClient; streamChecked: boolean } | undefined;

  constructor(
    private readonly settings: NonNullable<NatsOptions['jetstream']>,
    /** The event subject (template), bound by a created stream. */
    private readonly subject: string,
    private readonly logger: Logger,
    /** Whether the connection is up: a publish is retried only while it is. */
    private readonly connected: () => boolean,
    private readonly scrub: (message: string) => string,
  ) {}

  /** Publishes every message and waits for each acknowledgement; throws (the whole set is retried) when one did not come. */
  async publish(nc: NatsConnection, outgoing: readonly Outgoing[]): Promise<void> {
    const js = await this.jetStreamFor(nc);
    const { ackTimeoutMs, retries } = this.settings;
    const publishOne = async (message: Outgoing) => {
      for (let attempt = 0; ; attempt++) {
        try {
          // Same id on every attempt: the stream drops what it already stored.
          return await js.publish(message.subject, message.payload, { msgID: message.msgId, headers: message.headers, timeout: ackTimeoutMs });
        } catch (error) {
          const retriable = error instanceof natsErrors.TimeoutError || (error instanceof RequestError && error.isNoResponders());
          if (!retriable || attempt >= retries || !this.connected()) throw error;
        }
      }
    };
    try {
      await Promise.all(outgoing.map(publishOne));
    } catch (error) {
      throw brokerError(this.scrub, 'publishing to JetStream failed; the batch is retried (ids make it idempotent)', error);
    }
  }

  private async jetStreamFor(nc: NatsConnection): Promise<JetStreamClient> {
    const settings = this.settings;
    if (this.js?.nc !== nc) this.js = { nc, client: jetstream(nc, { timeout: settings.ackTimeoutMs }), streamChecked: false };
    if (!this.js.streamChecked) {
      if (settings.create) await this.ensureStream(nc);
      this.js.streamChecked = true;
    }
    return this.js.client;
  }

  /** Creates the stream with bounded limits unless it exists (an existing one is never changed). */
  private async ensureStream(nc: NatsConnection): Promise<void> {
    const settings = this.settings;
    const jsm = await jetstreamManager(nc);
    try {
      await jsm.streams.info(settings.stream);
      return;
    } catch (error) {
      if (!(error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound)) throw error;
    }
    const subjects = settings.subjects ?? [...new Set([...streamSubjects(this.subject)])];
    // Only settings nats-server 2.9 knows.
    await jsm.streams.add({
      name: settings.stream,
      subjects,
      retention: RetentionPolicy.Limits,
      storage: settings.storage === 'memory' ? StorageType.Memory : StorageType.File,
      discard: DiscardPolicy.Old,
      max_age: nanos(settings.maxAge),
      max_bytes: settings.maxBytes,
      duplicate_window: nanos(Math.min(settings.duplicateWindow, settings.maxAge)),
      num_replicas: settings.replicas,
    });
    this.logger.info({ stream: settings.stream, subjects }, 'JetStream stream created');
  }
}
