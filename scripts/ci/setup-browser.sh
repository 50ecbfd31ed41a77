#!/bin/bash
# Debian's Chromium for the web plugin's browser tests, which drive it headless through PyPI's
# playwright (tests/helpers/browser.py launches /usr/bin/chromium; `playwright install`, which
# downloads browsers from a CDN, is never run). Installs the package only when it is missing;
# starts nothing, and policy-rc.d keeps apt's post-install scripts from starting services.
# Idempotent; run as root.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

say() { echo "setup-browser: $*"; }

if [ ! -x /usr/bin/chromium ]; then
  [ "$(id -u)" -eq 0 ] || { say "need root to install chromium (apt-get install chromium)"; exit 1; }
  [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
  # refresh the package lists only when apt does not know the package yet
  if ! apt-cache show chromium >/dev/null 2>&1; then
    say "apt-get update"
    apt-get update -qq
  fi
  say "installing chromium"
  apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
say "installed: $(/usr/bin/chromium --version 2>/dev/null || echo 'chromium (version unknown)')"
