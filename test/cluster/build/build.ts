/**
 * Builds the real control plane the cluster suite runs against: kube-apiserver and
 * kube-controller-manager from k8s.io/kubernetes, etcd from go.etcd.io/etcd/server/v3 (its own main). Each Go
 * module folder beside this file pins its versions in its go.mod; this script only builds what
 * they pin, into a cache outside the clone keyed by those versions and go.sum, so a second run
 * builds nothing.
 *
 *   tsx test/cluster/build/build.ts            build what is missing, print the binaries' folder
 *   tsx test/cluster/build/build.ts --sync     regenerate kube/go.mod's replace lines from the
 *                                              downloaded k8s.io/kubernetes go.mod, then tidy
 *
 * k8s.io/kubernetes requires its staging modules (k8s.io/api, client-go, ...) at v0.0.0 and
 * replaces them with folders of its own repository, which a dependent cannot see; the builder's
 * go.mod replaces each with its published v0.X.Y. Those lines come from the module's own go.mod,
 * never from a hand-kept list, and a build refuses a go.mod whose lines have drifted.
 */
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { go as goIn, goBuild, goCacheDir, readGoMod as readGoModIn, requiredVersion, type GoMod } from '../../support/go-build.ts';

const here = dirname(fileURLToPath(import.meta.url));
const KUBERNETES = 'k8s.io/kubernetes';
const ETCD_SERVER = 'go.etcd.io/etcd/server/v3';

interface Binary {
  name: string;
  module: string;
  /** The package `go build` builds, inside the module folder. */
  pkg: string;
  ldflags: (version: string) => string[];
}

function go(args: string[], cwd: string, stdio: 'pipe' | 'inherit' = 'pipe'): string {
  return goIn(args, cwd, stdio);
}

function readGoMod(file: string): GoMod {
  return readGoModIn(file, here);
}

/** v1.37.2 → v0.37.2: the version Kubernetes tags its staging modules with. */
export function stagingVersion(kubeVersion: string): string {
  const m = /^v1\.(\d+\.\d+)$/.exec(kubeVersion);
  if (!m) throw new Error(`not a Kubernetes release version: ${kubeVersion}`);
  return `v0.${m[1]}`;
}

/** The replace lines a dependent needs: every k8s.io module the kubernetes go.mod requires at v0.0.0. */
export function stagingReplaces(kubernetesGoMod: GoMod, kubeVersion: string): Map<string, string> {
  const version = stagingVersion(kubeVersion);
  const out = new Map<string, string>();
  for (const r of kubernetesGoMod.Require ?? []) {
    if (r.Path.startsWith('k8s.io/') && r.Version === 'v0.0.0') out.set(r.Path, version);
  }
  return out;
}

function downloadedGoMod(path: string, version: string): GoMod {
  const info = JSON.parse(go(['mod', 'download', '-json', `${path}@${version}`], here)) as { GoMod: string };
  return readGoMod(info.GoMod);
}

function currentReplaces(mod: GoMod): Map<string, string> {
  const out = new Map<string, string>();
  for (const r of mod.Replace ?? []) out.set(r.Old.Path, `${r.New.Path === r.Old.Path ? '' : `${r.New.Path} `}${r.New.Version ?? ''}`);
  return out;
}

function syncKube(): void {
  const dir = join(here, 'kube');
  const file = join(dir, 'go.mod');
  const version = requiredVersion(readGoMod(file), KUBERNETES);
  const wanted = stagingReplaces(downloadedGoMod(KUBERNETES, version), version);
  for (const old of currentReplaces(readGoMod(file)).keys()) go(['mod', 'edit', `-dropreplace=${old}`], dir);
  go(['mod', 'edit', ...[...wanted].map(([p, v]) => `-replace=${p}=${p}@${v}`)], dir);
  go(['mod', 'tidy'], dir, 'inherit');
  console.error(`kube/go.mod: ${wanted.size} staging modules replaced to ${stagingVersion(version)}`);
}

function checkKubeReplaces(version: string): void {
  const wanted = stagingReplaces(downloadedGoMod(KUBERNETES, version), version);
  const have = currentReplaces(readGoMod(join(here, 'kube', 'go.mod')));
  const wrong = [...wanted].filter(([p, v]) => have.get(p) !== v).map(([p]) => p);
  const extra = [...have.keys()].filter((p) => !wanted.has(p));
  if (wrong.length || extra.length) {
    throw new Error(
      `test/cluster/build/kube/go.mod does not match ${KUBERNETES}@${version}'s staging modules ` +
        `(missing or wrong: ${wrong.join(', ') || 'none'}; not staging: ${extra.join(', ') || 'none'}); ` +
        `run: npx tsx test/cluster/build/build.ts --sync`,
    );
  }
}

// The apiserver reports this in /version, and kubectl and the project's tests read it.
const kubeVersionFlags = (v: string): string[] => {
  const [major, minor] = v.slice(1).split('.');
  return ['gitVersion', 'gitMajor', 'gitMinor', 'gitTreeState'].flatMap((name) => [
    `-X k8s.io/component-base/version.${name}=${{ gitVersion: v, gitMajor: major, gitMinor: minor, gitTreeState: 'clean' }[name]}`,
    `-X k8s.io/client-go/pkg/version.${name}=${{ gitVersion: v, gitMajor: major, gitMinor: minor, gitTreeState: 'clean' }[name]}`,
  ]);
};

const BINARIES: Binary[] = [
  { name: 'kube-apiserver', module: 'kube', pkg: `${KUBERNETES}/cmd/kube-apiserver`, ldflags: kubeVersionFlags },
  { name: 'kube-controller-manager', module: 'kube', pkg: `${KUBERNETES}/cmd/kube-controller-manager`, ldflags: kubeVersionFlags },
  // The server module's own main (a wrapper of etcdmain), so etcd takes its usual flags.
  { name: 'etcd', module: 'etcd', pkg: ETCD_SERVER, ldflags: () => [] },
];

/** Where the binaries for the pinned versions live: outside the clone, so every clone on the machine shares them. */
export function cacheDir(): string {
  const kube = requiredVersion(readGoMod(join(here, 'kube', 'go.mod')), KUBERNETES);
  const etcd = requiredVersion(readGoMod(join(here, 'etcd', 'go.mod')), ETCD_SERVER);
  return goCacheDir(`kube-${kube}-etcd-${etcd}`, ['kube', 'etcd'].map((m) => join(here, m, 'go.sum')), here);
}

export function build(): string {
  const kubeVersion = requiredVersion(readGoMod(join(here, 'kube', 'go.mod')), KUBERNETES);
  const out = cacheDir();
  const missing = BINARIES.filter((b) => !existsSync(join(out, b.name)));
  if (missing.length === 0) return out;
  checkKubeReplaces(kubeVersion);
  for (const b of missing) goBuild({ name: b.name, pkg: b.pkg, cwd: join(here, b.module), out, ldflags: b.ldflags(kubeVersion) });
  writeFileSync(join(out, 'versions.json'), JSON.stringify({ kubernetes: kubeVersion, etcd: requiredVersion(readGoMod(join(here, 'etcd', 'go.mod')), ETCD_SERVER) }) + '\n');
  return out;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    if (process.argv.includes('--sync')) syncKube();
    else if (process.argv.includes('--clean')) rmSync(cacheDir(), { recursive: true, force: true });
    else console.log(build());
  } catch (err) {
    console.error(`cluster build: ${(err as Error).message}`);
    process.exit(1);
  }
}
