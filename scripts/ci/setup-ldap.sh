#!/bin/bash
# Install OpenLDAP's server and client tools for ds01-ldap's tests, without starting a server.
#
# The tests start their own slapd (tests/plugins/ldap/conftest.py) on a free loopback port
# with a generated configuration, so nothing here listens on :389. Idempotent: when slapd,
# ldapadd and openssl are already there it does nothing. Run as root.
#
# - /usr/sbin/policy-rc.d (exit 101) keeps apt's post-install scripts from starting slapd;
# - slapd/no_configuration=true stops the package from creating /etc/ldap/slapd.d and a
#   database for a made-up domain (the tests never read the system configuration).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

say() { echo "setup-ldap: $*"; }

missing=()
[ -x /usr/sbin/slapd ] || missing+=(slapd)
command -v ldapadd >/dev/null 2>&1 || missing+=(ldap-utils)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if [ ${#missing[@]} -eq 0 ]; then
  say "slapd, ldap-utils and openssl are installed"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || { say "need root to install: ${missing[*]}"; exit 1; }

if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
fi
echo "slapd slapd/no_configuration boolean true" | debconf-set-selections

# refresh the package lists only when apt does not know the packages yet
if ! apt-cache show "${missing[@]}" >/dev/null 2>&1; then
  say "apt-get update"
  apt-get update -qq
fi
say "installing ${missing[*]}"
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
say "installed: $(/usr/sbin/slapd -VV 2>&1 | sed -n 1p)"
