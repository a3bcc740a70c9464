"""The logs page's form (pure): fields to a LogQuery through `conveyor logs`' checks."""

from __future__ import annotations

import pytest

from conveyor.errors import LogQueryError
from conveyor.server.dashboard.log_search import LogForm


def test_the_form_becomes_the_query_conveyor_logs_makes() -> None:
    form = LogForm.of(
        {
            "service": "web, worker",
            "text": " GET /orders ",
            "level": "warning",
            "since": "10m",
            "release": "#3",
            "field": "status=500 method=GET",
            "host": "h1 h2",
        }
    )
    q = form.query(limit=50, now=10_000.0)
    assert q.services == ("web", "worker")
    assert q.text == "GET /orders"
    assert q.level == "warning"
    assert q.since == 10_000.0 - 600
    assert q.release == 3
    assert q.fields == {"status": "500", "method": "GET"}
    assert q.hosts == ("h1", "h2")
    assert q.limit == 50
    assert form.query_string() == (
        "service=web%2C+worker&text=GET+%2Forders&level=warning&since=10m&release=%233"
        "&field=status%3D500+method%3DGET&host=h1+h2"
    )


def test_an_empty_form_asks_for_everything() -> None:
    form = LogForm.of({})
    assert form.empty and form.query_string() == ""
    q = form.query()
    assert q.services == () and q.text == "" and q.level is None and q.fields == {}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"level": "loud"}, "level"),
        ({"since": "yesterday-ish"}, "since"),
        ({"field": "nokey"}, "field"),
        ({"release": "three"}, "release"),
        ({"since": "1m", "until": "2h"}, "until"),
    ],
)
def test_a_bad_field_is_named(params: dict[str, str], field: str) -> None:
    with pytest.raises(LogQueryError) as e:
        LogForm.of(params).query()
    assert e.value.option == field
