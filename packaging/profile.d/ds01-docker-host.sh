# ds01: ordinary users' Docker clients talk to the ds01 gateway, not to the engine itself.
#
# Installed as /etc/profile.d/ds01-docker-host.sh; login shells read it. The gateway speaks the
# Docker Engine API and applies each user's limits, so the docker CLI, compose, VS Code and the
# SDKs all work unchanged. Root keeps the real engine, a DOCKER_HOST the user set is kept, and
# nothing changes until the gateway's socket exists.
if [ "$(id -u)" != 0 ] && [ -z "${DOCKER_HOST-}" ] && [ -S /run/ds01/docker.sock ]; then
    DOCKER_HOST=unix:///run/ds01/docker.sock
    export DOCKER_HOST
fi
