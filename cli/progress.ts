/**
 * The live display of start-up and the initial sync on a terminal: objects listed per resource,
 * the total and its rate, and what is still awaited, redrawn in place by log-update. Log lines
 * go above it (persisted). Off a terminal there is no display: the log lines say the same.
 */
import { Writable } from 'node:stream';
import { createLogUpdate } from 'log-update';
import type { SyncProgress } from '../core/index.ts';

const REDRAW_MS = 200;
/** Resources shown by name; the rest are summed up in one line. */
const SHOWN = 8;

export interface ProgressDisplay {
  /** Where the logger writes: through the display while it is drawn, straight to the terminal otherwise. */
  readonly logStream: NodeJS.WritableStream;
  /** Draws `read()` until stop() (the initial sync is done, or the run stops). */
  follow(read: () => SyncProgress, what: string): void;
  /** Removes the display, leaving the log lines. */
  stop(): void;
}

/** A display on `terminal` (a TTY); `now` for tests. */
export function createProgressDisplay(terminal: NodeJS.WriteStream, now: () => number = Date.now): ProgressDisplay {
  const draw = createLogUpdate(terminal);
  let timer: NodeJS.Timeout | undefined;
  let frame = (): string => '';
  const logStream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      if (timer === undefined) terminal.write(chunk, () => done());
      else {
        // The display is redrawn below the line, so it stays the last thing on the screen.
        draw.persist(chunk.toString().replace(/\n$/, ''));
        draw(frame());
        done();
      }
    },
  });
  return {
    logStream,
    follow(read, what) {
      if (timer !== undefined) return;
      const startedAt = now();
      frame = () => renderProgress(read(), what, now() - startedAt);
      draw(frame());
      timer = setInterval(() => draw(frame()), REDRAW_MS);
      timer.unref();
    },
    stop() {
      if (timer === undefined) return;
      clearInterval(timer);
      timer = undefined;
      draw.clear();
      draw.done();
    },
  };
}

/** The display's text for one moment of a sync `elapsedMs` old. */
export function renderProgress(progress: SyncProgress, what: string, elapsedMs: number): string {
  const seconds = Math.max(elapsedMs / 1000, 0.001);
  const listed = progress.resources.filter((resource) => resource.listed).length;
  const lines = [
    `${what}: ${progress.objects.toLocaleString('en')} objects, ${Math.round(progress.objects / seconds).toLocaleString('en')}/s, ` +
      `${listed} of ${progress.resources.length} resources listed, ${seconds.toFixed(0)} s`,
  ];
  const pending = progress.resources.filter((resource) => !resource.listed).sort((a, b) => b.objects - a.objects);
  for (const resource of pending.slice(0, SHOWN)) lines.push(`  ${resource.id.padEnd(40)} ${resource.objects.toLocaleString('en').padStart(9)} listing`);
  if (pending.length > SHOWN) lines.push(`  ... and ${pending.length - SHOWN} more resources listing`);
  const waiting = progress.waitingFor.filter((item) => !pending.some((resource) => resource.id === item));
  if (waiting.length > 0) lines.push(`  waiting for ${waiting.join(', ')}`);
  return lines.join('\n');
}
