"""``ds01 doctor``: what is wrong with *your* setup, each finding with its fix.

The admin's ``ds01 admin doctor`` checks the server; this one checks what a user controls or
suffers from: the ds01 service and the gateway answering, DOCKER_HOST and BuildKit in this
shell, ``~/.ssh`` for VS Code Remote, the home and workspace being theirs and writable, disk
and image limits, stopped containers still holding GPUs, and images older than the Dockerfile
they were built from. ✗ is broken (exit 1); ! is advice.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from ds01_core.api import CliState, ServiceError, format_bytes, pass_state, print_json
from ds01_projects import dotfiles
from ds01_projects.findings import Finding, fail, ok, problems, render, summary, warn
from ds01_projects.settings import Settings, load_settings
from ds01_projects.setup_steps import docker_env_finding, engine_through_gateway, gateway_socket

#: a disk or image limit used this much counts as close to it
NEAR = 0.9


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="The findings as JSON.")
@pass_state
def doctor(state: CliState, as_json: bool) -> None:
    """Check your own setup: the ds01 service, Docker through the gateway, DOCKER_HOST and
    BuildKit, ~/.ssh, your home and workspace, disk and image limits, stopped containers
    holding GPUs, images older than their Dockerfile. Each finding says how to fix it; the
    exit status is 1 if something is broken (✗). The server's checks: `ds01 admin doctor`.
    """
    findings = run_checks(state)
    counts = summary(findings)
    if as_json:
        print_json(
            {
                "findings": [f.to_json() for f in findings],
                "summary": counts,
                "problems": counts["fail"],
            }
        )
    else:
        render(findings)
        click.echo(
            f"\n{counts['fail']} broken, {counts['warn']} to look at"
            if counts["fail"] or counts["warn"]
            else "\nno problems found"
        )
    if problems(findings):
        raise SystemExit(1)


def run_checks(state: Any) -> list[Finding]:
    try:
        settings = load_settings(state)
    except ServiceError as exc:
        return [fail("service", f"the ds01 service does not answer: {exc.message}", _ADMIN)]
    found = [ok("service", "the ds01 service answers")]
    socket = gateway_socket(settings)
    if not os.path.exists(socket):
        found.append(fail("gateway", f"the gateway socket {socket} does not exist", _ADMIN))
    else:
        found.append(engine_through_gateway(settings, "gateway"))
    env = docker_env_finding(settings, "docker")
    found.append(
        ok("docker", f"DOCKER_HOST=unix://{socket}, DOCKER_BUILDKIT=0")
        if env is None
        else fail("docker", env.message, "`ds01 setup --docker-host`, then `source ~/.profile`")
    )
    found += ssh_check(settings)
    found += places(settings)
    quota = _quota(state, found)
    if quota is not None:
        found += disk(quota) + held_gpus(quota, _stopped(state))
    found += images(settings)
    return found


_ADMIN = "tell an admin (this is the server's side)"


def ssh_check(settings: Settings) -> list[Finding]:
    home = Path(os.environ.get("HOME") or settings.home)
    count, issues = dotfiles.ssh_problems(home, os.getuid())
    if issues:
        return [warn("ssh", text, fix) for text, fix in issues]
    return [ok("ssh", f"~/.ssh/authorized_keys: {count} key{'s' if count != 1 else ''}")]


def places(settings: Settings) -> list[Finding]:
    """The home and the workspace root: the user's own, and writable by them."""
    found = []
    uid = os.getuid()
    for label, path in (("home", settings.home), ("workspace", settings.workspace_root)):
        target = Path(path)
        if not target.exists():
            parent = target.parent
            if os.access(parent, os.W_OK):
                found.append(ok(label, f"{target} will be made by `ds01 project init`"))
            else:
                found.append(fail(label, f"{target} is missing and {parent} is not yours", _ADMIN))
            continue
        owner = target.stat().st_uid
        if owner != uid:
            found.append(fail(label, f"{target} is not owned by you (uid {owner})", _ADMIN))
        elif not os.access(target, os.W_OK | os.X_OK):
            found.append(fail(label, f"{target} is not writable by you", f"chmod u+rwx {target}"))
        else:
            found.append(ok(label, f"{target} is yours and writable"))
    return found


def _quota(state: Any, found: list[Finding]) -> dict[str, Any] | None:
    try:
        return dict(state.call("quota"))
    except ServiceError as exc:
        found.append(fail("quota", f"cannot read your limits: {exc.message}", _ADMIN))
        return None


def disk(quota: dict[str, Any]) -> list[Finding]:
    """The plugins' byte-valued quota lines (disk quotas): over, close, or fine."""
    found = []
    for line in quota.get("resources") or []:
        if line.get("unit") != "bytes" or not line.get("limit"):
            continue
        used, limit = float(line["used"] or 0), float(line["limit"])
        text = f"{line['resource']}: {format_bytes(int(used))} of {format_bytes(int(limit))}"
        if line.get("over") or used >= limit:
            found.append(fail("disk", f"{text}: OVER", "delete files (`du -sh ~/* | sort -h`)"))
        elif used >= NEAR * limit:
            found.append(warn("disk", f"{text}: close to the limit", "free some space soon"))
        else:
            found.append(ok("disk", text))
    return found


