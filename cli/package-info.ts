/** meshsync's own package.json, read from beside this file (cli/ in a checkout, dist/cli/ when built, /app in the image). */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

interface Manifest {
  readonly version: string;
  /** `config.image`: the image name `npm run image` builds (scripts/image-build.sh reads it too). */
  readonly config?: { readonly image?: string };
}

function readManifest(): Manifest {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      const manifest = JSON.parse(readFileSync(file, 'utf8')) as { name?: string } & Partial<Manifest>;
      if (manifest.name === 'meshsync') return { version: manifest.version ?? '0.0.0', config: manifest.config };
    }
    if (dirname(dir) === dir) return { version: '0.0.0' };
  }
}

export const MANIFEST: Manifest = readManifest();

/** This project's image, as `npm run image` tags it: `<config.image>:<version>`, e.g. localhost/meshsync:0.1.0. */
export const OWN_IMAGE = `${MANIFEST.config?.image ?? 'localhost/meshsync'}:${MANIFEST.version}`;
