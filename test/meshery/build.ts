/**
 * Builds meshery-check (main.go beside this file) from the modules its go.mod pins — meshkit and
 * meshsync from the Go module proxy — into the shared cache outside the clone, keyed by those
 * versions, go.sum, the source and the Go version. Test infrastructure only: never in the npm
 * package or the image.
 *
 *   tsx test/meshery/build.ts     build if missing, print the binary's path
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { goBuild, goCacheDir, readGoMod, requiredVersion } from '../support/go-build.ts';

const here = dirname(fileURLToPath(import.meta.url));
const WHAT = 'the Meshery check builds its Go consumer from meshkit and meshsync on the Go module proxy';
export const MESHKIT = 'github.com/meshery/meshkit';
export const MESHSYNC = 'github.com/meshery/meshsync';

/** The pinned versions of Meshery's modules the checker is built with. */
export function mesheryVersions(): { meshkit: string; meshsync: string } {
  const mod = readGoMod(join(here, 'go.mod'), here);
  return { meshkit: requiredVersion(mod, MESHKIT), meshsync: requiredVersion(mod, MESHSYNC) };
}

/** The meshery-check binary, built when missing. */
export function buildMesheryCheck(): string {
  const { meshkit, meshsync } = mesheryVersions();
  const out = goCacheDir(`meshery-check-meshkit-${meshkit}-meshsync-${meshsync}`, ['go.mod', 'go.sum', 'main.go'].map((f) => join(here, f)), here);
  const binary = join(out, 'meshery-check');
  if (!existsSync(binary)) goBuild({ name: 'meshery-check', pkg: '.', cwd: here, out, what: WHAT });
  return binary;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    console.log(buildMesheryCheck());
  } catch (err) {
    console.error(`meshery build: ${(err as Error).message}`);
    process.exit(1);
  }
}
