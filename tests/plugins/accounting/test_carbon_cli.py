"""``ds01 carbon status`` and ``ds01 carbon report`` run by real non-root users through a real
``ds01-api`` (which alone asks the provider and reads the records): a plain user sees the
intensity, its forecast and their own CO₂ only; an admin sees everyone's."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.servers import running_api
from tests.helpers.user_cli import run_as
from tests.plugins.accounting.carbon_servers import (
    Answer,
    ProviderServer,
    half_hour,
    provider_server,
    uk_entry,
)


@pytest.fixture
def server() -> Iterator[ProviderServer]:
    with provider_server() as provider:
        now = dt.datetime.now(dt.UTC)
        start = half_hour(now)
        provider.answers["/intensity"] = Answer(body={"data": [uk_entry(start, 250, 243)]})
        ahead = [
            uk_entry(start + dt.timedelta(minutes=30 * i), 100 + 5 * i, None) for i in range(48)
        ]
        # the half-hour may turn during the test: serve both
        for first in (start, start + dt.timedelta(minutes=30)):
            provider.answers[f"/intensity/{first:%Y-%m-%dT%H:%MZ}/fw24h"] = Answer(
                body={"data": ahead}
            )
        yield provider


def ds01(user: Any, cli_root: Path, sock: str, *args: str) -> Any:
    return run_as(user, cli_root, args, env={"DS01_API_SOCKET": sock})


def test_a_plain_user_sees_the_intensity_and_forecast_through_ds01_api(
    tmp_config: Any, tmp_path: Path, user_cli: Path, unix_users: Any, server: ProviderServer
) -> None:
    tmp_path.chmod(0o755)
    config = tmp_config(
        {
            "plugins": {
                "accounting": {"carbon": {"source": "uk", "base_url": server.url, "timeout": "2s"}}
            }
        }
    )
    ta = unix_users["ds01ta"]
    with running_api(config) as sock:
        shown = ds01(ta, user_cli, sock, "carbon", "status", "--json")
        assert shown.returncode == 0, shown.stderr
        data = json.loads(shown.stdout)
        assert data["source"] == "uk"
        assert data["intensity"]["grams_per_kwh"] == 243
        assert data["intensity"]["source"] == "uk" and data["intensity"]["stale"] is False
        assert data["error"] is None and 0 <= data["age_seconds"] < 60
        values = [p["grams_per_kwh"] for p in data["forecast"]]
        assert values[:3] == [105, 110, 115] and len(values) == 47

        text = ds01(unix_users["ds01tb"], user_cli, sock, "carbon", "status")
        assert text.returncode == 0, text.stderr
        assert "Carbon intensity: 243 g CO₂-eq/kWh from uk" in text.stdout
        assert "← lowest" in text.stdout and "Forecast, next 24 h" in text.stdout
        assert "Traceback" not in text.stdout + text.stderr
    # two users, three commands: the provider was asked once (the server's cache)
    assert server.paths().count("/intensity") == 1
    # the cache file is the server's (root's), in the state directory
    cache = Path(tmp_path / "state" / "carbon-intensity.json")
    assert json.loads(cache.read_text())["now"]["grams_per_kwh"] == 243


def test_carbon_status_refuses_a_bad_option_in_one_line(
    tmp_config: Any, tmp_path: Path, user_cli: Path, unix_users: Any
) -> None:
    tmp_path.chmod(0o755)
    config = tmp_config(
        {"plugins": {"accounting": {"carbon": {"source": "fixed", "grams_per_kwh": 99}}}}
    )
    with running_api(config) as sock:
        bad = ds01(
            unix_users["ds01ta"], user_cli, sock, "carbon", "report", "--since", "yesterday-ish"
        )
        assert bad.returncode == 2, bad
        assert bad.stderr.startswith("Error: --since:") and "Traceback" not in bad.stderr
        fixed = ds01(unix_users["ds01ta"], user_cli, sock, "carbon", "status", "--json")
        assert json.loads(fixed.stdout)["intensity"]["grams_per_kwh"] == 99
        assert json.loads(fixed.stdout)["forecast"] == []


def test_a_plain_user_sees_a_failing_provider_as_stale_with_its_error(
    tmp_config: Any, tmp_path: Path, user_cli: Path, unix_users: Any, server: ProviderServer
) -> None:
    tmp_path.chmod(0o755)
    server.answers["/intensity"] = Answer(500, {"error": "internal"})
    carbon = {"source": "uk", "base_url": server.url, "timeout": "2s", "grams_per_kwh": 210}
    config = tmp_config({"plugins": {"accounting": {"carbon": carbon}}})
    with running_api(config) as sock:
        shown = ds01(unix_users["ds01ta"], user_cli, sock, "carbon", "status", "--json")
        assert shown.returncode == 0, shown.stderr
        data = json.loads(shown.stdout)
        assert data["intensity"] == {
            "grams_per_kwh": 210,
            "source": "fallback",
            "at": data["intensity"]["at"],
            "stale": True,
        }
        assert data["error"] == "Carbon Intensity API: HTTP 500 Internal Server Error"
        assert data["forecast"] == []
        text = ds01(unix_users["ds01ta"], user_cli, sock, "carbon", "status")
        assert "210 g CO₂-eq/kWh from fallback" in text.stdout
        assert "STALE (the source failed; the configured value is used)" in text.stdout
        assert "Last error: Carbon Intensity API: HTTP 500" in text.stdout
