#!/bin/bash
# Start a real Docker engine for ds01's integration tests and CI, and make the test image.
#
# Debian's docker.io with dockerd started by hand (no systemd on CI machines), plus the
# registry-free image ds01-test:busybox made with `docker import` from a busybox-static
# rootfs (no image registry is reachable). Also installs docker-compose for compose tests.
# Idempotent: whatever is already installed, running or built is left alone. Run as root.
#
# Environment: DS01_CI_LOG_DIR (default /var/log/ds01-ci) holds dockerd.log.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
log_dir=${DS01_CI_LOG_DIR:-/var/log/ds01-ci}
image=ds01-test:busybox

say() { echo "setup-docker: $*"; }

# -- packages: one apt call for whatever is missing ----------------------------------------
missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v busybox >/dev/null 2>&1 || missing+=(busybox-static)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
# the disk-quota tests: setquota, repquota, quotaon
command -v setquota >/dev/null 2>&1 || missing+=(quota)
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || { say "need root to install: ${missing[*]}"; exit 1; }
  # keep apt's post-install scripts from starting services (dockerd, containerd) by themselves
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
  fi
  say "installing ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# -- the engine ------------------------------------------------------------------------------
# The machine may carry a newer docker CLI in /usr/local/bin; both talk to the same socket.
if ! docker version >/dev/null 2>&1; then
  mkdir -p "$log_dir"
  say "starting dockerd (log: $log_dir/dockerd.log)"
  setsid dockerd >"$log_dir/dockerd.log" 2>&1 </dev/null &
  dockerd_pid=$!
  ready=
  for _ in $(seq 1 150); do
    if docker version >/dev/null 2>&1; then ready=1; break; fi
    # a dead dockerd will never answer: stop waiting at once and show why
    kill -0 "$dockerd_pid" 2>/dev/null || break
    sleep 0.2
  done
  if [ -z "$ready" ]; then
    if kill -0 "$dockerd_pid" 2>/dev/null; then
      say "dockerd (pid $dockerd_pid) did not answer within 30 s"
    else
      say "dockerd exited during start-up"
    fi
    tail -30 "$log_dir/dockerd.log" >&2 || true
    exit 1
  fi
fi

# -- the registry-free test image ------------------------------------------------------------
if ! docker image inspect "$image" >/dev/null 2>&1; then
  say "building $image from busybox-static"
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  mkdir -p "$root/bin" "$root/tmp" "$root/workspace"
  chmod 1777 "$root/tmp"
  cp "$(command -v busybox)" "$root/bin/busybox"
  for applet in $("$root/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
  done
  tar -C "$root" -c . | docker import -c "ENV PATH=/bin" -c 'CMD ["/bin/sh"]' - "$image" >/dev/null
fi

echo "docker engine ready: $(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})'), image $image, $(docker-compose version --short 2>/dev/null | sed 's/^/docker-compose /')"
