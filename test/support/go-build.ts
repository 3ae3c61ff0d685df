/**
 * Building test programs from Go modules pinned in a go.mod of this repository, into a cache
 * outside the clone (`${XDG_CACHE_HOME:-~/.cache}/meshsync/<key>/`), so every clone on the machine
 * shares one build and a second run builds nothing. Used by the cluster suite's control plane
 * (test/cluster/build/build.ts) and the Meshery checker (test/meshery/build.ts).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export interface GoMod {
  Module: { Path: string };
  Require: { Path: string; Version: string }[] | null;
  Replace: { Old: { Path: string }; New: { Path: string; Version?: string } }[] | null;
}

let goChecked: boolean | undefined;
function goFound(): boolean {
  goChecked ??= spawnSync('go', ['version'], { stdio: 'ignore' }).error === undefined;
  return goChecked;
}

/** Runs the go command in `cwd`; `what` names the suite in the error when Go is missing. */
export function go(args: string[], cwd: string, stdio: 'pipe' | 'inherit' = 'pipe', what = 'the cluster suite builds kube-apiserver and etcd from the Go module proxy'): string {
  if (!goFound()) throw new Error(`go not found on PATH: ${what} and needs Go >= 1.26 (https://go.dev/dl)`);
  const out = execFileSync('go', args, {
    cwd,
    stdio: ['ignore', stdio, 'inherit'],
    encoding: 'utf8',
    // CGO off: static binaries, no C toolchain needed; GOFLAGS from the caller could add -mod=vendor.
    env: { ...process.env, CGO_ENABLED: '0', GOFLAGS: '-buildvcs=false', GOWORK: 'off' },
    maxBuffer: 64 * 1024 * 1024,
  });
  return out ?? '';
}

export function readGoMod(file: string, cwd: string): GoMod {
  return JSON.parse(go(['mod', 'edit', '-json', file], cwd)) as GoMod;
}

export function requiredVersion(mod: GoMod, path: string): string {
  const found = mod.Require?.find((r) => r.Path === path);
  if (!found) throw new Error(`${mod.Module.Path}: go.mod does not require ${path}`);
  return found.Version;
}

/**
 * `<base>/meshsync/<name>-<hash>`: the hash over the files given (go.sum, sources) and the Go
 * version, which decide the bytes as much as the pinned versions in `name` do.
 */
export function goCacheDir(name: string, files: readonly string[], cwd: string): string {
  const base = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  const digest = createHash('sha256');
  for (const file of files) digest.update(readFileSync(file));
  digest.update(go(['env', 'GOVERSION'], cwd));
  return join(base, 'meshsync', `${name}-${digest.digest('hex').slice(0, 12)}`);
}

/** `go build` of `pkg` in module folder `cwd` to `out/<name>`, atomically: a build killed midway leaves no binary that looks whole. */
export function goBuild(options: { name: string; pkg: string; cwd: string; out: string; ldflags?: string[]; what?: string }): void {
  const { name, pkg, cwd, out } = options;
  mkdirSync(out, { recursive: true });
  const started = Date.now();
  console.error(`go build: ${name} (${pkg}) …`);
  const tmp = join(out, `.${name}.${process.pid}`);
  go(['build', '-trimpath', `-ldflags=${['-s', '-w', ...(options.ldflags ?? [])].join(' ')}`, '-o', tmp, pkg], cwd, 'inherit', options.what);
  renameSync(tmp, join(out, name));
  console.error(`go build: ${name} in ${Math.round((Date.now() - started) / 1000)} s`);
}
