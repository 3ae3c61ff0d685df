import { pino, stdSerializers, type DestinationStream, type Logger as PinoLogger } from 'pino';
import { MASK, redactSecretsInText, SECRET_WORDS } from './secrets.ts';

export type Logger = PinoLogger;
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/** Keys whose values are never logged, at the top of a log record or one level down (pino matches exact keys). */
const REDACTED_PATHS = [...SECRET_WORDS, 'fingerprintKey', 'nkeySeed'].flatMap((key) => [key, `*.${key}`]);

/**
 * Structured JSON logs on stderr (stdout belongs to the stdout sink); a short human form when
 * stderr is a terminal. LOG_LEVEL sets the level.
 */
export function createLogger(options: { level?: string; pretty?: boolean; destination?: NodeJS.WritableStream } = {}): Logger {
  const level = options.level ?? process.env.LOG_LEVEL ?? 'info';
  const destination = options.destination ?? process.stderr;
  const pretty = options.pretty ?? (destination === process.stderr && process.stderr.isTTY === true);
  return pino(
    {
      level, base: { name: 'meshsync' }, redact: { paths: REDACTED_PATHS, censor: MASK }, serializers: { err: serializeError },
      hooks: {
        // A warning (a retry, say) says what failed in one line: type, code, message, causes. The
        // stack is for debugging: it is kept only when debug is on, and in errors.
        logMethod(args, method, at) {
          const fields = args[0] as { err?: unknown } | undefined;
          if (at < 50 && fields?.err instanceof Error && !this.isLevelEnabled('debug')) args[0] = { ...fields, err: briefError(fields.err) };
          return method.apply(this, args as Parameters<typeof method>);
        },
      },
    },
    pretty ? humanStream(destination) : (destination as DestinationStream),
  );
}

/** A logged error as pino serializes it, with the credentials its message or stack may quote masked. */
function serializeError(error: Error): unknown {
  if (!(error instanceof Error)) return error; // already brief (see logMethod)
  const serialized = stdSerializers.err(error);
  const walked = new Set([Object.prototype, null, Object.getPrototypeOf(serialized)]);
  const seen = new WeakSet<object>();
  const mask = (value: unknown): unknown => {
    if (typeof value === 'string') return redactSecretsInText(value);
    if (typeof value !== 'object' || value === null) return value;
    if (seen.has(value)) return '[circular]';
    seen.add(value);
    if (Array.isArray(value)) return value.map(mask);
    // Plain objects and serialized errors only: a Date, a Buffer, a socket is left for pino to write as it would.
    if (!walked.has(Object.getPrototypeOf(value))) return value;
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, mask(item)]));
  };
  return mask(serialized);
}

/** An error without its stack: type, code, message and the messages of its causes, credentials masked. */
export function briefError(error: Error): { type: string; code?: string; message: string; causes?: string[] } {
  const causes: string[] = [];
  for (let cause = error.cause, depth = 0; cause !== undefined && depth < 5; cause = (cause as Error)?.cause, depth++) {
    const text = redactSecretsInText(cause instanceof Error ? cause.message : String(cause));
    if (!error.message.includes(text)) causes.push(text);
  }
  const code = (error as { code?: unknown }).code;
  return { type: error.name, ...(typeof code === 'string' ? { code } : {}), message: redactSecretsInText(error.message), ...(causes.length ? { causes } : {}) };
}

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const PLAIN_KEYS = new Set(['level', 'time', 'pid', 'hostname', 'name', 'msg']);

function humanStream(out: NodeJS.WritableStream): DestinationStream {
  return {
    write(line: string) {
      const record = JSON.parse(line) as Record<string, unknown>;
      const time = new Date(record.time as number).toISOString().slice(11, 23);
      const extra = Object.entries(record)
        .filter(([key]) => !PLAIN_KEYS.has(key))
        .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
        .join(' ');
      out.write(`${time} ${(LEVEL_NAMES[record.level as number] ?? 'LOG').padEnd(5)} ${record.msg ?? ''}${extra ? `  ${extra}` : ''}\n`);
    },
  };
}

/** A logger that writes nothing, for tests and library use. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
