/**
 * One NATS connection that is always being (re)established: the first connect is retried like any
 * reconnect (the broker may start after meshsync), with jittered exponential backoff, forever.
 * Knows whether it is connected right now, and never lets a credential reach a log or an error.
 */
import { readFileSync } from 'node:fs';
import {
  connect, credsAuthenticator, nkeyAuthenticator, tokenAuthenticator, usernamePasswordAuthenticator,
  type Authenticator, type NatsConnection, type NodeConnectionOptions,
} from '@nats-io/transport-node';
import { MeshSyncError, redactUrlCredentials, type Logger } from '../../core/index.ts';
import { urlCredentials, type NatsOptions, type UrlCredentials } from './options.ts';

export interface ConnectionEvents {
  /** A connection is up: `reconnect` is false only for the very first one. */
  connected(nc: NatsConnection, reconnect: boolean): void;
}

export class BrokerConnection {
  private nc: NatsConnection | undefined;
  private up = false;
  private everConnected = false;
  private stopped = false;
  private disconnectedAt = 0;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private readonly connectedWaiters = new Set<() => void>();
  private readonly secrets: string[] = [];
  private lastFailure = '';

  /** The servers as dialled (credentials out of the URLs), and the credentials they carried. */
  private readonly dial: { credentials?: UrlCredentials; written?: string; servers: string[] };

  constructor(
    private readonly options: NatsOptions,
    private readonly servers: readonly string[],
    private readonly logger: Logger,
    private readonly events: ConnectionEvents,
    /** NATS_TOKEN (the operator's broker token) may be sent: false for a broker the config does not name. */
    private readonly envTokenAllowed = true,
  ) {
    this.dial = urlCredentials(servers, options.auth);
    const auth = options.auth;
    const fromUrl = this.dial.credentials;
    // Scrubbed from messages as the URL wrote them and decoded.
    const urlSecrets = fromUrl === undefined ? [] : ['token' in fromUrl ? fromUrl.token : fromUrl.user, 'pass' in fromUrl ? fromUrl.pass : undefined, ...(this.dial.written?.split(':') ?? [])];
    for (const secret of [auth?.password, auth?.token, auth?.nkeySeed, envToken(), ...urlSecrets]) if (secret) this.secrets.push(secret);
  }

  /** The connection object, while one exists (it may be reconnecting). */
  get current(): NatsConnection | undefined {
    return this.nc;
  }

  /** True while a connection is up and not known to be broken. */
  get connected(): boolean {
    return this.up;
  }

  /** The live connection, or a MESHSYNC_BROKER_UNREACHABLE error (the lane then retries). */
  require(): NatsConnection {
    if (this.up && this.nc && !this.nc.isClosed()) return this.nc;
    throw new MeshSyncError('MESHSYNC_BROKER_UNREACHABLE', `NATS broker ${this.describeServers()} is not connected; the batch is held and retried`);
  }

  /** Starts connecting; resolves after the first attempt (connected or not), so start-up is not blocked by a missing broker. */
  start(): Promise<void> {
    const firstAttempt = new Promise<void>((resolve) => {
      this.loop = this.run(resolve);
    });
    return firstAttempt;
  }

  /** Resolves when connected (or when stopped). */
  whenConnected(): Promise<void> {
    if (this.up || this.stopped) return Promise.resolve();
    return new Promise((resolve) => this.connectedWaiters.add(resolve));
  }

  /** Sends what is buffered and closes; stops reconnecting. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    const nc = this.nc;
    if (nc && !nc.isClosed()) {
      // Draining a connection that is down would only wait out flushTimeoutMs: nothing can leave.
      if (this.up) await Promise.race([nc.drain().catch(() => nc.close()), sleep(this.options.flushTimeoutMs)]);
      if (!nc.isClosed()) await nc.close().catch(() => undefined);
    }
    await this.loop;
    this.notifyConnected();
  }

  /** A message fit for logs and errors: every configured secret replaced. */
  scrub(message: string): string {
    let out = message;
    for (const secret of this.secrets) out = out.split(secret).join('[redacted]');
    return redactUrlCredentials(out);
  }

  describeServers(): string {
    return this.servers.map(redactUrlCredentials).join(',');
  }

  private async run(firstAttemptDone: () => void): Promise<void> {
    let delay = this.options.reconnectInitialMs;
    while (!this.stopped) {
      let nc: NatsConnection;
      try {
        nc = await connect(this.connectOptions());
      } catch (error) {
        firstAttemptDone();
        this.reportFailure(error);
        await this.pause(jitter(delay));
        delay = Math.min(delay * 2, this.options.reconnectMaxMs);
        continue;
      }
      firstAttemptDone();
      if (this.stopped) {
        await nc.close().catch(() => undefined);
        break;
      }
      delay = this.options.reconnectInitialMs;
      this.lastFailure = '';
      this.nc = nc;
      this.up = true;
      const reconnect = this.everConnected;
      this.everConnected = true;
      this.logger.info({ server: redactUrlCredentials(nc.getServer()), maxPayload: nc.info?.max_payload }, reconnect ? 'NATS connected again' : 'NATS connected');
      void this.watchStatus(nc);
      this.notifyConnected();
      this.events.connected(nc, reconnect);
      const closedWith = await nc.closed();
      this.up = false;
      this.nc = undefined;
      if (!this.stopped) {
        this.disconnectedAt = Date.now();
        this.logger.warn({ err: closedWith ? this.scrub(closedWith.message) : undefined }, 'NATS connection closed; dialling again');
      }
    }
  }

