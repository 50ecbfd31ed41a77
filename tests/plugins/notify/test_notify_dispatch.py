"""The whole ``notify`` hook: every channel at once, none able to hold up or break the others,
and through the core's ``tell_user`` into the audit log."""

from __future__ import annotations

import time

import attrs
import pytest

from ds01_core.cycle.notices import tell_user
from ds01_core.domain.audit_log import EventLog
from ds01_core.domain.model import DeliveryResult, Notice
from ds01_notify import deliver
from ds01_notify.dispatch import GRACE_SECONDS, run_channels
from tests.plugins.notify.conftest import quiet_section
from tests.plugins.notify.notify_servers import free_port

NOTICE = Notice("alice", "GPU idle", "stopping in 5m", severity="warning")


@attrs.frozen
class Broken:
    """A channel with a bug: it raises."""

    name: str = "broken"
    family: str = "webhook"
    timeout: float = 1.0

    def send(self, notice: Notice) -> DeliveryResult:
        raise RuntimeError("bug in a channel")


@attrs.frozen
class Stuck:
    """A channel that ignores its own timeout."""

    name: str = "stuck"
    family: str = "webhook"
    timeout: float = 0.2

    def send(self, notice: Notice) -> DeliveryResult:
        time.sleep(30)
        return DeliveryResult(self.name, True)


@attrs.frozen
class Fine:
    name: str = "fine"
    family: str = "terminal"
    timeout: float = 1.0

    def send(self, notice: Notice) -> DeliveryResult:
        return DeliveryResult(self.name, True, notice.subject)


def test_a_raising_or_hanging_channel_never_stops_the_others():
    started = time.monotonic()
    results = run_channels([Broken(), Stuck(), Fine()], NOTICE)
    assert time.monotonic() - started < 0.2 + GRACE_SECONDS + 0.5
    assert results == [
        DeliveryResult("broken", False, "RuntimeError: bug in a channel"),
        DeliveryResult("stuck", False, "gave up: no result within 0.2s"),
        DeliveryResult("fine", True, "GPU idle"),
    ]


def test_real_failing_peers_fail_alone_and_in_parallel(notify_runtime, webhooks, silent):
    dead = free_port()
    runtime = notify_runtime(
        quiet_section(
            email={"host": "127.0.0.1", "port": dead, "addresses": {"alice": "a@example.org"}},
            webhooks=[
                {"name": "silent", "url": f"http://127.0.0.1:{silent.port}/", "timeout": 1},
                {"name": "broken", "url": webhooks.url("/status/500")},
                {"name": "team", "url": webhooks.url(), "format": "slack"},
                {"name": "off", "url": webhooks.url("/off"), "enabled": False},
            ],
        )
    )
    started = time.monotonic()
    results = deliver(runtime, NOTICE)
    assert time.monotonic() - started < 2.5  # the slowest channel's time, not the sum
    assert results == [
        DeliveryResult(
            "email",
            False,
            f"SMTP 127.0.0.1:{dead}: connection refused (is the mail server running?)",
        ),
        DeliveryResult("webhook:silent", False, "no answer within 1s"),
        DeliveryResult("webhook:broken", False, "HTTP 500 Internal Server Error"),
        DeliveryResult("webhook:team", True, "HTTP 200"),
    ]
    assert sorted(p.path for p in webhooks.posts) == ["/hook", "/status/500"]


def test_an_unusable_state_store_does_not_silence_notices(notify_runtime, webhooks, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    runtime = notify_runtime(
        quiet_section(webhooks=[{"name": "team", "url": webhooks.url()}], rate_limit={"max": 5}),
        paths={"state_dir": str(blocker / "state")},
    )
    results = deliver(runtime, NOTICE)
    assert [(r.channel, r.delivered) for r in results] == [
        ("rate-limit", False),
        ("webhook:team", True),
    ]
    assert results[0].detail.startswith("not checked (state store: ")


def test_no_channel_on_means_no_results(notify_runtime):
    assert deliver(notify_runtime(quiet_section()), NOTICE) == []


def test_through_the_core_every_result_is_an_event(notify_runtime, webhooks):
    runtime = notify_runtime(
        quiet_section(
            webhooks=[
                {"name": "team", "url": webhooks.url(), "format": "teams"},
                {"name": "broken", "url": webhooks.url("/status/503")},
            ]
        ),
        entry_points=True,  # the installed distribution, as an admin installs it
    )
    assert runtime.plugins.record("notify").distribution == "ds01-notify"
    notice = Notice("alice", "GPU idle", "stopping in 5m", severity="warning", container="train")
    results = tell_user(runtime, notice)
    assert DeliveryResult("webhook:team", True, "HTTP 200") in results
    assert DeliveryResult("webhook:broken", False, "HTTP 503 Service Unavailable") in results
    assert DeliveryResult("audit-log", True) in results  # the core's own record
    logged = [
        (r["event_type"], r["user"], r["source"], r["details"]["detail"])
        for r in EventLog(runtime.config.paths.event_log_path).query(type_prefix="notify.")
    ]
    assert ("notify.delivered", "alice", "webhook:team", "HTTP 200") in logged
    assert (
        "notify.failed",
        "alice",
        "webhook:broken",
        "HTTP 503 Service Unavailable",
    ) in logged


@pytest.mark.integration
def test_a_notice_about_a_container_lands_in_it(notify_runtime, container_factory, docker_engine):
    box = container_factory()
    runtime = notify_runtime(quiet_section(container_file={}))
    assert deliver(runtime, NOTICE) == []  # about no container: the channel does not apply
    about = Notice("alice", "GPU idle", "stopping in 5m", container=box.name)
    [result] = deliver(runtime, about)
    assert result.delivered, result
    code, text = docker_engine.exec_run(box.id, ["cat", "/workspace/.ds01-alerts"])
    assert code == 0 and text.endswith("GPU idle: stopping in 5m\n")


def test_only_channels_narrows_its_own_thread_only(notify_runtime, webhooks):
    """The API server runs callers' operations on threads sharing one runtime: one user's
    ``notify test --channel terminal`` must not keep another's notice from the webhook."""
    import threading

    from ds01_notify.dispatch import only_channels

    runtime = notify_runtime(quiet_section(webhooks=[{"name": "team", "url": webhooks.url()}]))
    seen: list[list[str]] = []
    with only_channels(runtime, {"terminal"}):
        assert deliver(runtime, NOTICE) == []  # narrowed here: the webhook is not tried
        other = threading.Thread(
            target=lambda: seen.append([r.channel for r in deliver(runtime, NOTICE)])
        )
        other.start()
        other.join(10)
    assert seen == [["webhook:team"]]


def test_a_notice_narrowed_by_its_sender_uses_only_those_channels(notify_runtime, webhooks):
    """``Notice.channels``: the webhook (enabled) is left out of a notice meant for e-mail and
    terminals only, and used for one that names it."""
    runtime = notify_runtime(quiet_section(webhooks=[{"name": "team", "url": webhooks.url()}]))
    assert deliver(runtime, attrs.evolve(NOTICE, channels=("email", "terminal"))) == []
    narrowed = attrs.evolve(NOTICE, channels=("webhook",))
    assert [r.channel for r in deliver(runtime, narrowed)] == ["webhook:team"]
