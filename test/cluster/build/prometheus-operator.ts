/**
 * The Prometheus Operator's CRDs for the chart's ServiceMonitor and PrometheusRule: the module
 * at the version prometheus-operator/go.mod pins, downloaded from the Go module proxy (go.sum
 * checks it), its CRD files copied into the same cache as the control plane and helm.
 *
 *   tsx test/cluster/build/prometheus-operator.ts     fetch if missing, print the folder
 */
import { copyFileSync, existsSync, mkdirSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { go, goCacheDir, readGoMod, requiredVersion } from '../../support/go-build.ts';

const here = join(dirname(fileURLToPath(import.meta.url)), 'prometheus-operator');
const MODULE = 'github.com/prometheus-operator/prometheus-operator';
const CRDS = 'example/prometheus-operator-crd';
/** The CRDs the chart's monitoring values render objects of. */
export const PROMETHEUS_OPERATOR_CRDS = ['monitoring.coreos.com_servicemonitors.yaml', 'monitoring.coreos.com_prometheusrules.yaml'];

/** The folder holding PROMETHEUS_OPERATOR_CRDS for the pinned version, fetched first when the cache lacks it. */
export function prometheusOperatorCrds(): string {
  const version = requiredVersion(readGoMod(join(here, 'go.mod'), here), MODULE);
  const out = goCacheDir(`prometheus-operator-crds-${version}`, [join(here, 'go.sum')], here);
  if (PROMETHEUS_OPERATOR_CRDS.every((file) => existsSync(join(out, file)))) return out;
  // In module mode, so go.sum verifies the download.
  const { Dir, Error: error } = JSON.parse(go(['mod', 'download', '-json', MODULE], here, 'pipe', 'the chart\'s cluster test fetches the Prometheus Operator\'s CRDs from the Go module proxy')) as { Dir?: string; Error?: string };
  if (!Dir) throw new Error(`go mod download ${MODULE}: ${error ?? 'no Dir'}`);
  mkdirSync(out, { recursive: true });
  for (const file of PROMETHEUS_OPERATOR_CRDS) {
    // Copied under a temporary name first: a copy killed midway leaves no file that looks whole.
    const tmp = join(out, `.${file}.${process.pid}`);
    copyFileSync(join(Dir, CRDS, file), tmp);
    renameSync(tmp, join(out, file));
  }
  return out;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    console.log(prometheusOperatorCrds());
  } catch (err) {
    console.error(`prometheus-operator CRDs: ${(err as Error).message}`);
    process.exit(1);
  }
}
