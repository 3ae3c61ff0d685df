#!/usr/bin/env bash
# Builds the meshsync image with podman, without Docker and without a container registry:
# the Node base images are made locally from this machine's own node (and npm) binaries.
# Idempotent: installs podman if missing, rebuilds the base images only when the host's node
# changed, and lets podman's layer cache make a rebuild of an unchanged tree fast.
#
#   npm run image                          # builds localhost/meshsync:<version> (package.json config.image),
#                                          # the image `meshsync install` deploys by default
#   IMAGE=localhost/meshsync:test scripts/image-build.sh
#   PLUGINS="meshsync-plugin-x@1 ./image-plugins/y-1.0.0.tgz" npm run image   # with third-party plugins
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
IMAGE=${IMAGE:-$(cd "$repo" && node -p 'const m = require("./package.json"); `${m.config.image}:${m.version}`')}
PLUGINS=${PLUGINS:-}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$repo/deploy/podman/containers.conf}

if ! command -v podman >/dev/null || ! command -v runc >/dev/null; then
  echo "image-build: installing podman and runc" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq podman runc >/dev/null
fi

node_bin=$(readlink -f "$(command -v node)")
node_version=$(node -p 'process.versions.node')
node_major=${node_version%%.*}
npm_dir=$(cd "$(dirname "$(readlink -f "$(command -v npm)")")/.." && pwd)
BASE_IMAGE=${BASE_IMAGE:-localhost/meshsync-base:node$node_major}
BUILD_IMAGE=${BUILD_IMAGE:-localhost/meshsync-base:node$node_major-build}

# Copies a dynamically linked binary and the shared libraries it loads into a root fs.
copy_with_libs() {
  local bin=$1 root=$2 dest=$3
  install -D -m 0755 "$bin" "$root$dest"
  ldd "$bin" | awk '$2 == "=>" { print $3 } $1 ~ /^\// { print $1 }' | while read -r lib; do
    [ -n "$lib" ] && [ -e "$lib" ] || continue
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
}

# A root fs with node, the files a non-root process expects (/etc/passwd, CA certs, /tmp) and,
# for the build image, npm plus a shell (npm runs scripts through sh; Dockerfiles RUN through it).
make_base() {
  local tag=$1 flavour=$2
  if [ "$(podman image inspect --format '{{ index .Labels "meshsync.base.node" }}' "$tag" 2>/dev/null)" = "$node_version-$flavour" ]; then
    return
  fi
  echo "image-build: making $tag from the host's node $node_version" >&2
  local root
  root=$(mktemp -d)
  trap 'rm -rf "$root"' RETURN
  chmod 0755 "$root"
  mkdir -p "$root"/{etc/ssl/certs,tmp,usr/local/bin,usr/bin,bin,home/nonroot,config,app}
  chmod 1777 "$root/tmp"
  chown 65532:65532 "$root/home/nonroot"
  copy_with_libs "$node_bin" "$root" /usr/local/bin/node
  # Debug info and the static symbol table are of no use at run time (.dynsym stays for addons).
  strip --strip-unneeded "$root/usr/local/bin/node"
  # The host's CA bundle, which also holds any TLS-inspecting proxy's CA the npm registry is
  # reached through; node trusts it via NODE_EXTRA_CA_CERTS.
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$root/etc/group"
  printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
  if [ "$flavour" = build ]; then
    mkdir -p "$root/usr/local/lib/node_modules"
    cp -a "$npm_dir" "$root/usr/local/lib/node_modules/npm"
    ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
    ln -s ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
    copy_with_libs "$(readlink -f /bin/dash)" "$root" /bin/sh
    copy_with_libs "$(readlink -f /usr/bin/env)" "$root" /usr/bin/env
  fi
  tar -C "$root" --numeric-owner -c . |
    podman import \
      --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
      --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
      --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' \
      --change 'ENV npm_config_update_notifier=false' \
      --change "LABEL meshsync.base.node=$node_version-$flavour" \
      --change 'CMD ["node"]' \
      - "$tag" >/dev/null
}

cd "$repo"
start=$(date +%s)
make_base "$BASE_IMAGE" runtime
make_base "$BUILD_IMAGE" build

revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
version=$(node -p 'require("./package.json").version')
podman build \
  --build-arg "BASE_IMAGE=$BASE_IMAGE" \
  --build-arg "BUILD_IMAGE=$BUILD_IMAGE" \
  --build-arg "VERSION=$version" \
  --build-arg "REVISION=$revision" \
  --build-arg "CREATED=$(git log -1 --format=%cI 2>/dev/null || echo 1970-01-01T00:00:00Z)" \
  --build-arg "PLUGINS=$PLUGINS" \
  -t "$IMAGE" -f Dockerfile . >&2

size=$(podman image inspect --format '{{ .Size }}' "$IMAGE")
echo "image-build: $IMAGE${PLUGINS:+ (with $PLUGINS)} built in $(( $(date +%s) - start ))s, size $(( size / 1000000 )) MB ($size bytes)" >&2
echo "$IMAGE"
