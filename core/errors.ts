/**
 * Every error meshsync raises on purpose has a code from this table, with what causes it and what
 * to do about it. The website's troubleshooting page is generated from it.
 */
export const ERROR_CODES = {
  MESHSYNC_CONFIG_INVALID: {
    cause: 'The configuration does not match the schema.',
    remedy: 'Fix every listed problem (file, path, expected); `meshsync validate` checks a config without starting.',
  },
  MESHSYNC_CONFIG_LOAD: {
    cause: 'The configuration file could not be read or evaluated.',
    remedy: 'Check that the file exists and that it parses; a .ts config must export a config object (defineConfig).',
  },
  MESHSYNC_PLUGIN_NOT_FOUND: {
    cause: 'A plugin named in the config could not be imported.',
    remedy: 'Install the package next to meshsync (npm install <package>) or correct its name.',
  },
  MESHSYNC_PLUGIN_INVALID: {
    cause: 'A plugin package does not export a plugin factory, or a factory returned no { name, apply }.',
    remedy: 'A plugin package must export a default function returning { name, apply(core) } (see definePlugin).',
  },
  MESHSYNC_PLUGIN_OPTIONS: {
    cause: 'A plugin was given options that do not match its schema.',
    remedy: 'Fix the listed option paths; each plugin page on the website lists its options.',
  },
  MESHSYNC_PLUGIN_FAILED: {
    cause: 'A plugin threw in one of its hooks.',
    remedy: 'The message names the plugin and the hook; see that plugin\'s documentation or report it to its authors.',
  },
  MESHSYNC_LATE_TAP: {
    cause: 'A hook was tapped after the core started; tapable compiles its call code once.',
    remedy: 'Tap every hook inside apply(core).',
  },
  MESHSYNC_NOT_STARTED: {
    cause: 'An operation needs a started core.',
    remedy: 'Call start() first.',
  },
  MESHSYNC_STOP_TIMEOUT: {
    cause: 'The queue did not drain to every sink within the stop deadline.',
    remedy: 'Check the sinks (a broker down?) or raise stopTimeoutMs; the log gives the count of events each sink was left with, and meshsync run exits 3.',
  },
  MESHSYNC_SNAPSHOT_TIMEOUT: {
    cause: '`meshsync snapshot` did not finish start-up and the initial sync within --timeout.',
    remedy: 'The message says what it still waited for and the warnings before it why (an unreachable API server, a forbidden resource); fix that, or raise --timeout for a large cluster.',
  },
  MESHSYNC_IMAGE_LACKS_PLUGIN: {
    cause: '`meshsync install` was asked to deploy its default image, which holds the built-in plugins only, with a config that names another plugin.',
    remedy: 'Build an image that holds the plugin packages (PLUGINS="<package> ..." npm run image) and pass it with --image.',
  },
  MESHSYNC_KUBE_CONFIG: {
    cause: 'No usable Kubernetes configuration was found.',
    remedy: 'Set KUBECONFIG, mount a service account, or pass the kubernetes plugin a kubeconfig/context.',
  },
  MESHSYNC_KUBE_FORBIDDEN: {
    cause: 'The API server refused to list or watch a resource (403).',
    remedy: 'Grant list and watch on it to meshsync\'s service account; `meshsync rbac` prints the exact rules.',
  },
  MESHSYNC_KUBE_UNREACHABLE: {
    cause: 'The Kubernetes API server could not be reached.',
    remedy: 'Check the server address and the network; meshsync keeps retrying with backoff.',
  },
  MESHSYNC_KUBE_UNKNOWN_RESOURCE: {
    cause: 'A configured resource id is not served by the API server (a typo, a wrong version or group, or a CRD not installed yet).',
    remedy: 'Use an id the warning suggests, or install the CRD: meshsync starts watching it as soon as it is served.',
  },
  MESHSYNC_KUBE_REQUEST_FAILED: {
    cause: 'A list or watch request failed with an unexpected status (not 403 or 410).',
    remedy: 'meshsync retries with backoff; the message names the resource and the server\'s answer.',
  },
  MESHSYNC_BROKER_UNREACHABLE: {
    cause: 'The NATS broker could not be reached.',
    remedy: 'Check BROKER_URL or the broker config; meshsync keeps retrying and holds events meanwhile.',
  },
  MESHSYNC_EVENT_INVALID: {
    cause: 'A malformed object or event was received; it was skipped and counted.',
    remedy: 'Usually a proxy or API server fault; see the logged detail.',
  },
  MESHSYNC_LISTEN_FAILED: {
    cause: 'A plugin\'s HTTP server could not listen on its address (the port is in use, or a port below 1024 without privileges).',
    remedy: 'Stop what holds the port (another meshsync?) or set another port in the plugin\'s options.',
  },
  MESHSYNC_EVENT_UNDELIVERABLE: {
    cause: 'A sink failed on one event again and again while it accepted the others (an object too deep to serialise, a plugin that throws on it): the event was skipped (dead-lettered) so it cannot stall the sink.',
    remedy: 'The log names the object and the error; fix the plugin, or the object. Its next change is delivered as usual.',
  },
  MESHSYNC_MESSAGE_TOO_LARGE: {
    cause: 'An object is larger than the broker accepts, even after stripping.',
    remedy: 'A metadata-only event marked truncated was sent instead; raise max_payload on the broker if the full object is needed.',
  },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class MeshSyncError extends Error {
  readonly code: ErrorCode;
  readonly details?: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'MeshSyncError';
    this.code = code;
    this.details = options.details;
  }

  get remedy(): string {
    return ERROR_CODES[this.code].remedy;
  }
}

/** One problem in a config: where it is and what was expected there. */
export interface ConfigProblem {
  readonly file?: string;
  /** Dotted path inside the config, e.g. `plugins[2].options.subject`. */
  readonly path: string;
  readonly message: string;
}

/** A config that cannot be used; lists every problem at once. */
export class ConfigError extends MeshSyncError {
  readonly problems: readonly ConfigProblem[];

  constructor(problems: readonly ConfigProblem[], code: ErrorCode = 'MESHSYNC_CONFIG_INVALID') {
    super(code, formatProblems(problems), { details: { problems } });
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** The problems as lines under a count; `message` may rewrite each problem's message (to mask what it quotes), never its path. */
export function formatProblems(problems: readonly ConfigProblem[], message: (text: string) => string = (text) => text): string {
  const lines = problems.map((p) => `  - ${p.file ? `${p.file}: ` : ''}${p.path || '(root)'}: ${message(p.message)}`);
  return `invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n${lines.join('\n')}`;
}

/** The error a plugin threw, tagged with the plugin and the hook it threw in. */
export function pluginError(plugin: string, hook: string, error: unknown): MeshSyncError {
  const message = error instanceof Error ? error.message : String(error);
  return new MeshSyncError('MESHSYNC_PLUGIN_FAILED', `plugin ${plugin} failed in hook ${hook}: ${message}`, {
    cause: error,
    details: { plugin, hook },
  });
}

/** A sink's error saying it cannot deliver anything now (its outside system is down): never a reason to give up on an event. */
export function sinkUnavailable(error: unknown): boolean {
  return error instanceof MeshSyncError && error.code === 'MESHSYNC_BROKER_UNREACHABLE';
}

export function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
