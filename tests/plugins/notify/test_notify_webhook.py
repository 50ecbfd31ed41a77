"""The webhook channel against a real HTTP server on loopback: the exact JSON of each format,
headers, the URL from a file, and failures (an error status, a redirect, no answer) reported
without the URL, which is often the webhook's secret."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from ds01_core.domain.model import DeliveryResult, Notice
from ds01_notify.config import WebhookConfig
from ds01_notify.webhook import USER_AGENT, WebhookChannel

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
NOTICE = Notice(
    "alice",
    "GPU idle",
    "Container train idle for 55m.\nIt stops in 5m.",
    severity="warning",
    container="train",
    event_type="idle.warned",
)


def hook(url: str, fmt: str = "generic", **kw) -> WebhookChannel:
    return WebhookChannel(
        WebhookConfig(name="team", url=url, format=fmt, **kw), lambda: NOW, "gpu01"
    )


def test_generic_is_the_notice_as_json(webhooks):
    result = hook(webhooks.url()).send(NOTICE)
    assert result == DeliveryResult("webhook:team", True, "HTTP 200")
    [post] = webhooks.posts
    assert post.path == "/hook"
    assert post.headers["Content-Type"] == "application/json"
    assert post.headers["User-Agent"] == USER_AGENT
    assert post.body == {
        "user": "alice",
        "subject": "GPU idle",
        "message": "Container train idle for 55m.\nIt stops in 5m.",
        "severity": "warning",
        "container": "train",
        "event_type": "idle.warned",
        "host": "gpu01",
        "timestamp": "2026-03-01T12:00:00Z",
    }


def test_slack_gets_text(webhooks):
    assert hook(webhooks.url(), "slack").send(NOTICE).delivered
    assert webhooks.posts[0].body == {
        "text": "*warning: GPU idle* (alice on gpu01, container train)\n"
        "Container train idle for 55m.\nIt stops in 5m."
    }


def test_slack_markup_in_a_notice_is_escaped(webhooks):
    sneaky = Notice("alice", "<!channel> look", "a & b <@U123>", container="x<y>")
    assert hook(webhooks.url(), "slack").send(sneaky).delivered
    assert webhooks.posts[0].body == {
        "text": "*&lt;!channel&gt; look* (alice on gpu01, container x&lt;y&gt;)\n"
        "a &amp; b &lt;@U123&gt;"
    }


def test_teams_gets_a_message_card(webhooks):
    assert hook(webhooks.url(), "teams").send(NOTICE).delivered
    assert webhooks.posts[0].body == {
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": "GPU idle",
        "title": "warning: GPU idle",
        "text": "Container train idle for 55m.\nIt stops in 5m.\n\n(alice on gpu01, container train)",
        "themeColor": "FFA500",
    }


def test_configured_headers_are_sent(webhooks):
    send = hook(webhooks.url(), headers={"Authorization": "Bearer abc", "X-Team": "ml"}).send
    assert send(NOTICE).delivered
    headers = webhooks.posts[0].headers
    assert (headers["Authorization"], headers["X-Team"]) == ("Bearer abc", "ml")


def test_the_url_can_live_in_a_file(webhooks, tmp_path):
    secret = tmp_path / "slack-url"
    secret.write_text(webhooks.url("/services/T000/B000/XXXX") + "\n")
    channel = WebhookChannel(WebhookConfig(name="slack", url_file=str(secret), format="slack"))
    assert channel.send(NOTICE) == DeliveryResult("webhook:slack", True, "HTTP 200")
    assert webhooks.posts[0].path == "/services/T000/B000/XXXX"


def test_an_error_status_is_not_delivered(webhooks):
    url = webhooks.url("/status/500")
    result = hook(url).send(NOTICE)
    assert result == DeliveryResult("webhook:team", False, "HTTP 500 Internal Server Error")
    assert url not in result.detail
    assert len(webhooks.posts) == 1


def test_a_redirect_is_not_followed(webhooks):
    result = hook(webhooks.url("/status/302")).send(NOTICE)
    assert result == DeliveryResult(
        "webhook:team", False, "HTTP 302 Found (redirects are not followed: check the URL)"
    )
    assert [p.path for p in webhooks.posts] == ["/status/302"]


def test_a_server_that_never_answers_times_out(silent):
    started = time.monotonic()
    result = hook(f"http://127.0.0.1:{silent.port}/hook", timeout=1).send(NOTICE)
    assert 0.9 < time.monotonic() - started < 3
    assert result == DeliveryResult("webhook:team", False, "no answer within 1s")


@pytest.mark.parametrize("url_text", ["", "hooks.slack.com/services/T0/B0/SECRET"])
def test_a_broken_url_file_fails_without_showing_it(tmp_path, url_text):
    secret = tmp_path / "url"
    secret.write_text(url_text)
    result = WebhookChannel(WebhookConfig(name="x", url_file=str(secret))).send(NOTICE)
    assert result == DeliveryResult("webhook:x", False, "url_file holds no http:// or https:// URL")
    missing = WebhookConfig(name="x", url_file=str(tmp_path / "missing"))
    assert WebhookChannel(missing).send(NOTICE) == DeliveryResult(
        "webhook:x", False, "cannot read url_file: No such file or directory"
    )


def test_nobody_listening(silent):
    port = silent.port
    silent.close()
    result = hook(f"http://127.0.0.1:{port}/").send(NOTICE)
    assert result == DeliveryResult(
        "webhook:team", False, "cannot reach it: [Errno 111] Connection refused"
    )
