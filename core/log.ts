import { pino, type DestinationStream, type Logger as PinoLogger } from 'pino';

export type Logger = PinoLogger;
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/** Keys whose values are never logged, wherever they appear in a log record. */
const REDACTED_PATHS = [
  'password', '*.password', 'token', '*.token', 'seed', '*.seed', 'nkey', '*.nkey',
  'pass', '*.pass', 'key', '*.key', 'fingerprintKey', '*.fingerprintKey', 'authorization', '*.authorization',
];

/**
 * Structured JSON logs on stderr (stdout belongs to the stdout sink); a short human form when
 * stderr is a terminal. LOG_LEVEL sets the level.
 */
export function createLogger(options: { level?: string; pretty?: boolean; destination?: NodeJS.WritableStream } = {}): Logger {
  const level = options.level ?? process.env.LOG_LEVEL ?? 'info';
  const destination = options.destination ?? process.stderr;
  const pretty = options.pretty ?? (destination === process.stderr && process.stderr.isTTY === true);
  return pino(
    { level, base: { name: 'meshsync' }, redact: { paths: REDACTED_PATHS, censor: '[redacted]' } },
    pretty ? humanStream(destination) : (destination as DestinationStream),
  );
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
