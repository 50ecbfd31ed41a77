#!/bin/bash
# Install a real OpenID provider for ds01-web's sign-in tests: panva's node-oidc-provider (an
# OpenID-certified implementation), from tests/oidc/package.json and its package-lock.json with
# `npm ci`, into /opt/ds01-test-oidc (DS01_OIDC_PROVIDER_DIR chooses another place), outside
# the repository. The tests (tests/plugins/web/oidc_env.py) start it on a free loopback port;
# nothing here starts a server. Idempotent: an install of the same lock file is kept. Needs
# node >= 20.19 and npm (Debian's nodejs and npm are installed when node is missing; as root).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
src="$here/tests/oidc"
dest="${DS01_OIDC_PROVIDER_DIR:-/opt/ds01-test-oidc}"

say() { echo "setup-oidc: $*"; }

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  [ "$(id -u)" -eq 0 ] || { say "need root to install node and npm"; exit 1; }
  if ! apt-cache show nodejs npm >/dev/null 2>&1; then
    apt-get update -qq
  fi
  say "installing nodejs and npm"
  apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
say "node $(node --version), npm $(npm --version)"

if [ -f "$dest/package-lock.json" ] && cmp -s "$src/package-lock.json" "$dest/package-lock.json" \
  && [ -d "$dest/node_modules/oidc-provider" ]; then
  say "oidc-provider is installed in $dest"
  exit 0
fi
mkdir -p "$dest"
cp "$src/package.json" "$src/package-lock.json" "$dest/"
(cd "$dest" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
say "installed $(node -e "console.log(require('$dest/node_modules/oidc-provider/package.json').version)" 2>/dev/null || echo '?') in $dest"
