"""Which events become notifications and what they say: the real engine's events (on the
in-memory fakes) and hand-built events for the kinds other parts emit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conveyor.gitops.notify.message import notification
from conveyor.model.events import Event, EventKind, Subject
from conveyor.model.notifications import TOPICS, Notification
from tests.unit.gitops.engine_world import World

SHA = "0123456789abcdef0123456789abcdef01234567"


def told(world: World) -> list[Notification]:
    return [n for e in world.events if (n := notification(e)) is not None]


def test_a_deploy_is_told_when_it_starts_and_when_it_is_live(tmp_path: Path) -> None:
    world = World(tmp_path)
    assert world.deploy("1", commit=SHA).status == "succeeded"
    started, live = told(world)
    assert (started.topic, started.state, started.title) == (
        "rollout.started",
        "running",
        "staging: deploying release 1",
    )
    assert (live.topic, live.state, live.level) == ("rollout.succeeded", "success", "info")
    assert live.title == "staging: release 1 is live"
    assert (live.environment, live.release, live.commit, live.project) == (
        "staging",
        1,
        SHA,
        "shop",
    )
    assert live.event_id > 0  # a recorded event


def test_an_automatic_rollback_is_one_story_not_four(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.deploy("1")
    world.events.clear()
    world.bad.add("2")
    assert world.deploy("2").status == "rolled_back"
    assert [(n.topic, n.state, n.level) for n in told(world)] == [
        ("rollout.started", "running", "info"),
        ("rollout.rolled_back", "failed", "warning"),
    ]
    assert told(world)[-1].title == "staging: release 2 failed and was rolled back to release 1"


def test_a_rollback_that_fails_too_is_one_failure() -> None:
    """The engine's events when going back fails as well (shapes as deploy/engine.py emits
    them): the failed automatic rollback is not news, the deploy's final verdict is."""
    failed = event("rollout.failed", "rollback to release 3 failed: web: unhealthy",
                   kind="deploy", rollback=9, to_release=3)  # fmt: skip
    assert notification(event("rollout.failed", kind="rollback", undoes=8)) is None
    n = notification(failed)
    assert n is not None
    assert (n.topic, n.title) == ("rollout.failed", "production: deploy of release 4 failed")
    assert n.text == "rollback to release 3 failed: web: unhealthy"


