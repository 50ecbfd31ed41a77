"""The ``plugins.accounting.carbon:`` configuration: where the grid's carbon intensity comes from.

Types and unknown keys are checked by the core's converter; the checks that span fields (a
provider needs its zone or region and its key file, ``fixed`` needs a value) are returned by
``config_problems`` with their path inside the section, and the accounting section prefixes
them with ``carbon`` (``plugins.accounting.carbon.electricitymaps.zone: …``).
"""

from __future__ import annotations

import os
from typing import Literal

import attrs

from ds01_core.api import AbsPath, Duration

Source = Literal["none", "fixed", "schedule", "electricitymaps", "watttime", "uk"]

#: the providers' own addresses; ``base_url`` replaces them (a proxy, a test server)
DEFAULT_BASE_URLS: dict[str, str] = {
    "electricitymaps": "https://api.electricitymap.org",
    "watttime": "https://api.watttime.org",
    "uk": "https://api.carbonintensity.org.uk",
}

Problems = list[tuple[tuple[str | int, ...], str]]


@attrs.define
class ElectricityMapsConfig:
    """Electricity Maps: ``/v3/carbon-intensity/latest`` and ``/forecast`` for one zone."""

    zone: str = ""
    #: a root-only file holding the API key (sent as the ``auth-token`` header)
    token_file: AbsPath | None = None
    #: ``lifecycle`` (the provider's default) or ``direct`` (combustion only)
    emission_factor_type: Literal["lifecycle", "direct"] = "lifecycle"
    #: ask for the forecast too (a commercial endpoint: off for a free key)
    forecast: bool = True


@attrs.define
class WattTimeConfig:
    """WattTime v3: a bearer token from ``/login``, then ``/v3/forecast`` for one region."""

    region: str = ""
    username: str = ""
    #: a root-only file holding the password (HTTP basic auth on ``/login``)
    password_file: AbsPath | None = None
    #: ``co2_moer`` (marginal, the default) or ``co2_aoer`` (average); both in lbs/MWh
    signal_type: Literal["co2_moer", "co2_aoer"] = "co2_moer"


@attrs.define
class CarbonConfig:
    """Grams of CO₂-equivalent per kWh drawn: fixed, from a schedule file, or from a provider."""

    #: ``none`` (no carbon figures), ``fixed``, ``schedule``, ``electricitymaps``,
    #: ``watttime`` or ``uk`` (the GB Carbon Intensity API, no key)
    source: Source = "none"
    #: the value for ``fixed``; for the others, the value used while no good value was ever
    #: had (left out: no figure until the source answers)
    grams_per_kwh: float | None = None
    #: for ``schedule``: a YAML or CSV file (docs/carbon.md)
    schedule_file: AbsPath | None = None
    #: the provider's address (left out: the provider's own)
    base_url: str = ""
    #: a provider is asked at most once per this, in any process (the answer is kept in a
    #: file under ``paths.state_dir``)
    cache_ttl: Duration = Duration(900)
    #: the longest one HTTP request may take
    timeout: Duration = Duration(5)
    electricitymaps: ElectricityMapsConfig = attrs.Factory(ElectricityMapsConfig)
    watttime: WattTimeConfig = attrs.Factory(WattTimeConfig)

    def url(self) -> str:
        """The provider's base URL, without a trailing slash."""
        return (self.base_url or DEFAULT_BASE_URLS.get(self.source, "")).rstrip("/")

    def config_problems(self) -> Problems:
        problems: Problems = []
        value = self.grams_per_kwh
        if value is not None and value < 0:
            problems.append((("grams_per_kwh",), f"must be 0 or more, got {value}"))
        if self.source == "fixed" and value is None:
            problems.append((("grams_per_kwh",), "source fixed needs a value (g CO₂-eq/kWh)"))
        if self.source == "schedule":
            problems += self._schedule_problems()
        if self.base_url and not self.base_url.startswith(("http://", "https://")):
            problems.append(
                (("base_url",), f"expected an http:// or https:// URL, got {self.base_url!r}")
            )
        if float(self.timeout) <= 0:
            problems.append((("timeout",), "must be more than 0s"))
        if self.source == "electricitymaps":
            em = self.electricitymaps
            if not em.zone:
                problems.append(
                    (
                        ("electricitymaps", "zone"),
                        "required for source electricitymaps (e.g. DE, GB, US-CAL-CISO)",
                    )
                )
            if em.token_file is None:
                problems.append(
                    (
                        ("electricitymaps", "token_file"),
                        "required for source electricitymaps: a root-only file holding the API key",
                    )
                )
        if self.source == "watttime":
            wt = self.watttime
            if not wt.region:
                problems.append(
                    (("watttime", "region"), "required for source watttime (e.g. CAISO_NORTH)")
                )
            if not wt.username:
                problems.append((("watttime", "username"), "required for source watttime"))
            if wt.password_file is None:
                problems.append(
                    (
                        ("watttime", "password_file"),
                        "required for source watttime: a root-only file holding the password",
                    )
                )
        return problems

    def _schedule_problems(self) -> Problems:
        """The file's own problems when this process can read it (root: the daemon, ds01-api);
        a user's CLI that cannot read it leaves it to them."""
        from ds01_accounting.carbon.schedule import ScheduleError, load_schedule

        path = self.schedule_file
        if path is None:
            return [(("schedule_file",), "source schedule needs a schedule_file")]
        if not os.access(path, os.R_OK):
            if os.geteuid() == 0 or (
                os.path.isdir(os.path.dirname(path)) and not os.path.exists(path)
            ):
                return [(("schedule_file",), f"{path}: no such file or not readable")]
            return []
        try:
            load_schedule(path)
        except ScheduleError as exc:
            return [(("schedule_file",), str(exc))]
        return []
