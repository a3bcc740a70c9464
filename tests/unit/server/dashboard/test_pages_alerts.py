"""The alerts and checks page in process, and its pure parts (silences, check states)."""

from __future__ import annotations

import time

from conveyor.app.alerts_page import check_subject, latest_check_states
from conveyor.errors import AlertsError
from conveyor.model.alerts import AlertsView, AlertView
from conveyor.model.events import Event, Subject
from conveyor.observe.metrics.silences import Silence, silence_of
from conveyor.server.api import state_of
from conveyor.server.dashboard.sources import ObserveSources, install_sources
from tests.unit.server.dashboard.conftest import Dash


def _check(check: str | None, state: str, ts: float, news: bool = True) -> Event:
    return Event(
        kind="check.changed" if news else "check.note",
        message=f"{check or 'host'} is {state}",
        subject=Subject(project="shop-staging", environment="staging"),
        ts=ts,
        data={"type": "PROBLEM", "host": "shop", "check": check, "state": state, "output": "x"},
    )


def test_the_newest_notification_of_each_check_is_its_state() -> None:
    history = [_check("http", "OK", 30), _check(None, "DOWN", 20), _check("http", "CRITICAL", 10)]
    latest = latest_check_states(history)
    assert [(check_subject(e), e.data["state"]) for e in latest] == [
        ("shop/http", "OK"),
        ("shop", "DOWN"),
    ]


def test_a_silence_of_alertmanager_v2() -> None:
    item = {
        "id": "abc",
        "status": {"state": "active"},
        "matchers": [
            {"name": "alertname", "value": "HighErrorRate", "isRegex": False, "isEqual": True},
            {"name": "service", "value": "web|api", "isRegex": True, "isEqual": False},
        ],
        "startsAt": "2026-12-06T10:00:00.000Z",
        "endsAt": "2026-12-06T12:00:00Z",
        "createdBy": "ops",
        "comment": "deploying",
    }
    s = silence_of(item)
    assert s is not None
    assert s.matchers == ('alertname="HighErrorRate"', 'service!~"web|api"')
    assert s.ends_at - s.starts_at == 7200 and s.created_by == "ops"
    assert silence_of({**item, "status": {"state": "expired"}}) is None
    assert silence_of({"status": {"state": "active"}}) is None


def test_the_page_says_what_is_not_available(dash: Dash) -> None:
    dash.sign_in("viewer")
    page = dash.client.get("/alerts")
    assert page.status_code == 200
    assert "Alerts are not available: This server has no Alertmanager" in page.text
    assert "Silences are not available" in page.text
    assert "Nagios told nothing over the last 7 days" in page.text


def test_the_page_shows_alerts_silences_and_check_history(dash: Dash) -> None:
    now = time.time()
    firing = AlertView(
        name="HighErrorRate",
        state="firing",
        severity="page",
        environment="staging",
        service="web",
        summary="5xx above 5 %",
        since=now - 60,
    )
    state = state_of(dash.client.app)  # type: ignore[arg-type]
    state.alerts_view = lambda window: AlertsView(alertmanager="http://am", alerts=[firing])
    silence = Silence("s1", "active", ('alertname="Noisy"',), now - 5, now + 3600, "ops", "hush")
    install_sources(
        dash.client.app,  # type: ignore[arg-type]
        ObserveSources(silences=lambda: [silence]),
    )
    dash.db.events.append(_check("http", "CRITICAL", now - 100))
    dash.db.events.append(_check("http", "OK", now - 10))
    dash.sign_in("viewer")
    page = dash.client.get("/alerts")
    assert "HighErrorRate" in page.text and "5xx above 5 %" in page.text
    assert '/environments/staging/services/web"' in page.text
    assert "alertname=&#34;Noisy&#34;" in page.text and "hush" in page.text
    states = page.text.split("Last state of each check", 1)[1].split("History", 1)[0]
    assert "badge-ok" in states and "critical" not in states  # the newest state only
    history = page.text.split(">History<", 1)[1]
    assert history.index("http is OK") < history.index("http is CRITICAL")


def test_an_alertmanager_that_does_not_answer_is_named(dash: Dash) -> None:
    def broken(window: float) -> AlertsView:
        raise AlertsError("Alertmanager does not answer at http://127.0.0.1:9")

    state_of(dash.client.app).alerts_view = broken  # type: ignore[arg-type]
    dash.sign_in("viewer")
    page = dash.client.get("/alerts")
    assert "does not answer at http://127.0.0.1:9" in page.text
    fragment = dash.client.get("/fragments/alerts")
    assert fragment.status_code == 200 and "<html" not in fragment.text


def test_no_alertmanager_is_said_without_the_command_lines_option() -> None:
    from conveyor.errors import AlertsError
    from conveyor.server.dashboard.alerts_view import NO_STACK, _for_the_web

    said = _for_the_web(AlertsError("no Alertmanager known for this project (x): --alertmanager"))
    assert said == NO_STACK and "--alertmanager" not in said
    assert _for_the_web(AlertsError("Alertmanager at http://x answered 500")) == (
        "Alertmanager at http://x answered 500"
    )
