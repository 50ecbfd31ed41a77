#!/bin/bash
# Prometheus, promtool, Alertmanager, amtool and VictoriaMetrics from Debian's packages
# (prometheus 2.42, prometheus-alertmanager 0.25, victoria-metrics 1.79) for the prometheus
# plugin's tests, which start their own servers on loopback ports. Nothing is started here:
# policy-rc.d keeps apt's postinst scripts from starting the packaged services. Idempotent;
# run as root.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
if command -v prometheus >/dev/null && command -v promtool >/dev/null \
  && command -v prometheus-alertmanager >/dev/null && command -v amtool >/dev/null \
  && command -v victoria-metrics >/dev/null; then
  prometheus --version 2>&1 | head -1
  exit 0
fi
[ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
apt-get update -qq
apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager \
  victoria-metrics >/dev/null
# the packaged services are not wanted running (the tests start their own)
pkill -x prometheus 2>/dev/null || true
pkill -x prometheus-alertmanager 2>/dev/null || true
prometheus --version 2>&1 | head -1
prometheus-alertmanager --version 2>&1 | head -1
victoria-metrics -version 2>&1 | head -1
