#!/bin/bash
# Build the image ds01's real-systemd tests boot: Debian bookworm with systemd 252 as PID 1 and
# Python 3.11 (python3-venv, so a test can make /opt/ds01 as docs/install.md says). Made with
# debootstrap and `docker import` (no image registry is reachable). 40-60 s the first time;
# afterwards the image is found by its tag and nothing is done. Prints the tag. Run as root.
#
# Bump VERSION when the package list changes: the tag is how the cached image is found.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
VERSION=1
IMAGE=${DS01_SYSTEMD_IMAGE:-ds01-test:systemd-py-$VERSION}
PACKAGES=systemd,systemd-sysv,dbus,python3,python3-venv

say() { echo "systemd-image: $*" >&2; }

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "$IMAGE"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || { say "need root to build $IMAGE"; exit 1; }

# The Debian mirror apt already uses (deb822 .sources or one-line .list), minus security.
mirror() {
  { awk '/^URIs:/{for (i = 2; i <= NF; i++) print $i}' /etc/apt/sources.list.d/*.sources 2>/dev/null
    grep -hE '^\s*deb\s' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
      awk '{for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; break}}'
  } | grep -E '/debian/?$' | grep -v security | head -1
}

if ! command -v debootstrap >/dev/null 2>&1; then
  # keep apt's post-install scripts from starting services by themselves
  [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
  say "installing debootstrap"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi

url=$(mirror || true)
[ -n "$url" ] || url=http://deb.debian.org/debian
root=$(mktemp -d /tmp/ds01-systemd-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT
chmod 755 "$root"  # not mktemp's 0700: a postinst that drops to a user must be able to enter /
log=${DS01_CI_LOG_DIR:-/var/log/ds01-ci}/systemd-debootstrap.log
mkdir -p "$(dirname "$log")"
say "building $IMAGE from $url (log: $log)"
if ! debootstrap --variant=minbase --include="$PACKAGES" bookworm "$root" "$url" >"$log" 2>&1; then
  tail -20 "$log" >&2
  exit 1
fi
# import -c rejects STOPSIGNAL: the test passes --stop-signal SIGRTMIN+3 itself
tar -C "$root" -c . | docker import -c 'CMD ["/sbin/init"]' - "$IMAGE" >/dev/null
echo "$IMAGE"
