"""One label namespace: ``ds01.*``, with the legacy ``aime.mlc.*`` labels read as fallbacks.

Docker labels cannot change after creation, so a legacy container keeps its ``aime.mlc.*``
labels for life. Everything in ds01 reads labels through :func:`ds01_view`, which presents them
as ``ds01.*``; the migration (``ds01 admin labels migrate``) records that mapping in the state
store per container (:mod:`ds01_core.domain.state.label_migrations`), and can recreate stopped
legacy containers with real ``ds01.*`` labels.
"""

from __future__ import annotations

from collections.abc import Mapping

LEGACY_PREFIX = "aime.mlc."
PREFIX = "ds01."

#: Legacy keys with a ds01 name of their own; any other ``aime.mlc.KEY`` becomes ``ds01.key``.
LEGACY_KEYS = {
    "USER": "ds01.user",
    "NAME": "ds01.name",
    "FRAMEWORK": "ds01.framework",
    "VERSION": "ds01.framework_version",
    "GPUS": "ds01.gpu.requested",
    "WORK_MOUNT": "ds01.workspace",
    "DATA_MOUNT": "ds01.data",
}


def ds01_key(legacy_key: str) -> str:
    """``aime.mlc.USER`` → ``ds01.user``."""
    suffix = legacy_key[len(LEGACY_PREFIX) :]
    return LEGACY_KEYS.get(suffix, PREFIX + suffix.lower())


def legacy_mapping(labels: Mapping[str, str]) -> dict[str, str]:
    """The ``ds01.*`` labels a container's legacy labels stand for."""
    return {ds01_key(key): value for key, value in labels.items() if key.startswith(LEGACY_PREFIX)}


def is_legacy(labels: Mapping[str, str]) -> bool:
    """Carries legacy labels that its ``ds01.*`` labels do not already cover."""
    return any(key not in labels for key in legacy_mapping(labels))


def ds01_view(labels: Mapping[str, str]) -> dict[str, str]:
    """All labels, with legacy ones also present under their ``ds01.*`` names; a real
    ``ds01.*`` label always wins over a legacy fallback."""
    view = dict(labels)
    for key, value in legacy_mapping(labels).items():
        view.setdefault(key, value)
    return view
