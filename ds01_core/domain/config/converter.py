"""The one cattrs converter for every configuration class, core and plugin alike, and its hooks.

Its hooks are strict (``"2"`` is not a number, ``yes`` is not a boolean, a string is not a list)
and turn what cattrs raises into :class:`~.errors.ConfigProblem` s named by their path.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Literal

import attrs
import cattrs
from cattrs.cols import is_mapping, is_sequence, list_structure_factory, mapping_structure_factory
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError

from ds01_core.domain.config.checks import (
    AbsPath,
    absolute_path,
    bounded_int,
    checked_duration,
    checked_size,
    finite_float,
)
from ds01_core.domain.config.errors import ConfigProblem, describe, join_path
from ds01_core.domain.config.schema import Config
from ds01_core.domain.model import utc_text
from ds01_core.domain.units import ByteSize, Duration, TimeLimit


def _strict_float(value: Any, _type: type) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {describe(value)}")
    return finite_float(value)


def _strict_int(value: Any, _type: type) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            return bounded_int(int(value))
        raise ValueError(f"expected a whole number, got {describe(value)}")
    return bounded_int(value)


def _strict_bool(value: Any, _type: type) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {describe(value)}")
    return value


def _strict_str(value: Any, _type: type) -> str:
    # YAML reads an unquoted 2026-09-28 as a date: the text the admin typed is meant
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value.isoformat()
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {describe(value)}")
    return value


def _structure_datetime(value: Any, _type: type) -> dt.datetime:
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, dt.date):
        parsed = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(
                f"expected a date like 2026-12-31 or 2026-12-31T18:00:00Z, got {value!r}"
            ) from None
    else:
        raise ValueError(
            f"expected a date like 2026-12-31 or 2026-12-31T18:00:00Z, got {describe(value)}"
        )
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def _structure_literal_checked(value: Any, type_: Any) -> Any:
    allowed = type_.__args__
    if value not in allowed:
        choices = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"expected one of {choices}, got {describe(value)}")
    return value


def _structure_time_limit(value: Any, _type: Any) -> TimeLimit:
    """A time limit, which may be left out but not written as ``null``: older files meant
    "never" by it, and "not set here" would silently mean the opposite."""
    if value is None:
        raise ValueError(
            "null is not a time limit: write 'never' for no limit, or leave the key out to "
            "keep the value from the level below"
        )
    return TimeLimit.parse(value)


def _guarded(check: type | tuple[type, ...], what: str, factory: Any) -> Any:
    """Wrap a cattrs hook factory so that a value of the wrong shape gets a plain message
    (cattrs would otherwise iterate a string as a list, or fail with an AttributeError)."""

    def make(type_: Any, conv: cattrs.Converter) -> Any:
        inner = factory(type_, conv)

        def structure(value: Any, target: Any) -> Any:
            if not isinstance(value, check) or isinstance(value, str | bytes):
                raise ValueError(f"expected {what}, got {describe(value)}")
            return inner(value, target)

        return structure

    return make


def make_converter() -> cattrs.Converter:
    """The one converter used for every configuration class, core and plugin alike."""
    conv = cattrs.Converter(forbid_extra_keys=True)
    conv.register_structure_hook_factory(
        is_mapping, _guarded(Mapping, "a mapping", mapping_structure_factory)
    )
    conv.register_structure_hook_factory(
        is_sequence, _guarded(list, "a list", list_structure_factory)
    )
    conv.register_structure_hook_factory(
        attrs.has, _guarded(Mapping, "a mapping", lambda t, c: c.gen_structure_attrs_fromdict(t))
    )
    conv.register_structure_hook(float, _strict_float)
    conv.register_structure_hook(int, _strict_int)
    conv.register_structure_hook(bool, _strict_bool)
    conv.register_structure_hook(str, _strict_str)
    conv.register_structure_hook(Duration, lambda v, _t: checked_duration(v))
    conv.register_structure_hook(ByteSize, lambda v, _t: checked_size(v))
    conv.register_structure_hook(AbsPath, lambda v, _t: absolute_path(_strict_str(v, str)))
    conv.register_structure_hook(TimeLimit, _structure_time_limit)
    conv.register_structure_hook_func(lambda t: t == TimeLimit | None, _structure_time_limit)
    conv.register_structure_hook(dt.datetime, _structure_datetime)
    conv.register_structure_hook_func(
        lambda t: getattr(t, "__origin__", None) is Literal, _structure_literal_checked
    )
    conv.register_unstructure_hook(Duration, str)
    conv.register_unstructure_hook(TimeLimit, str)
    conv.register_unstructure_hook(ByteSize, str)
    conv.register_unstructure_hook(dt.datetime, utc_text)
    return conv


converter = make_converter()


def _problems_from(exc: BaseException, path: str) -> list[ConfigProblem]:
    """Walk a cattrs exception tree into path-named problems."""
    if isinstance(exc, ForbiddenExtraKeysError):
        return [
            ConfigProblem(
                join_path(path, key), "unknown key (check the spelling; see docs/config.md)"
            )
            for key in sorted(exc.extra_fields)
        ]
    if isinstance(exc, ClassValidationError | IterableValidationError):
        with_notes, without_notes = exc.group_exceptions()
        problems: list[ConfigProblem] = []
        for sub, note in with_notes:
            if hasattr(note, "name"):
                sub_path = join_path(path, note.name)
            else:
                index = note.index
                sub_path = f"{path}[{index}]" if isinstance(index, int) else join_path(path, index)
            problems += _problems_from(sub, sub_path)
        for sub in without_notes:
            problems += _problems_from(sub, path)
        return problems
    if isinstance(exc, KeyError):
        return [ConfigProblem(path, "required but missing")]
    if isinstance(exc, TypeError) and "missing" in str(exc):
        return [ConfigProblem(path, f"required key missing ({exc})")]
    message = str(exc) or type(exc).__name__
    if isinstance(exc, ValueError) and message.startswith("could not convert"):
        message = f"expected a number, got {message.split(':', 1)[-1].strip()}"
    return [ConfigProblem(path, message)]


SectionPath = tuple[str | int, ...]


def section_problems(section: Any, path: str) -> list[ConfigProblem]:
    """A section's own cross-field checks, named by their full path.

    A plugin's config class may define ``config_problems(self) -> list[tuple[SectionPath,
    str]]``: each problem's path inside the section (``("servers", 1)``) and its message. They
    are reported with every other problem of the file (``plugins.ldap.servers[1]: …``).
    """
    check = getattr(section, "config_problems", None)
    if check is None:
        return []
    problems = []
    for inner, message in check():
        full = path
        for key in inner:
            full = f"{full}[{key}]" if isinstance(key, int) else join_path(full, key)
        problems.append(ConfigProblem(full, message))
    return problems


def structure_section(data: Any, cls: type, path: str) -> tuple[Any, list[ConfigProblem]]:
    """Structure ``data`` into ``cls``; return the object (or None) and the problems found."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        return None, [ConfigProblem(path, f"expected a mapping, got {describe(data)}")]
    try:
        return converter.structure(dict(data), cls), []
    except Exception as exc:  # cattrs raises groups of anything a hook raised
        return None, _problems_from(exc, path)


def unstructure(config: Config) -> dict[str, Any]:
    """The configuration as plain data (for ``ds01 config show --json``)."""
    data = converter.unstructure(config)
    data.pop("source", None)
    sections = data["plugins"].pop("sections", {})
    data["plugins"].update(sections)
    return data
