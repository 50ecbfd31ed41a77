#!/bin/bash
# Boot systemd 252 as PID 1 in a throw-away container, for testing ds01's units under a real
# systemd (tests/integration/test_systemd_units.py), or stop one.
#
#   systemd-container.sh start NAME [docker run options...]   image from systemd-image.sh
#   systemd-container.sh stop NAME
#
# `start` returns once `systemctl is-system-running` says running (or degraded), usually under a
# second. --privileged fails on these hosts (the bounding set lacks CAP_SYS_RESOURCE); systemd
# needs CAP_SYS_ADMIN and a writable cgroup tree (host cgroupns, /sys/fs/cgroup bind-mounted rw).
# SIGRTMIN+3 makes systemd halt, so `docker stop` takes 0.2 s instead of timing out. Run as root.
set -euo pipefail
cmd=${1:?usage: $0 start|stop NAME [docker run options...]}
name=${2:?usage: $0 start|stop NAME [docker run options...]}
shift 2

if [ "$cmd" = stop ]; then
  docker rm -f "$name" >/dev/null 2>&1 || true
  exit 0
fi
[ "$cmd" = start ] || { echo "systemd-container: unknown command $cmd (start or stop)" >&2; exit 2; }

image=$(bash "$(dirname "${BASH_SOURCE[0]}")/systemd-image.sh")
docker rm -f "$name" >/dev/null 2>&1 || true
docker run -d --name "$name" --hostname "$name" --stop-signal SIGRTMIN+3 \
  --cap-add SYS_ADMIN --cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
  --tmpfs /run --tmpfs /run/lock "$@" "$image" /sbin/init >/dev/null
state=
for _ in $(seq 1 300); do
  if [ "$(docker inspect -f '{{.State.Running}}' "$name" 2>/dev/null)" != true ]; then
    echo "systemd-container: $name exited during boot:" >&2
    docker logs "$name" 2>&1 | tail -20 >&2
    exit 1
  fi
  state=$(docker exec "$name" systemctl is-system-running 2>/dev/null || true)
  case "$state" in running|degraded) echo "$name: systemd $state"; exit 0 ;; esac
  sleep 0.1
done
echo "systemd-container: $name not up after 30 s (state: ${state:-unknown})" >&2
exit 1
