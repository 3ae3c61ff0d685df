/**
 * Builds helm for the chart tests from helm.sh/helm/v4's own main package, at the version
 * helm/go.mod pins, into the same cache as the control plane (a folder of its own, keyed by that
 * version, go.sum and the Go version), so a second run builds nothing.
 *
 *   tsx test/cluster/build/helm.ts     build if missing, print the binary's path
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { goBuild, goCacheDir, readGoMod, requiredVersion } from '../../support/go-build.ts';

const here = join(dirname(fileURLToPath(import.meta.url)), 'helm');
const HELM = 'helm.sh/helm/v4';
const WHAT = 'the chart tests build helm from the Go module proxy';

export function helmVersion(): string {
  return requiredVersion(readGoMod(join(here, 'go.mod'), here), HELM);
}

/** The helm binary for the pinned version, built first when the cache lacks it. */
export function buildHelm(): string {
  const version = helmVersion();
  const out = goCacheDir(`helm-${version}`, [join(here, 'go.sum')], here);
  if (!existsSync(join(out, 'helm'))) {
    // helm version reports this; without it a build says only "v4.3".
    goBuild({ name: 'helm', pkg: `${HELM}/cmd/helm`, cwd: here, out, ldflags: [`-X ${HELM}/internal/version.version=${version}`], what: WHAT });
  }
  return join(out, 'helm');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    console.log(buildHelm());
  } catch (err) {
    console.error(`helm build: ${(err as Error).message}`);
    process.exit(1);
  }
}
