"""Reading the configuration: find the file, parse its YAML, and build a validated Config.

Plugins contribute sections (``plugins.<name>:``), so the file is read in two steps: first the
plugin selection (:func:`plugin_selection`, before the plugin manager exists), then the whole
file with every loaded plugin's section class (:func:`build_config`).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from ds01_core.domain.config.converter import section_problems, structure_section
from ds01_core.domain.config.errors import ConfigError, ConfigProblem, describe
from ds01_core.domain.config.schema import Config, PluginsConfig
from ds01_core.domain.config.validation import validate

DEFAULT_CONFIG_PATH = "/etc/ds01/ds01.yaml"
CONFIG_ENV = "DS01_CONFIG"


def resolve_config_path(explicit: str | None = None) -> str:
    """``--config`` wins, then ``$DS01_CONFIG``, then ``/etc/ds01/ds01.yaml``."""
    return explicit or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH


def read_config_file(path: str) -> dict[str, Any]:
    """Read the YAML mapping at ``path``; a missing, unreadable or non-mapping file is refused."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            path,
            [ConfigProblem("", "file not found (pass --config FILE or set DS01_CONFIG)")],
        ) from None
    except OSError as exc:
        raise ConfigError(path, [ConfigProblem("", f"cannot read: {exc.strerror}")]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(path, [ConfigProblem("", f"not valid YAML{where}: {problem}")]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            path, [ConfigProblem("", f"expected a mapping at the top, got {describe(data)}")]
        )
    return data


def plugin_selection(data: Mapping[str, Any]) -> tuple[list[str], list[str], list[str]]:
    """Best-effort read of ``plugins.disabled/required/order`` before full validation.

    The plugin manager must exist before the file can be validated (plugins contribute
    sections), so these three lists are read first; their own errors are reported by the full
    validation that follows.
    """
    plugins = data.get("plugins") if isinstance(data, Mapping) else None
    if not isinstance(plugins, Mapping):
        return [], [], []

    def names(key: str) -> list[str]:
        value = plugins.get(key)
        if isinstance(value, list):
            return [v for v in value if isinstance(v, str)]
        return []

    return names("disabled"), names("required"), names("order")


def build_config(
    data: Mapping[str, Any],
    *,
    sections: Mapping[str, type] | None = None,
    source: str | None = None,
    now: dt.datetime | None = None,
    ignore_sections: Iterable[str] = (),
) -> Config:
    """Validate a parsed file into a :class:`Config`, or raise :class:`ConfigError` with all problems.

    :param sections: plugin section name → attrs class, from ``plugin_config_sections``.
    :param ignore_sections: plugin sections kept unvalidated (their plugin is disabled or failed
        to load); they are not an error, so disabling a plugin never breaks the file.
    """
    sections = dict(sections or {})
    ignored = set(ignore_sections)
    problems: list[ConfigProblem] = []
    raw = dict(data)
    raw_plugins = raw.pop("plugins", None)
    if raw_plugins is None:
        raw_plugins = {}
    core, found = structure_section(raw, Config, "")
    problems += found
    plugins_cfg = PluginsConfig()
    if not isinstance(raw_plugins, Mapping):
        problems.append(
            ConfigProblem("plugins", f"expected a mapping, got {describe(raw_plugins)}")
        )
    else:
        fixed = {k: raw_plugins[k] for k in ("disabled", "required", "order") if k in raw_plugins}
        plugins_obj, found = structure_section(fixed, PluginsConfig, "plugins")
        problems += found
        if plugins_obj is not None:
            plugins_cfg = plugins_obj
        for name, value in raw_plugins.items():
            if name in ("disabled", "required", "order", "sections"):
                continue
            if name in sections:
                obj, found = structure_section(value, sections[name], f"plugins.{name}")
                problems += found or section_problems(obj, f"plugins.{name}")
                plugins_cfg.sections[name] = obj
            elif name in ignored:
                plugins_cfg.sections[name] = value
            else:
                known = ", ".join(sorted(sections)) or "none"
                problems.append(
                    ConfigProblem(
                        f"plugins.{name}",
                        f"no installed plugin reads this section (sections known: {known})",
                    )
                )
        for name, cls in sections.items():
            if name not in plugins_cfg.sections:
                obj, found = structure_section({}, cls, f"plugins.{name}")
                problems += found
                plugins_cfg.sections[name] = obj
    if core is not None:
        core.plugins = plugins_cfg
        core.source = source
        problems += validate(core, now=now)
    if problems:
        raise ConfigError(source, problems)
    assert core is not None
    return core


def load_config(
    path: str,
    *,
    sections: Mapping[str, type] | None = None,
    now: dt.datetime | None = None,
    ignore_sections: Iterable[str] = (),
) -> Config:
    """Read and validate the file at ``path``."""
    data = read_config_file(path)
    return build_config(
        data, sections=sections, source=path, now=now, ignore_sections=ignore_sections
    )
