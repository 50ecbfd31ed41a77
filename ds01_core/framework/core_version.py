"""Whether a plugin's declared requirement on ``ds01`` admits the core that is running.

A plugin distribution declares the core versions it was written for
(``dependencies = ["ds01>=0.1,<0.2"]``); pip checks that only when it installs with
dependencies, and admins install plugins with ``--no-deps`` or upgrade the core alone. The
plugin manager asks :func:`unmet_core_requirement` before importing a plugin, so a plugin made
for another core is reported with both versions instead of failing somewhere in a hook.

The requirement is read here, by a small reader of PEP 440 specifiers (every operator, on
release numbers with ``a``/``b``/``rc``/``dev``/``post`` suffixes), not by :mod:`packaging`: that
is not a dependency of ds01, and importing it would cost every ``ds01`` command more start-up
time than the whole check (the tests hold this reader to :mod:`packaging`'s answers).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Protocol

import attrs

PROJECT_NAME = "ds01"

_REQUIREMENT = re.compile(
    r"^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*"
    r"\(?(?P<spec>[^;()]*)\)?\s*(?:;(?P<marker>.*))?$"
)
_CLAUSE = re.compile(r"^\s*(?P<op>~=|===|==|!=|<=|>=|<|>)\s*(?P<version>[^\s,]+)\s*$")
_VERSION = re.compile(
    r"^v?(?P<release>\d+(?:\.\d+)*)"
    r"(?:[-_.]?(?P<pre>a|b|c|rc|alpha|beta|pre|preview)[-_.]?(?P<pre_n>\d*))?"
    r"(?:-(?P<post_implicit>\d+)|[-_.]?(?P<post>post|rev|r)[-_.]?(?P<post_n>\d*))?"
    r"(?:[-_.]?(?P<dev>dev)[-_.]?(?P<dev_n>\d*))?"
    r"(?:\+(?P<local>[a-z0-9]+(?:[-_.][a-z0-9]+)*))?$",
    re.IGNORECASE,
)
_PRE = {"a": 0, "alpha": 0, "b": 1, "beta": 1, "c": 2, "rc": 2, "pre": 2, "preview": 2}
_NONE, _ALL = -1, 1 << 62  # before and after every number


class Distribution(Protocol):
    """The part of :class:`importlib.metadata.Distribution` read here."""

    @property
    def requires(self) -> list[str] | None: ...


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@attrs.frozen(order=True)
class _Version:
    """A version ordered as PEP 440 orders them
    (``1.0.dev1 < 1.0a1 < 1.0rc1.dev1 < 1.0rc1 < 1.0 == 1.0.0 < 1.0.post1``)."""

    release: tuple[int, ...]
    pre: tuple[int, int]
    post: int
    dev: int
    #: the local label (``+ubuntu.1``): not ordered; compared by ``==`` and ``!=``
    #: only when the bound names one
    local: str = attrs.field(default="", eq=False, order=False)

    @classmethod
    def parse(cls, text: str) -> _Version:
        match = _VERSION.match(text.strip())
        if match is None:
            raise ValueError(f"not a version: {text!r}")
        release = tuple(int(part) for part in match["release"].split("."))
        while len(release) > 1 and release[-1] == 0:
            release = release[:-1]
        post_n = match["post_implicit"] or match["post_n"]
        post = int(post_n or 0) if match["post"] or match["post_implicit"] else _NONE
        dev = int(match["dev_n"] or 0) if match["dev"] else _ALL
        if match["pre"]:
            pre = (_PRE[match["pre"].lower()], int(match["pre_n"] or 0))
        elif post == _NONE and dev != _ALL:
            pre = (_NONE, 0)  # 1.0.dev1 comes before 1.0a1
        else:
            pre = (_ALL, 0)
        local = re.sub(r"[-_]", ".", match["local"] or "").lower()
        return cls(release, pre, post, dev, local)

    @property
    def is_prerelease(self) -> bool:
        return self.pre[0] != _ALL or self.dev != _ALL

    @property
    def is_postrelease(self) -> bool:
        return self.post != _NONE


def _release(text: str) -> list[int]:
    match = re.match(r"^v?(\d+(?:\.\d+)*)", text.strip())
    if match is None:
        raise ValueError(f"not a version: {text!r}")
    return [int(part) for part in match[1].split(".")]


def _prefix_matches(version: str, pattern: str) -> bool:
    """``==1.2.*``: the release starts with 1.2."""
    want, have = _release(pattern), _release(version)
    have += [0] * (len(want) - len(have))
    return have[: len(want)] == want


def _clause_admits(op: str, bound: str, version: str) -> bool:
    if op in ("==", "!=") and bound.endswith(".*"):
        return _prefix_matches(version, bound[:-2]) == (op == "==")
    if op == "===":
        return version == bound
    if op == "~=":  # ~=1.4.2 is >=1.4.2 and ==1.4.*
        release = _release(bound)
        if len(release) < 2:
            raise ValueError(f"~= needs at least two release numbers: {bound!r}")
        prefix = ".".join(str(n) for n in release[:-1])
        return _clause_admits(">=", bound, version) and _prefix_matches(version, prefix)
    have, want = _Version.parse(version), _Version.parse(bound)
    if have.release == want.release and op in ("<", ">"):
        if op == "<":  # <0.2 admits no pre-release of a final 0.2 (it is "< 0.2.dev0")
            final = not want.is_prerelease and not want.is_postrelease
            return not final and have < want
        # >0.2 admits no post-release of 0.2 (nor >0.2rc1 of 0.2rc1)
        if want.dev != _ALL or want.is_postrelease:
            return have > want
        return have > want and have.pre != want.pre
    if op in ("<", ">"):
        return have < want if op == "<" else have > want
    same = have == want and (not want.local or have.local == want.local)
    return {
        "==": same,
        "!=": not same,
        "<=": have <= want,
        ">=": have >= want,
    }[op]


def admits(specifier: str, version: str) -> bool:
    """Whether ``version`` satisfies ``specifier`` (``>=0.1,<0.2``: every comma-separated
    clause); ValueError when a clause cannot be read."""
    for clause in filter(None, (c.strip() for c in specifier.split(","))):
        match = _CLAUSE.match(clause)
        if match is None:
            raise ValueError(f"cannot read the version clause {clause!r}")
        if not _clause_admits(match["op"], match["version"], version):
            return False
    return True


def core_specifier(requires: Iterable[str]) -> str | None:
    """The version specifier of the ``ds01`` requirement among ``requires`` (``""``: any
    version), or None when there is none outside an ``extra`` (an optional dependency says
    nothing about the core the plugin runs on)."""
    for line in requires:
        match = _REQUIREMENT.match(line)
        if match is None or _canonical(match["name"]) != PROJECT_NAME:
            continue
        if match["marker"] and "extra" in match["marker"]:
            continue
        return match["spec"].strip()
    return None


def unmet_core_requirement(dist: Distribution | None, core_version: str) -> str | None:
    """Why the plugin distribution ``dist`` cannot run on this core, or None when it can
    (including when it declares no requirement on ``ds01`` at all)."""
    if dist is None:
        return None
    requires = dist.requires or []
    try:
        specifier = core_specifier(requires)
        if not specifier:
            return None
        if admits(specifier, core_version):
            return None
    except ValueError as exc:
        return f"cannot read its requirement on {PROJECT_NAME} ({exc}); not loaded"
    return (
        f"it needs {PROJECT_NAME}{specifier} and this core is {PROJECT_NAME} {core_version}: "
        "install a version of the plugin made for this core, or disable it"
    )


__all__ = ["admits", "core_specifier", "unmet_core_requirement"]
