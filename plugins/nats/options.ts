import { z } from 'zod';
import { MeshSyncError } from '../../core/index.ts';
import { serviceUrl } from '../../kubernetes/index.ts';
import { validateSubjectTemplate } from './subject.ts';

export const PLUGIN_NAME = 'meshsync:nats';

const URL_AND_AUTH = 'credentials both in the server URL and in auth: give them in one place (auth, its secrets from a mounted file or Secret, is preferred)';


/** The NATS subject MeshSync publishes to by default. */
export const DEFAULT_SUBJECT = 'meshery.meshsync.request';
export const DEFAULT_URL = 'nats://localhost:4222';
/** The port of a broker named by its Kubernetes Service (`broker.native`). */
export const NATS_PORT = 4222;
export const DEFAULT_REQUEST_SUBJECT = 'meshery.meshsync.control';

const authSchema = z.object({
  user: z.string().min(1).optional().describe('User name (with `password`).'),
  password: z.string().optional().describe('Password for `user`. Never logged.'),
  token: z.string().min(1).optional().describe('Authentication token. Never logged.'),
  nkeySeed: z.string().min(1).optional().describe('NKey user seed (`SU...`). Never logged.'),
  nkeySeedFile: z.string().min(1).optional().describe('File holding the NKey user seed (a mounted Secret).'),
  credsFile: z.string().min(1).optional().describe('NATS credentials file (user JWT + seed), as `nsc` writes it.'),
}).strict().refine((auth) => [auth.user !== undefined, auth.token !== undefined, auth.nkeySeed !== undefined || auth.nkeySeedFile !== undefined, auth.credsFile !== undefined].filter(Boolean).length <= 1, {
  message: 'choose one of user/password, token, nkeySeed(File), credsFile',
}).describe('How to authenticate; at most one method.');

const tlsSchema = z.object({
  caFile: z.string().min(1).optional().describe('CA certificate (PEM) that signed the server certificate.'),
  certFile: z.string().min(1).optional().describe('Client certificate (PEM), when the server verifies clients.'),
  keyFile: z.string().min(1).optional().describe('Client private key (PEM) for `certFile`.'),
  rejectUnauthorized: z.boolean().default(true).describe('Verify the server certificate; turn off only for testing.'),
}).strict().refine((tls) => (tls.certFile === undefined) === (tls.keyFile === undefined), {
  message: 'certFile and keyFile go together',
}).describe('TLS; when set, the connection must be encrypted.');

const jetstreamSchema = z.object({
  stream: z.string().regex(/^[^.\s*>]+$/, 'a stream name has no dots, spaces or wildcards').describe('JetStream stream the events are stored in.'),
  subjects: z.array(z.string().min(1)).optional().describe('Subjects of the stream when it is created; default: the event subject (placeholders become `*`).'),
  create: z.boolean().default(false).describe('Create the stream if it does not exist (an existing stream is left as it is).'),
  maxAge: z.number().int().positive().default(24 * 3600_000).describe('Created stream: how long messages are kept (ms).'),
  maxBytes: z.number().int().positive().default(1024 ** 3).describe('Created stream: size limit in bytes; the oldest messages go first.'),
  duplicateWindow: z.number().int().positive().default(120_000).describe('Created stream: how long message ids are remembered for deduplication (ms).'),
  replicas: z.number().int().min(1).max(5).default(1).describe('Created stream: replicas (clustered JetStream).'),
  storage: z.enum(['file', 'memory']).default('file').describe('Created stream: storage type.'),
  ackTimeoutMs: z.number().int().positive().default(5000).describe('How long to wait for each publish acknowledgement.'),
  retries: z.number().int().min(0).default(3).describe('Retries of a publish that timed out, with the same message id (then the batch fails and the core retries it).'),
}).strict().describe('Publish to JetStream (stored, acknowledged, deduplicated) instead of core NATS.');

const ledgerSchema = z.object({
  enabled: z.boolean().default(true).describe('Keep the ledger when the broker has JetStream (a consumer that knows no resync framing then converges across restarts and failovers). Off, or without JetStream: only framed consumers do.'),
  bucket: z.string().regex(/^[A-Za-z0-9_{}-]+$/, 'a bucket name holds letters, digits, `-`, `_` (and `{cluster}`)').default('meshsync-ledger-{cluster}')
    .describe('The KV bucket; `{cluster}` becomes the cluster id. One per cluster.'),
  storage: z.enum(['file', 'memory']).default('file').describe('Created bucket: storage type.'),
  replicas: z.number().int().min(1).max(5).default(1).describe('Created bucket: replicas (clustered JetStream).'),
}).strict().default({ enabled: true, bucket: 'meshsync-ledger-{cluster}', storage: 'file', replicas: 1 })
  .describe('The durable ledger in a JetStream KV bucket: per object what consumers were told (uid, resourceVersion, a hash; never the object), so a restart or a new leader publishes only what changed (PROTOCOL.md).');

