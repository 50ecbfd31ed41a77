#!/bin/bash
# Debian's Slurm (slurmctld, slurmd, the client commands) and munge for ds01-slurm's tests,
# which start their own daemons on loopback (tests/helpers/slurm.py) with a generated
# slurm.conf: nothing is started here, and policy-rc.d keeps apt's post-install scripts from
# starting the packaged services. Creates munge's key when it is missing (the tests' munged
# needs one). Idempotent; run as root.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

say() { echo "setup-slurm: $*"; }

missing=()
command -v slurmctld >/dev/null 2>&1 || missing+=(slurmctld)
command -v slurmd >/dev/null 2>&1 || missing+=(slurmd)
command -v sbatch >/dev/null 2>&1 || missing+=(slurm-client)
command -v munged >/dev/null 2>&1 || [ -x /usr/sbin/munged ] || missing+=(munge)
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || { say "need root to install: ${missing[*]}"; exit 1; }
  [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
  # refresh the package lists only when apt does not know the packages yet
  if ! apt-cache show "${missing[@]}" >/dev/null 2>&1; then
    say "apt-get update"
    apt-get update -qq
  fi
  say "installing ${missing[*]}"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -s /etc/munge/munge.key ]; then
  [ "$(id -u)" -eq 0 ] || { say "need root to create /etc/munge/munge.key"; exit 1; }
  say "creating /etc/munge/munge.key"
  runuser -u munge -- mungekey --create --keyfile=/etc/munge/munge.key
fi
say "installed: $(slurmctld -V), munge $(dpkg-query -W -f '${Version}' munge 2>/dev/null || echo '?')"
