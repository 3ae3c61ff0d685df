# meshsync container image.
# Any official Node LTS image works as the base, pinned by digest: pass
#   --build-arg BASE_IMAGE=node:22-alpine@sha256:<digest>
# (to update: `podman pull node:22-alpine && podman image inspect --format '{{.Digest}}' node:22-alpine`,
# or the digest your registry shows; see SECURITY.md, "Supply chain"). A base given by tag alone is
# refused below: a tag moves, a digest does not. CI builds with a local base made from the host's
# node (scripts/image-build.sh, localhost/...), which is exempt. Every RUN is in exec form with
# node, so the build also works on a base without a shell.
ARG BASE_IMAGE=node:22-alpine
ARG BUILD_IMAGE=${BASE_IMAGE}

FROM ${BUILD_IMAGE} AS build
ARG BASE_IMAGE
ARG BUILD_IMAGE
ARG ALLOW_UNPINNED_BASE=
RUN ["node", "-e", "const bad = [process.env.BASE_IMAGE, process.env.BUILD_IMAGE].filter((i) => !/@sha256:[0-9a-f]{64}$/.test(i) && !i.startsWith('localhost/')); if (bad.length && !process.env.ALLOW_UNPINNED_BASE) { console.error('meshsync image: pin the base by digest (--build-arg BASE_IMAGE=<image>@sha256:<digest>), not ' + bad.join(', ') + '; or pass --build-arg ALLOW_UNPINNED_BASE=1'); process.exit(1); }"]
WORKDIR /src
COPY package.json package-lock.json ./
# npm workspaces (examples/*) must exist for `npm ci` to accept the lockfile.
COPY examples/ examples/
RUN ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=warn"]
COPY tsconfig.json tsconfig.build.json index.ts ./
# What runs in production only: testing/ (the test kit and the Kubernetes API simulator) is left
# out by .dockerignore, so no test double is compiled into the image.
COPY cli/ cli/
COPY core/ core/
COPY config/ config/
COPY kubernetes/ kubernetes/
COPY plugins/ plugins/
COPY scripts/copy-assets.mjs scripts/
RUN ["node", "node_modules/typescript/bin/tsc", "-p", "tsconfig.build.json"]
RUN ["node", "scripts/copy-assets.mjs"]
# Only what runs ships: no type declarations, no source maps (they would hold the sources).
RUN ["node", "-e", "const fs = require('fs'), path = require('path'); (function prune(dir) { for (const e of fs.readdirSync(dir, { withFileTypes: true })) { const f = path.join(dir, e.name); if (e.isDirectory()) prune(f); else if (/\\.(d\\.ts|map)$/.test(e.name)) fs.rmSync(f); } })('dist');"]

# Production dependencies alone, in a clean tree (typescript stays: cosmiconfig loads .ts configs with it).
FROM ${BUILD_IMAGE} AS deps
WORKDIR /src
COPY package.json package-lock.json ./
COPY examples/ examples/
RUN ["npm", "ci", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=warn"]
# Third-party plugins the image holds besides the built-ins: npm package specs separated by spaces
# (names, name@version, tarballs in image-plugins/), e.g. --build-arg PLUGINS="meshsync-plugin-x@1.2.0".
ARG PLUGINS=""
COPY image-plugins/ image-plugins/
COPY scripts/add-plugins.mjs scripts/
RUN ["node", "scripts/add-plugins.mjs"]
# KubeConfig without the generated API client meshsync never calls (see the script).
COPY scripts/slim-client-node.mjs scripts/
RUN ["node", "scripts/slim-client-node.mjs"]
# Type declarations, TypeScript sources, source maps and docs are dead weight at run time
# (typescript itself stays whole).
RUN ["node", "-e", "const fs = require('fs'), path = require('path'); (function prune(dir) { for (const e of fs.readdirSync(dir, { withFileTypes: true })) { const f = path.join(dir, e.name); if (e.isDirectory()) { if (f !== 'node_modules/typescript') prune(f); } else if (/\\.([cm]?ts|map|md)$/.test(e.name) && !/^(license|licence)/i.test(e.name)) fs.rmSync(f); } })('node_modules');"]

FROM ${BASE_IMAGE}
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
LABEL org.opencontainers.image.title="meshsync" \
      org.opencontainers.image.description="Watches a Kubernetes cluster and publishes every change to NATS, through plugins." \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="Meshery" \
      org.opencontainers.image.source="https://github.com/meshery/meshsync" \
      org.opencontainers.image.documentation="https://github.com/meshery/meshsync#readme" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
# The config is searched for in /config (MESHSYNC_CONFIG_DIR), but the process runs from /app: a
# working directory is where relative paths land, and it must never be the ConfigMap mount.
ENV NODE_ENV=production \
    HOME=/tmp \
    MESHSYNC_CONFIG_DIR=/config
WORKDIR /app
COPY package.json ./
COPY bin/ bin/
COPY --from=deps /src/node_modules/ node_modules/
COPY --from=build /src/dist/ dist/
# Files stay root-owned: the process (uid 65532) can read but not change them, and needs no
# writable path but /tmp, so the root filesystem can be mounted read-only.
USER 65532:65532
# The config volume: meshsync.config.(yaml|json|ts|...) found here by discovery, or
# `run --config /config/<file>`. BROKER_URL and CLUSTER_ID come from the environment.
VOLUME ["/config"]
# A young generation of 4 MB semi-spaces instead of V8's 16: what a sync allocates per event dies
# young (objects are mostly left in their bytes), and the smaller nursery keeps ~40 MB off the
# peak RSS at no measured CPU cost (bench/README.md, "Why the image caps the semi-space").
ENTRYPOINT ["node", "--max-semi-space-size=4", "/app/bin/meshsync.js"]
CMD ["run"]
