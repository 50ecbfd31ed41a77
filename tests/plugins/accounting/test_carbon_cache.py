"""The carbon-intensity cache: a provider asked at most once per TTL, by one process and by
every process together (the answer persisted under the state directory, so a restart or a CLI
command does not ask again), a changed source starting afresh, and a hanging provider costing
a cycle at most its timeout, once per TTL."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ds01_accounting.carbon import forecast, intensity_now, status
from tests.plugins.accounting.carbon_fixtures import Clock, carbon_runtime, reopen
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
        yield provider


def serve_uk(server: ProviderServer, now: dt.datetime, actual: float) -> None:
    start = half_hour(now)
    server.answers["/intensity"] = Answer(body={"data": [uk_entry(start, actual + 5, actual)]})
    ahead = [uk_entry(start + dt.timedelta(minutes=30 * i), 100 + i, None) for i in range(48)]
    server.answers[f"/intensity/{start:%Y-%m-%dT%H:%MZ}/fw24h"] = Answer(body={"data": ahead})


def current_requests(server: ProviderServer) -> int:
    return server.paths().count("/intensity")


def test_no_second_request_within_the_ttl_and_one_after_it(
    server: ProviderServer, tmp_config: Callable[..., Path]
) -> None:
    clock = Clock()
    serve_uk(server, clock.now, 180)
    runtime = carbon_runtime(
        tmp_config, {"source": "uk", "base_url": server.url, "cache_ttl": "15m"}, clock
    )
    first = intensity_now(runtime)
    assert first is not None and first.grams_per_kwh == 180
    serve_uk(server, clock.now, 90)  # the provider's value changes meanwhile
    for _ in range(5):
        clock.advance(170)  # 14 min 10 s in all: still within the TTL
        again = intensity_now(runtime)
        assert again == first
        forecast(runtime)
        status(runtime)
    assert current_requests(server) == 1
    clock.advance(60)  # past 15 min
    later = intensity_now(runtime)
    assert later is not None and later.grams_per_kwh == 90
    assert current_requests(server) == 2


def test_the_answer_is_persisted_across_a_new_runtime(
    server: ProviderServer, tmp_config: Callable[..., Path]
) -> None:
    clock = Clock(dt.datetime(2026, 11, 30, 12, 5, tzinfo=dt.UTC))
    serve_uk(server, clock.now, 211)
    path = tmp_config(
        {"plugins": {"accounting": {"carbon": {"source": "uk", "base_url": server.url}}}}
    )
    daemon = reopen(path, clock)
    assert intensity_now(daemon) is not None
    stored = json.loads((Path(daemon.config.paths.state_dir) / "carbon-intensity.json").read_text())
    assert stored["now"]["grams_per_kwh"] == 211 and stored["error"] is None
    serve_uk(server, clock.now, 50)

    clock.advance(600)
    restarted = reopen(path, clock)  # a restart, or `ds01 carbon status`
    value = intensity_now(restarted)
    assert value is not None and value.grams_per_kwh == 211 and not value.stale
    assert len(forecast(restarted)) == 47  # from the file too: 12:30 to 11:30 tomorrow
    assert current_requests(server) == 1

    clock.advance(400)  # 16 min after the daemon asked: due for everyone
    assert intensity_now(restarted).grams_per_kwh == 50  # type: ignore[union-attr]
    assert current_requests(server) == 2
    # the daemon's own copy is due, but the restarted process just asked: it reads the file
    assert intensity_now(daemon).grams_per_kwh == 50  # type: ignore[union-attr]
    assert current_requests(server) == 2


def test_a_changed_source_does_not_use_the_old_answer(
    server: ProviderServer, tmp_config: Callable[..., Path], tmp_path: Path
) -> None:
    clock = Clock()
    serve_uk(server, clock.now, 150)
    first = carbon_runtime(tmp_config, {"source": "uk", "base_url": server.url}, clock)
    assert intensity_now(first).grams_per_kwh == 150  # type: ignore[union-attr]
    with provider_server() as other:
        serve_uk(other, clock.now, 75)
        moved = carbon_runtime(tmp_config, {"source": "uk", "base_url": other.url}, clock)
        assert intensity_now(moved).grams_per_kwh == 75  # type: ignore[union-attr]
        assert current_requests(other) == 1


def test_a_hanging_provider_costs_its_timeout_once_per_ttl(
    server: ProviderServer, tmp_config: Callable[..., Path]
) -> None:
    clock = Clock()
    server.answers["/intensity"] = Answer(body={}, sleep=4.0)
    runtime = carbon_runtime(
        tmp_config,
        {"source": "uk", "base_url": server.url, "timeout": "1s", "grams_per_kwh": 240},
        clock,
    )
    started = time.monotonic()
    assert intensity_now(runtime).grams_per_kwh == 240  # type: ignore[union-attr]
    assert time.monotonic() - started < 2.5
    started = time.monotonic()
    for _ in range(20):  # twenty cycles within the TTL: no request, no wait
        clock.advance(30)
        assert intensity_now(runtime).stale is True  # type: ignore[union-attr]
    assert time.monotonic() - started < 0.5
    assert current_requests(server) == 1


def test_threads_of_one_process_ask_once(
    server: ProviderServer, tmp_config: Callable[..., Path]
) -> None:
    """ds01-api serves each connection on its own thread, sharing one runtime."""
    clock = Clock()
    serve_uk(server, clock.now, 120)
    server.answers["/intensity"].sleep = 0.3
    runtime = carbon_runtime(tmp_config, {"source": "uk", "base_url": server.url}, clock)
    results: list[float | None] = []

    def ask() -> None:
        value = intensity_now(runtime)
        results.append(None if value is None else value.grams_per_kwh)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results == [120.0] * 8
    assert current_requests(server) == 1


def test_a_corrupt_cache_file_is_asked_again_not_an_error(
    server: ProviderServer, tmp_config: Callable[..., Path]
) -> None:
    clock = Clock()
    serve_uk(server, clock.now, 133)
    runtime = carbon_runtime(tmp_config, {"source": "uk", "base_url": server.url}, clock)
    (Path(runtime.config.paths.state_dir) / "carbon-intensity.json").write_text("{not json")
    assert intensity_now(runtime).grams_per_kwh == 133  # type: ignore[union-attr]
    assert current_requests(server) == 1


def test_two_processes_due_at_once_ask_once(
    server: ProviderServer, tmp_config: Callable[..., Path]
) -> None:
    """The daemon and ds01-api (two runtimes, two caches in memory) both due at the same
    moment: the lock beside the cache file lets one ask; the other reads its answer."""
    clock = Clock()
    serve_uk(server, clock.now, 140)
    server.answers["/intensity"].sleep = 0.5
    path = tmp_config(
        {"plugins": {"accounting": {"carbon": {"source": "uk", "base_url": server.url}}}}
    )
    runtimes = [reopen(path, clock), reopen(path, clock)]
    results: list[float | None] = []

    def ask(runtime: object) -> None:
        value = intensity_now(runtime)  # type: ignore[arg-type]
        results.append(None if value is None else value.grams_per_kwh)

    threads = [threading.Thread(target=ask, args=(r,)) for r in runtimes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results == [140.0, 140.0]
    assert current_requests(server) == 1
