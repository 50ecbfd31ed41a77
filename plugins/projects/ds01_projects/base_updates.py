"""Tell the admins when a catalogue base has a newer tag in its registry.

A thread of ``ds01d`` (a :class:`~ds01_core.api.DaemonService`, so the cycle never waits on a
registry) asks each base's registry for its tags at most every ``base_updates.interval``; a
tag of the same *family* as the catalogue's (the same text with other numbers:
``2.4.0-cuda12.1-cudnn9-runtime`` → ``2.5.1-cuda12.1-cudnn9-runtime``) with a higher version
(the numbers compared as numbers, left to right) is news. Each newest tag is told once: a
``projects.base_update`` event and a notice to each admin naming the base, both tags and the
line of the configuration to change. A registry that cannot be reached is logged (and audited
as ``projects.base_check_failed``) once per outage of each base. State: ``<state_dir>/projects-base-updates.json``.
"""

from __future__ import annotations

import datetime as dt
import grp
import json
import logging
import os
import pwd
import re
import threading
from pathlib import Path
from typing import Any

from ds01_core.api import Event, Notice, Runtime, tell_user, utc_text
from ds01_projects.config import CatalogueEntry, ProjectsConfig
from ds01_projects.registry import RegistryError, list_tags, registry_host

log = logging.getLogger(__name__)

STATE_FILE = "projects-base-updates.json"
SOURCE = "projects"
_NUMBER = re.compile(r"\d+")


def family(tag: str) -> str:
    """The tag with its numbers blanked: tags of one family differ only in their numbers."""
    return _NUMBER.sub("#", tag)


def version(tag: str) -> tuple[int, ...]:
    return tuple(int(n) for n in _NUMBER.findall(tag))


def newer_tags(current: str, tags: list[str]) -> list[str]:
    """The tags of ``current``'s family with a higher version, oldest first."""
    shape, mine = family(current), version(current)
    if not mine:  # ``latest``, ``stable``: no numbers, nothing to compare
        return []
    newer = {t for t in tags if family(t) == shape and version(t) > mine}
    return sorted(newer, key=version)


# -- the state file ----------------------------------------------------------------------------


def state_path(runtime: Runtime) -> Path:
    return Path(runtime.config.paths.state_dir) / STATE_FILE


