"""The delivery page in process: DORA metrics and weekly windows, actions for deployers."""

from __future__ import annotations

import itertools
import re

from conveyor.server.dashboard.delivery_view import DORA, WEEK, WEEKS, week_ends
from tests.unit.server.dashboard.conftest import Dash


def test_weekly_windows_end_a_week_apart_the_newest_now() -> None:
    ends = week_ends(1_000_000.0, 3)
    assert ends == [1_000_000.0 - 2 * WEEK, 1_000_000.0 - WEEK, 1_000_000.0]


def test_each_week_is_asked_of_the_backend_as_its_own_window(dash: Dash) -> None:
    asked: list[tuple[str, str, float | None]] = []
    real = dash.backend.dora

    def spy(env: str, since: str, until: float | None = None):  # type: ignore[no-untyped-def]
        asked.append((env, since, until))
        return real(env, since, until)

    dash.backend.dora = spy  # type: ignore[method-assign]
    DORA.clear()
    dash.sign_in("viewer")
    page = dash.client.get("/delivery")
    assert page.status_code == 200
    names = [e.name for e in dash.backend.environments()]
    for name in names:
        weeks = sorted(u for env, since, u in asked if env == name and since == "7d" and u)
        assert len(weeks) == WEEKS
        assert all(abs(b - a - WEEK) < 1e-6 for a, b in itertools.pairwise(weeks))
        assert any(env == name and since == "30d" for env, since, _ in asked)
    # the rows show the windows' ends (the backend's answers), one per week
    section = page.text.split("Week by week", 1)[1]
    assert len(re.findall(r"<th scope=\"row\"><time", section.split("</table>")[0])) == WEEKS


def test_actions_show_for_a_deployer_only_and_go_through_confirmation(dash: Dash) -> None:
    dash.sign_in("viewer")
    viewer = dash.client.get("/environments/staging/delivery")
    assert viewer.status_code == 200 and "/actions/" not in viewer.text
    dash.client.cookies.clear()
    dash.sign_in("deployer")
    page = dash.client.get("/environments/staging/delivery")
    assert "/environments/staging/actions/suspend" in page.text
    confirm = dash.client.get("/environments/staging/actions/suspend")
    assert confirm.status_code == 200 and 'method="post"' in confirm.text
    assert dash.client.get("/environments/nope/delivery").status_code == 404


def test_dora_is_read_again_only_after_a_new_event(dash: Dash) -> None:
    calls: list[str] = []
    real = dash.backend.dora

    def spy(env: str, since: str, until: float | None = None):  # type: ignore[no-untyped-def]
        calls.append(env)
        return real(env, since, until)

    dash.backend.dora = spy  # type: ignore[method-assign]
    DORA.clear()
    dash.sign_in("deployer")
    dash.client.get("/environments/staging/delivery")
    first = len(calls)
    assert first == WEEKS + 1
    dash.client.get("/environments/staging/delivery")
    assert len(calls) == first  # nothing happened since: the answers are reused
    csrf = dash.csrf("/environments/staging/actions/suspend")
    dash.client.post("/environments/staging/actions/suspend", data={"csrf_token": csrf})
    dash.client.get("/environments/staging/delivery")
    assert len(calls) == 2 * first  # the suspension is an event: read again