def test_a_failed_first_deploy_and_a_paused_one(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.bad.add("1")
    assert world.deploy("1").status == "failed"  # nothing earlier to go back to
    failed = told(world)[-1]
    assert (failed.topic, failed.state, failed.level) == ("rollout.failed", "failed", "error")
    assert failed.title == "staging: deploy of release 1 failed"
    assert failed.text.endswith("replica web-1-1 is unhealthy (its healthcheck failed)")
    world.bad.clear()
    world.deploy("2")
    world.bad.add("3")
    assert world.deploy("3", failure_action="pause").status == "paused"
    assert told(world)[-1].topic == "rollout.paused"


def test_a_rollback_a_person_asks_for(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.deploy("1")
    world.deploy("2")
    world.events.clear()
    assert world.engine.rollback().status == "succeeded"
    assert [(n.topic, n.title) for n in told(world)] == [
        ("rollback.started", "staging: rolling back to release 1"),
        ("rollback.succeeded", "staging: rolled back to release 1"),
    ]


def test_a_healed_replica_is_drift_corrected(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.deploy("1")
    world.kill_a_replica()
    world.events.clear()
    assert world.engine.heal() is not None
    (n,) = told(world)
    assert (n.topic, n.state, n.title) == (
        "drift.corrected",
        "success",
        "staging: drift corrected (web)",
    )


def event(event_kind: EventKind, message: str = "m", **data: Any) -> Event:
    subject = Subject(project="shop", environment="production", commit=SHA, pipeline=7, release=4)
    return Event(kind=event_kind, message=message, subject=subject, data=data, id=3)


@pytest.mark.parametrize(
    ("ev", "topic", "state", "title"),
    [
        (event("pipeline.started"), "pipeline.started", "running", "pipeline #7 started"),
        (
            event("pipeline.finished", status="success"),
            "pipeline.succeeded",
            "success",
            "pipeline #7 passed",
        ),
        (
            event("pipeline.finished", status="failed"),
            "pipeline.failed",
            "failed",
            "pipeline #7 failed",
        ),
        (
            event("pipeline.finished", status="canceled"),
            "pipeline.canceled",
            "canceled",
            "pipeline #7 was canceled",
        ),
        (
            event("pipeline.finished", status="canceled", superseded_by="c" * 40),
            "pipeline.canceled",
            "canceled",
            "pipeline #7 superseded by cccccccccccc",
        ),
        (event("heal.failed", services=["web"]), "drift.failed", "failed", "drift not corrected"),
        (
            event("drift.corrected", services=["web", "api"]),
            "drift.corrected",
            "success",
            "drift corrected (web, api)",
        ),
        (
            event("promotion.succeeded", **{"from": "staging"}),
            "promotion.succeeded",
            "success",
            "release 4 promoted from staging",
        ),
        (
            event("promotion.failed", **{"from": "staging"}),
            "promotion.failed",
            "failed",
            "promotion from staging failed",
        ),
        (
            event("signature.rejected", reason="no signature"),
            "signature.rejected",
            "failed",
            "commit 0123456789ab not deployed: its signature was rejected",
        ),
        (
            event("check.changed", type="PROBLEM", check="web http :8080", state="CRITICAL"),
            "check.problem",
            "failed",
            "web http :8080 is CRITICAL",
        ),
        (
            event("check.changed", type="RECOVERY", check="web http :8080", state="OK"),
            "check.recovered",
            "success",
            "web http :8080 is OK again",
        ),
        (
            event("check.changed", type="PROBLEM", host="db1", state="DOWN"),
            "check.problem",
            "failed",
            "host db1 is DOWN",
        ),
        (
            # a check NRPE runs on a fleet host: every host has one of that name
            event(
                "check.changed",
                type="PROBLEM",
                host="h1",
                check="disk",
                kind="nrpe",
                state="WARNING",
            ),
            "check.problem",
            "failed",
            "disk on h1 is WARNING",
        ),
        (event("checks.restarted"), "checks.restarted", "failed", "Nagios was down"),
    ],
)
def test_kinds_emitted_elsewhere(ev: Event, topic: str, state: str, title: str) -> None:
    n = notification(ev)
    assert n is not None
    assert (n.topic, n.state) == (topic, state)
    assert n.title.removeprefix("production: ").startswith(title)


def test_a_pipeline_superseded_by_a_newer_commit_is_not_told_as_a_failure() -> None:
    canceled = notification(event("pipeline.finished", status="canceled"))
    superseded = notification(event("pipeline.finished", status="canceled", superseded_by="c" * 40))
    assert canceled is not None and superseded is not None
    assert (canceled.level, superseded.level) == ("warning", "info")


@pytest.mark.parametrize(
    "ev",
    [
        event("pipeline.finished", status="manual"),
        event("pipeline.finished", status="skipped"),
        event("pipeline.canceled"),  # its pipeline.finished (canceled) follows
        event("job.finished"),
        event("job.output"),
        event("step.done"),
        event("rollout.note"),
        event("rollout.interrupted"),
        event("reconciler.error"),
        event("rollout.failed", kind="deploy", rolling_back=True),
        event("rollout.succeeded", kind="rollback", undoes=3),
        event("check.note", type="FLAPPINGSTART", check="web", state="CRITICAL"),
        event("check.note", type="DOWNTIMESTART", check="web", state="OK"),
        event("check.changed", type="PROBLEM", check="web", state="CRITICAL", downtime=1),
        event("checks.reloaded"),
    ],
)
def test_not_news(ev: Event) -> None:
    assert notification(ev) is None


def test_the_link_given_wins_over_one_in_the_event() -> None:
    ev = event("rollout.succeeded", kind="deploy", url="https://from-event/1")
    assert notification(ev) is not None
    assert notification(ev).url == "https://from-event/1"  # type: ignore[union-attr]
    assert notification(ev, url="https://server/r/1").url == "https://server/r/1"  # type: ignore[union-attr]


def test_every_topic_has_an_event_that_produces_it() -> None:
    """The mapping table in the module's docstring covers every topic a user can choose."""
    events = [
        event("pipeline.started"),
        *(event("pipeline.finished", status=s) for s in ("success", "failed", "canceled")),
        *(
            event(k, kind=kind)  # type: ignore[arg-type]
            for k in ("rollout.started", "rollout.succeeded", "rollout.failed")
            for kind in ("deploy", "rollback")
        ),
        event("rollout.rolled_back"),
        event("rollout.paused"),
        event("drift.corrected"),
        event("heal.failed"),
        event("promotion.succeeded"),
        event("promotion.failed"),
        event("signature.rejected"),
        event("check.changed", type="PROBLEM", check="web", state="CRITICAL"),
        event("check.changed", type="RECOVERY", check="web", state="OK"),
        event("checks.restarted"),
        event("alert.firing", alertname="ServiceDown", severity="page"),
        event("alert.resolved", alertname="ServiceDown", severity="page"),
    ]
    produced = {n.topic for e in events if (n := notification(e)) is not None}
    assert produced == set(TOPICS)


def _alert_event(kind: EventKind, severity: str) -> Event:
    subject = Subject(project="shop-production", environment="production", service="web")
    return Event(
        kind=kind,
        message="web (production) is down: no replica is in rotation",
        subject=subject,
        data={
            "alertname": "ServiceDown",
            "severity": severity,
            "annotations": {
                "summary": "web (production) is down: no replica is in rotation",
                "description": "HAProxy has no replica of the service up in its backend.",
            },
        },
        id=9,
    )


def test_an_alert_firing_is_told_as_loud_as_its_severity_and_its_end_too() -> None:
    page = notification(_alert_event("alert.firing", "page"))
    ticket = notification(_alert_event("alert.firing", "ticket"))
    resolved = notification(_alert_event("alert.resolved", "page"))
    assert page is not None and ticket is not None and resolved is not None

    assert (page.topic, page.state, page.level) == ("alert.firing", "failed", "error")
    assert page.title == "production: ServiceDown (web) firing"
    assert page.text == (
        "web (production) is down: no replica is in rotation\n"
        "HAProxy has no replica of the service up in its backend."
    )
    assert ticket.level == "warning"
    assert (resolved.topic, resolved.state, resolved.level) == ("alert.resolved", "success", "info")
    assert resolved.title == "production: ServiceDown (web) resolved"
    assert resolved.commit is None  # not news about a commit: GitLab statuses leave it
