"""The per-user rate limit: the notice past the limit is not sent, the window slides, and the
count is shared by every process using the same state store."""

from __future__ import annotations

import datetime as dt
import multiprocessing

from ds01_core.domain.model import Notice
from ds01_notify import deliver
from tests.plugins.notify.conftest import quiet_section

START = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def section(webhooks, **limit):
    return quiet_section(
        webhooks=[{"name": "team", "url": webhooks.url()}],
        rate_limit={"max": 10, "per": "1h", **limit},
    )


def at(runtime, moment: dt.datetime):
    runtime.now = lambda: moment  # the runtime's clock, as every channel and the limit read it
    return runtime


def test_the_eleventh_notice_in_the_window_is_not_sent(notify_runtime, webhooks):
    runtime = at(notify_runtime(section(webhooks)), START)
    for index in range(10):
        [result] = deliver(runtime, Notice("alice", f"n{index}", "…"))
        assert result.delivered, result
    [refused] = deliver(runtime, Notice("alice", "n10", "…"))
    assert refused.channel == "rate-limit"
    assert not refused.delivered
    assert refused.detail == (
        "alice was sent 10 notices in the last 1h (the limit is 10); this one was not sent. "
        "The next can go at 2026-03-01T13:00:00Z"
    )
    assert len(webhooks.posts) == 10
    # another user has a limit of their own
    assert deliver(runtime, Notice("bob", "hello", "…"))[0].delivered


def test_the_window_slides(notify_runtime, webhooks):
    runtime = notify_runtime(section(webhooks, max=2, per="10m"))

    def channel_at(minutes: float) -> str:
        moment = START + dt.timedelta(minutes=minutes)
        [result] = deliver(at(runtime, moment), Notice("alice", "s", "m"))
        return result.channel

    assert [channel_at(0), channel_at(4), channel_at(9)] == [
        "webhook:team",
        "webhook:team",
        "rate-limit",
    ]
    # ten minutes after the first, one place is free again, and only one
    assert [channel_at(10.1), channel_at(10.2)] == ["webhook:team", "rate-limit"]
    assert len(webhooks.posts) == 3


def deliver_in_a_process(config: str, text: str, go, results) -> None:
    """One OS process with a runtime of its own (its own state-store connection), as each
    ``ds01`` command and the daemon are: deliver one notice when told, report its channel."""
    import ds01_notify
    from ds01_core.framework.runtime import load_runtime

    runtime = load_runtime(config, no_plugins=True, extra_plugins=(("notify", ds01_notify),))
    at(runtime, START)
    go.wait(30)
    [result] = deliver(runtime, Notice("alice", text, "…"))
    results.put((text, result.channel, result.delivered))
    runtime.close()


def test_the_count_holds_across_processes(tmp_config, webhooks):
    """Six processes at once, a limit of three: three notices go, three are refused."""
    config = str(tmp_config({"plugins": {"notify": section(webhooks, max=3)}}))
    ctx = multiprocessing.get_context("fork")
    go, results = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=deliver_in_a_process, args=(config, f"n{i}", go, results))
        for i in range(6)
    ]
    for proc in procs:
        proc.start()
    go.set()
    outcomes = [results.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0
    assert (
        sorted(channel for _, channel, _ in outcomes) == ["rate-limit"] * 3 + ["webhook:team"] * 3
    )
    delivered = sorted(text for text, _, sent in outcomes if sent)
    assert sorted(post.body["subject"] for post in webhooks.posts) == delivered


def test_max_zero_means_no_limit(notify_runtime, webhooks):
    runtime = notify_runtime(section(webhooks, max=0))
    for _ in range(15):
        assert deliver(runtime, Notice("alice", "s", "m"))[0].delivered


def test_a_notice_no_channel_takes_is_not_counted(notify_runtime, webhooks):
    from ds01_notify import change_prefs

    runtime = at(notify_runtime(section(webhooks, max=1)), START)
    cfg = runtime.plugin_config("notify")
    change_prefs(runtime, cfg, "alice", disable=["webhook"])
    assert deliver(runtime, Notice("alice", "s", "m")) == []
    change_prefs(runtime, cfg, "alice", enable=["webhook"])
    assert deliver(runtime, Notice("alice", "s", "m"))[0].delivered
