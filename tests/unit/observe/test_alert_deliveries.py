"""Alertmanager's webhook deliveries read (version 4), and the tracker that makes each start
and end of an alert news once, however often Alertmanager repeats a group."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conveyor.model.alerts import Alert
from conveyor.observe.metrics.alerts import (
    AlertTracker,
    PayloadError,
    parse_delivery,
    timestamp,
)
from conveyor.observe.metrics.alerts_api import _alert as api_alert

START = "2026-12-06T10:00:00.123456789Z"
ZERO = "0001-01-01T00:00:00Z"


def item(
    status: str = "firing", fp: str = "a1", starts: str = START, **labels: str
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": "ServiceDown", "service": "web", **labels},
        "annotations": {"summary": "web (shop) is down"},
        "startsAt": starts,
        "endsAt": "2026-12-06T10:05:00Z" if status == "resolved" else ZERO,
        "generatorURL": "http://127.0.0.1:19100/graph?g0.expr=...",
        "fingerprint": fp,
    }


def body(*alerts: dict[str, Any], version: str = "4") -> bytes:
    doc = {
        "version": version,
        "groupKey": '{}:{alertname="ServiceDown"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "conveyor",
        "groupLabels": {"alertname": "ServiceDown"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:19101",
        "alerts": list(alerts),
    }
    return json.dumps(doc).encode()


def test_times_as_go_writes_them() -> None:
    assert timestamp("2026-12-06T10:00:00Z") == 1796551200.0
    assert timestamp(START) == pytest.approx(1796551200.123456)
    assert timestamp("2026-12-06T11:00:00.5+01:00") == 1796551200.5
    assert timestamp(ZERO) is None
    assert timestamp("yesterday") is None


def test_a_delivery_reads_into_alerts() -> None:
    delivery = parse_delivery(body(item(), item("resolved", fp="b2", service="api")))

    firing, resolved = delivery.alerts
    assert delivery.receiver == "conveyor" and delivery.external_url == "http://127.0.0.1:19101"
    assert (firing.name, firing.state, firing.summary, firing.ends_at) == (
        "ServiceDown",
        "firing",
        "web (shop) is down",
        None,
    )
    assert firing.label("service") == "web" and firing.label("project") is None
    assert (resolved.state, resolved.ends_at) == ("resolved", 1796551500.0)


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        (b"not json", "not JSON"),
        (b"[]", "not a JSON object"),
        (body(item(), version="3"), "version '3'"),
        (json.dumps({"version": "4", "alerts": {}}).encode(), "'alerts' is not a list"),
        (body({**item(), "labels": {"service": "web"}}), "no alertname"),
        (body({**item(), "status": "pending"}), "status is 'pending'"),
        (body({**item(), "startsAt": "soon"}), "startsAt is not a time"),
    ],
)
def test_what_is_not_a_delivery_is_refused_saying_why(raw: bytes, said: str) -> None:
    with pytest.raises(PayloadError, match=said):
        parse_delivery(raw)


def alerts(*items: dict[str, Any]) -> tuple[Alert, ...]:
    return parse_delivery(body(*items)).alerts


def test_each_start_and_end_is_news_once() -> None:
    tracker = AlertTracker()

    first = tracker.changes(alerts(item()))
    repeat = tracker.changes(alerts(item()))  # repeat_interval, or the group changed
    grown = tracker.changes(alerts(item(), item(fp="b2", service="api")))
    ended = tracker.changes(alerts(item("resolved"), item(fp="b2", service="api")))
    again = tracker.changes(alerts(item("resolved")))

    assert [(c.kind, c.alert.fingerprint) for c in first] == [("alert.firing", "a1")]
    assert repeat == []
    assert [(c.kind, c.alert.fingerprint) for c in grown] == [("alert.firing", "b2")]
    assert [(c.kind, c.alert.fingerprint) for c in ended] == [("alert.resolved", "a1")]
    assert again == []


def test_firing_again_after_resolving_is_a_new_start() -> None:
    tracker = AlertTracker()
    tracker.changes(alerts(item()))
    tracker.changes(alerts(item("resolved")))

    later = tracker.changes(alerts(item(starts="2026-12-06T11:00:00Z")))

    assert [c.kind for c in later] == ["alert.firing"]


def test_an_end_never_told_as_a_start_is_still_told() -> None:
    """The receiver restarted (the tracker is in memory), or the alert fired and resolved
    between two deliveries: whoever saw it fire elsewhere learns it ended."""
    assert [c.kind for c in AlertTracker().changes(alerts(item("resolved")))] == ["alert.resolved"]


def test_the_tracker_forgets_the_oldest_first() -> None:
    tracker = AlertTracker(capacity=2)
    tracker.changes(alerts(item(fp="1"), item(fp="2"), item(fp="3")))

    assert [c.alert.fingerprint for c in tracker.changes(alerts(item(fp="1")))] == ["1"]
    assert tracker.changes(alerts(item(fp="3"))) == []


def test_api_v2_alerts_are_firing_or_suppressed() -> None:
    active = {**item(), "status": {"state": "active", "silencedBy": [], "inhibitedBy": []}}
    silenced = {
        **item(fp="b2"),
        "status": {"state": "suppressed", "silencedBy": ["s-1"], "inhibitedBy": []},
    }
    active["endsAt"] = silenced["endsAt"] = "2026-12-06T10:04:00Z"  # a resolve timeout ahead

    a, s = api_alert(active), api_alert(silenced)

    assert (a.state, a.ends_at, a.silenced_by) == ("firing", None, ())
    assert (s.state, s.silenced_by) == ("suppressed", ("s-1",))
