"""Running Slurm's commands (``scontrol``, ``squeue``, ``scancel`` …) and telling their failures.

Every command gets ``SLURM_CONF`` from ``plugins.slurm.slurm_conf`` and a timeout: a stopped
``slurmctld`` makes Slurm's clients retry for a long time, and a user waiting on ``ds01 job``
should hear "Slurm is not answering" instead.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence

from ds01_slurm.config import SlurmConfig


class SlurmError(Exception):
    """Slurm refused or failed; the message is Slurm's own words and what to do."""


class SlurmUnavailable(SlurmError):
    """Slurm's commands are missing, or its controller does not answer."""


def slurm_env(cfg: SlurmConfig, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a Slurm command: this process's, with ``SLURM_CONF`` when set."""
    env = dict(os.environ)
    if cfg.slurm_conf:
        env["SLURM_CONF"] = str(cfg.slurm_conf)
    env.update(extra or {})
    return env


def slurm_binary(cfg: SlurmConfig, name: str) -> str:
    return os.path.join(str(cfg.bin_dir), name) if cfg.bin_dir else name


def run_slurm(
    cfg: SlurmConfig,
    name: str,
    args: Sequence[str],
    *,
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """``name args…``'s standard output; :class:`SlurmError` with Slurm's message otherwise."""
    wait = float(cfg.command_timeout) if timeout is None else timeout
    try:
        done = subprocess.run(
            [slurm_binary(cfg, name), *args],
            capture_output=True,
            text=True,
            timeout=wait,
            env=slurm_env(cfg, env),
            check=False,
        )
    except FileNotFoundError:
        raise SlurmUnavailable(
            f"Slurm's {name} is not installed here (install slurm-client, or set "
            "plugins.slurm.bin_dir)"
        ) from None
    except subprocess.TimeoutExpired:
        raise SlurmUnavailable(
            f"Slurm did not answer {name} within {wait:g}s: is slurmctld running? "
            "(an admin can check with `scontrol ping`)"
        ) from None
    if done.returncode != 0:
        words, unreachable = failure_words(name, done)
        raise (SlurmUnavailable if unreachable else SlurmError)(words)
    return done.stdout


def failure_words(name: str, done: subprocess.CompletedProcess[str]) -> tuple[str, bool]:
    """What a Slurm command that failed said (its ``<name>: error:`` prefix dropped), and
    whether that means Slurm cannot be reached or is not set up (the words then say what to
    do) rather than a refusal of what was asked."""
    said = " ".join(done.stderr.split()) or f"{name} exited with {done.returncode}"
    if unreachable := unreachable_words(said):
        return unreachable, True
    return said.removeprefix(f"{name}: ").removeprefix("error: "), False


def unreachable_words(said: str) -> str | None:
    """What to tell when Slurm's own message means it cannot be reached or is not set up."""
    if "Could not establish a configuration source" in said:
        return (
            "Slurm is not configured on this server (no slurm.conf where Slurm looks, and "
            "plugins.slurm.slurm_conf is not set): ask your admin"
        )
    if "Unable to contact slurm controller" in said or "Socket timed out" in said:
        return f"Slurm's controller does not answer: {said}"
    return None
