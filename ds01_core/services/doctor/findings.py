"""What the doctor reports and where it looks: a :class:`Finding` per check, and the host's paths."""

from __future__ import annotations

import attrs

from ds01_core.domain.doctor_finding import Finding

__all__ = ["DEFAULT_HOST", "Finding", "HostPaths"]


@attrs.frozen
class HostPaths:
    """Where the doctor looks; a test points these at a directory of its own."""

    engine_sockets: tuple[str, ...] = (
        "/var/run/docker.sock",
        "/run/docker.sock",
        "/run/containerd/containerd.sock",
    )
    daemon_json: str = "/etc/docker/daemon.json"
    profile_snippet: str = "/etc/profile.d/ds01-docker-host.sh"
    dev_dir: str = "/dev"
    proc_dir: str = "/proc"
    mounts: str = "/proc/self/mounts"
    #: where an installed ds01-dcgm-exporter.service may be (the first found is read)
    dcgm_units: tuple[str, ...] = (
        "/etc/systemd/system/ds01-dcgm-exporter.service",
        "/usr/local/lib/systemd/system/ds01-dcgm-exporter.service",
        "/usr/lib/systemd/system/ds01-dcgm-exporter.service",
        "/lib/systemd/system/ds01-dcgm-exporter.service",
    )


DEFAULT_HOST = HostPaths()
