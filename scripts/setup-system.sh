#!/usr/bin/env bash
# Installs the system programs the test suites run for real: nats-server (integration), chromium
# (website check), podman + runc (container image test), prometheus + promtool (alert and dashboard
# test). Needs root and apt; elsewhere it says what is missing and leaves the suites to fail with
# their own clear message.
set -euo pipefail
want=()
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || want+=(nats-server)
command -v chromium >/dev/null 2>&1 || want+=(chromium)
command -v podman >/dev/null 2>&1 || want+=(podman)
command -v runc >/dev/null 2>&1 || want+=(runc)
command -v openssl >/dev/null 2>&1 || want+=(openssl)
command -v promtool >/dev/null 2>&1 || want+=(prometheus)
[ ${#want[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "setup-system: missing ${want[*]}; install them (Debian: apt-get install -y ${want[*]})" >&2
  exit 0
fi
echo "setup-system: installing ${want[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# The tests run the programs themselves on free ports: no package may start a system service (a
# Prometheus on :9090). policy-rc.d is how Debian's maintainer scripts ask; ours is removed after.
policy=/usr/sbin/policy-rc.d
own_policy=false
if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && own_policy=true; fi
trap 'if $own_policy; then rm -f "$policy"; fi' EXIT
apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
