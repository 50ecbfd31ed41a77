#!/bin/bash
# What ds01's systemd tests need: systemd's tools on this machine (systemd-analyze verify,
# systemd-tmpfiles, systemd-socket-activate; Debian's `systemd` package, which is fine to
# install where systemd is not PID 1) and the image that boots systemd as PID 1 in a container
# (scripts/ci/systemd-image.sh: 40-65 s the first time, then found by its tag).
# Idempotent. Needs the Docker engine (setup-docker.sh) for the image. Run as root.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
say() { echo "setup-systemd: $*"; }

missing=()
for tool in systemd-analyze systemd-tmpfiles systemd-socket-activate; do
  command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/bin/$tool" ] || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || { say "need root to install systemd (for ${missing[*]})"; exit 1; }
  [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
  say "installing systemd (for ${missing[*]})"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends systemd >/dev/null
fi

image=$(bash "$(dirname "${BASH_SOURCE[0]}")/systemd-image.sh")
echo "systemd tools: $(systemd-analyze --version | head -1); image $image"
