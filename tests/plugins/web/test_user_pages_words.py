"""The user pages' words and checks, without a browser: events as sentences, GPU requests,
numbers, the wizard's answers checked and turned into ``containers.create``'s parameters, and
the usage chart's days filled in."""

from __future__ import annotations

import datetime as dt

import pytest

from ds01_web.dashboard import usage, wizard, words


@pytest.mark.parametrize(
    "event, sentence",
    [
        (
            {"event_type": "container.created_by_ds01", "details": {"container": "a"}},
            "You created container a",
        ),
        (
            {"event_type": "gpu.allocated", "details": {"container": "a", "slots": ["0", "1.2"]}},
            "GPU 0, 1.2 allocated to a",
        ),
        (
            {"event_type": "access.denied", "details": {"reason": "not an admin"}},
            "Something you tried was refused: not an admin",
        ),
        ({"event_type": "disk.quota_set", "details": {}}, "Disk: quota set"),
        (
            {"event_type": "lifecycle.idle_stop", "details": {"container": "b"}},
            "Lifecycle: idle stop (b)",
        ),
    ],
)
def test_events_read_as_sentences(event, sentence) -> None:
    assert words.event_sentence(event) == sentence


def test_requests_numbers_and_times_in_words() -> None:
    assert words.describe_request({"count": 2}) == "2 GPUs"
    assert words.describe_request({"count": 1, "mig_profile": "3g.40gb"}) == "a MIG slot 3g.40gb"
    assert words.describe_request({"full_gpu": True}) == "a full GPU"
    assert [words.number(v, 0) for v in (150, 230.4, None)] == ["150", "230", "-"]
    assert [words.number(v) for v in (1.5, 2.0, 0.004)] == ["1.5", "2", "0"]
    assert words.percent(0.423) == "42 %" and words.percent(None) == "not measured"
    now = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
    assert words.ago("2026-12-01T11:58:30Z", now) == "1m30s ago"
    assert words.ago("garbage", now) == "-" and words.clock(None) == "-"
    assert words.state_words("created") == ("created, not started", "status-warn")


def answers(**changes: str) -> dict[str, str]:
    return wizard.values_of(None) | {"name": "train", "image": "ds01-test:busybox"} | changes


@pytest.mark.parametrize(
    "changes, params",
    [
        ({}, {"cpu_only": True}),
        ({"gpu_mode": "gpus", "gpus": "2"}, {"gpus": 2}),
        ({"gpu_mode": "mig", "mig": "3g.40gb"}, {"mig": "3g.40gb"}),
        ({"gpu_mode": "full"}, {"full_gpu": True}),
        (
            {"image": "other", "image_other": "me/x:1", "project": "p1"},
            {"cpu_only": True, "image": "me/x:1", "project": "p1"},
        ),
    ],
)
def test_the_wizard_turns_answers_into_create_parameters(changes, params) -> None:
    errors, made = wizard.check(answers(**changes))
    assert errors == {}
    assert made == {"name": "train", "image": "ds01-test:busybox"} | params


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"name": ""}, "name"),
        ({"name": "-bad"}, "name"),
        ({"name": "a b"}, "name"),
        ({"image": ""}, "image"),
        ({"image": "other", "image_other": ""}, "image"),
        ({"gpu_mode": "lots"}, "gpu_mode"),
        ({"gpu_mode": "gpus", "gpus": "0"}, "gpus"),
        ({"gpu_mode": "gpus", "gpus": "two"}, "gpus"),
        ({"gpu_mode": "mig", "mig": ""}, "mig"),
        ({"project": "no spaces please"}, "project"),
    ],
)
def test_the_wizard_says_which_answer_is_wrong(changes, field) -> None:
    errors, _ = wizard.check(answers(**changes))
    assert list(errors) == [field] and errors[field]


def test_a_refusal_gets_hints_about_what_to_do() -> None:
    assert any(
        "another name" in h
        for h in wizard.what_to_do("Conflict. The container name is already in use")
    )
    assert any("--wait" in h for h in wizard.what_to_do("no free GPU slot fits 2 GPUs"))
    assert any(
        "Stop or remove" in h for h in wizard.what_to_do("over your quota of 1 GPU-equivalent")
    )


def test_the_usage_series_has_every_day_and_week() -> None:
    answer = {
        "since": "2026-11-30T00:00:00Z",
        "until": "2026-12-02T10:00:00Z",
        "rows": [
            {"key": "2026-12-01", "gpu_hours": 1.25, "efficiency": 0.5, "idle_gpu_hours": 0.1}
        ],
    }
    rows = usage.series(answer, "day")
    assert [r["key"] for r in rows] == ["2026-11-30", "2026-12-01", "2026-12-02"]
    assert rows[1] == {
        "key": "2026-12-01",
        "gpu_hours": 1.25,
        "efficiency": 50.0,
        "idle_hours": 0.1,
    }
    assert rows[0]["gpu_hours"] == 0.0 and rows[0]["efficiency"] is None
    weeks = usage.steps(
        dt.datetime(2026, 1, 1, tzinfo=dt.UTC), dt.datetime(2026, 1, 20, tzinfo=dt.UTC), "week"
    )
    assert weeks == ["2025-12-29", "2026-01-05", "2026-01-12", "2026-01-19"]
    config = usage.chart(rows, "day")
    assert config["data"]["labels"] == [r["key"] for r in rows]
    assert [d["label"] for d in config["data"]["datasets"]] == ["GPU-hours", "Efficiency (%)"]