  /** Follows the client's own reconnects (it redials by itself while a connection object lives). */
  private async watchStatus(nc: NatsConnection): Promise<void> {
    for await (const status of nc.status()) {
      switch (status.type) {
        case 'disconnect':
          this.up = false;
          this.disconnectedAt = Date.now();
          this.logger.warn({ server: redactUrlCredentials(status.server) }, 'NATS disconnected; reconnecting (events are held meanwhile)');
          break;
        case 'reconnect':
          this.up = true;
          this.logger.info({ server: redactUrlCredentials(status.server) }, 'NATS reconnected');
          this.notifyConnected();
          this.events.connected(nc, true);
          break;
        case 'error':
          this.logger.warn({ err: this.scrub(status.error.message) }, 'NATS server reported an error');
          break;
        case 'ldm':
          this.logger.info({ server: redactUrlCredentials(status.server) }, 'NATS server entering lame duck mode; will move to another');
          break;
        case 'staleConnection':
          this.up = false;
          this.logger.warn('NATS connection stale (PINGs unanswered); reconnecting');
          break;
        default:
          break;
      }
    }
  }

  private connectOptions(): NodeConnectionOptions {
    const { options } = this;
    return {
      servers: [...this.dial.servers],
      name: options.name,
      reconnect: true,
      maxReconnectAttempts: -1,
      // A wrong password may be fixed by rotating a mounted Secret: keep trying.
      ignoreAuthErrorAbort: true,
      reconnectDelayHandler: () => this.reconnectDelay(),
      timeout: options.connectTimeoutMs,
      pingInterval: options.pingIntervalMs,
      maxPingOut: 3,
      noAsyncTraces: true,
      authenticator: this.authenticator(),
      tls: options.tls ? { caFile: options.tls.caFile, certFile: options.tls.certFile, keyFile: options.tls.keyFile, rejectUnauthorized: options.tls.rejectUnauthorized } : undefined,
    };
  }

  /** Grows with the length of the outage (half of it, within bounds), jittered so many instances do not redial in step. */
  private reconnectDelay(): number {
    const outage = this.disconnectedAt > 0 ? Date.now() - this.disconnectedAt : 0;
    return jitter(Math.min(this.options.reconnectMaxMs, Math.max(this.options.reconnectInitialMs, outage / 2)));
  }

  /** The configured method, else the URL's credentials, else NATS_TOKEN (the Meshery operator's broker token). */
  private authenticator(): Authenticator | undefined {
    const auth = this.options.auth;
    const fromUrl = this.dial.credentials;
    if (!auth) {
      if (fromUrl !== undefined) return 'token' in fromUrl ? tokenAuthenticator(fromUrl.token) : usernamePasswordAuthenticator(fromUrl.user, fromUrl.pass);
      const token = this.envTokenAllowed ? envToken() : undefined;
      return token ? tokenAuthenticator(token) : undefined;
    }
    if (auth.user !== undefined) return usernamePasswordAuthenticator(auth.user, auth.password);
    if (auth.token !== undefined) return tokenAuthenticator(auth.token);
    // Files are read at each connect, so a rotated Secret is picked up.
    if (auth.nkeySeed !== undefined) return nkeyAuthenticator(new TextEncoder().encode(auth.nkeySeed));
    if (auth.nkeySeedFile !== undefined) {
      const file = auth.nkeySeedFile;
      return nkeyAuthenticator(() => new TextEncoder().encode(this.readSecretFile(file).trim()));
    }
    if (auth.credsFile !== undefined) {
      const file = auth.credsFile;
      return credsAuthenticator(() => new TextEncoder().encode(this.readSecretFile(file)));
    }
    return undefined;
  }

  private readSecretFile(file: string): string {
    const text = readFileSync(file, 'utf8');
    for (const match of text.matchAll(/\bS[A-Z2-7]{55,}\b/g)) if (!this.secrets.includes(match[0])) this.secrets.push(match[0]);
    return text;
  }

  private reportFailure(error: unknown): void {
    const message = this.scrub(error instanceof Error ? error.message : String(error));
    const detail = { servers: this.describeServers(), err: message, code: 'MESHSYNC_BROKER_UNREACHABLE' };
    // Once per distinct failure at warn; the retries after it at debug.
    if (message !== this.lastFailure) this.logger.warn(detail, 'cannot connect to NATS; retrying with backoff (events are held meanwhile)');
    else this.logger.debug(detail, 'cannot connect to NATS; retrying');
    this.lastFailure = message;
  }

  private notifyConnected(): void {
    const waiters = [...this.connectedWaiters];
    this.connectedWaiters.clear();
    for (const resolve of waiters) resolve();
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }
}

/** NATS_TOKEN: how the Meshery operator's token (secret meshery-nats-auth) reaches MeshSync. */
function envToken(): string | undefined {
  return process.env.NATS_TOKEN?.trim() || undefined;
}

/** Between half and one and a half times `ms`. */
export function jitter(ms: number): number {
  return Math.round(ms * (0.5 + Math.random()));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