const brokerSchema = z.union([
  z.object({ native: z.object({ name: z.string().min(1), namespace: z.string().min(1) }) }),
  z.object({ custom: z.object({ url: z.string().min(1) }) }),
]).describe('MeshSync-style broker reference: `{ native: { name, namespace } }` (an in-cluster NATS service) or `{ custom: { url } }`.');

/** The wire formats: MeshSync's seed format (the default), or what Meshery Server decodes. */
export const PROTOCOLS = ['meshsync', 'meshery'] as const;
export type Protocol = (typeof PROTOCOLS)[number];

const mesherySchema = z.object({
  resyncDebounceMs: z.number().int().min(0).default(5000)
    .describe('A `resync-discovery` request re-announces everything once no other came for this long (Go MeshSync: 5 s).'),
}).strict().default({ resyncDebounceMs: 5000 }).describe('Meshery mode settings.');

export const natsOptionsSchema = z.object({
  protocol: z.enum(PROTOCOLS).default('meshsync')
    .describe('Wire format: `meshsync` (the seed format, below) or `meshery` (meshkit broker.Message with the KubernetesResource model on Meshery\'s subjects; PROTOCOL.md). MESHSYNC_PROTOCOL in the environment wins.'),
  meshery: mesherySchema,
  url: z.string().min(1).optional().describe('Server URL (`nats://host:4222`); BROKER_URL in the environment wins over it.'),
  servers: z.array(z.string().min(1)).min(1).optional().describe('Several server URLs of one cluster (instead of `url`).'),
  broker: brokerSchema.optional(),
  brokerFromResource: z.boolean().default(false)
    .describe('Let the MeshSync custom resource (`spec.broker`) choose the broker even though this config names one (`url`, `servers`, `broker`). A config that names none always follows the resource, as MeshSync does. Credentials are only ever sent to the hosts this config names.'),
  name: z.string().default('meshsync').describe('Connection name shown by the server\'s monitoring.'),
  subject: z.string().default(DEFAULT_SUBJECT)
    .superRefine((subject, ctx) => {
      const problem = validateSubjectTemplate(subject);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    })
    .describe('Event subject, or a template with {cluster} {resource} {type} {namespace} {kind} {group} {version} (tokens sanitised: dots become `_`).'),
  requestSubject: z.string().default(DEFAULT_REQUEST_SUBJECT)
    .superRefine((subject, ctx) => {
      const problem = subject === '' ? undefined : validateSubjectTemplate(subject, ['cluster']);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    })
    .describe('Subject this sink answers requests on (`resync`, `snapshot`, `meta`); may contain {cluster}. Empty string turns requests off.'),
  requestCommands: z.array(z.enum(['resync', 'snapshot', 'meta'])).default(['resync', 'snapshot', 'meta'])
    .describe('The request commands answered (an allow-list); others get an error reply. Anyone who may publish on the request subject may send them: restrict that with NATS permissions (SECURITY.md).'),
  requestRatePerMinute: z.number().int().positive().default(30)
    .describe('Requests answered per minute (a token bucket, bursts up to this many); more are refused with an error reply and counted.'),
  snapshotMaxBytes: z.number().int().positive().default(64 * 1024 * 1024)
    .describe('Largest snapshot reply (bytes of JSON, all chunks); a larger state is refused with an error reply naming `resync`, so one request cannot take unbounded memory.'),
  headers: z.boolean().default(true).describe('Send Meshsync-* headers (needs a server with header support, 2.2+).'),
  resyncOnReconnect: z.boolean().default(true).describe('After a reconnect, republish the current state framed by RESYNC_BEGIN/RESYNC_END.'),
  resyncChunkSize: z.number().int().positive().default(500).describe('Objects published per flush during a resync.'),
  auth: authSchema.optional(),
  tls: tlsSchema.optional(),
  jetstream: jetstreamSchema.optional(),
  ledger: ledgerSchema,
  connectTimeoutMs: z.number().int().positive().default(5000).describe('Handshake timeout of one connection attempt.'),
  flushTimeoutMs: z.number().int().positive().default(10_000).describe('How long a batch waits for the server to confirm it (PING/PONG) before it is retried.'),
  reconnectInitialMs: z.number().int().positive().default(250).describe('First reconnect delay; doubles up to reconnectMaxMs, with jitter. Retries forever.'),
  reconnectMaxMs: z.number().int().positive().default(10_000).describe('Longest reconnect delay.'),
  pingIntervalMs: z.number().int().positive().default(20_000).describe('Client PING interval; a dead connection is noticed after 3 unanswered PINGs.'),
}).strict().refine((o) => o.requestSubject === '' || o.requestSubject !== o.subject, {
  message: 'requestSubject must differ from subject',
  path: ['requestSubject'],
}).refine((o) => o.auth === undefined || !hasUrlCredentials([...(o.servers ?? []), ...(o.url ? [o.url] : [])]), {
  message: URL_AND_AUTH,
  path: ['auth'],
}).refine((o) => !(o.protocol === 'meshery' && o.jetstream), {
  message: 'Meshery Server reads core NATS: jetstream does not apply with protocol "meshery"',
  path: ['jetstream'],
});

