/**
 * A fresh clone's layout, to run the documented commands as a newcomer would: the repository's
 * files as git sees them (tracked, and new ones not ignored: no dist/, no .tmp/), copied into a
 * temporary directory, with node_modules linked from this checkout (as after `npm ci`).
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

const clones = new Map<string, string>();

/** The clone's directory, made once per name and test process, removed when it exits. A test that builds in it takes its own name. */
export function freshClone(name = 'shared'): string {
  const made = clones.get(name);
  if (made) return made;
  const dir = mkdtempSync(join(tmpdir(), 'meshsync-clone-'));
  const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT, encoding: 'utf8' }).split('\0').filter(Boolean);
  for (const file of files) {
    mkdirSync(join(dir, dirname(file)), { recursive: true });
    try {
      cpSync(join(ROOT, file), join(dir, file));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error; // deleted in the work tree, not yet in git
    }
  }
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  clones.set(name, dir);
  return dir;
}
