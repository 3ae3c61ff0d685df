/**
 * meshsync:stdout — every delivered event on stdout: JSON lines for pipes and files, one readable
 * line per event on a terminal. Logs go to stderr, so stdout carries nothing else.
 */
import { once } from 'node:events';
import { z } from 'zod';
import { definePlugin, eventLine, resourceId, type Batch, type Core, type Plugin, type SyncEvent } from '../../core/index.ts';

export const stdoutOptions = z.object({
  format: z.enum(['auto', 'json', 'pretty']).default('auto')
    .describe('`json`: one JSON object per line; `pretty`: one readable line per event; `auto`: pretty when stdout is a terminal, json otherwise.'),
}).strict();

export type StdoutOptions = z.input<typeof stdoutOptions>;

const two = (n: number) => (n < 10 ? `0${n}` : String(n));

/** One event as a readable line: `12:00:01 ADDED    pods.v1.  default/web-7d9  rv=1234` (local time of observation). */
export function prettyLine(event: SyncEvent): string {
  const at = new Date(event.observedAt);
  const meta = event.object.metadata;
  const name = meta.namespace ? `${meta.namespace}/${meta.name}` : meta.name;
  return `${two(at.getHours())}:${two(at.getMinutes())}:${two(at.getSeconds())} ${event.type.padEnd(8)} ${resourceId(event.resource)}  ${name}  rv=${meta.resourceVersion ?? '?'}`;
}

/** The few stream features the sink uses; process.stdout is one, any Writable is one. */
export interface OutputStream {
  write(chunk: string, callback: (error?: Error | null) => void): boolean;
  on(event: 'error', listener: (error: Error) => void): unknown;
  removeListener(event: 'error', listener: (error: Error) => void): unknown;
  once(event: string, listener: (...args: unknown[]) => void): unknown;
  readonly isTTY?: boolean;
}

/**
 * Writes one chunk and resolves once the stream has taken it: its write callback fired and, when
 * the stream asked for it, it drained. Rejects on a write error (the core then retries the batch).
 */
export function writeChunk(out: OutputStream, chunk: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const settled = new AbortController(); // removes the drain listener whichever way this ends
    let drained = true;
    let written = false;
    const fail = (error: unknown) => {
      if (settled.signal.aborted) return;
      settled.abort();
      reject(error);
    };
    const done = () => {
      if (!drained || !written || settled.signal.aborted) return;
      settled.abort();
      resolve();
    };
    const accepted = out.write(chunk, (error) => {
      if (error) return fail(error);
      written = true;
      done();
    });
    if (!accepted) {
      drained = false;
      once(out as never, 'drain', { signal: settled.signal }).then(() => {
        drained = true;
        done();
      }, fail);
    }
  });
}

/** Taps the sink hook to write each batch to `out` with one write call. */
export function tapOutput(core: Core, name: string, out: OutputStream, format: 'auto' | 'json' | 'pretty'): void {
  const pretty = format === 'pretty' || (format === 'auto' && out.isTTY === true);
  const line = pretty ? prettyLine : eventLine;
  let lines = 0;
  // Without a listener an EPIPE (stdout closed by `| head`) would crash the process; the failed
  // write's callback still rejects the batch.
  const onError = (error: Error) => core.logger.warn({ plugin: name, err: error }, 'output stream error');
  core.hooks.start.tap(name, () => void out.on('error', onError));
  // Lines are JSON.stringify'd, which writes a view whole (ObjectView.toJSON), or metadata only.
  core.readsWholeObjects(name, () => false);
  core.hooks.sink.tapPromise(name, async (batch: Batch) => {
    let chunk = '';
    for (const event of batch) chunk += `${line(event)}\n`;
    await writeChunk(out, chunk);
    lines += batch.length;
  });
  core.hooks.stop.tap(name, () => {
    out.removeListener('error', onError);
    core.logger.debug({ plugin: name, lines }, 'output closed');
  });
}

export const stdout = definePlugin({
  name: 'meshsync:stdout',
  description: 'Writes every event to stdout: JSON lines, or one readable line per event on a terminal.',
  options: stdoutOptions,
  setup: (options) => (core) => tapOutput(core, 'meshsync:stdout', process.stdout, options.format),
});

/** The stdout sink writing to another stream instead (tests, embedding meshsync in a program). */
export function stdoutTo(out: OutputStream, options: StdoutOptions = {}): Plugin {
  const plugin = stdout(options);
  const { format } = plugin.options as z.output<typeof stdoutOptions>;
  return { ...plugin, apply: (core) => tapOutput(core, 'meshsync:stdout', out, format) };
}

export default stdout;
