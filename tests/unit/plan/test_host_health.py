"""Host health from probe results: a blip moves nothing, silence for `down_after` marks a host
down, and a host that was down takes replicas only after answering `up_after` times in a row."""

from __future__ import annotations

import random

import pytest

from conveyor.model.host_health import HostHealth, HostHealthSettings
from conveyor.plan.host_health import first_seen, holding, observe, placeable

SETTINGS = HostHealthSettings(interval=1.0, down_after=5.0, up_after=3)


def run(
    probes: str, start: HostHealth | None = None, step: float = 1.0
) -> tuple[HostHealth, list[str]]:
    """Feed probes ('+' answered, '-' silent) one `step` apart; the transitions, as
    'before>after@t'."""
    health = start or HostHealth(host="h1", status="up", since=0.0, last_ok=0.0)
    seen: list[str] = []
    for i, probe in enumerate(probes, start=1):
        health, moved = observe(health, probe == "+", i * step, SETTINGS, error="timed out")
        if moved is not None:
            seen.append(f"{moved.before}>{moved.after}@{moved.at:g}")
    return health, seen


@pytest.mark.parametrize(
    ("probes", "status", "transitions"),
    [
        ("++++", "up", []),
        ("-+", "up", ["up>suspect@1", "suspect>up@2"]),  # a blip: nothing moved
        ("----", "suspect", ["up>suspect@1"]),  # 4 s of silence < 5 s
        ("-----", "down", ["up>suspect@1", "suspect>down@5"]),
        ("-----+", "returning", ["up>suspect@1", "suspect>down@5", "down>returning@6"]),
        (
            "-----+++",
            "up",
            ["up>suspect@1", "suspect>down@5", "down>returning@6", "returning>up@8"],
        ),
        # a flapping link: one failure while returning puts it down again
        (
            "-----++-++",
            "returning",
            [
                "up>suspect@1",
                "suspect>down@5",
                "down>returning@6",
                "returning>down@8",
                "down>returning@9",
            ],
        ),
    ],
)
def test_probe_sequences(probes: str, status: str, transitions: list[str]) -> None:
    health, seen = run(probes)
    assert health.status == status
    assert seen == transitions


def test_silence_counts_from_the_last_answer_not_from_the_first_failure() -> None:
    # slow probes (3 s apart): the second failure is 6 s after the last answer -> down
    health, seen = run("--", step=3.0)
    assert seen == ["up>suspect@3", "suspect>down@6"]
    assert health.error == "timed out"
    _, moved = observe(
        HostHealth(host="h1", status="suspect", since=3.0, last_ok=0.0),
        False,
        6.0,
        SETTINGS,
        error="timed out",
    )
    assert moved is not None and moved.lost
    assert moved.reason == "no answer for 6.0 s: timed out"


def test_a_host_never_probed_must_prove_itself_before_it_takes_replicas() -> None:
    health, seen = run("+++", start=first_seen("h1", 0.0))
    assert seen == ["returning>up@3"]
    assert health.takes_replicas
    assert not first_seen("h1", 0.0).takes_replicas


def test_who_takes_and_who_holds_replicas() -> None:
    healths = {
        "a": HostHealth(host="a", status="up"),
        "b": HostHealth(host="b", status="suspect"),
        "c": HostHealth(host="c", status="down"),
        "d": HostHealth(host="d", status="returning"),
    }
    assert placeable(healths, ["d", "c", "b", "a", "unknown"]) == ("a",)
    assert holding(healths, ["a", "b", "c", "d"]) == ("a", "b")


@pytest.mark.parametrize("seed", range(20))
def test_random_probe_sequences_keep_the_promises(seed: int) -> None:
    rng = random.Random(seed)
    health = HostHealth(host="h", status="up", since=0.0, last_ok=0.0)
    now = 0.0
    last_ok = 0.0
    answers_in_a_row = 0
    for _ in range(200):
        now += rng.choice((0.5, 1.0, 2.0, 3.0))
        answered = rng.random() < 0.6
        before = health.status
        health, moved = observe(health, answered, now, SETTINGS)
        answers_in_a_row = answers_in_a_row + 1 if answered else 0
        if answered:
            last_ok = now
        if moved is not None and moved.after == "down":
            # never down before down_after seconds of silence (unless it was returning)
            assert before == "returning" or now - last_ok >= SETTINGS.down_after
        if moved is not None and moved.returned:
            assert answers_in_a_row >= SETTINGS.up_after
        if answered:
            assert health.status in ("up", "returning")