def read_state(runtime: Runtime) -> dict[str, Any]:
    try:
        data = json.loads(state_path(runtime).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_state(runtime: Runtime, data: dict[str, Any]) -> None:
    path = state_path(runtime)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
        os.replace(tmp, path)
    except OSError as exc:  # told again next time, rather than not at all
        log.error("base updates: cannot write %s: %s", path, exc)


def due(runtime: Runtime, cfg: ProjectsConfig, now: dt.datetime) -> float:
    """Seconds until the next check (0: now)."""
    last = read_state(runtime).get("checked_at")
    try:
        since = (now - dt.datetime.fromisoformat(str(last).replace("Z", "+00:00"))).total_seconds()
    except ValueError:
        return 0.0
    return max(0.0, float(cfg.base_updates.interval) - since)


# -- one check -----------------------------------------------------------------------------------


def admins(runtime: Runtime, cfg: ProjectsConfig) -> list[str]:
    """Who is told: ``notify_users``, else the admin group's members, else root."""
    if cfg.base_updates.notify_users:
        return list(cfg.base_updates.notify_users)
    try:
        group = grp.getgrnam(runtime.config.gateway.admin_group)
    except KeyError:
        return ["root"]
    members = set(group.gr_mem) | {p.pw_name for p in pwd.getpwall() if p.pw_gid == group.gr_gid}
    return sorted(members) or ["root"]


def check(runtime: Runtime, cfg: ProjectsConfig, now: dt.datetime | None = None) -> dict[str, Any]:
    """Ask every catalogue base's registry once; tell the admins of each new newest tag.
    Returns (and stores) the state: per base, the newest tag seen or the error."""
    now = now or dt.datetime.now(dt.UTC)
    state = read_state(runtime)
    told: dict[str, str] = dict(state.get("told") or {})
    outages: dict[str, str] = dict(state.get("outages") or {})
    bases: dict[str, Any] = {}
    settings = cfg.base_updates
    for key, entry in sorted(cfg.catalogue.items()):
        try:
            tags = list_tags(
                entry.image, timeout=float(settings.timeout), insecure=settings.insecure_registries
            )
        except RegistryError as exc:
            bases[key] = {"image": entry.image, "tag": entry.tag, "error": str(exc)}
            if key not in outages:
                outages[key] = utc_text(now)
                _outage(runtime, key, entry, str(exc))
            continue
        if key in outages:
            log.info("base updates: %s answers again (failing since %s)", key, outages.pop(key))
        newer = newer_tags(entry.tag, tags)
        newest = newer[-1] if newer else None
        bases[key] = {"image": entry.image, "tag": entry.tag, "newer": newer, "newest": newest}
        if newest and told.get(entry.ref) != newest:
            _tell(runtime, cfg, key, entry, newer)
            told[entry.ref] = newest
    outages = {k: v for k, v in outages.items() if k in cfg.catalogue}
    data = {"checked_at": utc_text(now), "bases": bases, "told": told, "outages": outages}
    _write_state(runtime, data)
    return data


def _outage(runtime: Runtime, key: str, entry: CatalogueEntry, error: str) -> None:
    host = registry_host(entry.image)
    log.warning("base updates: cannot ask %s about %s (%s): %s", host, key, entry.image, error)
    runtime.events.append(
        Event(
            "projects.base_check_failed",
            source=SOURCE,
            details={"base": key, "image": entry.image, "registry": host, "error": error},
        )
    )


def notice_text(key: str, entry: CatalogueEntry, newer: list[str]) -> tuple[str, str]:
    """(subject, message) of the notice to the admins."""
    newest = newer[-1]
    others = f" (also newer: {', '.join(newer[:-1][-5:])})" if len(newer) > 1 else ""
    subject = f"Newer base image: {key} {newest}"
    message = (
        f"The catalogue base {key!r} ({entry.image}) is at tag {entry.tag}; its registry has "
        f"{newest}{others}. To offer it, set plugins.projects.catalogue.{key}.tag: {newest} "
        "in the configuration file, check it with `ds01 config check` and reload the ds01 "
        "services. Users then get it in new images; existing ones move with "
        "`ds01 image update NAME --base ...` or `ds01 image rebuild NAME`."
    )
    return subject, message


def _tell(
    runtime: Runtime, cfg: ProjectsConfig, key: str, entry: CatalogueEntry, newer: list[str]
) -> None:
    subject, message = notice_text(key, entry, newer)
    recipients = admins(runtime, cfg)
    runtime.events.append(
        Event(
            "projects.base_update",
            source=SOURCE,
            details={
                "base": key,
                "image": entry.image,
                "current": entry.tag,
                "newest": newer[-1],
                "newer": newer[-10:],
                "told": recipients,
            },
        )
    )
    for user in recipients:
        tell_user(
            runtime,
            Notice(user, subject, message, severity="info", event_type="projects.base_update"),
        )


# -- the daemon's thread ---------------------------------------------------------------------------


class BaseUpdateService:
    """Checks when due, in a thread of its own; ``stop`` ends the wait at once (a check under
    way ends within one registry timeout; the thread is a daemon thread)."""

    name = "projects-base-updates"

    def __init__(self, runtime: Runtime, cfg: ProjectsConfig):
        self.runtime = runtime
        self.cfg = cfg
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=float(self.cfg.base_updates.timeout) + 1)

    def _run(self) -> None:
        # the first check when the last one (of any daemon) is an interval old; then every
        # interval from this one, whether or not its state could be written
        wait = due(self.runtime, self.cfg, dt.datetime.now(dt.UTC))
        while not self._stop.wait(wait):
            try:
                check(self.runtime, self.cfg)
            except Exception:  # never let the thread die: try again next interval
                log.exception("base updates: the check failed")
            wait = float(self.cfg.base_updates.interval)


# -- the admin's view ------------------------------------------------------------------------------


def status(ctx: Any, check_now: bool = False) -> dict[str, Any]:
    """The last check (per base: the newest tag or the error); ``check_now``: ask the
    registries first (admins only, like every base-update detail)."""
    from ds01_projects.settings import projects_config

    cfg = projects_config(ctx)
    if check_now:
        return {"enabled": cfg.base_updates.enabled, **check(ctx.runtime, cfg)}
    return {"enabled": cfg.base_updates.enabled, **read_state(ctx.runtime)}


def operations() -> list[Any]:
    from ds01_core.api import Operation, Param

    return [
        Operation(
            "projects.base_updates",
            "POST",
            "/v1/projects/base-updates",
            status,
            (Param("check_now", "bool", default=False),),
            admin=True,
            summary="Newer tags of the catalogue's bases (admins).",
        )
    ]