def _stopped(state: Any) -> set[str]:
    """Names and ids of the caller's containers that are not running."""
    try:
        listing = state.call("containers.list", all=True)
    except ServiceError:
        return set()
    return {
        key for c in listing if c.get("status") != "running" for key in (c.get("name"), c.get("id"))
    } - {None}


def held_gpus(quota: dict[str, Any], stopped: set[str]) -> list[Finding]:
    """Stopped containers whose GPUs are still held (against the quota) for a while: the
    daemon marks the hold at its next cycle, the listing shows the stop at once."""
    held = [
        a
        for a in quota["gpu_equivalents"]["allocations"]
        if a["held_after_stop"] or a["container"] in stopped
    ]
    return [
        warn(
            "gpus",
            f"container {a['container']} is stopped but still holds {a['weight']:.2f} "
            "GPU-equivalents of your quota",
            f"`ds01 container start {a['container']}` to use it, or "
            f"`ds01 container remove {a['container']}` to free the GPU",
        )
        for a in held
    ] or [ok("gpus", "no stopped container holds a GPU")]


def images(settings: Settings) -> list[Finding]:
    """Image count and storage against the limits; images older than their Dockerfile."""
    from ds01_projects.gateway_client import gateway_api
    from ds01_projects.images import user_images

    try:
        api = gateway_api(settings)
        rows = user_images(settings, api)
    except ServiceError as exc:
        return [fail("images", f"cannot list your images: {exc.message}", _ADMIN)]
    except Exception as exc:  # the SDK's many ways to fail: one line
        return [fail("images", f"cannot list your images: {exc}", _ADMIN)]
    # counted as the gateway counts them: each image once, however many tags it has
    tagged = {r.id for r in rows if not r.old}
    found = [_limit("images", len(tagged), settings.limits.get("max_images"), str)]
    size = sum({r.id: int(r.size or 0) for r in rows}.values())
    found.append(_limit("storage", size, settings.limits.get("max_image_storage"), _bytes, unit=""))
    found += stale_images(settings, api, rows)
    return found


def _bytes(n: float) -> str:
    return format_bytes(int(n))


def _limit(check: str, used: float, limit: Any, show: Any, unit: str = "images") -> Finding:
    noun = unit[:-1] if unit.endswith("s") and used == 1 else unit
    what = f"{show(used)}{' ' + noun if noun else ''}"
    if limit is None:
        return ok(check, f"{what} (no limit)")
    text = f"{what} of {show(limit)} allowed"
    fix = "`ds01 image list`, then `ds01 image remove NAME` for those you no longer need"
    if used > limit:
        return fail(check, f"{text}: OVER", fix)
    if used >= limit or (limit and used >= NEAR * limit):
        return warn(check, f"{text}: new builds may be refused", fix)
    return ok(check, text)


def stale_images(settings: Settings, api: Any, rows: list[Any]) -> list[Finding]:
    """Images whose definition (Dockerfile, requirements file) changed since they were
    built: the build's hash label, or (where the gateway keeps ``ds01.*`` labels to itself)
    the folder's record of its last build of this very image, against the folder now."""
    from ds01_projects.images import definition_dir

    found = []
    for row in rows:
        if row.old:
            continue
        folder = definition_dir(settings, row.name, row)
        if not (folder / "Dockerfile").is_file():
            continue
        built = _built_hash(api, row, folder)
        if built is not None and built != _current_hash(folder):
            found.append(
                warn(
                    "stale",
                    f"{row.ref}: {folder}/Dockerfile changed since the image was built",
                    f"`ds01 image rebuild {row.name}` (or `ds01 project launch` in {folder})",
                )
            )
    return found


def _built_hash(api: Any, row: Any, folder: Path) -> str | None:
    from ds01_projects.build import LABEL_HASH, last_built

    try:
        labels = (api.inspect_image(row.id).get("Config") or {}).get("Labels") or {}
    except Exception:  # gone meanwhile, or the gateway refused: nothing to say about it
        return None
    if labels.get(LABEL_HASH):
        return str(labels[LABEL_HASH])
    record = last_built(folder)
    return (
        str(record.get("dockerfile_sha256") or "") or None if record.get("id") == row.id else None
    )


def _current_hash(folder: Path) -> str:
    """The hash a build of the folder now would get."""
    from ds01_projects.build import definition_hash
    from ds01_projects.imagespec import load_spec

    try:
        requirements = load_spec(folder).requirements
    except (ServiceError, OSError):
        requirements = None
    return definition_hash(folder, requirements)
