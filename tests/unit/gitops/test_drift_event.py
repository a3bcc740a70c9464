"""A heal of an environment becomes one drift.corrected event (gitops.drift), which is what
people are told (once) through the notification mapping."""

from __future__ import annotations

from conveyor.gitops.drift import drift_event
from conveyor.gitops.notify.message import notification
from conveyor.model.events import Event, Subject

HEAL = Event(
    id=7,
    kind="heal.succeeded",
    message="healed web",
    actor="agent",
    subject=Subject(project="shop-staging", environment="staging", release=3, rollout=9),
    data={
        "services": ["web"],
        "seconds": 1.2,
        "corrections": [
            "web: HAProxy server web-3-2 removed (no container)",
            "web: replica count restored (1 started)",
        ],
    },
)


def test_the_heal_becomes_drift_corrected_naming_environment_and_what() -> None:
    d = drift_event(HEAL)
    assert d.kind == "drift.corrected"
    assert d.message == (
        "staging: drift corrected: web: HAProxy server web-3-2 removed (no container); "
        "web: replica count restored (1 started)"
    )
    assert d.data["what"] == "; ".join(HEAL.data["corrections"])
    assert d.data["services"] == ["web"]
    assert (d.id, d.actor, d.subject, d.ts) == (HEAL.id, HEAL.actor, HEAL.subject, HEAL.ts)


def test_a_heal_without_corrections_still_names_its_services() -> None:
    d = drift_event(HEAL.model_copy(update={"data": {"services": ["web", "api"]}}))
    assert d.message == "staging: drift corrected: healed web, api"


def test_people_are_told_once_with_the_corrections() -> None:
    told = notification(drift_event(HEAL))
    assert told is not None and told.topic == "drift.corrected"
    assert "replica count restored" in told.text
