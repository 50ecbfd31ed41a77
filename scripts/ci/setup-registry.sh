#!/bin/bash
# Debian's docker-registry (distribution's registry 2.8) for the projects plugin's base-update
# tests, which start their own registry on a free loopback port with a temporary storage
# directory. Nothing is started here: policy-rc.d keeps apt's postinst from starting the
# packaged service (a running one would not matter: the tests use their own port). Idempotent;
# run as root.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
if command -v docker-registry >/dev/null; then
  docker-registry --version 2>&1 | head -1
  exit 0
fi
[ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
apt-get update -qq
apt-get install -y -qq --no-install-recommends docker-registry >/dev/null
docker-registry --version 2>&1 | head -1