export type NatsOptions = z.output<typeof natsOptionsSchema>;

/** Credentials written in server URLs: `user:pass@` or a token `token@`. The NATS client ignores them, so meshsync reads them itself. */
export type UrlCredentials = { user: string; pass: string } | { token: string };

function userinfoOf(server: string): string | undefined {
  return /^[a-z+]+:\/\/([^/@]*)@/i.exec(server.trim())?.[1];
}

function hasUrlCredentials(servers: readonly string[]): boolean {
  return servers.some((server) => userinfoOf(server) !== undefined);
}

/**
 * The credentials the server URLs carry (decoded, and `written` as in the URL), and the URLs
 * without them; throws (a clear error, no secret in it) when URLs disagree, or when `auth` is set as well.
 */
export function urlCredentials(servers: readonly string[], auth: NatsOptions['auth']): { credentials?: UrlCredentials; written?: string; servers: string[] } {
  const infos = new Set(servers.map(userinfoOf).filter((info): info is string => info !== undefined));
  const bare = servers.map((server) => server.trim().replace(/^([a-z+]+:\/\/)[^/@]*@/i, '$1'));
  if (infos.size === 0) return { servers: bare };
  if (auth !== undefined) throw new MeshSyncError('MESHSYNC_CONFIG_INVALID', `${PLUGIN_NAME}: ${URL_AND_AUTH}`);
  if (infos.size > 1) throw new MeshSyncError('MESHSYNC_CONFIG_INVALID', `${PLUGIN_NAME}: the server URLs carry different credentials; one connection authenticates once`);
  const [info] = infos;
  const colon = info.indexOf(':');
  // A stray % is taken as written rather than failing on it.
  const decode = (part: string) => {
    try {
      return decodeURIComponent(part);
    } catch {
      return part;
    }
  };
  return { servers: bare, written: info, credentials: colon < 0 ? { token: decode(info) } : { user: decode(info.slice(0, colon)), pass: decode(info.slice(colon + 1)) } };
}

/** True when the config itself names a broker (not the default, not the environment). */
export function namesBroker(options: Pick<NatsOptions, 'url' | 'servers' | 'broker'>): boolean {
  return options.url !== undefined || options.servers !== undefined || options.broker !== undefined;
}

/** The hosts (host:port) of server URLs; a bare `host:port` counts as a URL too. */
export function serverHosts(servers: readonly string[]): Set<string> {
  return new Set(servers.map((server) => {
    try {
      const url = new URL(server.includes('://') ? server : `nats://${server}`);
      return `${url.hostname.toLowerCase()}:${url.port || '4222'}`;
    } catch {
      return server;
    }
  }));
}
export type NatsOptionsInput = z.input<typeof natsOptionsSchema>;

export const PROTOCOL_ENV = 'MESHSYNC_PROTOCOL';

/**
 * The wire format in force: MESHSYNC_PROTOCOL (the operator's Deployment sets it) wins over the
 * file, like BROKER_URL. An unknown value is an error, not a silent fall-back to the other format.
 */
export function resolveProtocol(options: Pick<NatsOptions, 'protocol'>, env: NodeJS.ProcessEnv = process.env): Protocol {
  const fromEnv = env[PROTOCOL_ENV]?.trim().toLowerCase();
  if (!fromEnv) return options.protocol;
  if ((PROTOCOLS as readonly string[]).includes(fromEnv)) return fromEnv as Protocol;
  throw new MeshSyncError('MESHSYNC_CONFIG_INVALID', `${PROTOCOL_ENV} (environment): expected one of ${PROTOCOLS.join(', ')}, got "${env[PROTOCOL_ENV]}"`);
}

/**
 * The server URLs to dial. Precedence: BROKER_URL (environment; may list several, comma-separated)
 * > `servers` > `url` > `broker.custom.url` > `broker.native` (the in-cluster service) > default.
 */
export function resolveServers(options: Pick<NatsOptions, 'url' | 'servers' | 'broker'>, env: NodeJS.ProcessEnv = process.env): string[] {
  const fromEnv = env.BROKER_URL?.trim();
  if (fromEnv) return fromEnv.split(',').map((s) => s.trim()).filter(Boolean);
  if (options.servers?.length) return [...options.servers];
  if (options.url) return [options.url];
  const broker = options.broker;
  if (broker && 'custom' in broker) return [broker.custom.url];
  if (broker && 'native' in broker) return [serviceUrl('nats', broker.native, NATS_PORT)];
  return [DEFAULT_URL];
}
