#!/bin/bash
# The Dev Containers CLI (@devcontainers/cli, what VS Code's Dev Containers extension runs) for
# the projects plugin's test that `devcontainer up` accepts the devcontainer.json that
# `ds01 project init` writes, against the ds01 gateway. Installed into $DS01_DEVCONTAINERS_DIR
# (default /opt/ds01-devcontainers, readable by the test users), pinned, from the npm registry;
# node and npm from Debian when missing. Does nothing when that version is already there.
# Idempotent; run as root.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
VERSION="${DS01_DEVCONTAINERS_VERSION:-0.80.0}"  # 0.80 runs on node 18 (Debian 12) and 20
DIR="${DS01_DEVCONTAINERS_DIR:-/opt/ds01-devcontainers}"
BIN="$DIR/node_modules/.bin/devcontainer"

if [ -x "$BIN" ] && [ "$("$BIN" --version 2>/dev/null)" = "$VERSION" ]; then
  echo "devcontainer $VERSION (in $DIR)"
  exit 0
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
mkdir -p "$DIR"
cd "$DIR"
[ -f package.json ] || printf '{"name": "ds01-devcontainers", "private": true}\n' >package.json
npm install --no-audit --no-fund --loglevel=error "@devcontainers/cli@$VERSION" >/dev/null
chmod -R a+rX "$DIR"
echo "devcontainer $("$BIN" --version) (in $DIR)"
