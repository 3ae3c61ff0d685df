/**
 * meshsync:file — events to a file: appended as JSON lines (`events`), or the current state of every
 * object, rewritten atomically (`snapshot`). Lines have the stdout sink's JSON shape.
 */
import { mkdir, open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { z } from 'zod';
import { definePlugin, eventLine, objectKey, type Batch, type SyncEvent } from '../../core/index.ts';

export const fileOptions = z.object({
  path: z.string().min(1, 'a file path is required').describe('The file to write; its directory is created if missing.'),
  mode: z.enum(['events', 'snapshot']).default('events')
    .describe('`events`: append every event as a JSON line. `snapshot`: keep the latest state of every object and rewrite the file atomically.'),
  intervalMs: z.number().int().min(0).default(5000)
    .describe('Snapshot mode: the file is rewritten at most this often (and once more at stop).'),
}).strict();

export type FileOptions = z.input<typeof fileOptions>;

/** Lines are written in chunks of about this size, so a large snapshot never becomes one huge string. */
const CHUNK_CHARS = 1 << 20;
let tempCounter = 0;

/**
 * Writes `events` to `path` atomically: a temp file in the same directory, flushed to disk, then
 * renamed over `path`. A reader sees the old file or the new one, never a partial one. `jsonl`:
 * one event per line; `json`: one JSON array of them (what json.load and jq -s expect of a .json
 * file). Used by the snapshot mode and by `meshsync snapshot --out F`. Returns how many events it wrote.
 */
export async function writeSnapshot(path: string, events: Iterable<SyncEvent> | AsyncIterable<SyncEvent>, format: 'jsonl' | 'json' = 'jsonl'): Promise<number> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true });
  const temp = join(dir, `.${basename(path)}.${process.pid}.${++tempCounter}.tmp`);
  const handle = await open(temp, 'w');
  let count = 0;
  try {
    let chunk = format === 'json' ? '[' : '';
    for await (const event of events) {
      count++;
      chunk += format === 'json' ? `${count === 1 ? '' : ','}\n${eventLine(event)}` : `${eventLine(event)}\n`;
      if (chunk.length >= CHUNK_CHARS) {
        await handle.writeFile(chunk);
        chunk = '';
      }
    }
    if (format === 'json') chunk += count === 0 ? ']\n' : '\n]\n';
    if (chunk !== '') await handle.writeFile(chunk);
    await handle.sync();
    await handle.close();
    await rename(temp, path);
  } catch (error) {
    await handle.close().catch(() => undefined);
    await unlink(temp).catch(() => undefined);
    throw error;
  }
  await syncDirectory(dir);
  return count;
}

/** Makes the rename itself durable; not every platform can open a directory, which is fine. */
async function syncDirectory(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch {
    // best effort
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

export const file = definePlugin({
  name: 'meshsync:file',
  description: 'Writes events to a file: appended JSON lines, or an atomically rewritten snapshot of the current state.',
  options: fileOptions,
  setup: (options) => (core) => {
    const name = 'meshsync:file';
    const logger = () => core.logger.child({ plugin: name, path: options.path, mode: options.mode });
    // Lines are JSON.stringify'd, which writes a view whole (ObjectView.toJSON).
    core.readsWholeObjects(name, () => false);

    if (options.mode === 'events') {
      let handle: FileHandle | undefined;
      core.hooks.start.tapPromise(name, async () => {
        await mkdir(dirname(options.path), { recursive: true });
        handle = await open(options.path, 'a');
      });
      core.hooks.sink.tapPromise(name, async (batch: Batch) => {
        if (handle === undefined) throw new Error(`${options.path} is not open`);
        let chunk = '';
        for (const event of batch) chunk += `${eventLine(event)}\n`;
        await handle.appendFile(chunk);
      });
      core.hooks.stop.tapPromise(name, async () => {
        if (handle === undefined) return;
        const closing = handle;
        handle = undefined;
        await closing.sync();
        await closing.close();
      });
      return;
    }

    // Snapshot mode: the latest event per object, as a consumer's view would hold it.
    const state = new Map<string, SyncEvent>();
    let dirty = true; // an empty snapshot is still written once, so readers see "no objects"
    let timer: NodeJS.Timeout | null = null;
    let writing: Promise<void> | null = null;
    let lastWriteAt = 0;
    let stopped = false;

    const write = async (): Promise<void> => {
      dirty = false;
      lastWriteAt = Date.now();
      await writeSnapshot(options.path, [...state.values()]); // a point-in-time copy: batches may land while it writes
    };
    const schedule = () => {
      if (timer !== null || writing !== null || !dirty || stopped) return;
      timer = setTimeout(() => {
        timer = null;
        writing = write().catch((error) => {
          dirty = true;
          logger().warn({ err: error }, 'snapshot write failed; retrying at the next interval');
        }).finally(() => {
          writing = null;
          schedule();
        });
      }, Math.max(0, lastWriteAt + options.intervalMs - Date.now()));
      timer.unref();
    };

    core.hooks.sink.tapPromise(name, async (batch: Batch) => {
      for (const event of batch) {
        const key = objectKey(event);
        if (event.type === 'DELETED') state.delete(key);
        else state.set(key, event.type === 'ADDED' ? event : { ...event, type: 'ADDED' });
      }
      dirty = true;
      schedule();
    });
    core.hooks.stop.tapPromise(name, async () => {
      stopped = true;
      if (timer !== null) clearTimeout(timer);
      timer = null;
      await writing;
      if (dirty) await write();
      logger().debug({ objects: state.size }, 'final snapshot written');
    });
  },
});

export default file;
